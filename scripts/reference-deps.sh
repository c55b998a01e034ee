#!/usr/bin/env bash
# Installs the reference implementations that tests/test_reference_parity.py compares our
# decoders with (none is needed at run time):
#   - sherpa-onnx, kaldi-native-fbank and piper-tts (PyPI wheels; piper-tts is GPL: a reference
#     for packages/tts-piper's parity test only), into the venv (the `reference` extra);
#   - torch, CPU build, for silero-vad's own get_speech_timestamps: `pip --target` into
#     $VENV/refs/torch, which only the reference subprocess puts on its PYTHONPATH (the rest of
#     the suite runs without torch, as the package's users do);
#   - Transformers.js: `npm ci` in tests/js (its .npmrc stops onnxruntime-node's install script
#     from fetching CUDA binaries; the CPU binaries are in the npm package).
# A step that cannot be done here says why and the script goes on: the parity test then skips
# with that reason, or fails under `make test` (RUNANYWHERE_REQUIRE_REFERENCES=1).
# Usage: scripts/reference-deps.sh [PYTHON]   (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PIP=("$PY" -m pip -q --disable-pip-version-check)
TORCH=torch==2.13.0
warn() { echo "reference-deps: $*" >&2; }

"${PIP[@]}" install --no-build-isolation -e '.[reference]' || warn "sherpa-onnx / kaldi-native-fbank / piper-tts not installed"

torch_dir="$("$PY" -c 'import sys; print(sys.prefix)')/refs/torch"
if [ -f "$torch_dir/.installed-$TORCH" ]; then
  :
elif "${PIP[@]}" download --no-deps --no-index -d "$(mktemp -d)" "$TORCH" >/dev/null 2>&1; then
  # Only a CPU wheel that pip finds locally (find-links): the default one on PyPI pulls in
  # gigabytes of CUDA libraries.
  rm -rf "$torch_dir"
  if "${PIP[@]}" install --target "$torch_dir" "$TORCH"; then
    touch "$torch_dir/.installed-$TORCH"
  else
    warn "could not install $TORCH into $torch_dir"
  fi
else
  warn "no local CPU wheel for $TORCH (pip find-links): silero-vad's reference will skip"
fi

js=tests/js
if ! command -v npm >/dev/null 2>&1; then
  warn "npm is not installed: Transformers.js's reference will skip"
elif [ -f "$js/node_modules/.installed" ] && [ "$js/node_modules/.installed" -nt "$js/package-lock.json" ]; then
  :
elif (cd "$js" && npm ci --no-audit --no-fund --loglevel=error); then
  touch "$js/node_modules/.installed"
else
  warn "npm ci in $js failed: Transformers.js's reference will skip"
fi
exit 0
