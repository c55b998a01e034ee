"""A second ``pull`` of a model another process is downloading shows that download's progress
(read from its partial file), not "queued 0.0%" until it ends.

Real parts: two CLI processes, the tests' HTTP server sending at 1 MiB/s, one cache folder.
The moments are chosen by the bytes the server has sent and the lines the CLI has written.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, wait_until
from support.terminal import cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]
SIZE = 6 * MiB


def test_a_second_pull_shows_the_other_process_download(fault_server: FaultServer,
                                                        write_catalog: Catalog,
                                                        home: Path) -> None:
    name = f"wait-other-{os.urandom(3).hex()}"  # its own path: the test can run many times
    queued = re.compile(rf"^{name}: queued\s+([0-9.]+)%")
    data = os.urandom(SIZE)
    url = fault_server.add(name, data, fs.slow(MiB))
    cat = write_catalog([model_entry(name, url, SIZE, hashlib.sha256(data).hexdigest())])
    env = {**os.environ, "RUNANYWHERE_HOME": str(home), "RUNANYWHERE_CATALOG": str(cat)}
    first = subprocess.Popen(cli_argv("pull", name, "-q"), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: fault_server.bytes_served(name) >= MiB, what="1 MiB served")
    second = subprocess.Popen(cli_argv("pull", name), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shares: list[float] = []
    lines: list[str] = []
    moving = threading.Event()

    def read() -> None:
        assert second.stderr is not None
        for line in second.stderr:
            lines.append(line)
            m = queued.match(line)
            if m:
                shares.append(float(m[1]))
                if len([s for s in shares if s > 0]) >= 2:
                    moving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert moving.wait(60), "".join(lines)  # two lines of the other's progress while queued
    out_first, err_first = first.communicate(timeout=60)
    assert first.returncode == 0, err_first
    out, _ = second.communicate(timeout=60)
    reader.join(10)
    assert second.returncode == 0, "".join(lines)
    growing = [s for s in shares if s > 0]
    assert growing == sorted(growing) and growing[-1] > growing[0], shares
    assert out.startswith(f"{name}: ") and out.split(": ", 1)[1].split(" (")[0] == \
        out_first.strip()
    assert fault_server.bytes_served(name) == SIZE  # downloaded once
    assert check_cache(home) == [name]
