# The two commands a user needs: `make train` and `make test`. Each creates
# .venv on first use and installs the package (with dev extras) into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint train bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check zoo tests benchmarks
	$(PY) -m pytest -n 2 --dist loadfile tests

lint: $(STAMP)
	$(PY) -m ruff check zoo tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
