"""Summaries, the Markdown report, the terminal table and the matplotlib chart.

Speeds are MiB/s of payload over the *whole-process* median wall time (fork to exit, so
interpreter start and imports count, as they do for a user). ``inner`` is the download call
alone where the peer is a Python library. The ratio columns are ``peer time ÷ runanywhere time``
on medians: above 1.00 runanywhere was faster, below 1.00 the peer was.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .payloads import human, label

RA_MAIN, RA_ND = "ra-api", "ra-api-nd"
MiB = 2**20


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (size, route, peer) in run order, with medians of the successful runs."""
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in results["measurements"]:
        groups[(m["size"], m["route"], m["peer"])].append(m)
    order = results["meta"]["peers"]
    rows = []
    for (size, route, peer), ms in groups.items():
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
            row["rss"] = max(m["peak_rss_mib"] for m in ok)
        rows.append(row)
    index = {(r["size"], r["route"], r["peer"]): r for r in rows}
    for r in rows:
        for key, ra in (("vs_ra", RA_MAIN), ("vs_ra_nd", RA_ND)):
            ref = index.get((r["size"], r["route"], ra))
            r[key] = (r["wall"] / ref["wall"]) if ref and "wall" in ref and "wall" in r else None
    rows.sort(key=lambda r: (r["size"], ["full", "slow"].index(r["route"]),
                             order.index(r["peer"]) if r["peer"] in order else 99))
    return rows


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


BASE_COLUMNS = ["peer", "ok", "median wall s", "MiB/s", "inner s", "CPU s", "peak RSS MiB"]
RATIO_COLUMNS = [("vs_ra", "peer÷ra"), ("vs_ra_nd", "peer÷ra-nd")]


def _ratio_keys(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Only the ratio columns that have a reference row (ra-api / ra-api-nd) somewhere."""
    return [(k, h) for k, h in RATIO_COLUMNS if any(r.get(k) is not None for r in rows)]


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    return BASE_COLUMNS + [h for _, h in _ratio_keys(rows)]


def _cells(r: dict[str, Any], labels: dict[str, str], ratios: list[tuple[str, str]]) -> list[str]:
    ok = f"{r['ok']}/{r['runs']}"
    if "wall" not in r:
        return [labels.get(r["peer"], r["peer"]), ok, "FAIL"] + ["–"] * (4 + len(ratios))
    return [labels.get(r["peer"], r["peer"]), ok, f"{r['wall']:.2f}", f"{r['mibps']:.0f}",
            _f(r["inner"], ".2f"), f"{r['cpu']:.2f}", f"{r['rss']:.0f}",
            *(_f(r[k], ".2f") for k, _ in ratios)]


def _sections(rows: list[dict[str, Any]]) -> list[tuple[int, str, list[dict[str, Any]]]]:
    out: list[tuple[int, str, list[dict[str, Any]]]] = []
    for r in rows:
        if not out or out[-1][0] != r["size"] or out[-1][1] != r["route"]:
            out.append((r["size"], r["route"], []))
        out[-1][2].append(r)
    return out


def route_title(route: str, meta: dict[str, Any]) -> str:
    return ("full speed (/full/, sendfile)" if route == "full"
            else f"slow (/slow/, limit_rate {meta.get('slow_rate', '75m')} per connection)")


def text_table(results: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    labels = results["meta"]["labels"]
    lines = []
    for size, route, rs in _sections(rows):
        lines.append(f"\n== {human(size)}, {route_title(route, results['meta'])} ==")
        cols, ratios = _columns(rows), _ratio_keys(rows)
        table = [cols] + [_cells(r, labels, ratios) for r in rs]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        for j, row in enumerate(table):
            lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                                   for i, c in enumerate(row)))
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        for r in rs:
            for e in r["errors"]:
                lines.append(f"  ! {labels.get(r['peer'], r['peer'])}: {e}")
    return "\n".join(lines)


def _md_table(header: list[str], body: list[list[str]], right: int = 1) -> list[str]:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(("---" if i < right else "---:") for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return out


def markdown(results: dict[str, Any], rows: list[dict[str, Any]], chart: str | None) -> str:
    meta = results["meta"]
    labels = meta["labels"]
    md = [f"# runanywhere download benchmark{' (smoke)' if meta['smoke'] else ''}", "",
          f"{meta['date']} · {meta['machine']} · Python {meta['python']} · "
          f"{meta['reps']} repetition(s), peers alternated within each repetition · "
          f"total {meta['elapsed_s'] / 60:.1f} min", "",
          f"runanywhere: {meta.get('runanywhere_source', 'src/')}", "",
          *([f"**Run incomplete ({meta['harness_error']}): figures below are partial.**", ""]
            if meta.get("harness_error") else []),
          "Generated by `python -m bench.run"
          + (" --smoke" if meta["smoke"] else "") + "`; the numbers are whatever this machine "
          "gave in that run, not a pass/fail test. Every download ran in a fresh subprocess "
          "against nginx on 127.0.0.1 and was verified by its sha256 afterwards; a wrong file "
          "counts as a failure, never as a time.", ""]
    md += ["## Context", ""]
    for c in results["context"]:
        md.append(f"- {c['name']}: **{c['text']}**")
    md.append("")
    if results["unavailable"]:
        md += ["Peers not run:", ""]
        md += [f"- {labels.get(p, p)}: unavailable: {why}"
               for p, why in results["unavailable"].items()]
        md.append("")
    if chart:
        md += [f"![throughput per peer]({chart})", ""]
    md += ["## Downloads", "",
           "*median wall s*: whole process, fork to exit (interpreter start and imports included). "
           "*MiB/s*: payload ÷ median wall. *inner s*: the download call alone (Python peers). "
           "*CPU s*: user+sys of the process (median). *peak RSS*: max `ru_maxrss` over the runs. "
           "*peer÷ra*: the peer's median wall ÷ runanywhere API's (durable); *peer÷ra-nd*: the "
           "same against the non-durable runanywhere API; above 1.00 runanywhere was faster.", ""]
    for size, route, rs in _sections(rows):
        md += [f"### {human(size)} · {route_title(route, meta)}", ""]
        md += _md_table(_columns(rows), [_cells(r, labels, _ratio_keys(rows)) for r in rs])
        errs = [f"- {labels.get(r['peer'], r['peer'])}: {e}" for r in rs for e in r["errors"]]
        if errs:
            md += ["", "Failures:", "", *errs]
        md.append("")
    if meta.get("skipped_slow"):
        md += [f"The slow route was not run for {', '.join(meta['skipped_slow'])} "
               f"(`--slow-max {meta['slow_max']}`): at 75 MiB/s every single-connection peer "
               "just measures the cap.", ""]
    md += ["## Cache", ""]
    cache = results.get("cache") or []
    if not cache:
        md += ["(not run)", ""]
    else:
        body = []
        for c in cache:
            if "unavailable" in c:
                body.append([c["name"], "unavailable: " + c["unavailable"], ""])
            else:
                from .cache_bench import fmt_value
                body.append([c["name"], fmt_value(c["value"], c["unit"]), c.get("note", "")])
        md += _md_table(["figure", "value", "note"], body, right=3)
        md.append("")
    md += ["## Peers", ""]
    md += [f"- **{labels.get(p, p)}** (`{p}`): {meta['notes'].get(p, '')}" for p in meta["peers"]]
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
           f"Peak RSS: {meta.get('rss_method', 'ru_maxrss')}. CPU: user+sys from `os.wait4`.",
           "",
           "Notes: only runanywhere's durable rows fsync before publishing; curl, aria2c, urllib, "
           "requests, pooch, hf_transfer and hf_hub_download leave the data in the page cache. "
           "The CPU and RSS figures are the downloading process only (nginx's own work is not "
           "counted). The machine is small and shared; medians of a few runs still carry noise "
           "of ±10-20 %.", ""]
    return "\n".join(md)


def chart(results: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # a missing chart is not a failed benchmark
        return False
    labels = results["meta"]["labels"]
    sections = _sections(rows)
    if not sections:
        return False
    sizes = sorted({s for s, _, _ in sections})
    routes = [r for r in ("full", "slow") if any(rt == r for _, rt, _ in sections)]
    fig, axes = plt.subplots(len(sizes), len(routes), squeeze=False,
                             figsize=(6.5 * len(routes), 0.42 * max(len(rs) for *_, rs in sections)
                                      * len(sizes) + 1.2 * len(sizes)))
    for ax in axes.flat:
        ax.set_visible(False)
    for size, route, rs in sections:
        ax = axes[sizes.index(size)][routes.index(route)]
        ax.set_visible(True)
        rs = [r for r in rs]
        names = [labels.get(r["peer"], r["peer"]) for r in rs]
        vals = [r.get("mibps", 0.0) for r in rs]
        lo = [r.get("mibps", 0.0) - r.get("mibps_min", 0.0) for r in rs]
        hi = [r.get("mibps_max", 0.0) - r.get("mibps", 0.0) for r in rs]
        colors = ["#d9480f" if r["peer"].startswith("ra-") else "#4263eb" for r in rs]
        y = list(range(len(rs)))
        ax.barh(y, vals, xerr=[lo, hi], color=colors, capsize=2, error_kw={"elinewidth": 0.8})
        for yi, r in zip(y, rs, strict=True):
            txt = f"{r['mibps']:.0f}" if "mibps" in r else "FAIL"
            ax.text(r.get("mibps_max", 0.0), yi, f"  {txt}", va="center", fontsize=7)
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{human(size)} · {route}", fontsize=10)
        ax.set_xlabel("MiB/s (payload ÷ median whole-process wall time)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, max(r.get("mibps_max", 0.0) for r in rs) * 1.15 or 1)
    fig.suptitle("runanywhere vs peers, nginx on 127.0.0.1 (orange: runanywhere)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def size_label(size: int) -> str:
    return label(size)


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
    import json
    import sys

    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results/results.json")
    data = json.loads(src.read_text())
    print(text_table(data, write_all(data, src.parent)))
