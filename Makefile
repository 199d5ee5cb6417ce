# The two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv if missing and installs everything the project needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CPU build of PyTorch, pinned: an unpinned torch pulls several GB of CUDA packages.
TORCH_PIN := torch==2.13.0

.PHONY: demo test venv bench clean browser

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m dlreg demo --output demo-output

# Debian's Chromium, for the batch QC report's test in a real headless browser: installed once
# (needs apt-get and root, as on CI); nothing to do when it is already there.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q Testing

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) benchmarks/zeroshot.py

clean:
	rm -rf $(VENV) demo-output build *.egg-info
