#!/usr/bin/env python3
"""Rewrite the reliability table of the docs (docs/reliability.md) from the test suite, never
by hand.

    python scripts/reliability_counts.py          # rewrite docs/reliability.md between the markers
    python scripts/reliability_counts.py --check  # exit 1 if docs/reliability.md is out of date

The cases are collected with ``pytest --collect-only -q`` (every parametrized case counts once);
each file of ``tests/reliability/`` belongs to an area below (a new file without an area is an
error, so the table cannot silently miss it). In the texts, ``{sel}`` is the number of cases
whose id starts with ``sel`` (a path under ``tests/``, optionally ``::test_name``) and
``{rest}`` the area's cases not named by another placeholder of the same text.
``tests/test_reliability_counts.py`` runs ``--check`` in the suite.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
START = "<!-- reliability-counts:start (scripts/reliability_counts.py writes this) -->"
END = "<!-- reliability-counts:end -->"
REL = "reliability/"


@dataclass(frozen=True)
class Area:
    #: Files (under tests/reliability/) or ``file::test`` prefixes whose cases make the area.
    members: tuple[str, ...]
    tried: str
    outcome: str


AREAS = [
    Area(("test_network_faults.py",),
         "network (a fault server of our own on 127.0.0.1): resets after N bytes, stalls, "
         "trickles, short and long bodies, a connection cut after every megabyte, ignored "
         "Range, ETag and bytes changing between ranges, 500/503/429 with and without "
         "Retry-After, redirect loops and "
         "`file://`/`ftp://` redirects, unasked gzip, HTML with 200, empty bodies, mirrors "
         "(and mirrors sending wrong bytes), size probes, expired signed links",
         "{reliability/test_network_faults.py::test_recovers} recover to the right bytes; "
         "{reliability/test_network_faults.py::test_fails_typed} end in a typed error with "
         "nothing visible; {rest} more check retries, Retry-After, If-Range, mirrors (who is "
         "blamed for wrong bytes), size probes and restarts"),
    Area(("test_hub_faults.py",),
         "the Hub's API (a stand-in on 127.0.0.1): 503 twice (with and without Retry-After) "
         "and for good, a 400, a pagination link that loops, a listing that never ends, empty "
         "files in a repository",
         "pulled once the API heals; the others end in a typed error after a bounded number "
         "of requests, nothing cached; an empty file is pulled, empty"),
    Area(("test_crash_resume.py", "test_cache_crash.py"),
         "`kill -9` of a child downloading, publishing, evicting, pruning (at named hook "
         "points, at byte counts, and at random moments)",
         "all: a fresh process finds the cache consistent and finishes, resuming where it can"),
    Area(("test_filesystem_faults.py",),
         "filesystem: disk full (a small tmpfs), read-only mounts (bind and tmpfs remount), "
         "missing folder under a read-only parent, cross-filesystem staging",
         "all keep working or fail typed; nothing lost"),
    Area(("test_bad_input_and_tampering.py::test_verify_finds",
          "test_bad_input_and_tampering.py::test_a_plain_pull"),
         "tampering: flipped bit, truncated, deleted and symlinked blobs, planted partials",
         "found by `cache verify` (or a hit's cheap checks), healed by the next pull"),
    Area(("test_index_faults.py", "test_index_memory.py"),
         "index: locked by another process, garbage header, damaged page, truncated file, newer "
         "schema, corruption found while running ({reliability/test_index_faults.py}); deleted "
         "or emptied, first-use hashes through a rebuild, `cache forget`, touched files "
         "({reliability/test_index_memory.py})",
         "rebuilt from blobs, manifests and `trusted/`, or refused untouched (newer schema); a "
         "touched file is re-hashed, not downloaded; never wrong bytes"),
    Area(("test_bad_input_and_tampering.py::test_hostile", "test_archive_safety.py",
          "test_catalog_door.py"),
         "bad input: hostile ids (`..`, absolute, NUL, 4 KiB, look-alikes), absurd sizes, "
         "malformed hashes, escaping paths "
         "({reliability/test_bad_input_and_tampering.py::test_hostile}, through `pull`); URLs "
         "with CR/LF, spaces or non-ASCII, clashing and overlong paths and versions, sizes like "
         "`1e400` ({reliability/test_catalog_door.py}); archives with `../`, absolute and link "
         "members ({reliability/test_archive_safety.py})",
         "refused with the file and field named; nothing asked for, nothing written"),
    Area(("test_concurrency.py", "test_cache_concurrency.py", "test_races.py"),
         "concurrency: 8 processes pull one model (the server counts bytes), 2 registries in "
         "one process, flock that lies, cancel while waiting, many publishers; pulls racing "
         "`clear`/`prune` in another process, stale memory hits, blocking registries on "
         "threads, raising progress callbacks",
         "all succeed with identical bytes or a typed error; the 8 are served the model about "
         "once"),
    Area(("test_space_and_versions.py",),
         "space and versions: a new version (at once, and while in use), a killed pull's "
         "partial, eviction beside a pinned model, the quarantine, zip and tar bombs on a "
         "100 MiB tmpfs, identical bytes under two ids",
         "what prune says it frees is what leaves the disk (measured per inode); bombs refused "
         "before a byte is written; one download per blob"),
    Area(("test_security.py", "test_secrets.py"),
         "security: a cache others can write (world-writable, another owner, a planted link), "
         "umask 000, `HF_TOKEN` through redirects (another host, https to http) and errors "
         "(over real TLS), `doctor` (and a home that is missing, a file or read-only) "
         "({reliability/test_security.py}); a password in a URL "
         "(nginx `auth_basic`) and tokens in a URL's query, through redirects, logs, errors, "
         "`info`, `cache ls`, `--json`, `sources.json` and `serve` "
         "({reliability/test_secrets.py})",
         "refused with the path named; a token or password reaches its origin only and is "
         "never printed nor written; `doctor` reports each trouble and changes nothing"),
    Area(("test_cache_tampering.py",),
         "a tampered cache: a blob row named `../../../x`, a model row and a manifest (read "
         "back in an index rebuild) whose paths climb out, trust rows with ids `../x`, "
         "`models/<id>`, a blob and an abandoned partial made links out, each under `cache "
         "prune` (twice), `rm`, `clear`, `verify`, `ls`, `pull` and `load` "
         "({reliability/test_cache_tampering.py::test_a_tampered}); a `sources.json` naming "
         "`../../x`; `doctor` on each",
         "files outside the cache byte-identical after every command; a pull answers with "
         "verified bytes inside the cache; `doctor` names each planted thing on one line"),
    Area(("test_serve_trust.py",),
         "`serve` trust: Host headers a DNS-rebinding page would send "
         "({reliability/test_serve_trust.py::test_a_foreign_host_is_refused_without_a_token}), "
         "blank and unsendable tokens, the token spelled every way in a URL "
         "({reliability/test_serve_trust.py::test_the_access_log_masks_the_token}), clients "
         "leaving mid-response, oversized and malformed requests, CORS answers per origin",
         "refused with 403 (names not allowed) or at start (tokens); the token never in the log; "
         "one log line per request and no traceback; `Vary: Origin` on every per-origin answer"),
    Area(("test_ids.py", "test_messages.py", "test_waiting.py", "test_url_sizes.py",
          "test_first_hour_cli.py"),
         "the first hour: a failed URL pull, ids released by `cache rm` and `cache forget`, "
         "`hf://` ids against built-in ones, the reference as a name, the Hub offline and down "
         "({reliability/test_ids.py}); URLs without `--size` ({reliability/test_url_sizes.py}); "
         "a second process's pull ({reliability/test_waiting.py}); narrow terminals and "
         "read-only commands in a missing home ({reliability/test_first_hour_cli.py}); "
         "messages: unwritable caches, disk margin, first-use mismatches, missing boto3 and "
         "adapter libraries, resumed speeds ({reliability/test_messages.py}); and Ctrl-C in "
         "blocking calls and multi-model pulls ({test_interrupts.py} cases in "
         "`tests/test_interrupts.py`, one of them run 200 times under a CPU hog)",
         "ids stay free until a pull lands and are released on request; the cached copy is "
         "served offline; real sizes and progress shown; ids whole, no folder created; each "
         "error names the command-line way out, before any download"),
    Area(("test_ranges_property.py",),
         "property-based (hypothesis): range bookkeeping (here) and the memory LRU "
         "(`tests/test_memory_lru.py`, {test_memory_lru.py} more)",
         "hold for every generated case"),
]

TOTAL = ("In all: **{total} fault and bad-input cases in `tests/reliability/`**, each of which "
         "must pass for `make test` to pass (passing is the right bytes or a typed error, and a "
         "cache that passes the checker). The catalog parser's own {test_catalog.py} validation "
         "cases are in `tests/test_catalog.py`.")


def collect() -> list[str]:
    """Test ids (relative to tests/) of the reliability suite and the two files cited."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/reliability", "tests/test_catalog.py", "tests/test_memory_lru.py",
         "tests/test_interrupts.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    ids = [line.strip().removeprefix("tests/") for line in out.stdout.splitlines()
           if line.startswith("tests/") and "::" in line]
    if out.returncode != 0 or not ids:
        raise SystemExit(f"collecting the tests failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return ids


def count(ids: list[str], selector: str) -> int:
    return sum(1 for i in ids if i.startswith(selector))


def fill(text: str, ids: list[str], area_total: int = 0) -> str:
    named = 0

    def one(m: re.Match[str]) -> str:
        nonlocal named
        if m[1] in ("rest", "total"):
            return m[0]
        n = count(ids, m[1])
        if n == 0:
            raise SystemExit(f"no test matches {{{m[1]}}}: fix scripts/reliability_counts.py")
        named += n
        return str(n)

    text = re.sub(r"\{([^{}]+)\}", one, text)
    return text.replace("{rest}", str(area_total - named))


def render(ids: list[str]) -> str:
    rel = [i for i in ids if i.startswith(REL)]
    owned: dict[str, str] = {}
    rows = ["| area | cases | outcome |", "|---|---:|---|"]
    for area in AREAS:
        cases = [i for i in rel if any(i.startswith(REL + m) for m in area.members)]
        for c in cases:
            if c in owned:
                raise SystemExit(f"{c} belongs to two areas")
            owned[c] = area.tried
        rows.append(f"| {fill(area.tried, ids)} | {len(cases)} |"
                    f" {fill(area.outcome, ids, len(cases))} |")
    missing = sorted({i.split("::")[0].removeprefix(REL) for i in rel if i not in owned})
    if missing:
        raise SystemExit(f"reliability tests without an area in scripts/reliability_counts.py:"
                         f" {', '.join(missing)}")
    total = fill(TOTAL, ids).replace("{total}", str(len(rel)))
    return "\n".join([START, *rows, "", total, END])


def rewrite(text: str, table: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{PAGE.relative_to(ROOT)} lacks the markers {START!r} ... {END!r}")
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + table + tail


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 if docs/reliability.md is out of date")
    args = p.parse_args()
    text = PAGE.read_text()
    new = rewrite(text, render(collect()))
    if args.check:
        if new != text:
            print("docs/reliability.md's table is out of date: run"
                  " python scripts/reliability_counts.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        PAGE.write_text(new)
        print("docs/reliability.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
