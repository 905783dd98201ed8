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

.PHONY: install run serve demo test test-sqlite test-postgresql test-browser browser-deps proxy-deps translations fuzz lint bench bench-install clean

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

# The browser tests drive Debian's Chromium through Playwright; nothing
# downloads a browser. They run in the SQLite pass only: the pages call the
# same services on both databases, and tests/test_web.py covers them there.
test: install node_modules/.package-lock.json browser-deps proxy-deps
	$(BIN)/pytest -q --db=sqlite
	$(BIN)/pytest -q --db=postgresql -m "not browser"

test-browser: install browser-deps
	$(BIN)/pytest -q --db=sqlite -m browser

# Debian's Chromium (and a font with Cyrillic) for the browser tests, installed
# only when missing. CI runs as root; elsewhere sudo is used.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser-deps:
	@if [ ! -x $(CHROMIUM) ] || [ ! -d /usr/share/fonts/truetype/dejavu ]; then \
		echo "installing Debian's chromium and fonts-dejavu-core for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	fi

# Debian's HAProxy, the reverse proxy of deploy/, for tests/test_proxy.py and
# make bench; installed only when missing.
HAPROXY := /usr/sbin/haproxy

proxy-deps:
	@if [ ! -x $(HAPROXY) ]; then \
		echo "installing Debian's haproxy for the proxy tests and the benchmark"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy; \
	fi

test-sqlite: install
	$(BIN)/pytest -q --db=sqlite

test-postgresql: install
	$(BIN)/pytest -q --db=postgresql

# After changing a string on a page: extract, merge into each language's .po,
# translate what is new (the tests fail on an empty or fuzzy entry), compile.
BABEL_KEYWORDS := -k _l -k lazy_pgettext:1c,2
translations: install
	$(BIN)/pybabel -q extract -F registry/http/web/babel.cfg $(BABEL_KEYWORDS) --no-location --sort-output \
		--project "AEO registry" --copyright-holder "AEO registry contributors" \
		-o registry/http/web/translations/messages.pot .
	$(BIN)/pybabel -q update -i registry/http/web/translations/messages.pot -d registry/http/web/translations \
		--width 100 --ignore-obsolete
	$(BIN)/pybabel -q compile -d registry/http/web/translations

# The long fuzzing run (make test runs a short, repeatable one): fresh randomness,
# failures kept in .hypothesis/ and replayed first next time.
fuzz: install
	REGISTRY_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --db=$(FUZZ_DB) tests/test_fuzz.py

lint: install
	$(BIN)/ruff check registry tests bench deploy

# The benchmark (bench/README.md): BENCH_N licences (default 100000) on SQLite
# and PostgreSQL, served by two gunicorn instances behind HAProxy (deploy/);
# figures in bench/results/. BENCH_N=1000000 for the full run.
BENCH_N ?= 100000
BENCH_BACKENDS ?= sqlite postgresql
BENCH_STAMP := $(VENV)/.bench-$(shell cat requirements-bench.txt | sha1sum | cut -c1-12)

$(BENCH_STAMP): requirements-bench.txt | $(STAMP)
	$(BIN)/pip install --quiet -r requirements-bench.txt
	rm -f $(VENV)/.bench-*
	touch $(BENCH_STAMP)

bench-install: install $(BENCH_STAMP) proxy-deps
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: bench-install
	$(BIN)/python -m bench.run --n $(BENCH_N) --backends "$(BENCH_BACKENDS)"

clean:
	rm -rf $(VENV) node_modules .pytest_cache
