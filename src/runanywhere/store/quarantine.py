"""``quarantine/``: whatever failed verification (or was planted where ours should be), moved
aside whole and kept for inspection; ``cache prune`` removes it once it is old enough."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from .fsutil import random_hex
from .layout import Layout


class Quarantine:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def put(self, path: Path, name: str) -> None:
        """Move ``path`` (a file, a folder, or a link itself: never what it points to) aside
        as ``name`` plus a time stamp. Gone already: nothing to do."""
        if not (path.exists() or path.is_symlink()):
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        folder = self.layout.quarantine_dir
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(OSError):
            os.replace(path, folder / f"{name}-{stamp}-{random_hex(4)}")
