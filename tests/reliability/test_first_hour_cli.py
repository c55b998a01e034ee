"""The first hour at a terminal: tables keep ids whole in a narrow terminal (other columns wrap
or shorten), and read-only commands create nothing in a home that does not exist.

Real parts: the CLI in a real pseudo-terminal (``support/terminal.py``) and as a process.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.catalogs import model_entry
from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]
IDS = ["an-id-long-enough-to-be-split-x1", "another-quite-long-model-id-y2"]


@pytest.mark.parametrize("columns", [60, 44])
def test_a_table_in_a_narrow_terminal_keeps_each_id_whole(write_catalog: Catalog, home: Path,
                                                         columns: int) -> None:
    cat = write_catalog([model_entry(i, f"http://127.0.0.1:9/{i}", 1000, None,
                                     name=f"A model called {i} with a long descriptive name")
                         for i in IDS])
    env = {**os.environ, "RUNANYWHERE_HOME": str(home), "RUNANYWHERE_CATALOG": str(cat),
           "COLUMNS": str(columns), "LINES": "40"}
    term = Terminal(cli_argv("list", "--search", "-"), env)
    assert term.wait() == 0, term.output
    lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in term.output.splitlines()]
    for model_id in IDS:  # the id whole on one line, at the start of its row
        assert any(line.startswith(model_id) for line in lines), term.output
    assert all(len(line) <= columns for line in lines), term.output


READ_ONLY = [["info", "silero-vad"], ["cache", "ls"], ["cache", "size"], ["list"],
             ["cache", "ls", "--json"], ["info", "silero-vad", "--json"]]


@pytest.mark.parametrize("argv", READ_ONLY, ids=[" ".join(a) for a in READ_ONLY])
def test_a_read_only_command_creates_nothing(tmp_path: Path, argv: list[str]) -> None:
    home = tmp_path / "never-made"
    r = subprocess.run(cli_argv(*argv), capture_output=True, text=True, timeout=60,
                       env={**os.environ, "RUNANYWHERE_HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert not home.exists(), sorted(str(p) for p in home.rglob("*"))
