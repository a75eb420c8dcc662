# The README's commands. `make serve` and `make test` build the project's virtual environment on first use,
# from pyproject.toml's extras with every version pinned by requirements.txt (the lock).
PYTHON ?= python3.11
VENV   ?= .venv
PORT   ?= 5000
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
# torch goes in first, pinned as in requirements.txt, so no later package can swap its build.
TORCH_PINS := $(shell grep -E '^torch(vision)?==' requirements.txt)

.PHONY: venv front serve test test-fast lock clean-cache

# The server alone: what `make serve` and the Docker image install.
$(VENV)/.serve: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "pip>=24,<27"
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -c requirements.txt -e '.[serve]'
	touch $@

# Everything: the server, the tools (batch, evaluate, benchmarks) and the tests.
$(VENV)/.all: $(VENV)/.serve
	$(PIP) install --quiet -c requirements.txt -e '.[test]'
	touch $@

venv: $(VENV)/.all

# nginx for the buffering front that gunicorn starts (GUIDEPOST_FRONT): installed from apt when root, else explained.
front:
	@sh scripts/ensure-nginx.sh

serve: $(VENV)/.serve front
	PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# The tests run the front whatever GUIDEPOST_FRONT says here.
test: $(VENV)/.all
	@sh scripts/ensure-nginx.sh --always
	$(BIN)/python -m pytest

test-fast: $(VENV)/.all
	@sh scripts/ensure-nginx.sh --always
	$(BIN)/python -m pytest -m "not e2e"

# Re-pin every dependency from pyproject.toml (after changing a range there); commit both files.
lock: $(VENV)/.serve
	$(PIP) install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra test --strip-extras \
		--no-emit-index-url --no-emit-find-links --unsafe-package guidepost -o requirements.txt pyproject.toml
	sed -i '6a # Why each direct dependency is bounded or pinned as it is: the comments in pyproject.toml.\n#' requirements.txt

clean-cache:
	rm -rf model_cache/tiny model_cache/embeddings
