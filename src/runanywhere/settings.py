"""Every setting in one place: environment variables, their defaults, and overrides.

``Settings.from_env()`` reads ``RUNANYWHERE_*``; the CLI and the Python API override fields with
``dataclasses.replace``. Nothing here touches the disk or the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """Parse ``"500MiB"``, ``"2G"``, ``"1.5GB"`` or ``"1048576"`` into bytes."""
    s = text.strip().lower().replace(" ", "")
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    if unit not in _SIZE_UNITS or not num:
        raise ValueError(f"not a size: {text!r} (examples: 500MiB, 2GB, 1048576)")
    value = float(num) * _SIZE_UNITS[unit]
    if value < 0:
        raise ValueError(f"size must not be negative: {text!r}")
    return int(value)


def _default_home() -> Path:
    import platformdirs  # small, but only needed when no home is given

    return Path(platformdirs.user_cache_dir("runanywhere", appauthor=False))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    catalogs: tuple[Path, ...] = ()
    offline: bool = False
    #: fsync data before it becomes visible; turn off only on throwaway machines.
    durable: bool = True
    disk_limit: int | None = None
    memory_limit: int = 500 * 2**20
    shared_cache: str | None = None
    hf_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = env.get("RUNANYWHERE_HOME")
        catalogs = tuple(Path(p) for p in env.get("RUNANYWHERE_CATALOG", "").split(os.pathsep) if p)
        limit = env.get("RUNANYWHERE_DISK_LIMIT")
        mem = env.get("RUNANYWHERE_MEMORY_LIMIT")
        return cls(
            home=Path(home).expanduser() if home else _default_home(),
            catalogs=catalogs,
            offline=env.get("RUNANYWHERE_OFFLINE", "").strip().lower() in _TRUE,
            durable=env.get("RUNANYWHERE_DURABLE", "1").strip().lower() in _TRUE,
            disk_limit=parse_size(limit) if limit else None,
            memory_limit=parse_size(mem) if mem else 500 * 2**20,
            shared_cache=env.get("RUNANYWHERE_SHARED_CACHE") or None,
            hf_token=env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None,
        )
