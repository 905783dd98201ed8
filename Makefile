# Two commands take a fresh machine to a running demo (make run) and a green
# test run (make test). Everything they need is installed into .venv and
# node_modules here; nothing is assumed but Python, pip and the databases.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run serve demo test test-sqlite test-postgresql lint bench bench-install clean

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

lint: install
	$(BIN)/ruff check registry tests bench

# The benchmark (bench/README.md): BENCH_N licences (default 100000) on SQLite
# and PostgreSQL; figures in bench/results/. BENCH_N=1000000 for the full run.
BENCH_N ?= 100000
BENCH_BACKENDS ?= sqlite postgresql
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements-bench.txt | sha1sum | cut -c1-12)

$(BENCH_STAMP): requirements-bench.txt | $(STAMP)
	$(BIN)/pip install --quiet -r requirements-bench.txt
	rm -f $(VENV)/.bench-*
	touch $(BENCH_STAMP)

bench-install: install $(BENCH_STAMP)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: bench-install
	$(BIN)/python -m bench.run --n $(BENCH_N) --backends "$(BENCH_BACKENDS)"

clean:
	rm -rf $(VENV) node_modules .pytest_cache
