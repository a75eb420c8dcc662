# The README's commands. `make serve` and `make test` build the virtual environment on first use.
PYTHON ?= python3.11
VENV   ?= .venv
PORT   ?= 5000
BIN    := $(VENV)/bin
# torch goes in first, pinned as in requirements.txt, so no later package can swap its build.
TORCH_PINS := $(shell grep -E '^torch(vision)?==' requirements.txt)

.PHONY: venv serve test test-fast clean-cache

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip>=24,<27"
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

serve: venv
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not e2e"

clean-cache:
	rm -rf model_cache/tiny model_cache/embeddings
