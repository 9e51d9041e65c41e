# rsnb: two commands do everything on a fresh machine.
#   make demo   set up .venv, generate the synthetic dataset, train + evaluate AMFMN
#   make test   set up .venv, run unit tests and execute every notebook (quick mode)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.rsnb-installed

.PHONY: install demo test test-package lint bench gpu-check figures clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch/torchvision first, pinned to the tested pair, then the package with its dev extra.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m rsnb demo --out runs/demo

# The papers' tables and figures (rsnb/reproduce.py) into figures/07_*, every run cached in runs/figures
# (resumable): the cpu budget (38 runs, 10.5 min measured on an idle 2-core CPU) without CUDA, the gpu budget with it.
figures: $(STAMP)
	MPLBACKEND=Agg $(PY) -m rsnb figures --budget auto

test: $(STAMP)
	RSNB_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest -q --durations=15 tests
	RSNB_QUICK=1 MPLBACKEND=Agg $(PY) -m pytest -q --nbmake --nbmake-timeout=900 --durations=10 notebooks
	$(PY) .ci/check_package.py

# the wheel installs into a scratch venv (reusing this venv's torch) and trains outside the checkout
test-package: $(STAMP)
	$(PY) .ci/check_package.py

lint: $(STAMP)
	$(VENV)/bin/ruff check rsnb tests bench notebooks

bench: $(STAMP)
	$(PY) bench/bench_synthetic.py

# On a CUDA machine only (never in CI): AMP, resume and evaluation paths, about 5 minutes.
gpu-check: $(STAMP)
	$(PY) bench/gpu_check.py

clean:
	rm -rf runs .pytest_cache
