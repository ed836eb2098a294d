# Two commands on a fresh machine (Python 3.11, pip, venv, make):
#   make run    the main job: `muso linear`, the authors' linear experiment
#   make test   the test suite
#   make docs   the documentation site, every lesson executed (docs/_build/html/index.html)
# Either one creates .venv/ and installs the pinned dependencies first.

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: run test verify bench docs screenshots fashion-mnist clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/muso linear

# Two worker processes: most of the suite's time is compilation, which is single-threaded.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n 2

verify: $(STAMP)
	$(VENV)/bin/muso verify

bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,docs]"
	touch $(DOCS_STAMP)

# The documentation site, offline: every lesson executed in a fresh kernel; any warning, and any
# failing cell, fails the build. Output: docs/_build/html/index.html.
docs: $(DOCS_STAMP)
	rm -rf docs/_build
	$(VENV)/bin/sphinx-build -E -q -W --keep-going -b html docs docs/_build/html

# The built site checked for broken links and remote resources, three pages rendered by headless
# Chromium into docs/_build/screenshots/ (needs Debian's chromium: apt-get install chromium).
screenshots: $(STAMP)
	$(VENV)/bin/python docs/screenshots.py

# Fashion-MNIST's four idx files into /usr/share/datasets/fashion-mnist/ (the Debian package, from
# the distribution's archive; needs root). Without apt-get: download them from Zalando Research.
fashion-mnist:
	@if command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y dataset-fashion-mnist; \
	else \
		echo "apt-get not found: download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"; \
		echo "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from"; \
		echo "https://github.com/zalandoresearch/fashion-mnist into one folder and pass --path FOLDER"; \
		exit 1; \
	fi

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis *.egg-info docs/_build
