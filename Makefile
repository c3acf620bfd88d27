# The README's commands. Each target sets up .venv on a fresh machine before it runs.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint bench bench-peers

# The serving install carries no torch (the service and its client); the full one adds training and test tools.
$(BIN)/.serve-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[service,client]'
	touch $@

$(BIN)/.all-installed: pyproject.toml $(BIN)/.serve-installed
	$(BIN)/python -m pip install --quiet -e '.[service,training,client,bulk,dev]'
	touch $@

serve: $(BIN)/.serve-installed
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

lint: $(BIN)/.all-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

# Speed figures for docs/performance.md (see bench/): the bundled model on this machine's CPU.
bench: $(BIN)/.all-installed
	$(BIN)/python -m bench.sampling
	$(BIN)/python -m bench.serving

# The service against MLServer, LitServe, BentoML and KServe in one run (each in its own .peers/ virtual environment).
bench-peers: $(BIN)/.all-installed
	$(BIN)/python -m bench.peers
