# Each target does its own set-up: a fresh machine needs only `make run` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS_STAMP := $(VENV)/.installed-extras
DOCS_STAMP := $(VENV)/.installed-docs
TORCH := torch==2.13.0

.PHONY: venv extras docs run demo test test-slow wheel-check bench clean

# torch==2.13.0 first: that pin takes the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# The optional integrations (TRL, torchrl) and their tests; CI installs them. The constraint keeps
# the torch pinned above: nothing these extras ask for may replace it.
$(EXTRAS_STAMP): $(STAMP)
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[dev,trl,torchrl]"
	touch $(EXTRAS_STAMP)

extras: $(EXTRAS_STAMP)

# The documentation site in site/ (MkDocs + Material + mkdocstrings; the CLI page is generated from the
# parser at build time by docs/hooks/gen_cli.py). --strict: a broken link or reference fails the build.
$(DOCS_STAMP): $(STAMP) setup.cfg
	echo "$(TORCH)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[dev,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/mkdocs build --strict -d site

run: $(STAMP)
	$(BIN)/seqgan-env train

demo: $(STAMP)
	$(BIN)/seqgan-env demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The built wheel in a fresh venv outside the checkout (torch==2.13.0 CPU, then the wheel and its dependencies
# from PyPI): data and licence files present, gym.make, SB3 make_vec_env and a tiny `seqgan-env train` work.
wheel-check: $(STAMP)
	PY=$(PY) BUILD_PY=$(BIN)/python TORCH=$(TORCH) .ci/wheel_check.sh

bench: $(STAMP)
	$(BIN)/seqgan-env bench all

clean:
	rm -rf $(VENV) build *.egg-info site
