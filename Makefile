# Everything a fresh clone needs: `make test`, `make reproduce`, `make bench`, `make lab`.
# The virtual environment is created on first use and refreshed when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONHASHSEED := 0

.PHONY: venv test test-real lint unit nbval reproduce bench gpu-check lab clean-runs book

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch from this machine's local wheels; other pins download GBs.
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

# Unit tests three at a time on the two cores (a test file stays on one worker: its fixtures
# are shared; the longest files first, tests/conftest.py): the SLURM tests mostly wait on the
# cluster, and a third worker fills those waits. Idle OpenMP threads sleep instead of
# spinning (OMP_WAIT_POLICY; it changes no result). Then every notebook at the smoke profile
# under nbval, one after another (they share the smoke run store) and alone on the cores.
# Every notebook on an example RSNA download is `make test-real` (.ci/run runs it after `make test`).
REAL := tests/test_real_data_notebooks.py
test: $(STAMP)
	$(PY) -m ruff check mvlib tests notebooks
	OMP_WAIT_POLICY=PASSIVE MVLIB_PROFILE=smoke $(PY) -m pytest tests -n 3 --dist loadfile \
		--no-loadscope-reorder -p no:cacheprovider --ignore=$(REAL) --durations=15
	MVLIB_PROFILE=smoke $(PY) -m pytest notebooks --nbval-lax -p no:cacheprovider --durations=5

test-real: $(STAMP)
	MVLIB_PROFILE=smoke $(PY) -m pytest $(REAL) -p no:cacheprovider \
		--durations=5

# The static site: a landing page, the committed, executed notebooks (never re-run), the
# README and the guide as HTML
# in runs/book/html (open runs/book/html/index.html, or serve it: python -m http.server -d
# runs/book/html). A fresh build; any Sphinx warning fails it. tests/test_site.py builds the
# same site and reads it in Chromium (`make test` runs it with the unit tests).
BOOK := runs/book
book: $(STAMP)
	$(PY) -m sphinx -E -W --keep-going -n -b html -d $(BOOK)/doctrees notebooks $(BOOK)/html
	@echo "site: $(BOOK)/html/index.html"

# Re-run every numbered notebook in order (papermill, laptop profile by default).
# Real data: make reproduce DATASET=rsna DATA_ROOT=/data/rsna (notebooks/guide.md, "Your own data").
# Another seed list (notebooks/guide.md, "Do the verdicts survive a re-run?"): make reproduce RESEED=100.
# On SLURM (notebooks/guide.md, "On a cluster"): make reproduce EXECUTOR=slurm MVLIB_SLURM_PARTITION=gpu ...
# Several runs on each GPU (or SLURM job), e.g. four: make reproduce RUNS_PER_GPU=4
# Heatmaps for a source without them (notebooks/guide.md, "Heatmaps for any source"):
#   make reproduce DATASET=rsna DATA_ROOT=/data/rsna PATCH_WEIGHTS=/data/sample_patch_model.p
PROFILE ?= laptop
DATASET ?= synthetic
reproduce: $(STAMP)
	$(PY) -m mvlib reproduce --profile $(PROFILE) --dataset $(DATASET) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(RESEED),--reseed $(RESEED)) \
		$(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(RUNS_PER_GPU),--runs-per-gpu $(RUNS_PER_GPU)) \
		$(if $(PATCH_WEIGHTS),--option patch_weights=$(abspath $(PATCH_WEIGHTS)))

# Throughput benchmarks, each beside its baseline; their lines go to figures/bench.json, which
# the README renders (python -m mvlib readme).
bench: $(STAMP)
	$(PY) -m mvlib.tools.bench
	$(PY) -m mvlib readme

# The CUDA path measured (bf16 vs CPU fp32, throughput at the paper's size): notebooks/guide.md, "Benchmarks".
gpu-check: $(STAMP)
	$(PY) -m mvlib.tools.gpu_check --out gpu_check.json

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

clean-runs:
	rm -rf runs
