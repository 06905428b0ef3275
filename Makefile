# The two commands of the README: `make book` and `make test`. Each installs what it needs on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Offline by default: a hub id fails in seconds instead of a minute of retries.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

.PHONY: book book-real test lint clean screenshots

$(STAMP): requirements.txt requirements-data.txt lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -c lock.txt
	$(BIN)/pip install -q --no-deps -r requirements-data.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (elasticity)" >/dev/null
	touch $(STAMP)

book: $(STAMP)  ## build the book strictly, running every chapter for real at the default scale (CPU)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/elasticity book

book-real: $(STAMP)  ## run and archive the real-model chapters into results/ (SmolLM2-135M on 2 CPU cores: hours, resumable)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/elasticity run resistance -p family smollm2-135m --archive
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/elasticity run rebound -p family smollm2-135m --archive

test: $(STAMP)  ## run the test suite (CPU-only, offline; includes a smoke-scale build of the whole book)
	PATH="$(CURDIR)/$(BIN):$$PATH" OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not gpu and not network"

lint: $(STAMP)
	$(BIN)/ruff check elasticity tests benchmarks scripts

screenshots: $(STAMP)  ## screenshot the built HTML in headless Chromium and check math and figures
	$(BIN)/python scripts/check_html.py _build/html

clean:
	rm -rf _build runs
