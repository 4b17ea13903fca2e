# `make check` is exactly what CI runs (.ci/run calls it).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: check lint typecheck test run sandbox clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

check: lint typecheck test

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two processes (pytest-xdist), a file's tests kept together in one.
test: $(STAMP)
	$(VENV)/bin/pytest -n 2 --dist loadfile

run: $(STAMP)
	$(VENV)/bin/planhat-sync dev

sandbox: $(STAMP)
	$(VENV)/bin/planhat-sync sandbox

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
