# Two commands on a fresh machine (Python 3.11, pip, venv, make):
#   make run    the main job: `muso linear`, the authors' linear experiment
#   make test   the test suite
# Either one creates .venv/ and installs the pinned dependencies first.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test verify bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/muso linear

test: $(STAMP)
	$(VENV)/bin/python -m pytest

verify: $(STAMP)
	$(VENV)/bin/muso verify

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis *.egg-info
