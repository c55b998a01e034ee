"""The ``llama`` runtime: a GGUF file into llama.cpp, through xllamacpp's embedded server.

``load(path, meta, **options)`` reads and checks the GGUF header first (``gguf_file``: a
truncated file, random bytes or an architecture that cannot generate text fail here, naming the
file, before llama.cpp sees it), then starts one ``xllamacpp.Server`` on it and returns a
:class:`LlamaModel`. Options:

- ``n_ctx``: the context, in tokens (default: the model's own, at most ``DEFAULT_CONTEXT``;
  rounded up to a multiple of 256, as llama.cpp does); the KV cache for it is allocated up
  front and counted in the memory estimate;
- ``parallel``: sequences decoded at once (default 1: requests take turns; more share the
  context between them);
- ``threads``: CPU threads (default: llama.cpp's choice);
- ``file``: which ``.gguf`` to load when the model is a folder holding several.

xllamacpp's server also listens on a loopback HTTP port (it cannot be turned off); it is given a
random API key nobody knows, so other local users cannot use the model through it. Everything
here calls the server in-process.

Memory: ``memory_estimate`` is the weights plus the f16 KV cache of the context it was opened
with (SmolLM2-135M Q4_1 at 4096 tokens: 92 + 90 MiB; llama.cpp's compute buffers add some tens
of MiB on top), and ``close`` stops the server and frees it all.
"""

from __future__ import annotations

import atexit
import secrets
import signal
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runanywhere.adapters import FairSlots
from runanywhere.errors import ModelError, ModelLoadError
from runanywhere.runtimes import BuiltinRuntime, pop_options, resolve_model_file

from .gguf_file import GGUFInfo, read_gguf

if TYPE_CHECKING:
    from runanywhere.catalog import ModelMetadata

#: The context a model is opened with when none is asked for (its own when that is smaller): a
#: model trained for 128k tokens would otherwise take gigabytes of KV cache it rarely uses.
DEFAULT_CONTEXT = 4096
#: llama.cpp pads a context to a multiple of this many tokens (asked for 64, it opens 256): the
#: runtime does the same, so the context it reports (and counts in memory) is the real one.
CONTEXT_STEP = 256
_OPTIONS = {"n_ctx", "parallel", "threads", "file"}


#: Every open model, closed in order when the interpreter exits: a llama.cpp server torn down by
#: the interpreter's finalization while a generation is still running crashes the process
#: (SIGSEGV after a Ctrl-C'd ``run``, seen one exit in three).
_OPEN: weakref.WeakSet[LlamaModel] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for model in list(_OPEN):
        model.close()


class ModelUnloaded(ModelError):
    """The model was unloaded (for room, or on request) while an adapter still held it."""


class LlamaModel:
    """One GGUF loaded into llama.cpp: the session the ``llama`` runtime returns.

    ``server`` is the ``xllamacpp.Server``; ``slots`` is where generations wait their turn;
    ``info`` is the file's header; ``memory_bytes`` the estimate counted against the budget.
    ``use()`` guards a call into the server against ``close()`` running at the same time."""

    def __init__(self, server: Any, info: GGUFInfo, n_ctx: int, parallel: int) -> None:
        self.server = server
        self.info = info
        self.path = info.path
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.slots = FairSlots(parallel)
        self.memory_bytes = info.weight_bytes + info.kv_cache_bytes(n_ctx * parallel)
        self._active = 0
        self._closing = threading.Event()
        self._cond = threading.Condition()
        _OPEN.add(self)

    @property
    def closing(self) -> bool:
        """True once ``close`` began: generations in flight stop at their next token."""
        return self._closing.is_set()

    def enter(self) -> Any:
        """Start a call into the server (returns it); pair with ``leave``."""
        with self._cond:
            if self._closing.is_set() or self.server is None:
                raise ModelUnloaded(f"{self.path.name} was unloaded; load the model again")
            self._active += 1
            return self.server

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the server and free its memory, once the calls in flight stopped: they are
        told to through ``closing`` and stop at their next token (one still reading its prompt
        finishes that first). Never sooner: freeing the server under a call would crash the
        process. Idempotent."""
        self._closing.set()
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0)
            server, self.server = self.server, None
        if server is None:
            return
        _loop_started(server)
        del server  # the last reference: the C++ destructor stops its threads and frees

    def __del__(self) -> None:
        if getattr(self, "server", None) is not None:
            self.close()  # in order (see _loop_started), not by the garbage collector's hand

    def __repr__(self) -> str:
        state = "closed" if self.server is None else f"n_ctx={self.n_ctx}"
        return f"<LlamaModel {self.path.name} {self.info.architecture} {state}>"


@contextmanager
def _signals_for_the_main_thread() -> Iterator[None]:
    """SIGINT and SIGTERM blocked in this thread while llama.cpp starts its threads, which
    inherit the mask: a Ctrl-C then always reaches a thread that can take it (Python raises
    KeyboardInterrupt in the main thread), never a llama.cpp thread, where it woke nothing (a
    chat waiting at its prompt missed one Ctrl-C in about twenty)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _loop_started(server: Any) -> None:
    """Return once the server's task loop runs, by asking it for a one-token completion.

    xllamacpp's ``Server()`` returns before its thread enters llama.cpp's loop, and the loop
    sets itself running when it starts: a server destroyed in between (its ``terminate`` comes
    first) never stops, and its destructor waits for it forever (seen as a hung test run on a
    loaded machine, a model unloaded right after it was loaded)."""
    server.handle_completions({"prompt": "a", "max_tokens": 1, "temperature": 0})


class LlamaRuntime(BuiltinRuntime):
    name: str = "llama"
    extra: str = "llm"
    requires = (("xllamacpp",), ("gguf",))
    suffixes = (".gguf",)

    def load(self, path: Path, meta: ModelMetadata | None = None, **options: Any) -> LlamaModel:
        pop_options(options, _OPTIONS, self.name)
        target = resolve_model_file(path, self.suffixes, options.get("file"), self.name)
        info = read_gguf(target)
        info.check_generative()
        n_ctx = self._context(info, options.get("n_ctx"))
        parallel = self._positive("parallel", options.get("parallel", 1))
        xlc = self.import_first("xllamacpp")
        params = xlc.CommonParams()
        params.model.path = str(target)
        params.n_ctx = n_ctx * parallel  # llama.cpp splits the context between the sequences
        params.n_parallel = parallel
        params.warmup = False  # an empty run at start: time-to-first-token for nothing
        params.cache_ram_mib = 0  # no prompt cache beyond the KV cache: the estimate holds
        params.verbosity = -1  # llama.cpp's logs would land in the user's terminal
        params.port = 0  # the embedded HTTP server: any free loopback port...
        params.hostnames = ["127.0.0.1"]
        params.api_keys = [secrets.token_urlsafe(32)]  # ...closed to everyone
        if options.get("threads") is not None:
            threads = self._positive("threads", options["threads"])
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        try:
            with _signals_for_the_main_thread():
                server = xlc.Server(params)
        except Exception as e:  # llama.cpp says only "Failed to init server"
            raise ModelLoadError(f"llama.cpp could not load {target} (n_ctx={n_ctx}): {e}"
                                 ) from e
        return LlamaModel(server, info, n_ctx, parallel)

    @staticmethod
    def _positive(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"runtime 'llama': {name} must be a positive integer, got"
                             f" {value!r}")
        return value

    def _context(self, info: GGUFInfo, asked: Any) -> int:
        trained = info.context_length
        if asked is None:
            return min(trained or DEFAULT_CONTEXT, DEFAULT_CONTEXT)
        n = self._positive("n_ctx", asked)
        return -(-n // CONTEXT_STEP) * CONTEXT_STEP

    # -- the registry's optional hooks -------------------------------------------------------------
    def memory_estimate(self, session: Any) -> int | None:
        return session.memory_bytes if isinstance(session, LlamaModel) else None

    def close(self, session: Any) -> None:
        if isinstance(session, LlamaModel):
            session.close()
