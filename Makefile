# A handful of targets. `make` creates .venv in the repository root if it is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned, as the CPU build: PyPI's torch for Linux is the multi-GB CUDA build. PyTorch's CPU index
	# is tried briefly (10 s, no retries); where it cannot be reached, the plain index gives the pinned version.
	$(PY) -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --timeout 10 --retries 0 	  || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install           ## the dev server on 127.0.0.1:8000 (embedded Redis, one CPU worker)
	$(VENV)/bin/tadm serve --dev

test: install          ## the test suite (CPU, no network, a real Redis per session)
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check model service tests scripts
	$(VENV)/bin/mypy model service

bench: install         ## CPU upscale benchmark with the tiny preset
	$(PY) scripts/bench_upscale.py --preset tiny

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
