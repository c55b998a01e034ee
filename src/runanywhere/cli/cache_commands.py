"""``runanywhere cache ...``: list, size, verify, remove, prune, pin, forget and push what the cache
holds (one handler per subcommand; ``cmd_cache`` picks it)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..errors import (
    ModelError,
)
from ..redact import redact
from ..registry import ModelRegistry
from ..units import human_size, parse_size
from .messages import say
from .render import human_age, print_json, print_table


def cmd_cache(args: argparse.Namespace, reg: ModelRegistry) -> int:
    handler = {
        "ls": _cache_ls, "size": _cache_size, "verify": _cache_verify, "rm": _cache_rm,
        "clear": _cache_clear, "prune": _cache_prune, "pin": _cache_pin, "push": _cache_push,
        "forget": _cache_forget,
    }[args.cache_command]
    return handler(args, reg)


def no_cache_yet(reg: ModelRegistry) -> bool:
    """The home does not exist: a read-only command answers "empty" and creates nothing."""
    return not reg.settings.home.exists()


def _cache_ls(args: argparse.Namespace, reg: ModelRegistry) -> int:
    fresh = no_cache_yet(reg)
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

    cache = None if no_cache_yet(reg) else reg.cache
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
    args.id = args.id and model_id_of(reg, args.id)
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


def model_id_of(reg: ModelRegistry, name: str) -> str:
    """The id a command's argument names: an id, or the hf:// reference a model was pulled
    by."""
    meta = reg.get_model(name) if name.startswith("hf://") else None
    return meta.id if meta is not None else name


def _cache_rm(args: argparse.Namespace, reg: ModelRegistry) -> int:
    """Remove each model named (all are checked first: a typo removes nothing); one pulled
    from a URL or hf:// reference also releases its id."""
    from .interrupt import run_interruptible  # asyncio: for the commands that need it

    ids = list(dict.fromkeys(model_id_of(reg, i) for i in args.ids))
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
    from .interrupt import run_interruptible

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
    args.id = model_id_of(reg, args.id)
    if not reg.cache.pin(args.id, not args.off):
        raise ModelError(f"{args.id} is not in the cache")
    if args.json:
        print_json({"id": args.id, "pinned": not args.off})
    elif not args.quiet:
        print(f"{'unpinned' if args.off else 'pinned'} {args.id}")
    return 0


def _cache_forget(args: argparse.Namespace, reg: ModelRegistry) -> int:
    model_id = model_id_of(reg, args.id)
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
