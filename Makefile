# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test lint typecheck unit bench demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Byte-compile like a normal install does (some machines set PYTHONDONTWRITEBYTECODE).
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q tradebot > /dev/null
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check tradebot tests benchmarks
	$(BIN)/ruff format --check tradebot tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-only --benchmark-columns=min,median,max,rounds -q

demo: $(STAMP)
	@echo "make demo arrives with the trading-loop issue (tradebot run on the simulated broker)."
	@echo "Until then, try: $(BIN)/tradebot --help   and   $(BIN)/tradebot config show"

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks
