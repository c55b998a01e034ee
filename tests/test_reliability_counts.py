"""The reliability table of the docs (``docs/reliability.md``) is written by
``scripts/reliability_counts.py`` from the collected suite: this fails when a reliability case
was added, removed or renamed and the table was not regenerated
(``python scripts/reliability_counts.py`` fixes it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_reliability_page_counts_are_up_to_date() -> None:
    r = subprocess.run([sys.executable, "scripts/reliability_counts.py", "--check"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
