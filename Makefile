VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install lint
$(VENV)/.installed: pyproject.toml scripts/install.sh
	VENV=$(VENV) bash scripts/install.sh

install: $(VENV)/.installed

run: install
	$(BIN)/nas run

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check nas predictors tests
