"""``runanywhere adapters [--json]``: the installed adapters and runtimes.

One row each: the name, the model types and formats it handles, the distribution (and version)
that provides it, and whether its dependencies import (checked without importing them). The
project's adapters that are not installed follow on stderr with the package to install.
"""

from __future__ import annotations

import argparse
import sys

from ..adapters.inventory import (
    Installed,
    installed_adapters,
    installed_runtimes,
    not_installed_adapters,
)
from .render import print_json, print_table


def _deps(item: Installed) -> str:
    if item.error:
        return f"broken: {item.error}"
    if item.missing:
        return f"missing {', '.join(item.missing)}" + (f" ({item.fix})" if item.fix else "")
    return "ok"


def _package(item: Installed) -> str:
    return f"{item.distribution} {item.version}".strip()


def cmd_adapters(args: argparse.Namespace) -> int:
    adapters = installed_adapters()
    runtimes = installed_runtimes()
    missing = not_installed_adapters()
    if args.json:
        print_json({
            "adapters": [a.to_dict() for a in adapters],
            "runtimes": [r.to_dict() for r in runtimes],
            "not_installed": [{"name": n, "distribution": d, "install": f"pip install {d}"}
                              for n, d in sorted(missing.items())],
        })
        return 0
    if args.quiet:
        for a in adapters:
            print(a.name)
        return 0
    if adapters:
        print_table(["ADAPTER", "TYPES", "FORMATS", "PACKAGE", "DEPENDENCIES"],
                    [(a.name, ",".join(a.model_types) or "-", ",".join(a.formats) or "-",
                      _package(a), _deps(a)) for a in adapters])
    else:
        sys.stderr.write("no adapter installed\n")
    print_table(["RUNTIME", "FORMATS", "PACKAGE", "DEPENDENCIES"],
                [(r.name, ",".join(r.formats) or "-", _package(r), _deps(r)) for r in runtimes])
    if missing:
        by_dist: dict[str, list[str]] = {}
        for name, dist in sorted(missing.items()):
            by_dist.setdefault(dist, []).append(name)
        sys.stderr.write("not installed (pip install PACKAGE, or runanywhere[vad|stt|tts|llm]):\n")
        for dist, names in sorted(by_dist.items()):
            sys.stderr.write(f"  {', '.join(names)}: {dist}\n")
    return 0
