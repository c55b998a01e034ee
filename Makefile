# One command each: `make demo` (set up + run the demo), `make test` (set up + run every check),
# `make bench` (set up + run the benchmark against the peers). Everything lands in .venv.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip -q --disable-pip-version-check
SILERO  := silero-vad==6.2.3

.PHONY: demo test bench bench-smoke setup setup-test lint clean

$(VENV)/.created:
	python3 -m venv $(VENV)
	$(PIP) install -U pip >/dev/null
	touch $@

# The demo's real model ships inside the silero-vad wheel; --no-deps keeps torch out.
setup: $(VENV)/.created
	bash scripts/system-deps.sh
	$(PIP) install -e '.[onnx]'
	$(PIP) install --no-deps $(SILERO)

setup-test: setup
	EXTRA_DEPS="" bash scripts/system-deps.sh
	$(PIP) install -e '.[test]'

demo: setup
	$(VENV)/bin/runanywhere demo

lint: setup-test
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy

test: setup-test lint
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	EXTRA_DEPS="aria2c:aria2" bash scripts/system-deps.sh
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py

bench-smoke: setup
	EXTRA_DEPS="aria2c:aria2" bash scripts/system-deps.sh
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
