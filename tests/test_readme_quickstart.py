"""The README's quick start works as written for a newcomer: after ``make demo`` the command is
found once the environment is activated (the line the README gives), and the README says the
tool is POSIX-only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Two commands", 1)[1].split("\n## ", 1)[0]


def test_the_quick_start_says_how_to_reach_the_command_and_where_it_runs() -> None:
    section = quick_start()
    assert "POSIX" in section and "Windows" in section
    assert "pip install" in section


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the tests run outside a venv")
def test_the_activation_line_puts_the_command_on_the_path(tmp_path: Path) -> None:
    (line,) = [m for m in re.findall(r"^(\. \S+/bin/activate)", quick_start(), re.M)]
    assert line == ". .venv/bin/activate"
    # The README's line, run from a folder holding this environment as .venv, in a shell whose
    # PATH does not have it: `runanywhere` is found and runs.
    (tmp_path / ".venv").symlink_to(VENV)
    r = subprocess.run(["sh", "-c", f"{line} && command -v runanywhere && runanywhere --help"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].endswith("/bin/runanywhere")
    assert "pull" in r.stdout
