"""Every setting in one place: environment variables, their defaults, and overrides.

This module is the only reader of ``RUNANYWHERE_*`` variables (and of the Hub's ``HF_*`` ones).
``Settings.from_env()`` reads them; the CLI and the Python API override fields with
``dataclasses.replace``. Each default is written once, here. Nothing here touches the disk or the
network.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .units import parse_size

_TRUE = {"1", "true", "yes", "on"}

#: Bytes the memory tier may hold (the design note's 500 MB).
DEFAULT_MEMORY_LIMIT = 500 * 2**20
#: Bytes the models loaded into runtimes may need together (their ``requirements.memory``).
DEFAULT_MAX_LOADED_MEMORY = 4 * 2**30
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
#: Parallel streams per file: the most a user may ask for (``RUNANYWHERE_CONNECTIONS``).
MAX_CONNECTIONS = 64


def _default_home() -> Path:
    import platformdirs  # small, but only needed when no home is given

    return Path(platformdirs.user_cache_dir("runanywhere", appauthor=False))


def _flag(env: Mapping[str, str], name: str, default: str = "") -> bool:
    return env.get(name, default).strip().lower() in _TRUE


def _size(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def env_disk_limit(env: Mapping[str, str] | None = None) -> int | None:
    """``RUNANYWHERE_DISK_LIMIT`` in bytes (None: no limit), as ``Settings.from_env`` reads it."""
    return _size(os.environ if env is None else env, "RUNANYWHERE_DISK_LIMIT")


def check_connections(n: int, name: str = "connections") -> int:
    """Parallel streams per file: 1 to :data:`MAX_CONNECTIONS`."""
    if not 1 <= n <= MAX_CONNECTIONS:
        raise ValueError(f"{name}: {n} is not between 1 and {MAX_CONNECTIONS}")
    return n


def _connections(env: Mapping[str, str]) -> int | None:
    text = env.get("RUNANYWHERE_CONNECTIONS", "").strip()
    if not text:
        return None
    try:
        return check_connections(int(text), "RUNANYWHERE_CONNECTIONS")
    except ValueError as e:
        if "between" in str(e):
            raise
        raise ValueError(f"RUNANYWHERE_CONNECTIONS: {text!r} is not a whole number") from None


def split_catalogs(text: str) -> tuple[str, ...]:
    """``RUNANYWHERE_CATALOG``: entries joined with ``os.pathsep``, where an entry may be a URL
    whose own ``:`` (``http://host:8765/catalog.json``) must not split it."""
    parts = text.split(os.pathsep)
    if os.pathsep != ":":
        return tuple(p for p in parts if p)
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        nxt = parts[i + 1] if i + 1 < len(parts) else ""
        if part.lower() in ("http", "https") and nxt.startswith("//"):
            part = f"{part}:{nxt}"
            i += 1
            # "//host" then "8765/path": the port of the same URL
            if "/" not in part.split("//", 1)[1] and i + 1 < len(parts) and re.match(
                    r"\d+(/|$)", parts[i + 1]):
                part = f"{part}:{parts[i + 1]}"
                i += 1
        if part:
            out.append(part)
        i += 1
    return tuple(out)


def _hf_home(env: Mapping[str, str]) -> Path:
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    catalogs: tuple[str | Path, ...] = ()
    offline: bool = False
    #: fsync data before it becomes visible; turn off only on throwaway machines.
    durable: bool = True
    disk_limit: int | None = None
    #: Parallel streams per file (None: the transfer default, 8). More help behind a CDN that
    #: caps each connection; fewer are kinder to a small server.
    connections: int | None = None
    memory_limit: int = DEFAULT_MEMORY_LIMIT
    #: Loaded sessions are unloaded, least recently used first, past this many bytes.
    max_loaded_memory: int = DEFAULT_MAX_LOADED_MEMORY
    shared_cache: str | None = None
    #: Where the cache folder cannot be written: download into a temporary folder for the process
    #: (True; ``RUNANYWHERE_SCRATCH_FALLBACK=1``) instead of refusing to add anything (False).
    scratch_fallback: bool = False
    #: The Hub as huggingface_hub configures it (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``).
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    hf_token: str | None = None
    #: Where ``hf auth login`` keeps the token (read only when a Hub request needs it).
    hf_token_path: Path | None = None
    hf_offline: bool = False
    #: The bearer token ``runanywhere serve`` requires (``RUNANYWHERE_SERVE_TOKEN``); kept even
    #: when blank, so that serve can refuse it rather than run without one.
    serve_token: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = env.get("RUNANYWHERE_HOME")
        catalogs = split_catalogs(env.get("RUNANYWHERE_CATALOG", ""))
        mem = _size(env, "RUNANYWHERE_MEMORY_LIMIT")
        loaded = _size(env, "RUNANYWHERE_MAX_LOADED_MEMORY")
        hf_home = _hf_home(env)
        return cls(
            home=Path(home).expanduser() if home else _default_home(),
            catalogs=catalogs,
            offline=_flag(env, "RUNANYWHERE_OFFLINE"),
            durable=_flag(env, "RUNANYWHERE_DURABLE", "1"),
            disk_limit=env_disk_limit(env),
            connections=_connections(env),
            memory_limit=DEFAULT_MEMORY_LIMIT if mem is None else mem,
            max_loaded_memory=DEFAULT_MAX_LOADED_MEMORY if loaded is None else loaded,
            shared_cache=env.get("RUNANYWHERE_SHARED_CACHE") or None,
            scratch_fallback=_flag(env, "RUNANYWHERE_SCRATCH_FALLBACK"),
            hf_endpoint=(env.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/"),
            hf_token=env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or None,
            hf_token_path=Path(env["HF_TOKEN_PATH"]).expanduser() if env.get("HF_TOKEN_PATH")
            else hf_home / "token",
            hf_offline=_flag(env, "HF_HUB_OFFLINE"),
            serve_token=env.get("RUNANYWHERE_SERVE_TOKEN"),  # blank: serve refuses it
        )


@dataclass(frozen=True)
class TestHooks:
    """Hooks for the crash tests, off unless their variables are set.

    ``RUNANYWHERE_CRASH_AT=<step>`` makes the process write the step's name (and a newline) to the
    file ``RUNANYWHERE_CRASH_MARKER`` and hang at that named step, so a test can ``kill -9`` it
    at an exact point. ``RUNANYWHERE_DEMO_MODEL`` points the demo at another model file.
    """

    crash_at: str | None = None
    crash_marker: str | None = None
    demo_model: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TestHooks:
        env = os.environ if env is None else env
        return cls(env.get("RUNANYWHERE_CRASH_AT") or None,
                   env.get("RUNANYWHERE_CRASH_MARKER") or None,
                   env.get("RUNANYWHERE_DEMO_MODEL") or None)


#: Read once at import: the crash hook sits on hot paths and must cost one comparison.
TEST_HOOKS = TestHooks.from_env()
