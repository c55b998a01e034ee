"""The CLI's commands, each a small function over the public API.

Each prints its result on stdout (``--json``: one document; ``--quiet``: only the result) and
returns the exit status; messages and progress go to stderr.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import ModelMetadata
from ..errors import (
    DownloadCancelledError,
    ModelError,
    RuntimeUnavailableError,
    install_hint,
)
from ..progress import DownloadProgress, cache_hit
from ..redact import redact, redact_url
from ..registry import ModelRegistry
from ..settings import Settings
from ..units import human_size
from .cache_commands import cmd_cache, model_id_of, no_cache_yet
from .messages import UsageError, say
from .render import error_fields, print_json, print_table

if TYPE_CHECKING:
    from .progress_view import PullProgress


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(keep=args.keep, durable=settings.durable)
    if args.command == "doctor":
        return cmd_doctor(args, settings)
    if args.command == "adapters":
        from .adapters import cmd_adapters

        return cmd_adapters(args)
    registry = ModelRegistry(settings=settings)
    registry.load_catalogs()
    if isinstance(getattr(args, "id", None), str):  # an hf:// reference names its model too
        args.id = model_id_of(registry, args.id)
    if args.command == "speak":
        from .speak import cmd_speak

        return cmd_speak(args, registry)
    handler = {
        "list": cmd_list, "info": cmd_info, "pull": cmd_pull, "cache": cmd_cache,
        "import": cmd_import, "load": cmd_load, "serve": cmd_serve,
        "transcribe": cmd_transcribe, "run": cmd_run,
    }[args.command]
    return handler(args, registry)


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Check the cache folder without opening it for writing; non-zero when a problem is
    found (warnings alone exit 0)."""
    from ..store import diagnose

    report = diagnose(settings.home)
    if args.json:
        print_json(report.to_dict())
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _model_summary(m: ModelMetadata) -> dict[str, Any]:
    """The catalog entry, plus its source and its total size (an estimate if some file's size
    is only estimated: ``size_is_estimate``)."""
    d = m.to_dict()
    d["source"] = m.source
    d["size"] = m.size
    d["size_is_estimate"] = m.size_is_estimate
    return d


def cmd_list(args: argparse.Namespace, reg: ModelRegistry) -> int:
    models = reg.list_models(type=args.type, format=args.format, search=args.search)
    if args.json:
        print_json({"models": [_model_summary(m) for m in models]})
        return 0
    if args.quiet:
        for m in models:
            print(m.id)
        return 0
    cached = {e.model_id for e in reg.cache.entries()} if reg.settings.home.exists() else set()
    rows = [(m.id, m.type, m.format, human_size(m.size), len(m.files),
             "yes" if m.id in cached else "", m.name) for m in models]
    print_table(["ID", "TYPE", "FORMAT", "SIZE", "FILES", "CACHED", "NAME"], rows)
    return 0


def cmd_info(args: argparse.Namespace, reg: ModelRegistry) -> int:
    m = reg.require_model(args.id)
    fresh = no_cache_yet(reg)  # nothing cached: answer without creating the folder
    entry = None if fresh else reg.cache.entry(m.id)
    recorded = {} if fresh else {r.path: r for r in reg.cache.trusted_hashes(m.id)}
    details = _details(m, entry.path if entry else None)
    from ..adapters.inventory import adapter_choice  # the plugin tables: not for list or pull

    if args.json:
        doc = _model_summary(m)
        doc["cached"] = entry.to_dict() if entry else None
        doc["details"] = details
        doc["recorded_hashes"] = [r.to_dict() for r in recorded.values()]
        choice = adapter_choice(m.adapter_name)
        doc["adapter_name"] = choice.name
        doc["adapter_installed"] = choice.installed
        doc["adapter_install"] = choice.install
        print_json(doc)
        return 0
    if args.quiet:
        if entry is not None:
            print(entry.path)
        return 0
    lines = [
        ("id", m.id), ("name", m.name), ("type", m.type), ("format", m.format),
        ("provider", m.provider), ("version", m.version),
        ("size", human_size(m.size) + (" (estimate: the exact length is learned from the origin)"
                                       if m.size_is_estimate else "")),
        ("memory needed", human_size(m.requirements.memory) if m.requirements else "-"),
        ("languages", ", ".join(m.supported_languages) or "-"), ("license", m.license or "-"),
        ("archive", m.archive or "-"), ("catalog", m.source),
        ("cached", str(entry.path) if entry else "no"),
        ("adapter", adapter_choice(m.adapter_name).describe()),
        *details.items(),
    ]
    if m.description:
        lines.append(("description", m.description))
    if m.endpoint is not None:
        e = m.endpoint
        lines.append(("endpoint", f"{e.url} (model {e.model!r}"
                      f"{f', key from ${e.api_key_env}' if e.api_key_env else ''}; nothing to"
                      " download)"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {redact(v)}")
    if m.endpoint is not None:
        return 0
    print("files:")
    for f in m.files:
        size = human_size(f.size) if f.size is not None else (
            f"~{human_size(f.size_estimate)} (estimate)" if f.size_estimate else "size unknown")
        r = recorded.get(f.path)
        check = f.hash or (f"git blob {f.git_sha1} (the Hub's id)" if f.git_sha1
                           else "no hash (trust on first use: nothing recorded yet)")
        if not f.hash and r is not None:
            day = time.strftime("%Y-%m-%d", time.localtime(r.recorded))
            check = (f"sha256:{r.sha256} (recorded at first use on {day};"
                     f" `runanywhere cache forget {m.id}` drops it)")
        print(f"  {f.path}  {size}  {check}")
        print(f"    {redact_url(f.url)}")
        for mirror in f.mirrors:
            print(f"    mirror: {redact_url(mirror)}")
    return 0


def cmd_run(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from .run import cmd_run as run

    return run(args, reg)


def _details(meta: ModelMetadata, path: Path | None) -> dict[str, str]:
    """What a cached model's files say about themselves, from its adapter's optional
    ``describe(path, meta)`` (a GGUF's architecture, parameters, ...): nothing when the model
    is not cached or its adapter not installed; one ``error`` line when the file cannot be
    read."""
    from ..adapters import get_adapter

    if path is None or meta.adapter_name is None:
        return {}
    try:
        describe = getattr(get_adapter(meta.adapter_name), "describe", None)
    except ModelError:  # the adapter is not installed: the catalog's facts only
        return {}
    if not callable(describe):
        return {}
    try:
        return {str(k): str(v) for k, v in describe(path, meta).items()}
    except ModelError as e:
        return {"error": str(e)}


# -- pull ------------------------------------------------------------------------------------------

@dataclass
class _Pulled:
    """What became of one model of a ``pull``."""

    id: str
    size: int = 0
    ok: bool = False
    path: Path | None = None
    error: BaseException | None = None
    seconds: float = 0.0
    cached_before: bool = False
    updated: bool = False  # an older version was cached (a branch that moved)
    kept: int = 0

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, DownloadCancelledError)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "ok": self.ok, "path": str(self.path)
                             if self.path else None, "size": self.size,
                             "seconds": round(self.seconds, 3),
                             "cached_before": self.cached_before, "updated": self.updated,
                             "cancelled": self.cancelled}
        if self.error is not None:
            code = 130 if self.cancelled else getattr(self.error, "exit_code", 1)
            d["error"] = error_fields(self.error, code)
            if self.cancelled:
                d["kept_bytes"] = self.kept
        return d


def cmd_pull(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from ..transfer.adhoc import is_source
    from .progress_view import PullProgress

    sources = [a for a in args.ids if is_source(a)]
    if (args.sha256 or args.size or args.model_id) and len(sources) != 1:
        raise UsageError("--sha256, --size and --id apply to exactly one URL or hf://"
                         " reference")
    pulled = {i: _Pulled(i) for i in dict.fromkeys(args.ids)}
    metas: list[ModelMetadata] = []
    for arg, p in pulled.items():
        try:
            if is_source(arg):
                meta = reg.add_source(arg, sha256=args.sha256, size=args.size,
                                      model_id=args.model_id, include=args.include,
                                      exclude=args.exclude,
                                      trust_first_use=args.trust_first_use)
            else:
                meta = reg.require_model(arg)
        except ModelError as e:
            p.error = e
            continue
        p.id, p.size = meta.id, meta.size
        metas.append(meta)
    by_id = {p.id: p for p in pulled.values()}
    interrupted = False
    try:
        with PullProgress([(m.id, m.size) for m in metas],
                          quiet=args.quiet or args.json) as view:
            rest = [m for m in metas if not _answer_from_cache(reg, m, by_id[m.id], view)]
            if rest:
                _pull_all(reg, rest, by_id, view)
    except KeyboardInterrupt:
        interrupted = True
    _report_pull(args, list(pulled.values()))
    if interrupted:
        return 130
    return 1 if any(not p.ok for p in pulled.values()) else 0


def _answer_from_cache(reg: ModelRegistry, meta: ModelMetadata, p: _Pulled,
                       view: PullProgress) -> bool:
    """A model the cache holds as the catalog describes it now is answered here, without an
    event loop: asyncio (ssl, subprocess...) and the loader cost more than the answer (issue
    26). The same report as ``download_model``'s hit; False leaves the model to it (a remote
    model's error, a URL whose size its first pull records, and whatever would wait here: a
    re-hash that is due, an index another thread holds, as the loader's own hit path)."""
    if meta.endpoint is not None or (meta.single_file and meta.files[0].size is None):
        return False
    t0 = time.perf_counter()
    _, entry = reg.cache.entry_matching_nowait(meta)
    if entry is None:
        return False
    done = cache_hit(meta.id, meta.size)
    p.kept = done.bytes_loaded
    view.update(done)
    p.cached_before, p.ok, p.path = True, True, entry.path
    p.seconds = time.perf_counter() - t0
    return True


def _pull_all(reg: ModelRegistry, metas: list[ModelMetadata], by_id: dict[str, _Pulled],
              view: PullProgress) -> None:
    """Pull ``metas`` at once through the registry's async API; Ctrl-C cancels them all
    (each reports) and raises ``KeyboardInterrupt``."""
    import asyncio

    from .interrupt import run_interruptible

    async def one(meta: ModelMetadata) -> None:
        p = by_id[meta.id]
        t0 = time.perf_counter()
        # Cached as the catalog (or a moved branch) describes it now, or an older version.
        before, now = await asyncio.to_thread(
            lambda: (reg.cache.entry(meta.id), reg.cache.entry_matching(meta)))
        p.cached_before, p.updated = now is not None, before is not None and now is None

        def seen(progress: DownloadProgress) -> None:
            p.kept = progress.bytes_loaded
            view.update(progress)

        try:
            r = await reg.download_model(meta.id, on_detail=seen)
        except asyncio.CancelledError:
            p.error = DownloadCancelledError(f"download of {meta.id} cancelled")
            raise
        finally:
            p.seconds = time.perf_counter() - t0
        p.ok, p.path, p.error = r.success, r.value, r.error
        if r.success and not p.size:  # a URL without --size: its download learned it
            learned = reg.get_model(meta.id)
            p.size = learned.size if learned is not None else p.size

    async def run() -> None:
        # return_exceptions: a Ctrl-C cancels every model, and gather then waits for each to
        # report (without it, the first cancelled one ended the wait and the others were
        # never heard from: "not downloaded").
        outcomes = await asyncio.gather(*(one(m) for m in metas), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    run_interruptible(run())


def _report_pull(args: argparse.Namespace, pulled: list[_Pulled]) -> None:
    if args.json:
        print_json({"models": [p.to_dict() for p in pulled], "ok": all(p.ok for p in pulled)})
    for p in pulled:
        if p.ok:
            if args.quiet:
                print(p.path)
            elif not args.json:
                how = "cached" if p.cached_before else (
                    f"updated, {p.seconds:.2f}s" if p.updated else f"{p.seconds:.2f}s")
                print(f"{p.id}: {p.path} ({human_size(p.size)}, {how})")
        elif p.cancelled:
            say(f"{p.id}: cancelled; {human_size(p.kept)} kept, run the same command to resume")
        else:
            why = str(p.error or "not downloaded")
            # A URL's error names the URL already: never "URL: ... URL ...".
            say(f"runanywhere: error: {why}" if p.id in why and p.id.startswith(
                ("http://", "https://", "hf://")) else f"runanywhere: error: {p.id}: {why}")


# -- serve, import, load ---------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace, reg: ModelRegistry) -> int:
    try:
        from ..serve import ServeOptions, run
        from ..serve.options import parse_duration
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("aiohttp", "multidict", "yarl"):
            raise
        raise RuntimeUnavailableError(
            f"runanywhere serve needs aiohttp: {install_hint('serve')}") from None
    return run(reg, ServeOptions(
        host=args.host, port=args.port, token=args.token,
        cors=tuple(args.cors), pull_through=args.pull_through, public_url=args.public_url,
        access_log=not args.no_access_log, allow_hosts=tuple(args.allow_host),
        keep_alive=parse_duration(args.keep_alive), max_queue=args.max_queue))


def cmd_transcribe(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from .transcribe import cmd_transcribe as transcribe  # numpy, audio libraries: on use

    return transcribe(args, reg)


def cmd_import(args: argparse.Namespace, reg: ModelRegistry) -> int:
    entry = reg.import_model(args.id, args.path)
    if args.json:
        print_json(entry.to_dict())
    elif args.quiet:
        print(entry.path)
    else:
        print(f"imported {args.id}: {entry.path} ({human_size(entry.size)}, verified)")
    return 0


def cmd_load(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from .interrupt import run_interruptible

    t0 = time.perf_counter()
    session = run_interruptible(reg.load_model(args.id, args.runtime)).unwrap()
    dt = time.perf_counter() - t0
    desc = describe_session(session)
    if args.json:
        print_json({"id": args.id, "runtime": args.runtime, "seconds": round(dt, 3), **desc})
        return 0
    if args.quiet:
        return 0
    print(f"{args.id}: loaded in {dt:.2f}s ({type(session).__module__}.{type(session).__name__})")
    for kind in ("inputs", "outputs"):
        for io in desc.get(kind, []):
            print(f"  {kind[:-1]:<6} {io['name']:<24} {io['type']:<22} {io['shape']}")
    return 0


def describe_session(session: Any) -> dict[str, Any]:
    """Inputs and outputs of an ONNX Runtime session (or the keys of a tensor dict)."""
    if hasattr(session, "get_inputs"):
        def io(x: Any) -> dict[str, Any]:
            return {"name": x.name, "type": x.type, "shape": list(x.shape)}
        return {"inputs": [io(x) for x in session.get_inputs()],
                "outputs": [io(x) for x in session.get_outputs()]}
    if hasattr(session, "get_input_details"):
        return {"inputs": [{"name": d["name"], "type": str(d["dtype"]), "shape": list(d["shape"])}
                           for d in session.get_input_details()],
                "outputs": [{"name": d["name"], "type": str(d["dtype"]),
                             "shape": list(d["shape"])} for d in session.get_output_details()]}
    if isinstance(session, dict):
        return {"inputs": [], "outputs": [
            {"name": k, "type": str(getattr(v, "dtype", type(v).__name__)),
             "shape": list(getattr(v, "shape", []))} for k, v in session.items()]}
    return {"inputs": [], "outputs": []}
