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
# The CPU build of torch comes from this index (named in requirements.txt). Where it cannot be reached, the set-up
# says so and installs from pip's own indexes (PyPI, PIP_FIND_LINKS): on Linux, PyPI's torch is the CUDA build.
TORCH_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: book book-real test lint clean screenshots

$(STAMP): requirements.txt requirements-data.txt lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=15)" \
	    "$(TORCH_INDEX)/torch/" 2>/dev/null; then \
	  echo "set-up: torch from $(TORCH_INDEX)"; \
	  $(BIN)/pip install -q -r requirements.txt -c lock.txt; \
	else \
	  echo "set-up: $(TORCH_INDEX) cannot be reached; torch from pip's own indexes instead"; \
	  grep -v -- "--extra-index-url $(TORCH_INDEX)" requirements.txt > $(VENV)/requirements-fallback.txt; \
	  $(BIN)/pip install -q -r $(VENV)/requirements-fallback.txt -c lock.txt; \
	fi
	@$(BIN)/python -c "import torch; print(f'set-up: installed torch {torch.__version__},', \
	    f'CUDA {torch.version.cuda} build' if torch.version.cuda else 'CPU build')"
	$(BIN)/pip install -q --no-deps -r requirements-data.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m elasticity.kernel
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
