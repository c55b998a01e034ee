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

# The browser test of `serve` needs headless Chromium + chromedriver (Debian) and onnxruntime-web
# (npm, pinned by tests/browser/package-lock.json).
setup-test: setup
	EXTRA_DEPS="chromium:chromium chromedriver:chromium-driver node:nodejs npm:npm" \
	  bash scripts/system-deps.sh
	$(PIP) install -e '.[test]'
	@lock=tests/browser/package-lock.json; done=tests/browser/node_modules/.package-lock.json; \
	if [ ! -f $$done ] || [ $$lock -nt $$done ]; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; fi

demo: setup
	$(VENV)/bin/runanywhere demo

lint: setup-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: setup-test lint
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	EXTRA_DEPS="aria2c:aria2" bash scripts/system-deps.sh
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py
	$(PY) -m bench.serve_bench

bench-smoke: setup
	EXTRA_DEPS="aria2c:aria2" bash scripts/system-deps.sh
	$(PIP) install -e '.[bench]'
	$(PY) bench/run.py --smoke
	$(PY) -m bench.serve_bench --smoke

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
