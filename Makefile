# Two commands take a fresh machine to a running demo (make run) and a green
# test run (make test). Everything they need is installed into .venv and
# node_modules here; nothing is assumed but Python, pip and the databases.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
# make fuzz: examples per operation and role, and the backend (make fuzz FUZZ_DB=postgresql)
FUZZ_EXAMPLES ?= 500
FUZZ_DB ?= sqlite

.PHONY: install run serve demo test test-sqlite test-postgresql fuzz lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

demo: install
	$(BIN)/flask --app wsgi registry demo

run: demo serve

serve: install
	$(BIN)/gunicorn --config gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

test: install node_modules/.package-lock.json
	$(BIN)/pytest -q --db=sqlite
	$(BIN)/pytest -q --db=postgresql

test-sqlite: install
	$(BIN)/pytest -q --db=sqlite

test-postgresql: install
	$(BIN)/pytest -q --db=postgresql

# The long fuzzing run (make test runs a short, repeatable one): fresh randomness,
# failures kept in .hypothesis/ and replayed first next time.
fuzz: install
	REGISTRY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --db=$(FUZZ_DB) tests/test_fuzz.py

lint: install
	$(BIN)/ruff check registry tests

clean:
	rm -rf $(VENV) node_modules .pytest_cache
