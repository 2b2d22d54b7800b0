# One command surface for people and CI. Every target sets up .venv from nothing when needed.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck check bench serve clean setup eval

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

## run: start the determination service on 127.0.0.1:$(PORT) with an embedded SQLite store and demo data
run: $(STAMP)
	$(BIN)/medpolicy demo --port $(PORT)

## test: lint, type-check, every policy's cases, and the whole test suite
test: $(STAMP) lint typecheck
	$(BIN)/medpolicy policy check --coverage
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: engine/hand-written, validated/engine, CLI/orjson copy, service/bare endpoint, screening/scan,
## extraction (each a ratio to a baseline measured in the same run, or a rate, printed with the absolute
## figures and load; all run, then a ratio below its target fails)
bench: $(STAMP)
	@status=0; \
	for b in engine_bench.py cli_bench.py "load_service.py" "load_service.py --cds-alg RS384" screen_bench.py extract_eval.py extract_bench.py; do \
	  echo "== bench/$$b"; $(BIN)/python bench/$$b || status=1; \
	done; exit $$status

## eval: extraction quality per fact on the report corpus (development and held-out parts; docs/extraction.md)
eval: $(STAMP)
	$(BIN)/python bench/extract_eval.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
