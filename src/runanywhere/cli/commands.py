"""The CLI's commands, each a small function over the public API."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalog import ModelMetadata
from ..errors import ModelError
from ..registry import ModelRegistry
from ..settings import Settings
from ..units import human_size, parse_size
from .render import human_age, print_json, print_table


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(keep=args.keep, durable=settings.durable)
    if args.command == "doctor":
        return cmd_doctor(args, settings)
    registry = ModelRegistry(settings=settings)
    registry.load_catalogs()
    handler = {
        "list": cmd_list, "info": cmd_info, "pull": cmd_pull, "cache": cmd_cache,
        "import": cmd_import, "load": cmd_load,
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
    d = m.to_dict()
    d["source"] = m.source
    return d


def cmd_list(args: argparse.Namespace, reg: ModelRegistry) -> int:
    models = reg.list_models(type=args.type, format=args.format, search=args.search)
    if args.json:
        print_json({"models": [_model_summary(m) for m in models]})
        return 0
    cached = {e.model_id for e in reg.cache.entries()} if reg.settings.home.exists() else set()
    rows = [(m.id, m.type, m.format, human_size(m.size), len(m.files),
             "yes" if m.id in cached else "", m.name) for m in models]
    print_table(["ID", "TYPE", "FORMAT", "SIZE", "FILES", "CACHED", "NAME"], rows)
    return 0


def cmd_info(args: argparse.Namespace, reg: ModelRegistry) -> int:
    m = reg.require_model(args.id)
    entry = reg.cache.lookup(m.id)
    recorded = {r.path: r for r in reg.cache.trusted_hashes(m.id)}
    if args.json:
        doc = _model_summary(m)
        doc["cached"] = entry.to_dict() if entry else None
        doc["recorded_hashes"] = [r.to_dict() for r in recorded.values()]
        print_json(doc)
        return 0
    lines = [
        ("id", m.id), ("name", m.name), ("type", m.type), ("format", m.format),
        ("provider", m.provider), ("version", m.version), ("size", human_size(m.size)),
        ("memory needed", human_size(m.requirements.memory) if m.requirements else "-"),
        ("languages", ", ".join(m.supported_languages) or "-"), ("license", m.license or "-"),
        ("archive", m.archive or "-"), ("catalog", m.source),
        ("cached", str(entry.path) if entry else "no"),
    ]
    if m.description:
        lines.append(("description", m.description))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    print("files:")
    for f in m.files:
        r = recorded.get(f.path)
        how = f.hash or "no hash (trust on first use: nothing recorded yet)"
        if not f.hash and r is not None:
            day = time.strftime("%Y-%m-%d", time.localtime(r.recorded))
            how = (f"sha256:{r.sha256} (recorded at first use on {day};"
                   f" `runanywhere cache forget {m.id}` drops it)")
        print(f"  {f.path}  {human_size(f.size)}  {how}")
        print(f"    {f.url}")
        for mirror in f.mirrors:
            print(f"    mirror: {mirror}")
    return 0


def cmd_pull(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from .progress_view import PullProgress

    metas = [reg.require_model(i) for i in dict.fromkeys(args.ids)]
    results: dict[str, dict[str, Any]] = {}

    async def run() -> None:
        view = PullProgress([(m.id, m.size) for m in metas], quiet=args.quiet or args.json)
        with view:
            async def one(m: ModelMetadata) -> None:
                t0 = time.perf_counter()
                was_cached = reg.cache.lookup(m.id) is not None
                r = await reg.download_model(m.id, on_detail=view.update)
                dt = time.perf_counter() - t0
                results[m.id] = {"id": m.id, "ok": r.success, "seconds": round(dt, 3),
                                 "size": m.size, "cached_before": was_cached,
                                 "path": str(r.value) if r.success else None,
                                 "error": str(r.error) if r.error else None,
                                 "error_type": type(r.error).__name__ if r.error else None}
            await asyncio.gather(*(one(m) for m in metas))

    asyncio.run(run())
    failed = [r for r in results.values() if not r["ok"]]
    if args.json:
        print_json({"models": [results[m.id] for m in metas], "ok": not failed})
    elif not args.quiet:
        for m in metas:
            r = results[m.id]
            if r["ok"]:
                how = "cached" if r["cached_before"] else f"{r['seconds']:.2f}s"
                print(f"{m.id}: {r['path']} ({human_size(m.size)}, {how})")
    for r in failed:
        sys.stderr.write(f"runanywhere: error: {r['id']}: {r['error']}\n")
    return 1 if failed else 0


def cmd_cache(args: argparse.Namespace, reg: ModelRegistry) -> int:
    handler = {
        "ls": _cache_ls, "size": _cache_size, "verify": _cache_verify, "rm": _cache_rm,
        "clear": _cache_clear, "prune": _cache_prune, "pin": _cache_pin, "push": _cache_push,
        "forget": _cache_forget,
    }[args.cache_command]
    return handler(args, reg)


def _cache_ls(args: argparse.Namespace, reg: ModelRegistry) -> int:
    cache = reg.cache
    entries = cache.entries()
    shared: dict[str, str] = {}
    if args.shared:
        from ..shared import shared_presence

        shared = shared_presence(reg.settings, cache, entries)
    if args.json:
        models = [{**e.to_dict(), **({"shared": shared.get(e.model_id, "?")} if shared else {})}
                  for e in entries]
        print_json({"models": models, "total_size": cache.size(),
                    "directory": str(cache.directory), "degraded": cache.degraded})
        return 0
    # ORIGIN says which tier the bytes came from: download (origin server), shared (the S3
    # team cache), import (sideloaded); SHARED (with --shared) whether the team cache has them.
    rows = [(e.model_id, e.version, human_size(e.size), e.tier, e.origin,
             human_age(e.last_access), e.hits, "yes" if e.pinned else "",
             e.sha256[:12] if e.sha256 else "-", *([shared.get(e.model_id, "?")] if shared else []))
            for e in entries]
    print_table(["ID", "VERSION", "SIZE", "TIER", "ORIGIN", "LAST USED", "HITS", "PINNED",
                 "SHA256", *(["SHARED"] if shared else [])], rows)
    if args.shared and not shared:
        print("no shared cache configured (RUNANYWHERE_SHARED_CACHE=s3://bucket/prefix)")
    print(f"total {human_size(cache.size())} in {cache.directory}")
    return 0


def _cache_size(args: argparse.Namespace, reg: ModelRegistry) -> int:
    cache = reg.cache
    size = cache.size()
    disk = cache.usage()
    if args.json:
        print_json({"size": size, "models": len(cache.entries()),
                    "directory": str(cache.directory), "disk": disk.to_dict()})
    else:
        print(f"{human_size(size)} ({size} bytes) in {cache.directory}")
        print(f"on disk {human_size(disk.total)}: models {human_size(disk.models)}, partials"
              f" {human_size(disk.partials)}, quarantine {human_size(disk.quarantine)}, index"
              f" {human_size(disk.index)}, other {human_size(disk.other)}")
    return 0


def _cache_verify(args: argparse.Namespace, reg: ModelRegistry) -> int:
    cache = reg.cache
    if args.id and args.id not in _cached_ids(reg):
        raise ModelError(f"{args.id} is not in the cache")
    results = cache.verify(args.id)
    bad = [r for r in results if not r.ok]
    if args.json:
        print_json({"results": [{"id": r.model_id, "ok": r.ok, "problems": r.problems,
                                 "repaired": r.repaired} for r in results], "ok": not bad})
        return 1 if bad else 0
    for r in results:
        state = "ok" if r.ok else "CORRUPT (quarantined)"
        print(f"{r.model_id}: {state}{' (repaired)' if r.repaired else ''}")
        for p in r.problems:
            print(f"  {p}")
        for p in r.repaired:
            print(f"  repaired: {p}")
    if not results:
        print("the cache is empty")
    return 1 if bad else 0


def _cached_ids(reg: ModelRegistry) -> set[str]:
    return {e.model_id for e in reg.cache.entries()}


def _cache_rm(args: argparse.Namespace, reg: ModelRegistry) -> int:
    if args.id not in _cached_ids(reg):
        raise ModelError(f"{args.id} is not in the cache")
    freed = asyncio.run(reg.clear_cache(args.id))
    _report_freed(args, freed, f"removed {args.id}")
    return 0


def _cache_clear(args: argparse.Namespace, reg: ModelRegistry) -> int:
    freed = asyncio.run(reg.clear_cache(None))
    _report_freed(args, freed, "cleared the cache")
    return 0


def _cache_prune(args: argparse.Namespace, reg: ModelRegistry) -> int:
    limit = parse_size(args.max_size) if args.max_size else None
    plan = reg.cache.plan_prune(limit, orphan_age=args.orphan_age)
    done = None if args.dry_run else plan.apply()
    if args.json:
        print_json({**plan.to_dict(), "dry_run": args.dry_run,
                    "freed": done.freed_bytes if done else 0,
                    "removed": [str(p) for p in done.removed] if done else [],
                    "skipped": list(done.skipped) if done else []})
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
        print(f"kept {mid} (pinned or in use)")
    for mid in plan.spared:
        print(f"kept {mid} (its bytes are shared with a pinned or in-use model)")
    if done is None:
        print(f"would free {human_size(plan.freed_bytes)} on disk; cache size"
              f" {human_size(plan.size_before)} -> {human_size(plan.size_after)}")
    else:
        for why in done.skipped:
            print(f"left {why}")
        print(f"freed {human_size(done.freed_bytes)}")
    return 0


def _cache_pin(args: argparse.Namespace, reg: ModelRegistry) -> int:
    if not reg.cache.pin(args.id, not args.off):
        raise ModelError(f"{args.id} is not in the cache")
    if args.json:
        print_json({"id": args.id, "pinned": not args.off})
    else:
        print(f"{'unpinned' if args.off else 'pinned'} {args.id}")
    return 0


def _cache_forget(args: argparse.Namespace, reg: ModelRegistry) -> int:
    gone = reg.cache.forget_trusted(args.id)
    if not gone:
        raise ModelError(f"{args.id} has no recorded first-use hash")
    if args.json:
        print_json({"id": args.id, "forgotten": [r.to_dict() for r in gone]})
    else:
        for r in gone:
            print(f"forgot {args.id} {r.path}: sha256:{r.sha256} ({human_size(r.size)})")
    return 0


def _cache_push(args: argparse.Namespace, reg: ModelRegistry) -> int:
    from ..shared import push_models

    pushed = push_models(reg.settings, reg.cache, args.id)
    if args.json:
        print_json({"pushed": pushed})
    else:
        for line in pushed:
            print(line)
    return 0


def _report_freed(args: argparse.Namespace, freed: int, what: str) -> None:
    if args.json:
        print_json({"freed": freed})
    else:
        print(f"{what}: freed {human_size(freed)}")


def cmd_import(args: argparse.Namespace, reg: ModelRegistry) -> int:
    entry = reg.import_model(args.id, args.path)
    if args.json:
        print_json(entry.to_dict())
    else:
        print(f"imported {args.id}: {entry.path} ({human_size(entry.size)}, verified)")
    return 0


def cmd_load(args: argparse.Namespace, reg: ModelRegistry) -> int:
    t0 = time.perf_counter()
    session = asyncio.run(reg.load_model(args.id, args.runtime)).unwrap()
    dt = time.perf_counter() - t0
    desc = describe_session(session)
    if args.json:
        print_json({"id": args.id, "runtime": args.runtime, "seconds": round(dt, 3), **desc})
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
