# Quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-tz lint typecheck unit bench demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# Byte-compile like a normal install does (some machines set PYTHONDONTWRITEBYTECODE).
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q tradebot > /dev/null
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check tradebot tests benchmarks
	$(BIN)/ruff format --check tradebot tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite runs on every core (pytest-xdist); `make unit PYTEST_ARGS=` runs it serially.
PYTEST_ARGS ?= -n auto
unit: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

# The IBKR adapter and the gateway simulator under host time zones other than the usual UTC of
# CI (IB sends zone-less times; the result must not depend on the machine). `make test` runs each
# IBKR loop test under one of them already; this runs every one under each.
test-tz: $(STAMP)
	TZ=America/New_York TEST_HOST_TZ=America/New_York $(BIN)/pytest -q $(PYTEST_ARGS) tests/brokers/ibkr tests/gateway_sim
	TZ=Asia/Tokyo TEST_HOST_TZ=Asia/Tokyo $(BIN)/pytest -q $(PYTEST_ARGS) tests/brokers/ibkr tests/gateway_sim

bench: $(STAMP)
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-only --benchmark-columns=min,median,max,rounds -q -s

# One whole simulated session of the real loop, in a fresh temporary logs directory, then what
# happened: the journal and the phase ladder. DEMO_DAY picks the session (a real XNYS session).
DEMO_DAY ?= 2025-07-01
demo: $(STAMP)
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/tradebot-demo.XXXXXX") && \
	export TRADEBOT_PATHS__LOGS_DIR="$$dir/logs" TRADEBOT_PATHS__STATE_DIR="$$dir/logs/state" && \
	echo "== tradebot run: the $(DEMO_DAY) session on the simulated broker (logs in $$dir/logs)" && \
	$(BIN)/tradebot --config examples/demo.toml run --start $(DEMO_DAY) --speed max && \
	echo && echo "== tradebot journal" && \
	$(BIN)/tradebot --config examples/demo.toml journal && \
	echo && echo "== tradebot phase status" && \
	$(BIN)/tradebot --config examples/demo.toml phase status

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis .benchmarks
