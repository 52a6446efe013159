# Every target bootstraps .venv from the lock file itself; `make run` and `make test` are all a newcomer needs.
# --compile-bytecode: uv does not compile by default, so the first run (and every run where
# PYTHONDONTWRITEBYTECODE is set) compiles its dependencies from source: ~3 s more before `make run` answers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

.PHONY: venv run test test-unit test-integration lint format bench load build deploy clean metrics

venv: $(STAMP)

$(STAMP): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(BIN)/uv pip sync -q --compile-bytecode --python $(BIN)/python requirements-dev.lock
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

run: venv
	$(BIN)/python -m infra.local

test: venv
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: venv
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --region us-east-1 --template-file template.yaml

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python -m pytest tests/bench -s -p no:xdist $(PYTEST_ARGS)

load: venv
	$(BIN)/python -m tests.load

metrics: venv
	$(BIN)/python -m infra.local.metrics_table

build: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sam build --template-file template.yaml

deploy: build
	$(BIN)/sam deploy

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache
