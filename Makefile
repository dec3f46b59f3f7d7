# The two entry points of the project: `make demo` and `make test`.
# Both build .venv with the project and everything it needs; nothing else is assumed
# but Python 3.10+ with pip (and, for the tests against a real Redis, root or sudo to
# install Debian's redis-server/redis-tools when they are missing; the demo needs neither).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test test-oldest test-newest demo lint tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

tools:
	@bash scripts/ensure-tools.sh

lint: $(STAMP)
	$(PY) -m ruff check .

# The suite's Python processes write and reuse bytecode caches even where the environment
# asks for none (PYTHONDONTWRITEBYTECODE=1): it starts hundreds of Python processes (servers,
# Celery workers, crash-loop writers, kvb commands), and without the caches each compiles the
# package again, and each pytest worker rewrites every test module's asserts again.
TEST_ENV := PYTHONDONTWRITEBYTECODE=

# Three pytest workers, also on two cores: most tests wait for the processes and sockets they start
# (servers, Celery workers, kill loops) rather than compute; two left the cores idle about half the
# time (a full run took 272 s with two workers, 203-208 s with three, on two cores).
test: $(STAMP) tools lint
	$(TEST_ENV) $(PY) -m pytest -n 3 --dist loadgroup

# The whole suite on the oldest Python and dependency lines the project supports
# (.ci/oldest.txt), in a venv of its own. Not part of `make test`: it needs a
# Python 3.10, found through pyenv when it has one, else python3.10 on PATH
# (OLDEST_PYTHON=/path/to/python to name another).
OLDEST_PYTHON ?= $(shell p=$$(pyenv prefix 3.10 2>/dev/null) && echo $$p/bin/python || echo python3.10)
OLDEST_VENV   := .venv-oldest

test-oldest: tools
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST_VENV)/bin/python -m pip install --quiet -e '.[dev]' -c .ci/oldest.txt
	$(TEST_ENV) $(OLDEST_VENV)/bin/python -m pytest -n 3 --dist loadgroup

# The whole suite on the newest Python found (3.14, 3.13 or 3.12, through pyenv or on PATH)
# with the newest releases that install there (Django 6.x needs 3.12+), in a venv of its own.
# Not part of `make test`; NEWEST_PYTHON=/path/to/python names another interpreter.
NEWEST_PYTHON ?= $(shell for v in 3.14 3.13 3.12; do p=$$(pyenv prefix $$v 2>/dev/null) && echo $$p/bin/python && exit; \
	command -v python$$v && exit; done; echo python3)
NEWEST_VENV   := .venv-newest

test-newest: tools
	$(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(NEWEST_VENV)/bin/python -m pip install --quiet --upgrade -e '.[dev]'
	$(TEST_ENV) $(NEWEST_VENV)/bin/python -m pytest -n 3 --dist loadgroup

demo: $(STAMP)
	$(PY) example_project/run_demo.py

# bench_celery.py, bench_django.py and bench_resp.py compare with a redis-server (and
# redis-benchmark): without them the first stops and the second drops its RedisCache row.
# bench_http.py needs wrk and webdis too, which ensure-tools.sh --bench installs where it can.
bench: $(STAMP)
	@bash scripts/ensure-tools.sh --bench
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) $(OLDEST_VENV) $(NEWEST_VENV) demo-data example_project/var
