"""Summaries, the Markdown report, the terminal table and the matplotlib chart.

Which figures survive a noisy machine, and which do not:

* **ratios from one run** (``×ra``, the targets): a peer's median wall time divided by
  runanywhere API's, both measured in the same run, alternated, each after the memory state
  settled. Load from other work hits both sides; these are the figures to compare.
* **exact counts** from nginx's access log: requests, TCP connections, full TLS handshakes,
  redirects, bytes sent. They do not depend on load at all.
* **absolute figures**: seconds, MiB/s, CPU seconds per GiB, peak RSS. True for this machine at
  that time; CPU s/GiB and RSS move little with load, wall times move a lot.

Speeds are MiB/s of payload over the *whole-process* median wall time (fork to exit, so
interpreter start and imports count, as they do for a user).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .payloads import human

RA_MAIN = "ra-api"
MiB, GiB = 2**20, 2**30
ROUTE_ORDER = ["https", "https-75", "https-20", "https-far", "http", "full", "slow"]
#: The issue's targets (26): (route, size or None for any, peer, runanywhere API at least this
#: many times faster).
SPEED_TARGETS = [(route, None, peer, 1.2) for route in ("https-75", "https-20", "https-far")
                 for peer in ("hf_transfer", "aria2c")] + [
                 ("https", 2 * GiB, "urllib", 1.2), ("https", 2 * GiB, "hf_hub", 2.5)]
STREAMS = 32  # the most connections a download may use (FetchConfig.streams.max_connections)
RSS_LIMIT = 100.0
TEAM_LIMIT = 0.5
CEILING_SHARE = 0.85  # every runanywhere row, quiet run: at least this share of its ceiling


def _route_key(route: str) -> int:
    return ROUTE_ORDER.index(route) if route in ROUTE_ORDER else 99


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (route, size, peer), with medians of the successful runs."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for m in results["measurements"]:
        groups[(m["route"], m["size"], m["peer"])].append(m)
    order = results["meta"]["peers"]
    rows = []
    for (route, size, peer), ms in groups.items():
        ok = [m for m in ms if m["ok"]]
        row: dict[str, Any] = {
            "size": size, "route": route, "peer": peer, "runs": len(ms), "ok": len(ok),
            "errors": sorted({m["error"] for m in ms if not m["ok"]})}
        if ok:
            walls = [m["wall"] for m in ok]
            row["wall"] = statistics.median(walls)
            row["wall_min"], row["wall_max"] = min(walls), max(walls)
            row["mibps"] = size / MiB / row["wall"]
            row["mibps_min"], row["mibps_max"] = size / MiB / max(walls), size / MiB / min(walls)
            inner = [m["inner"] for m in ok if m.get("inner") is not None]
            row["inner"] = statistics.median(inner) if inner else None
            row["cpu"] = statistics.median(m["cpu"] for m in ok)
            row["cpu_gib"] = row["cpu"] / (size / GiB)
            row["rss"] = max(m["peak_rss_mib"] for m in ok)
            for key in ("connections", "tls_full", "requests", "redirects"):
                vals = [m.get(key, 0) for m in ok]
                row[key] = statistics.median(vals)
                row[key + "_max"] = max(vals)
            row["served_ratio"] = statistics.median(m.get("served", 0) for m in ok) / size
        rows.append(row)
    index = {(r["route"], r["size"], r["peer"]): r for r in rows}
    ceilings = results["meta"].get("ceilings", {})
    for r in rows:
        ref = index.get((r["route"], r["size"], RA_MAIN))
        r["vs_ra"] = (r["wall"] / ref["wall"]) if ref and "wall" in ref and "wall" in r else None
        top = ceilings.get(f"{r['route']}:{r['size']}", {}).get("ceiling")
        r["of_ceiling"] = r["mibps"] / top if top and "mibps" in r else None
    rows.sort(key=lambda r: (_route_key(r["route"]), r["size"],
                             order.index(r["peer"]) if r["peer"] in order else 99))
    return rows


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


COLUMNS = ["peer", "sha256", "ok", "wall s", "MiB/s", "×ra", "÷ceiling", "CPU s/GiB", "conns",
           "TLS full", "reqs", "sent÷size", "peak RSS MiB"]


def _cells(r: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    label = meta["labels"].get(r["peer"], r["peer"])
    verified = "✓" if meta.get("verifies", {}).get(r["peer"]) else "–"
    ok = f"{r['ok']}/{r['runs']}"
    if "wall" not in r:
        return [label, verified, ok, "FAIL"] + ["–"] * (len(COLUMNS) - 4)
    tls = _f(r["tls_full"], ".0f") if meta["routes"].get(r["route"], {}).get("tls") else "–"
    return [label, verified, ok, f"{r['wall']:.2f}", f"{r['mibps']:.0f}", _f(r["vs_ra"], ".2f"),
            _f(r["of_ceiling"], ".2f"), f"{r['cpu_gib']:.2f}", f"{r['connections']:.0f}", tls,
            f"{r['requests']:.0f}",
            f"{r['served_ratio']:.2f}", f"{r['rss']:.0f}"]


def _sections(rows: list[dict[str, Any]]) -> list[tuple[str, int, list[dict[str, Any]]]]:
    out: list[tuple[str, int, list[dict[str, Any]]]] = []
    for r in rows:
        if not out or out[-1][0] != r["route"] or out[-1][1] != r["size"]:
            out.append((r["route"], r["size"], []))
        out[-1][2].append(r)
    return out


def route_title(route: str, meta: dict[str, Any]) -> str:
    info = meta.get("routes", {}).get(route)
    return info["title"] if info else route


def ceiling_text(route: str, size: int, meta: dict[str, Any]) -> str:
    """``ceiling 473 MiB/s (hash; link 640, disk 812, hash 473)``, or '' when not measured."""
    c = meta.get("ceilings", {}).get(f"{route}:{size}")
    if not c or not c.get("ceiling"):
        return ""
    parts = ", ".join(f"{k} {c[k]:.0f}" if c.get(k) else f"{k} –"
                      for k in ("link", "disk", "hash"))
    return f"ceiling {c['ceiling']:.0f} MiB/s ({c['limit']}; {parts})"


# -- targets ------------------------------------------------------------------------------------
def targets(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target of the issue with what this run measured (None where it was not run)."""
    index = {(r["route"], r["size"], r["peer"]): r for r in rows if "wall" in r}
    labels = results["meta"]["labels"]
    out: list[dict[str, Any]] = []
    for route, size, peer, want in SPEED_TARGETS:
        found = [r for (rt, sz, p), r in index.items()
                 if rt == route and p == peer and (size is None or sz == size)]
        for r in found or [None]:
            got = r["vs_ra"] if r else None
            at = human(r["size"]) if r else (human(size) if size else "")
            out.append({"target": f"{route} {at}: at least {want:g}x {labels.get(peer, peer)}",
                        "measured": _f(got, ".2f") + "x" if got else "not run",
                        "met": None if got is None else got >= want})
    ra, ul = index.get(("https", 2 * GiB, RA_MAIN)), index.get(("https", 2 * GiB, "urllib"))
    out.append({"target": "CPU s per verified GiB (https 2 GiB) at most urllib + sha256's",
                "measured": (f"{ra['cpu_gib']:.2f} vs {ul['cpu_gib']:.2f}" if ra and ul
                             else "not run"),
                "met": None if not (ra and ul) else ra["cpu_gib"] <= ul["cpu_gib"]})
    conn_rows = [r for r in rows if r["peer"] == RA_MAIN and "wall" in r]
    worst = []
    for r in conn_rows:
        hops = 1 if results["meta"]["routes"].get(r["route"], {}).get("redirect") else 0
        worst.append((r["connections_max"] - (STREAMS + hops), r))
    if worst:
        over, r = max(worst, key=lambda x: x[0])
        text = ", ".join(f"{x['route']} {x['connections_max']:.0f}" for _, x in worst)
        out.append({"target": f"connections per download at most {STREAMS} streams + 1 per "
                              "redirect hop", "measured": f"max per run: {text}",
                    "met": over <= 0})
    shares = [(r["of_ceiling"], r) for r in rows
              if r["peer"].startswith("ra-") and r.get("of_ceiling") is not None]
    if shares:
        low, r = min(shares, key=lambda x: x[0])
        quiet = not results["meta"].get("busy")
        out.append({"target": f"every runanywhere row at least {CEILING_SHARE:.0%} of its case's"
                              " ceiling (quiet run)",
                    "measured": f"lowest {low:.2f} ({r['peer']}, {r['route']} "
                                f"{human(r['size'])})" + ("" if quiet else "; busy run"),
                    "met": (low >= CEILING_SHARE) if quiet else None})
    ra_rss = [r["rss"] for r in rows if r["peer"].startswith("ra-") and "rss" in r]
    out.append({"target": f"peak RSS under {RSS_LIMIT:.0f} MiB (every runanywhere row)",
                "measured": f"{max(ra_rss):.0f} MiB" if ra_rss else "not run",
                "met": None if not ra_rss else max(ra_rss) < RSS_LIMIT})
    team = results.get("team") or {}
    if "unavailable" in team:
        team = {}
    ratio = team.get("fleet_vs_independent")
    if team.get("size") != 512 * MiB or team.get("machines") != 8:
        ratio = None  # the target is for 8 machines and 512 MiB (the smoke run is smaller)
    out.append({"target": f"team: shared tier at most {TEAM_LIMIT}x the wall time of "
                          f"{team.get('machines', 8)} independent pulls",
                "measured": f"{ratio:.2f}x" if ratio else "not run at this size",
                "met": None if ratio is None else ratio <= TEAM_LIMIT})
    return out


def headline(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """One line per case, one column per peer: MiB/s (absolute) and ×ra (the ratio), then
    runanywhere's CPU s/GiB, connections and peak RSS: the table for the README."""
    meta = results["meta"]
    sections = _sections(rows)
    peers = [p for p in meta["peers"] if any(r["peer"] == p for _, _, rs in sections for r in rs)]
    header = ["case"] + [meta["labels"].get(p, p) for p in peers]
    body = []
    for route, size, rs in sections:
        by = {r["peer"]: r for r in rs}
        cells = [f"{human(size)} {route}"]
        for p in peers:
            r = by.get(p)
            if r is None:
                cells.append("")
            elif "wall" not in r:
                cells.append("FAIL")
            elif p == RA_MAIN:
                cells.append(f"**{r['mibps']:.0f}**")
            else:
                cells.append(f"{r['mibps']:.0f} ({_f(r['vs_ra'], '.2f')}x)")
        body.append(cells)
    for key, title, fmt in (("cpu_gib", "CPU s per GiB", ".2f"),
                            ("connections", "connections per download", ".0f")):
        for route, size, rs in sections:
            if route == "https":
                by = {r["peer"]: r for r in rs}
                body.append([f"{title} ({human(size)} {route})"]
                            + [format(by[p][key], fmt) if p in by and key in by[p] else ""
                               for p in peers])
    rss = {p: max((r["rss"] for r in rows if r["peer"] == p and "rss" in r), default=None)
           for p in peers}
    body.append(["peak RSS MiB (any case)"] + [_f(rss[p], ".0f") for p in peers])
    return _md_table(header, body)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "–"}[met]


# -- text ---------------------------------------------------------------------------------------
def text_table(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    meta = results["meta"]
    lines = []
    for route, size, rs in _sections(rows):
        top = ceiling_text(route, size, meta)
        lines.append(f"\n== {human(size)}, {route_title(route, meta)} =="
                     + (f"  {top}" if top else ""))
        table = [COLUMNS] + [_cells(r, meta) for r in rs]
        widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
        for j, row in enumerate(table):
            lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                   for i, c in enumerate(row)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        for r in rs:
            for e in r["errors"]:
                lines.append(f"  ! {meta['labels'].get(r['peer'], r['peer'])}: {e}")
    team = results.get("team")
    if team and "unavailable" not in team:
        lines.append("\n== team behind one link ==")
        lines += team_lines(team)
    lines.append("\n== targets ==")
    for t in targets(results, rows):
        lines.append(f"  {_mark(t['met']).strip('*'):7s} {t['target']}: {t['measured']}")
    return "\n".join(lines)


def team_lines(team: dict[str, Any]) -> list[str]:
    out = []
    for r in team["results"]:
        out.append(f"  {r['scenario']:<12} {r['wall_s']:7.2f} s   CDN sent "
                   f"{human(r['origin_bytes']):>9} ({r['origin_bytes'] / team['size']:.2f}x the "
                   f"model){'' if r['ok'] else '  FAILED'}")
    if team.get("fleet_vs_independent"):
        out.append(f"  shared tier / independent wall time: {team['fleet_vs_independent']:.2f}")
    return out


# -- markdown -----------------------------------------------------------------------------------
def _md_table(header: list[str], body: list[list[str]], right: int = 1) -> list[str]:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(("---" if i < right else "---:") for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return out


def _machine(x: dict[str, Any]) -> str:
    if not x.get("ok"):
        return f"failed: {x.get('error')}"
    text = f"{x['end'] - x['start']:.1f} s {x.get('source', '?')}"
    if x.get("upload_s"):
        text += f" (upload {x['upload_s']:.1f} s)"
    elif x.get("waited"):
        text += f" (waited {x['waited']:.1f} s)"
    return text


def team_markdown(team: dict[str, Any]) -> list[str]:
    rate = team.get("wan_rate")
    md = [f"{team['machines']} machines (separate processes and cache folders) pull the same "
          f"{human(team['size'])} model at the same instant, through the Hub redirect over HTTPS, "
          + (f"behind one link of {rate.upper()}iB/s shared by every connection (the CDN "
             "capped as a whole: the harness's token-bucket proxy)" if rate
             else "over an uncapped link")
          + "; (a) each from the origin, (b) through the shared S3 tier (SeaweedFS on the LAN "
          "side, uncapped): one machine takes the lease, downloads and uploads, the others wait "
          "and read the blob from S3. Wall time: the common start to the last machine done. "
          "Non-durable (one disk for all the machines).", ""]
    body = []
    for r in team["results"]:
        body.append([r["scenario"], f"{r['wall_s']:.1f}",
                     f"{human(r['origin_bytes'])} ({r['origin_bytes'] / team['size']:.2f}x)",
                     str(r.get("origin_connections", "–")),
                     "; ".join(_machine(x) for x in r["rows"])])
    md += _md_table(["scenario", "wall s", "bytes from the CDN (× model)", "connections",
                     "per machine"], body, right=1)
    if team.get("fleet_vs_independent"):
        md += ["", f"Shared tier ÷ independent, wall time: **{team['fleet_vs_independent']:.2f}**"
                   " (a ratio from one run)."]
    return [*md, ""]


def https_cost(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """Same peer, same size: HTTPS + redirect against plain http (what TLS costs each)."""
    index = {(r["route"], r["size"], r["peer"]): r for r in rows if "wall" in r}
    body = []
    for (route, size, peer), r in index.items():
        if route != "https":
            continue
        h = index.get(("http", size, peer))
        if h is None:
            continue
        body.append([meta["labels"].get(peer, peer), human(size), f"{h['cpu_gib']:.2f}",
                     f"{r['cpu_gib']:.2f}", f"{r['cpu_gib'] - h['cpu_gib']:+.2f}",
                     f"{r['wall'] / h['wall']:.2f}"])
    if not body:
        return []
    return ["### What HTTPS and the redirect cost", "",
            "The same peer and size on plain http (direct) and on HTTPS through the Hub's 302: "
            "CPU seconds per GiB of each (absolute) and the wall-time ratio (from one run).", "",
            *_md_table(["peer", "size", "CPU s/GiB http", "CPU s/GiB https", "difference",
                        "wall https ÷ http"], body), ""]


def _ra_config(meta: dict[str, Any]) -> str:
    cfg = meta.get("ra_config") or {}
    if not cfg:
        return ""
    fields = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
    return f"; the API peers ran with `FetchConfig({fields})`"


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], chart: str | None) -> str:
    meta = results["meta"]
    labels = meta["labels"]
    md = [f"# runanywhere download benchmark{' (smoke)' if meta['smoke'] else ''}", "",
          f"{meta['date']} · {meta['machine']} · Python {meta['python']} · "
          f"{meta['reps']} repetition(s), peers alternated within each repetition · "
          f"total {meta['elapsed_s'] / 60:.1f} min", "",
          f"runanywhere: {meta.get('runanywhere_source', 'src/')}" + _ra_config(meta), "",
          *([f"**Run incomplete ({meta['harness_error']}): figures below are partial.**", ""]
            if meta.get("harness_error") else []),
          *([f"**Busy run** (`--busy`): {meta['busy']}.", ""] if meta.get("busy") else []),
          "Generated by `python -m bench.run"
          + (" --smoke" if meta["smoke"] else "") + "`; the numbers are whatever this machine "
          "gave in that run, not a pass/fail test. Every download ran in a fresh subprocess "
          "against nginx on 127.0.0.1, entering through the door it uses in real life (the Hub's "
          "resolve URL or `HF_ENDPOINT`, a 302 to a signed CDN link, HTTPS with a CA made at "
          "start), and was verified by its sha256 afterwards; a wrong file counts as a failure, "
          "never as a time.", "",
          "**Which figures to trust.** *Ratios from one run* (`×ra`, the targets, the team "
          "ratio): peers measured side by side, alternated, each after the memory state "
          "settled; load from other work hits every peer alike. *Exact counts* (connections, "
          "TLS handshakes, requests, bytes sent): from nginx's access log, independent of load. "
          "*Absolute figures* (seconds, MiB/s, CPU s/GiB, peak RSS): true for this 2-core shared "
          "machine at that hour; CPU s/GiB and RSS move little with load, wall times a lot.", ""]
    md += ["## Summary", "",
           "MiB/s of payload over the median whole-process wall time (absolute: this machine, "
           "this hour); in brackets the peer's time ÷ runanywhere API's in the same run (a "
           "ratio: above 1.00 runanywhere was faster).", ""]
    md += headline(results, rows)
    md += ["", "## Targets", ""]
    md += _md_table(["target", "measured", ""],
                    [[t["target"], t["measured"], _mark(t["met"])] for t in
                     targets(results, rows)])
    md += ["", "## Context", ""]
    for c in results["context"]:
        md.append(f"- {c['name']}: **{c['text']}**")
    md.append("")
    if results["unavailable"]:
        md += ["Peers not run:", ""]
        md += [f"- {labels.get(p, p)}: unavailable: {why}"
               for p, why in results["unavailable"].items()]
        md.append("")
    if chart:
        md += [f"![throughput per peer and case]({chart})", ""]
    md += ["## Downloads", "",
           "*sha256*: the peer checks the bytes it got (✓) or not (–). *wall s*: median, whole "
           "process, fork to exit. *MiB/s*: payload ÷ median wall. *×ra*: the peer's median wall "
           "÷ runanywhere API's (durable) in the same run; above 1.00 runanywhere was faster. "
           "*CPU s/GiB*: user+sys of the process (median) per GiB. *conns*, *TLS full*, *reqs*: "
           "distinct TCP connections, full TLS handshakes (sessions not resumed) and requests "
           "nginx saw for one download (median), both sites (the Hub and the CDN). *sent÷size*: "
           "body bytes nginx sent ÷ the file's size (above 1: bytes fetched twice or thrown "
           "away). *peak RSS*: max over the runs.", ""]
    for route, size, rs in _sections(rows):
        md += [f"### {human(size)} · {route_title(route, meta)}", ""]
        if ceiling_text(route, size, meta):
            md += [ceiling_text(route, size, meta).capitalize() + ".", ""]
        md += _md_table(COLUMNS, [_cells(r, meta) for r in rs], right=3)
        errs = [f"- {labels.get(r['peer'], r['peer'])}: {e}" for r in rs for e in r["errors"]]
        if errs:
            md += ["", "Failures:", "", *errs]
        md.append("")
    md += https_cost(rows, meta)
    team = results.get("team")
    md += ["## A team behind one link", ""]
    if team and "unavailable" in team:
        md += [f"(unavailable: {team['unavailable']})", ""]
    else:
        md += team_markdown(team) if team else ["(not run)", ""]
    md += ["## Cache", ""]
    cache = results.get("cache") or []
    if not cache:
        md += ["(not run)", ""]
    else:
        from .cache_bench import fmt_value

        body = []
        for c in cache:
            if "unavailable" in c:
                body.append([c["name"], "unavailable: " + c["unavailable"], ""])
            else:
                body.append([c["name"], fmt_value(c["value"], c["unit"]), c.get("note", "")])
        md += _md_table(["figure", "value", "note"], body, right=3)
        md.append("")
    md += ["## Peers", ""]
    md += [f"- **{labels.get(p, p)}** (`{p}`): {meta['notes'].get(p, '')}" for p in meta["peers"]]
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
           f"Peak RSS: {meta.get('rss_method', 'ru_maxrss')}. CPU: user+sys from `os.wait4`.",
           "",
           "Notes: only runanywhere's durable rows fsync before publishing; the others leave the "
           "data in the page cache. The CPU and RSS figures are the downloading process only "
           "(nginx's TLS and sendfile work is not counted, though it shares the 2 cores). "
           + ("Before every run the harness waited until the machine stopped handing free memory "
              "back to its host (`bench/memstate.py`), so every peer paid the same price for "
              "fresh page cache." if meta.get("settle") else ""), ""]
    return "\n".join(md)


# -- chart --------------------------------------------------------------------------------------
def chart(results: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # a missing chart is not a failed benchmark
        return False
    meta = results["meta"]
    labels = meta["labels"]
    sections = _sections(rows)
    if not sections:
        return False
    team = results.get("team")
    if team and "unavailable" in team:
        team = None
    panels = len(sections) + 1 + (1 if team else 0)  # + CPU per GiB (+ team)
    cols = 2
    nrows = -(-panels // cols)
    tall = max(len(rs) for *_, rs in sections)
    fig, axes = plt.subplots(nrows, cols, squeeze=False,
                             figsize=(13, nrows * (0.36 * tall + 1.5)))
    for ax in axes.flat:
        ax.set_visible(False)
    flat = list(axes.flat)

    def bars(ax: Any, names: list[str], vals: list[float], lo: list[float], hi: list[float],
             colors: list[str], fmt: str, title: str, xlabel: str) -> None:
        ax.set_visible(True)
        y = list(range(len(names)))
        ax.barh(y, vals, xerr=[lo, hi], color=colors, capsize=2, error_kw={"elinewidth": 0.8})
        for yi, v, h in zip(y, vals, hi, strict=True):
            ax.text(v + h, yi, "  " + format(v, fmt), va="center", fontsize=7)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max((v + h for v, h in zip(vals, hi, strict=True)), default=1) * 1.2
                    or 1)

    def color(peer: str) -> str:
        return "#d9480f" if peer.startswith("ra-") else "#4263eb"

    for ax, (route, size, rs) in zip(flat, sections, strict=False):
        ok = [r for r in rs if "wall" in r]
        bars(ax, [labels.get(r["peer"], r["peer"]) for r in ok], [r["mibps"] for r in ok],
             [r["mibps"] - r["mibps_min"] for r in ok], [r["mibps_max"] - r["mibps"] for r in ok],
             [color(r["peer"]) for r in ok], ".0f", f"{human(size)} · {route_title(route, meta)}",
             "MiB/s (payload ÷ median whole-process wall time; whiskers: min-max)")
    cpu_rows = [r for r in rows if r["route"] == "https" and "wall" in r] or \
        [r for r in rows if "wall" in r and r["route"] == sections[0][0]]
    if cpu_rows:
        ax = flat[len(sections)]
        bars(ax, [labels.get(r["peer"], r["peer"]) + ("" if meta.get("verifies", {}).get(
            r["peer"]) else " (no sha256)") for r in cpu_rows], [r["cpu_gib"] for r in cpu_rows],
            [0.0] * len(cpu_rows), [0.0] * len(cpu_rows), [color(r["peer"]) for r in cpu_rows],
            ".2f", f"CPU per GiB · {human(cpu_rows[0]['size'])} · "
                   f"{route_title(cpu_rows[0]['route'], meta)}",
            "CPU seconds (user+sys) per GiB, median; lower is better")
    if team:
        ax = flat[len(sections) + 1]
        res = team["results"]
        bars(ax, [f"{r['scenario']} ({r['origin_bytes'] / team['size']:.0f}x model from CDN)"
                  for r in res], [r["wall_s"] for r in res], [0.0] * len(res), [0.0] * len(res),
             ["#4263eb" if r["scenario"] == "independent" else "#d9480f" for r in res], ".1f",
             f"team: {team['machines']} machines x {human(team['size'])}, one link of "
             + (f"{team['wan_rate'].upper()}iB/s" if team.get("wan_rate") else "no cap"),
             "wall seconds, start to last machine done (lower is better)")
    fig.suptitle("runanywhere vs peers, nginx on 127.0.0.1 shaped like the Hub and its CDN "
                 "(orange: runanywhere)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_all(results: dict[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    """results.json, chart.png and report.md into ``out_dir``; returns the summary rows."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summarize(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))
    has_chart = chart(results, rows, out_dir / "chart.png")
    (out_dir / "report.md").write_text(markdown(results, rows, "chart.png" if has_chart else None))
    return rows


if __name__ == "__main__":
    # Re-render a report from a saved run: python -m bench.report bench/results/results.json
    # (--summary: print only the README's table, rendering nothing)
    import json
    import sys

    args = [a for a in sys.argv[1:] if a != "--summary"]
    src = Path(args[0] if args else Path(__file__).parent / "results/results.json")
    data = json.loads(src.read_text())
    if "--summary" in sys.argv:
        print("\n".join(headline(data, summarize(data))))
    else:
        print(text_table(data, write_all(data, src.parent)))
