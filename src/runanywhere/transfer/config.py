"""How downloads behave: :class:`FetchConfig` and the small frozen values it is made of.

``FetchConfig(streams=Streams(...), retry=RetryPolicy(...), stalls=Stalls(...), auth=Auth(...),
durable=..., flush_every=...)``: each group is a value of its own, compared and replaced whole.
:func:`loader_config` is the one place where a loader's configuration is put together from what
the caller gave (a ``FetchConfig``, the seed's ``ModelLoader`` keywords), the settings
(connections, durability) and the Hub's token.

The flat keywords of earlier releases (``FetchConfig(connections=4, retry_attempts=5,
timeout=10)``, and reading ``config.connections``) still work for one release, each with a
``DeprecationWarning`` naming its new place (:data:`FLAT_NAMES`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

from ..retry import RetryPolicy
from ..settings import Settings
from .origins import Origin

MiB = 2**20


@dataclass(frozen=True)
class Streams:
    """How one file is split across connections (``schedule.py``, ``streams.py``)."""

    #: Streams a file starts with (at least; see ``wide_start``).
    connections: int = 8
    #: Streams may grow to this many while each batch added raises the total rate (a CDN that
    #: caps each connection; ``streams.py``). Equal to ``connections``: a fixed number.
    max_connections: int = 32
    #: A file whose streams may grow starts with one stream per this many bytes, between
    #: ``connections`` and ``max_connections`` (None: with ``connections``). CDNs that cap each
    #: connection are common, and a download of a few seconds is over before growing by
    #: measurement reaches its width (256 MiB behind 20 MiB/s per connection: 2.3 s from 8
    #: streams, 1.2 s from 32). hf_transfer and aria2c also decide up front.
    wide_start: int | None = 8 * MiB
    #: ... but a file this large starts with ``connections`` and widens by measurement: its
    #: download lasts long enough for that (8 capped streams take 6 s for 1 GiB, a doubling
    #: under one), and where the link is not the limit 32 streams cost CPU, ours and the
    #: server's (2 GiB over HTTPS on 2 cores: 2.53 CPU s per GiB from 32, 2.2 from 8).
    wide_below: int = 1024 * MiB
    #: Files smaller than this use one connection.
    split_threshold: int = 32 * MiB
    min_part: int = 8 * MiB
    #: Ranges are handed out in file order as pieces of about this size (None: a quarter of the
    #: file per starting stream, 16-128 MiB, but at most the file over those streams), so the
    #: verified prefix grows while bytes arrive and the hash has little left to catch up on at
    #: the end. One request per piece.
    piece_size: int | None = None
    #: Bytes read per socket read (and the buffer of each stream).
    chunk_size: int = MiB

    def start_for(self, size: int) -> int:
        """How many streams a file of ``size`` bytes starts with."""
        if (self.wide_start is None or self.max_connections <= self.connections
                or size >= self.wide_below):
            return self.connections
        return max(self.connections, min(self.max_connections, size // self.wide_start))


@dataclass(frozen=True)
class Stalls:
    """When a connection counts as failed though no error came (``watch.py``)."""

    #: The longest silence: a connect, the wait for headers, one read. Not the whole download.
    timeout: float = 60.0
    #: A connection averaging fewer bytes/s than this over ``window`` s is dropped and retried.
    min_speed: float = 16 * 1024
    window: float = 20.0


@dataclass(frozen=True)
class Auth:
    """A bearer token (the Hub's) and the origins (scheme, host, port) it may be sent to."""

    token: str | None = field(default=None, repr=False)
    origins: tuple[Origin, ...] = ()

    def __repr__(self) -> str:
        return f"Auth(token={'***' if self.token else None}, origins={self.origins!r})"


#: The flat keywords of earlier releases: (group, field in it). ``durable`` and ``flush_every``
#: kept their names.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "connections": ("streams", "connections"),
    "max_connections": ("streams", "max_connections"),
    "split_threshold": ("streams", "split_threshold"),
    "min_part": ("streams", "min_part"),
    "piece_size": ("streams", "piece_size"),
    "chunk_size": ("streams", "chunk_size"),
    "retry_attempts": ("retry", "attempts"),
    "retry_delay": ("retry", "delay"),
    "retry_cap": ("retry", "cap"),
    "timeout": ("stalls", "timeout"),
    "min_speed": ("stalls", "min_speed"),
    "stall_window": ("stalls", "window"),
    "token": ("auth", "token"),
    "token_origins": ("auth", "origins"),
}

#: Settings newer than the groups, which tools (``replace_flat``) reach by a flat name too; code
#: names their group (``Streams(wide_start=...)``).
TOOL_NAMES: dict[str, tuple[str, str]] = {"wide_start": ("streams", "wide_start"),
                                          "wide_below": ("streams", "wide_below")}

_GROUP_TYPES = {"streams": "Streams", "retry": "RetryPolicy", "stalls": "Stalls", "auth": "Auth"}


@dataclass(frozen=True, init=False)
class FetchConfig:
    """Every knob of a download, in groups: ``streams``, ``retry``, ``stalls``, ``auth``, and
    whether bytes are flushed to disk as they go (``durable``, every ``flush_every`` bytes)."""

    streams: Streams
    retry: RetryPolicy
    stalls: Stalls
    auth: Auth
    durable: bool
    flush_every: int

    def __init__(self, *, streams: Streams | None = None, retry: RetryPolicy | None = None,
                 stalls: Stalls | None = None, auth: Auth | None = None, durable: bool = True,
                 flush_every: int = 64 * MiB, **flat: Any) -> None:
        """The groups, each defaulted; ``flat`` takes the deprecated flat keywords
        (:data:`FLAT_NAMES`), applied over the groups given."""
        for name in flat:
            if name in FLAT_NAMES:
                group, new = FLAT_NAMES[name]
                warnings.warn(f"FetchConfig({name}=...) is deprecated: use FetchConfig({group}="
                              f"{_GROUP_TYPES[group]}({new}=...))", DeprecationWarning,
                              stacklevel=2)
        groups = _with_flat({"streams": streams or Streams(), "retry": retry or RetryPolicy(),
                             "stalls": stalls or Stalls(), "auth": auth or Auth()}, flat)
        for name, value in groups.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "durable", durable)
        object.__setattr__(self, "flush_every", flush_every)


def _with_flat(groups: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """``groups`` (name -> value) with settings given by their flat names applied."""
    unknown = sorted(set(flat) - set(FLAT_NAMES))
    if unknown:
        raise TypeError(f"FetchConfig got unexpected keyword(s): {', '.join(unknown)}")
    out = dict(groups)
    for name, value in flat.items():
        group, new = FLAT_NAMES[name]
        out[group] = replace(out[group], **{new: tuple(value) if new == "origins" else value})
    return out


def replace_flat(config: FetchConfig, **flat: Any) -> FetchConfig:
    """``config`` with settings given by their flat names (``chunk_size=``, ``stall_window=``,
    as a command line or a JSON document names them; ``durable``, ``flush_every`` too), without
    a deprecation warning: the form for tools, not for code."""
    durable = flat.pop("durable", config.durable)
    flush_every = flat.pop("flush_every", config.flush_every)
    newer = {name: flat.pop(name) for name in list(flat) if name in TOOL_NAMES}
    groups = _with_flat({"streams": config.streams, "retry": config.retry,
                         "stalls": config.stalls, "auth": config.auth}, flat)
    for name, value in newer.items():
        group, field_name = TOOL_NAMES[name]
        groups[group] = replace(groups[group], **{field_name: value})
    return FetchConfig(**groups, durable=durable, flush_every=flush_every)


def flat_value(config: FetchConfig, name: str) -> Any:
    """The value a flat name (:data:`FLAT_NAMES`) stands for in ``config``."""
    group, new = FLAT_NAMES[name]
    return getattr(getattr(config, group), new)


def _deprecated_read(name: str) -> property:
    group, new = FLAT_NAMES[name]

    def read(self: FetchConfig) -> Any:
        warnings.warn(f"FetchConfig.{name} is deprecated: use FetchConfig.{group}.{new}",
                      DeprecationWarning, stacklevel=2)
        return flat_value(self, name)

    return property(read, doc=f"Deprecated: ``{group}.{new}``.")


for _name in FLAT_NAMES:  # reads of the old flat attributes, for one release
    setattr(FetchConfig, _name, _deprecated_read(_name))


def loader_config(given: FetchConfig | None, settings: Settings, *,
                  token: str | None, token_origins: tuple[Origin, ...],
                  **seed: Any) -> FetchConfig:
    """The one configuration of a loader: ``given`` (or the defaults) with the seed's keywords
    (``chunk_size``, ``retry_attempts``, ``retry_delay``, ``timeout``; None: not given), the
    settings' streams and durability, and a token (``token``, the Hub's, goes to
    ``token_origins``) unless ``given`` carries its own.

    Each setting is given once: a seed keyword that contradicts ``given``, a second different
    number of connections, or ``durable=False`` under durable settings is a ``ValueError``, never
    silently dropped.
    """
    config = given or FetchConfig()
    seed = {k: v for k, v in seed.items() if v is not None}
    if given is not None:
        clash = [k for k, v in seed.items() if flat_value(given, k) != v]
        if clash:
            raise ValueError(f"{', '.join(clash)} given both as an argument and in fetch_config;"
                             " give each setting once")
        if not given.durable and settings.durable:
            raise ValueError("durability is a setting of the cache, not of one fetch: use"
                             " Settings(durable=False) or RUNANYWHERE_DURABLE=0")
    streams = config.streams
    if settings.connections is not None:
        if given is not None and streams.connections not in (Streams().connections,
                                                             settings.connections):
            raise ValueError(f"connections given twice: {streams.connections} in fetch_config"
                             f" and {settings.connections} in the settings"
                             " (RUNANYWHERE_CONNECTIONS or --connections); give it once")
        streams = replace(streams, connections=settings.connections,
                          max_connections=settings.connections)
    if config.auth.token:  # a caller's own token keeps its own origins (else the Hub's)
        auth = Auth(config.auth.token, config.auth.origins or token_origins)
    else:  # never HF_TOKEN with the caller's origins
        auth = Auth(token, token_origins)
    config = replace(config, streams=streams, auth=auth, durable=settings.durable)
    return replace_flat(config, **seed)


def check_config(given: FetchConfig, settings: Settings) -> None:
    """Raise now the ``ValueError`` :func:`loader_config` would raise for ``given`` at the
    first download."""
    loader_config(given, settings, token=None, token_origins=())
