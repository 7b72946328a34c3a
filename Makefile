VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test reliability install lint fashion-mnist run-fashion-mnist bench-fashion-mnist gpu-check
$(VENV)/.installed: pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh

install: $(VENV)/.installed

run: install
	$(BIN)/nas run

# lint (ruff, mypy), the default suite, then the fault-injection suite (marker faults; see
# results/benchmarks/reliability.md) and the long end-to-end benchmark tests (marker long). CI runs exactly this (.ci/run)
test: lint
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q -m 'faults or long'

reliability: install
	$(BIN)/python -m nas.benchmarks.reliability

lint: install
	$(BIN)/ruff check nas predictors tests
	$(BIN)/mypy  # files and settings: [tool.mypy] in pyproject.toml

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
