# The two entry points of the project: `make demo` and `make test`.
# Both build .venv with the project and everything it needs; nothing else is assumed
# but Python 3.10+ with pip (and, for the tests against a real Redis, root or sudo to
# install Debian's redis-server/redis-tools when they are missing; the demo needs neither).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: test demo lint tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

tools:
	@bash scripts/ensure-tools.sh

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) tools lint
	$(PY) -m pytest -n 2 --dist loadgroup

demo: $(STAMP)
	$(PY) example_project/run_demo.py

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) demo-data
