"""A URL pulled without ``--size`` shows its real size once the download knows it: in the
progress, the result line, ``--json``, ``list`` and ``info`` (never "0 B" or "N/0 bytes").

Real parts: the tests' HTTP server as the origin, the CLI as a process, a real cache folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from runanywhere.units import human_size
from support.fault_server import FaultServer
from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
SIZE = 2_327_524


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "RUNANYWHERE_HOME": str(home), "COLUMNS": "200"})


def test_a_url_without_size_shows_its_real_size(fault_server: FaultServer, home: Path) -> None:
    data = os.urandom(SIZE)
    url = fault_server.add("sizes/unsized.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    shown = human_size(SIZE)
    r = cli("pull", url, "--sha256", digest, home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("unsized.bin: ") and f"({shown}, " in r.stdout, r.stdout
    assert f"/{shown}" in r.stderr and "/0 B" not in r.stderr, r.stderr  # the progress
    doc = json.loads(cli("pull", url, "--sha256", digest, "--json", home=home).stdout)
    assert doc["models"][0]["size"] == SIZE
    (listed,) = [m for m in json.loads(cli("list", "--json", home=home).stdout)["models"]
                 if m["id"] == "unsized.bin"]
    assert listed["size"] == SIZE
    info = json.loads(cli("info", "unsized.bin", "--json", home=home).stdout)
    assert info["size"] == SIZE
    table = cli("list", home=home).stdout
    assert any(line.startswith("unsized.bin") and shown in line for line in table.splitlines())


def test_the_bar_at_a_terminal_learns_the_size(fault_server: FaultServer, home: Path) -> None:
    data = os.urandom(SIZE)
    url = fault_server.add("sizes/unsized-pty.bin", data)
    term = Terminal(cli_argv("pull", url, "--sha256", hashlib.sha256(data).hexdigest()),
                    {**os.environ, "RUNANYWHERE_HOME": str(home), "COLUMNS": "160"})
    assert term.wait() == 0, term.output
    out = term.output
    assert "/0 bytes" not in out and "/0 B" not in out, out
    assert "2.2/2.2 MiB" in out and "(2.2 MiB, " in out, out
