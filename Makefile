VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install lint fashion-mnist run-fashion-mnist bench-fashion-mnist gpu-check
$(VENV)/.installed: pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh

install: $(VENV)/.installed

run: install
	$(BIN)/nas run

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check nas predictors tests

# Fashion-MNIST (Debian's dataset-fashion-mnist; needs root or sudo) and the main result on it
fashion-mnist: install
	VENV=$(VENV) bash scripts/install.sh --fashion-mnist

run-fashion-mnist: fashion-mnist
	$(BIN)/nas run --data fashion-mnist --out results/run-fashion-mnist

bench-fashion-mnist: fashion-mnist
	$(BIN)/python -m nas.benchmarks.fashion_mnist

# On a machine with a CUDA GPU: pytest -m gpu, then results/benchmarks/gpu.md (8 minutes at most)
gpu-check:
	bash scripts/gpu_check.sh
