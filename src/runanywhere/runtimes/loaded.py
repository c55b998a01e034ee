"""Loaded models under a memory budget: the design note's "automatic eviction prevents memory
overflow", for models loaded into runtimes.

A model costs what its runtime estimates a loaded session takes (``memory_estimate``: the llama
runtime counts weights plus the KV cache of its context), else what the catalog says it needs at
run time (``requirements.memory``), else its download size, once however many sessions it has
(Whisper's encoder and decoder, SpeechT5's three graphs). Loading a model that does not fit
unloads the least recently used models that nobody holds (an adapter holds the model it runs on,
until it is garbage-collected); a model bigger than the whole budget is still loaded, alone, with
a warning, rather than refused. A session that leaves is closed by its runtime's ``close`` when
it has one (freeing the memory now, not when the garbage collector gets to it).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..logs import log

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..catalog.model import ModelMetadata

#: (model id, runtime, options): one session per model, runtime and options.
SessionKey = tuple[str, str, str]


def session_key(model_id: str, runtime: str | None, options: Mapping[str, Any]) -> SessionKey:
    return model_id, runtime or "", repr(sorted(options.items()))


def memory_cost(runtime: Any, session: Any, meta: ModelMetadata) -> int:
    """The bytes a loaded session counts against the budget: the runtime's estimate where it
    gives one, else the catalog's run-time memory, else the download size."""
    estimate = getattr(runtime, "memory_estimate", None)
    if callable(estimate):
        n = estimate(session)
        if n:
            return int(n)
    return meta.requirements.memory if meta.requirements else meta.size


def closer(runtime: Any, session: Any) -> Callable[[], None] | None:
    """How to free ``session``: its runtime's ``close``, where it has one."""
    close = getattr(runtime, "close", None)
    return (lambda: close(session)) if callable(close) else None


@dataclass
class Loaded:
    """One loaded model: its sessions, its cost, who runs on it."""

    model_id: str
    cost: int
    sessions: dict[SessionKey, Any] = field(default_factory=dict)
    last_used: float = field(default_factory=time.time)
    holders: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    #: How to free each session when it leaves (its runtime's ``close``), where there is one.
    closers: dict[SessionKey, Callable[[], None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"id": self.model_id, "bytes": self.cost,
                "runtimes": sorted({k[1] for k in self.sessions}),
                "sessions": len(self.sessions), "last_used": self.last_used,
                "held": len(self.holders)}


class LoadedSessions:
    """Loaded models, least recently used first, inside ``budget`` bytes. Thread-safe.

    ``on_unload(model_id)`` runs once for every session that leaves (to drop the cache hold that
    keeps the model's files from eviction while it runs)."""

    def __init__(self, budget: int, on_unload: Callable[[str], None]) -> None:
        self.budget = budget
        self._on_unload = on_unload
        self._models: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return sum(m.cost for m in self._models.values())

    def get(self, key: SessionKey) -> Any | None:
        with self._lock:
            model = self._models.get(key[0])
            session = model.sessions.get(key) if model is not None else None
            if model is not None and session is not None:
                model.last_used = time.time()
                self._models.move_to_end(key[0])
            return session

    def add(self, key: SessionKey, session: Any, cost: int,
            close: Callable[[], None] | None = None) -> Any:
        """Keep ``session`` (or return the one a concurrent call kept first, which the caller
        then uses instead), unloading the models that must go to make room. ``close`` frees
        ``session`` when it leaves."""
        mid = key[0]
        gone: list[Loaded] = []
        with self._lock:
            model = self._models.get(mid)
            if model is not None:
                earlier = model.sessions.setdefault(key, session)
                if earlier is session and close is not None:
                    model.closers[key] = close
                model.last_used = time.time()
                self._models.move_to_end(mid)
                return earlier
            used = sum(m.cost for m in self._models.values())
            for other in list(self._models.values()):
                if used + cost <= self.budget:
                    break
                if len(other.holders):
                    continue  # an adapter runs on it
                gone.append(self._models.pop(other.model_id))
                used -= other.cost
            if used + cost > self.budget:
                log.warning("loading %s needs %d bytes; with what is held the loaded models"
                            " take %d of a budget of %d bytes", mid, cost, used + cost,
                            self.budget)
            self._models[mid] = Loaded(mid, cost, {key: session},
                                       closers={key: close} if close is not None else {})
        for victim in gone:
            log.info("unloaded %s to stay within the memory budget", victim.model_id)
            for k in victim.sessions:
                self._close(victim, k)
        return session

    def _close(self, model: Loaded, key: SessionKey) -> None:
        """A session left: free it, then drop its cache hold (never under the lock)."""
        close = model.closers.pop(key, None)
        try:
            if close is not None:
                close()
        except Exception:  # freeing must not stop the unloading of the rest
            log.exception("closing %s (%s) failed", model.model_id, key[1])
        finally:
            self._on_unload(model.model_id)

    def hold(self, model_id: str, holder: object) -> None:
        """``holder`` runs on the model: it is not unloaded for room while ``holder`` lives."""
        with self._lock:
            model = self._models.get(model_id)
            if model is not None:
                model.holders.add(holder)

    def unload(self, model_id: str, runtime: str | None = None) -> int:
        """Drop a model's sessions (of one runtime, if given), held or not; returns how many."""
        with self._lock:
            model = self._models.get(model_id)
            if model is None:
                return 0
            keys = [k for k in model.sessions if runtime is None or k[1] == runtime]
            for k in keys:
                del model.sessions[k]
            if not model.sessions:
                del self._models[model_id]
        for k in keys:
            self._close(model, k)
        return len(keys)

    def models(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def listing(self) -> list[Loaded]:
        """What is loaded, least recently used first."""
        with self._lock:
            return list(self._models.values())
