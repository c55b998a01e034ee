"""The CLI's commands, each a small function over the public API.

Each prints its result on stdout (``--json``: one document; ``--quiet``: only the result) and
returns the exit status; messages and progress go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..adapters.inventory import adapter_choice
from ..catalog import ModelMetadata
from ..errors import (
    DownloadCancelledError,
    ModelError,
    RuntimeUnavailableError,
    install_hint,
)
from ..progress import DownloadProgress
from ..redact import redact, redact_url
from ..registry import ModelRegistry
from ..settings import Settings
from ..units import human_size, parse_size
from .interrupt import run_interruptible
from .messages import UsageError, say
from .render import error_fields, human_age, print_json, print_table


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
        args.id = _model_id(registry, args.id)
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
    fresh = _no_cache_yet(reg)  # nothing cached: answer without creating the folder
    entry = None if fresh else reg.cache.entry(m.id)
    recorded = {} if fresh else {r.path: r for r in reg.cache.trusted_hashes(m.id)}
    details = _details(m, entry.path if entry else None)
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

    async def one(meta: ModelMetadata, view: PullProgress) -> None:
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
        with PullProgress([(m.id, m.size) for m in metas],
                          quiet=args.quiet or args.json) as view:
            # return_exceptions: a Ctrl-C cancels every model, and gather then waits for each
            # to report (without it, the first cancelled one ended the wait and the others
            # were never heard from: "not downloaded").
            outcomes = await asyncio.gather(*(one(m, view) for m in metas),
                                            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    interrupted = False
    try:
        run_interruptible(run())
    except KeyboardInterrupt:
        interrupted = True
    _report_pull(args, list(pulled.values()))
    if interrupted:
        return 130
    return 1 if any(not p.ok for p in pulled.values()) else 0


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


# -- cache -----------------------------------------------------------------------------------------

def cmd_cache(args: argparse.Namespace, reg: ModelRegistry) -> int:
    handler = {
        "ls": _cache_ls, "size": _cache_size, "verify": _cache_verify, "rm": _cache_rm,
        "clear": _cache_clear, "prune": _cache_prune, "pin": _cache_pin, "push": _cache_push,
        "forget": _cache_forget,
    }[args.cache_command]
    return handler(args, reg)


def _no_cache_yet(reg: ModelRegistry) -> bool:
    """The home does not exist: a read-only command answers "empty" and creates nothing."""
    return not reg.settings.home.exists()


def _cache_ls(args: argparse.Namespace, reg: ModelRegistry) -> int:
    fresh = _no_cache_yet(reg)
    cache = None if fresh else reg.cache
    entries = [] if cache is None else cache.entries()
    total = 0 if cache is None else cache.size()
    directory = reg.settings.home if cache is None else cache.directory
    shared: dict[str, str] = {}
    if args.shared and cache is not None and reg.settings.shared_cache:
        from ..shared import shared_presence
        from ..shared.push import tier_for

        # Configured but unusable (boto3 missing: the error names the extra; a bad URL): say
        # so, rather than "no shared cache configured".
        tier = tier_for(reg.settings)
        shared = shared_presence(reg.settings, cache, entries, tier=tier)
    loaded = {x.model_id for x in reg.loaded_models()}
    if args.json:
        models = [{**e.to_dict(), "source": _source_of(reg, e.model_id),
                   "loaded": e.model_id in loaded,
                   **({"shared": shared.get(e.model_id, "?")} if shared else {})}
                  for e in entries]
        budget, used = reg.loaded_budget
        print_json({"models": models, "total_size": total,
                    "directory": str(directory),
                    "degraded": None if cache is None else cache.degraded,
                    "loaded_memory": {"budget": budget, "used": used,
                                      "models": [x.to_dict() for x in reg.loaded_models()]}})
        return 0
    if args.quiet:
        for e in entries:
            print(e.model_id)
        return 0
    # ORIGIN says which tier the bytes came from: download (origin server), shared (the S3
    # team cache), import (sideloaded); SHARED (with --shared) whether the team cache has them.
    rows = [(e.model_id, e.version, human_size(e.size), e.tier, e.origin,
             human_age(e.last_access), e.hits, "yes" if e.pinned else "",
             e.sha256[:12] if e.sha256 else "-", *([shared.get(e.model_id, "?")] if shared else []),
             "yes" if e.model_id in loaded else "", _source_of(reg, e.model_id))
            for e in entries]
    print_table(["ID", "VERSION", "SIZE", "TIER", "ORIGIN", "LAST USED", "HITS", "PINNED",
                 "SHA256", *(["SHARED"] if shared else []), "LOADED", "SOURCE"], rows)
    if args.shared and not shared:
        say("no shared cache configured (RUNANYWHERE_SHARED_CACHE=s3://bucket/prefix)")
    say(f"total {human_size(total)} in {directory}" + (" (not created yet)" if fresh else ""))
    return 0


def _source_of(reg: ModelRegistry, model_id: str) -> str:
    """Where a cached model's entry comes from: the URL or hf:// reference it was pulled from,
    else its catalog ("builtin", a file)."""
    meta = reg.get_model(model_id)
    if meta is None:
        return "-"
    return meta.name if meta.source == str(reg.cache.sources_path) else meta.source


def _cache_size(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from ..store import DiskUsage

    cache = None if _no_cache_yet(reg) else reg.cache
    size = 0 if cache is None else cache.size()
    disk = DiskUsage(0, 0, 0, 0, 0) if cache is None else cache.usage()
    directory = reg.settings.home if cache is None else cache.directory
    if args.json:
        print_json({"size": size, "models": 0 if cache is None else len(cache.entries()),
                    "directory": str(directory), "disk": disk.to_dict()})
    elif args.quiet:
        print(size)
    else:
        print(f"{human_size(size)} ({size} bytes) in {directory}")
        print(f"on disk {human_size(disk.total)}: models {human_size(disk.models)}, partials"
              f" {human_size(disk.partials)}, quarantine {human_size(disk.quarantine)}, index"
              f" {human_size(disk.index)}, other {human_size(disk.other)}")
    return 0


def _cache_verify(args: argparse.Namespace, reg: ModelRegistry) -> int:
    cache = reg.cache
    args.id = args.id and _model_id(reg, args.id)
    if args.id and args.id not in _cached_ids(reg):
        raise ModelError(f"{args.id} is not in the cache")
    results = cache.verify(args.id)
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json({"results": [{"id": r.model_id, "ok": r.ok, "problems": r.problems,
                                 "repaired": r.repaired} for r in results], "ok": not bad})
        return 1 if bad else 0
    if args.quiet:
        return 1 if bad else 0
    for r in results:
        state = "ok" if r.ok else "CORRUPT (quarantined)"
        print(f"{r.model_id}: {state}{' (repaired)' if r.repaired else ''}")
        for p in r.problems:
            print(f"  {p}")
        for p in r.repaired:
            print(f"  repaired: {p}")
    if not results:
        say("the cache is empty")
    return 1 if bad else 0


def _cached_ids(reg: ModelRegistry) -> set[str]:
    return {e.model_id for e in reg.cache.entries()}


def _model_id(reg: ModelRegistry, name: str) -> str:
    """The id a command's argument names: an id, or the hf:// reference a model was pulled
    by."""
    meta = reg.get_model(name) if name.startswith("hf://") else None
    return meta.id if meta is not None else name


def _cache_rm(args: argparse.Namespace, reg: ModelRegistry) -> int:
    """Remove each model named (all are checked first: a typo removes nothing); one pulled
    from a URL or hf:// reference also releases its id."""
    ids = list(dict.fromkeys(_model_id(reg, i) for i in args.ids))
    cached = _cached_ids(reg)
    missing = [i for i in ids if i not in cached and not _pulled_from_source(reg, i)]
    if missing:
        raise ModelError(f"not in the cache: {', '.join(missing)}")
    freed, released = 0, []
    for i in ids:
        if i in cached:
            freed += run_interruptible(reg.clear_cache(i))
        if reg.forget_source(i):
            released.append(i)
    if args.json:
        print_json({"freed": freed, "removed": [i for i in ids if i in cached],
                    "released": released})
        return 0
    _report_freed(args, freed, f"removed {', '.join(i for i in ids if i in cached) or 'nothing'}")
    if released and not args.quiet:
        say(f"released the id of {', '.join(released)} (pull its source again to have it back)")
    return 0


def _pulled_from_source(reg: ModelRegistry, model_id: str) -> bool:
    meta = reg.get_model(model_id)
    return meta is not None and meta.source == str(reg.cache.sources_path)


def _cache_clear(args: argparse.Namespace, reg: ModelRegistry) -> int:
    reg.cache.require_writable()
    freed = run_interruptible(reg.clear_cache(None))
    _report_freed(args, freed, "cleared the cache")
    return 0


def _cache_prune(args: argparse.Namespace, reg: ModelRegistry) -> int:
    limit = parse_size(args.max_size) if args.max_size else None
    if not args.dry_run:
        reg.cache.require_writable()
    plan = reg.cache.plan_prune(limit, orphan_age=args.orphan_age)
    done = None if args.dry_run else plan.apply()
    if args.json:
        print_json({**plan.to_dict(), "dry_run": args.dry_run,
                    "freed": done.freed_bytes if done else 0,
                    "removed": [str(p) for p in done.removed] if done else [],
                    "skipped": list(done.skipped) if done else []})
        return 0
    if args.quiet:
        print(plan.freed_bytes if done is None else done.freed_bytes)
        return 0
    gone = set(done.removed) if done else None
    evicted = set(done.evicted) if done else None

    def verb(ok: bool) -> str:
        return "would remove" if done is None else ("removed" if ok else "left")

    rows = [(verb(evicted is None or e.model_id in evicted), e.model_id, human_size(e.size),
             human_age(e.last_access)) for e in plan.evict]
    labels: list[tuple[tuple[Path, ...], Callable[[Path], str]]] = [
        (plan.orphan_blobs, lambda p: f"orphan blob {p.name[:12]}"),
        (plan.orphan_partials, lambda p: f"abandoned partial {p.name}"),
        (plan.stray, lambda p: f"stray {p.parent.name}/{p.name}"),
        (plan.quarantine, lambda p: f"quarantined {p.name}")]
    for paths, label in labels:
        rows += [(verb(gone is None or p in gone), label(p), "", "") for p in paths]
    if rows:
        print_table(["ACTION", "WHAT", "SIZE", "LAST USED"], rows)
    for mid in plan.kept:
        say(f"kept {mid} (pinned or in use)")
    for mid in plan.spared:
        say(f"kept {mid} (its bytes are shared with a pinned or in-use model)")
    if done is None:
        print(f"would free {human_size(plan.freed_bytes)} on disk; cache size"
              f" {human_size(plan.size_before)} -> {human_size(plan.size_after)}")
    else:
        for why in done.skipped:
            say(f"left {why}")
        print(f"freed {human_size(done.freed_bytes)}")
    return 0


def _cache_pin(args: argparse.Namespace, reg: ModelRegistry) -> int:
    args.id = _model_id(reg, args.id)
    if not reg.cache.pin(args.id, not args.off):
        raise ModelError(f"{args.id} is not in the cache")
    if args.json:
        print_json({"id": args.id, "pinned": not args.off})
    elif not args.quiet:
        print(f"{'unpinned' if args.off else 'pinned'} {args.id}")
    return 0


def _cache_forget(args: argparse.Namespace, reg: ModelRegistry) -> int:
    model_id = _model_id(reg, args.id)
    source = _source_of(reg, model_id) if _pulled_from_source(reg, model_id) else None
    gone = reg.cache.forget_trusted(model_id)
    released = reg.forget_source(model_id)
    if not gone and not released:
        raise ModelError(f"{model_id} has no recorded first-use hash and was not pulled from a"
                         " URL or hf:// reference: nothing to forget")
    if args.json:
        print_json({"id": model_id, "forgotten": [r.to_dict() for r in gone],
                    "released_source": redact(source) if released and source else None})
    elif not args.quiet:
        for r in gone:
            print(f"forgot {model_id} {r.path}: sha256:{r.sha256} ({human_size(r.size)})")
        if released:
            print(f"released {model_id} (was {redact(source or '')}): the id is free")
    return 0


def _cache_push(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from ..shared import push_models

    pushed = push_models(reg.settings, reg.cache, args.id)
    if args.json:
        print_json({"pushed": pushed})
    elif not args.quiet:
        for line in pushed:
            print(line)
    return 0


def _report_freed(args: argparse.Namespace, freed: int, what: str) -> None:
    if args.json:
        print_json({"freed": freed})
    elif args.quiet:
        print(freed)
    else:
        print(f"{what}: freed {human_size(freed)}")


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
