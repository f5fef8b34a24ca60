# RNN Loops Lab. The README's two set-up commands are `make lab` and `make test`.
SHELL := /bin/bash
# A supported Python (3.11 preferred, then 3.12), found by scripts/find-python.sh; or make lab PYTHON=/path/to/python
ifndef PYTHON
PYTHON := $(shell sh scripts/find-python.sh)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# JupyterLab refuses to run as root without --allow-root; add it only for root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
CELL_TIMEOUT ?= 300
# The browser test drives Debian's Chromium (apt-get install chromium); Playwright's own download is never used.
CHROMIUM ?= /usr/bin/chromium
NOTEBOOK_TIMEOUT ?= 600
# Which torch build the first install puts into .venv. On Linux the package index's torch bundles CUDA
# (several GB of nvidia-* packages), so torch comes from PyTorch's CPU wheel index, and from it alone
# (--index-url, --no-deps: pip cannot fall back to the CUDA build). Elsewhere the index's torch is CPU-only.
#   make lab TORCH_INDEX=https://download.pytorch.org/whl/cu130   a CUDA build from PyTorch's index
#   make lab TORCH_INDEX=pypi     torch from pip's configured index with everything else (on Linux: CUDA)
UNAME ?= $(shell uname -s)
ifeq ($(UNAME),Linux)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
else
TORCH_INDEX ?= pypi
endif
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: help lab test lint check-env execute verdicts test-browser test-compat site test-site bench lock clean

help:
	@echo "make lab          open JupyterLab on notebooks/ (creates .venv on first use)"
	@echo "make test         ruff, helper unit tests + doctests + strict nbval over every notebook"
	@echo "make lint         ruff check over helpers, tests, scripts, website and the notebooks"
	@echo "make check-env    versions, CUDA, threads, widgets, graphviz, and what to do about gaps"
	@echo "make execute      re-run every notebook in place, check the 60 s budget, tidy them (notebook_hygiene.py)"
	@echo "make verdicts     run every notebook 3 times (once with all cores busy) and show each verdict's margin"
	@echo "make test-browser run every notebook live in JupyterLab in headless Chromium"
	@echo "make test-compat  the tests in separate environments (torch 2.14.1, floor versions); records in compat/records/"
	@echo "make bench        record reference timings into data/reference/ (see CONTRIBUTING.md)"
	@echo "make site         build the course website from the stored notebooks into build/site/"
	@echo "make test-site    build the site and check every page in headless Chromium, offline"

# The first install: no --quiet, because it downloads a few hundred MB and pip's progress shows it working.
$(STAMP): pyproject.toml constraints.txt lab-overrides.json
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { \
	  echo "No Python 3.11 or 3.12 found (on PATH, in pyenv, Homebrew or python.org's usual places)."; \
	  echo "Install Python 3.11 (the tested version): python.org's installer (macOS, Windows),"; \
	  echo "'brew install python@3.11' (macOS), 'sudo apt-get install python3.11 python3.11-venv' (Debian/Ubuntu),"; \
	  echo "'pyenv install 3.11', or use conda: 'conda env create -f environment.yml' (see README)."; \
	  echo "Or point make at one you have: make lab PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@sh scripts/find-python.sh --check $(BIN)/python
	$(if $(filter-out pypi,$(TORCH_INDEX)),$(PIP_INSTALL) --no-deps --index-url $(TORCH_INDEX) torch)
	$(PIP_INSTALL) -e '.[lab,test]'
	@# JupyterLab defaults for the course (code cells wrap long lines instead of scrolling sideways)
	@mkdir -p $(VENV)/share/jupyter/lab/settings && cp lab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $(ROOT_FLAG)

test: lint
	$(BIN)/python -m pytest --doctest-modules helpers tests $(NOTEBOOKS)

# ruff's configuration is [tool.ruff] in pyproject.toml (notebooks included); ruff is pinned in constraints.txt.
lint: $(STAMP)
	$(BIN)/ruff check .

check-env: $(STAMP)
	@$(BIN)/python -m helpers.device

# helpers.execute runs a notebook in a fresh kernel with a finite per-cell timeout, keeps the widgets' state,
# and polls the kernel in short bounded waits (nbclient#312: a missed reply after a panel cell stalled for a
# whole cell timeout). It checks CELL_TIMEOUT and the path before running anything; run_with_timeout.py
# (not GNU timeout, which macOS and Windows lack) holds each notebook to NOTEBOOK_TIMEOUT and checks it first.
# The course promises each notebook runs in under a minute: make execute reads every notebook's run time
# from its cells' timestamps and fails above NOTEBOOK_BUDGET s (scripts/notebook_hygiene.py, which then drops
# the timestamps and renumbers widget ids so an unchanged re-run changes no line outside real outputs).
NOTEBOOK_BUDGET ?= 60
execute: $(STAMP)
	@set -e; for nb in $(NOTEBOOKS); do \
	  $(BIN)/python scripts/run_with_timeout.py '$(NOTEBOOK_TIMEOUT)' \
	    $(BIN)/python -m helpers.execute --in-place --cell-timeout '$(CELL_TIMEOUT)' "$$nb"; \
	done
	$(BIN)/python scripts/notebook_hygiene.py --write --budget $(NOTEBOOK_BUDGET) $(NOTEBOOKS)

# How firmly each checked verdict holds: every notebook executed VERDICT_RUNS times, run 2 with every core
# busy; writes data/reference/verdicts.json and fails on a changed outcome or a timing margin below 1.5.
# Run it before storing a notebook. VERDICT_ARGS="--notebooks 02" runs one.
VERDICT_ARGS ?=
verdicts: $(STAMP)
	$(BIN)/python -m helpers.verdict_runs $(VERDICT_ARGS)

# Every notebook live in JupyterLab + headless Chromium (tests/browser). Installs the 'browser' extra
# (Playwright's Python package) on first use; screenshots and logs go to test-artifacts/browser/.
# -m browser overrides the '-m not browser' of addopts; only tests/browser is collected, so nbval
# collects no notebook here (the browser test runs them itself).
test-browser: $(STAMP)
	@$(BIN)/python -c "import playwright" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[lab,test,browser]'
	@test -x "$(CHROMIUM)" || { echo "Chromium not found at $(CHROMIUM): 'sudo apt-get install chromium'" \
	  "(Debian/Ubuntu), or make test-browser CHROMIUM=/path/to/chromium"; exit 1; }
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m "browser and not site" -v -rA --durations=0 tests/browser

# The course website (website/build.py): renders the stored notebooks, never executes them. Installs only
# the 'site' extra's packages into .venv on first use (Sphinx, myst-nb, the theme: no torch, no JupyterLab,
# so a fresh clone builds the site quickly); npm fetches the widget manager and MathJax once (website/vendor.json).
SITE_PACKAGES = $(shell $(PYTHON) -c 'import shlex, tomllib; print(shlex.join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["site"]))')
SITE_STAMP := $(VENV)/.site-installed
$(SITE_STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11, or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt $(SITE_PACKAGES)
	@touch $@

site: $(SITE_STAMP)
	$(BIN)/python website/build.py

# The built site in headless Chromium (tests/browser/test_site.py), every request to another host refused.
# pytest runs in the course environment (the root conftest imports torch), hence $(STAMP).
test-site: site $(STAMP)
	@$(BIN)/python -c "import playwright" 2>/dev/null || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,browser]'
	@test -x "$(CHROMIUM)" || { echo "Chromium not found at $(CHROMIUM): 'sudo apt-get install chromium'" \
	  "(Debian/Ubuntu), or make test-site CHROMIUM=/path/to/chromium"; exit 1; }
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m site -v -rA tests/browser/test_site.py

# Each case builds its own environment under build/compat/ from a fresh clone of the current commit and
# writes compat/records/<case>.json. COMPAT_CASES="--case colab-like-py312" runs the Colab-like case
# (Python 3.12, downloads about 3 GB of torch the first time).
COMPAT_CASES ?=
test-compat:
	COMPAT_COMMAND="make test-compat $(if $(COMPAT_CASES),COMPAT_CASES='$(COMPAT_CASES)')" \
	  $(or $(PYTHON),python3) scripts/compat.py $(COMPAT_CASES)

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > constraints.new
	@echo "wrote constraints.new: review, keep the header of constraints.txt, then replace it"

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts build/compat build/site build/site-src build/site-doctrees build/site-vendor

# Reference timings: `make bench` (CPU) or `make bench DEVICE=cuda` on a GPU machine.
DEVICE ?= cpu
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m helpers.bench --device $(DEVICE) --scale reference $(BENCH_ARGS)
