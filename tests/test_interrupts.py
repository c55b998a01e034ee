"""Cancel is real everywhere: Ctrl-C in a terminal and in a pipe, a cancelled task, a timeout, a
KeyboardInterrupt in a blocking call. Each time the download stops, its partial stays for a
resume, nothing becomes visible, and no thread of ours outlives the call.

The moment of the interrupt is chosen by the bytes the (slow) server has sent, never by a sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest

from runanywhere.errors import DownloadCancelledError
from runanywhere.progress import DownloadProgress, Stage
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, covered, make_registry, pull, wait_until
from support.terminal import Terminal, cli_argv

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]
SIZE = 6 * MiB
RATE = 1 * MiB  # bytes/s: the whole file would take six seconds


def slow_model(server: FaultServer, write_catalog: Catalog, name: str,
               rate: int = RATE) -> tuple[bytes, str, Path]:
    """A model served at ``rate`` bytes/s once, then at full speed (for the resume)."""
    data = os.urandom(SIZE)
    url = server.add(name, data, fs.slow(rate), then=fs.ok())
    sha = hashlib.sha256(data).hexdigest()
    return data, sha, write_catalog([model_entry(name, url, SIZE, sha)])


def our_threads(before: Collection[threading.Thread] = ()) -> list[str]:
    """Threads of ours alive now that were not alive ``before``."""
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("ra-", "runanywhere-")) and t.is_alive() and t not in before]


def cli_env(home: Path, catalog: Path) -> dict[str, str]:
    return {**os.environ, "RUNANYWHERE_HOME": str(home), "RUNANYWHERE_CATALOG": str(catalog),
            "COLUMNS": "120"}


def assert_resumes(server: FaultServer, home: Path, catalog: Path, name: str, data: bytes,
                   kept: int) -> None:
    """The same command again finishes, fetching only what was not kept."""
    earlier = len(server.hits(name))
    r = subprocess.run(cli_argv("pull", name, "--quiet"), env=cli_env(home, catalog),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == data
    assert sum(h.sent for h in server.hits(name)[earlier:]) <= len(data) - kept
    assert check_cache(home) == [name]


def test_ctrl_c_in_a_terminal_cancels_keeps_the_partial_and_resumes(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    data, _, cat = slow_model(fault_server, write_catalog, "pty-pull")
    term = Terminal(cli_argv("pull", "pty-pull"), cli_env(home, cat))
    wait_until(lambda: fault_server.bytes_served("pty-pull") >= MiB, what="1 MiB served")
    term.ctrl_c()
    code = term.wait()
    served_at_exit = fault_server.bytes_served("pty-pull")
    out = term.output
    assert code == 130, out
    assert "Traceback" not in out
    assert "pty-pull: cancelled;" in out and "kept, run the same command to resume" in out
    assert served_at_exit < SIZE  # stopped, not finished in the background
    assert check_cache(home) == []  # nothing visible
    kept = covered(home)
    assert kept >= MiB // 2
    assert_resumes(fault_server, home, cat, "pty-pull", data, kept)


def test_two_ctrl_c_exit_at_once_without_a_traceback(fault_server: FaultServer,
                                                     write_catalog: Catalog,
                                                      home: Path) -> None:
    _, _, cat = slow_model(fault_server, write_catalog, "pty-twice")
    term = Terminal(cli_argv("pull", "pty-twice"), cli_env(home, cat))
    wait_until(lambda: fault_server.bytes_served("pty-twice") >= MiB // 2, what="bytes served")
    term.ctrl_c()
    term.ctrl_c()
    assert term.wait() == 130
    assert "Traceback" not in term.output
    assert check_cache(home) == []


def test_progress_goes_to_the_terminal_and_the_result_to_the_file(
        fault_server: FaultServer, write_catalog: Catalog, home: Path, tmp_path: Path) -> None:
    data, _, cat = slow_model(fault_server, write_catalog, "pty-redirect", rate=8 * MiB)
    out_file = tmp_path / "out.txt"
    term = Terminal(cli_argv("pull", "pty-redirect"), cli_env(home, cat), stdout_to=out_file)
    assert term.wait() == 0, term.output
    result = out_file.read_text()
    assert result.count("\n") == 1 and result.startswith("pty-redirect: ")  # only the result
    path = result.split(": ", 1)[1].split(" (")[0]
    assert Path(path).read_bytes() == data
    assert "pty-redirect" in term.output and "MiB" in term.output  # the bar, on the terminal
    assert "MB/s" not in term.output  # one unit family


def test_sigint_in_a_pipe(fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    data, _, cat = slow_model(fault_server, write_catalog, "pipe-pull")
    proc = subprocess.Popen(cli_argv("pull", "pipe-pull"), env=cli_env(home, cat),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: fault_server.bytes_served("pipe-pull") >= MiB, what="1 MiB served")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""  # nothing is a result
    assert "pipe-pull: cancelled;" in err and "Traceback" not in err
    assert check_cache(home) == []
    assert_resumes(fault_server, home, cat, "pipe-pull", data, covered(home))


def test_sigint_with_json_prints_one_document(fault_server: FaultServer, write_catalog: Catalog,
                                              home: Path) -> None:
    _, _, cat = slow_model(fault_server, write_catalog, "json-pull")
    proc = subprocess.Popen(cli_argv("pull", "json-pull", "--json"), env=cli_env(home, cat),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: fault_server.bytes_served("json-pull") >= MiB, what="1 MiB served")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    doc = json.loads(out)
    (model,) = doc["models"]
    assert doc["ok"] is False and model["ok"] is False
    assert model["error"]["type"] == "DownloadCancelledError"
    assert model["error"]["exit_code"] == 130 and model["kept_bytes"] >= MiB // 2


def two_slow_models(server: FaultServer, write_catalog: Catalog, prefix: str
                    ) -> tuple[Path, tuple[str, str]]:
    """Two slow models under fresh names (the test can run many times against one server)."""
    entries = []
    tag = os.urandom(3).hex()
    names = (f"{prefix}-a-{tag}", f"{prefix}-b-{tag}")
    for name in names:
        data = os.urandom(SIZE)
        url = server.add(name, data, fs.slow(RATE), then=fs.ok())
        entries.append(model_entry(name, url, SIZE, hashlib.sha256(data).hexdigest()))
    return write_catalog(entries), names


def test_sigint_in_a_pull_of_several_models_reports_each_as_cancelled(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    cat, names = two_slow_models(fault_server, write_catalog, "multi")
    proc = subprocess.Popen(cli_argv("pull", *names), env=cli_env(home, cat),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: min(fault_server.bytes_served(n) for n in names) >= MiB,
               what="1 MiB of each served")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err and "not downloaded" not in err, err
    for name in names:
        assert f"{name}: cancelled; " in err, err
    assert check_cache(home) == []


def test_sigint_in_a_pull_of_several_models_with_json(fault_server: FaultServer,
                                                      write_catalog: Catalog,
                                                      home: Path) -> None:
    cat, names = two_slow_models(fault_server, write_catalog, "multi-json")
    proc = subprocess.Popen(cli_argv("pull", *names, "--json"),
                            env=cli_env(home, cat), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: min(fault_server.bytes_served(n) for n in names) >= MiB,
               what="1 MiB of each served")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads(out)
    assert [m["id"] for m in doc["models"]] == list(names)
    for m in doc["models"]:
        assert m["ok"] is False and m["cancelled"] is True, m
        assert m["error"]["type"] == "DownloadCancelledError" and m["kept_bytes"] >= MiB // 2


def test_sigint_during_load_with_json_prints_one_document(fault_server: FaultServer,
                                                         write_catalog: Catalog,
                                                         home: Path) -> None:
    """Ctrl-C outside ``pull``'s own progress handling (here ``load``, still downloading)
    keeps ``--json``'s promise too: one error document on stdout, exit 130."""
    data = os.urandom(SIZE)
    url = fault_server.add("json-load", data, fs.slow(RATE), then=fs.ok())
    entry = model_entry("json-load", url, SIZE, hashlib.sha256(data).hexdigest())
    cat = write_catalog([{**entry, "format": "onnx"}])  # load needs a runtime for it
    proc = subprocess.Popen(cli_argv("load", "json-load", "--json"), env=cli_env(home, cat),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: fault_server.bytes_served("json-load") >= MiB, what="1 MiB served")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out)["error"]["exit_code"] == 130
    assert "Traceback" not in err
    assert check_cache(home) == []


def test_wait_for_timeout_cancels_the_download(fault_server: FaultServer, write_catalog: Catalog,
                                               home: Path) -> None:
    data, _, cat = slow_model(fault_server, write_catalog, "api-timeout")
    reg = make_registry(home, cat, timeout=30.0)
    events: list[DownloadProgress] = []
    before = set(threading.enumerate())

    async def scenario() -> None:
        task = asyncio.ensure_future(reg.download_model("api-timeout", on_detail=events.append))
        while fault_server.bytes_served("api-timeout") < MiB:
            await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(task, 0.05)

    asyncio.run(scenario())
    served = fault_server.bytes_served("api-timeout")
    assert our_threads(before) == [], "a thread outlived the cancelled call"
    assert served < SIZE and check_cache(home) == []
    assert events[-1].stage is Stage.CANCELLED
    assert isinstance(events[-1].error, DownloadCancelledError)
    kept = covered(home)
    assert kept >= MiB // 2
    earlier = len(fault_server.hits("api-timeout"))
    r = pull(make_registry(home, cat), "api-timeout")
    assert r.success and r.unwrap().read_bytes() == data
    assert sum(h.sent for h in fault_server.hits("api-timeout")[earlier:]) <= SIZE - kept


def test_the_last_waiter_leaving_cancels_not_the_first(fault_server: FaultServer,
                                                       write_catalog: Catalog,
                                                       home: Path) -> None:
    data, _, cat = slow_model(fault_server, write_catalog, "two-waiters", rate=4 * MiB)
    reg = make_registry(home, cat, timeout=30.0)

    async def scenario() -> Any:
        a = asyncio.ensure_future(reg.download_model("two-waiters"))
        b = asyncio.ensure_future(reg.download_model("two-waiters"))
        while fault_server.bytes_served("two-waiters") < MiB:
            await asyncio.sleep(0.01)
        a.cancel()  # b still wants the model: the download goes on
        with pytest.raises(asyncio.CancelledError):
            await a
        return await b

    r = asyncio.run(scenario())
    assert r.success and r.unwrap().read_bytes() == data
    assert check_cache(home) == ["two-waiters"]


CHILD = textwrap.dedent("""
    import json, sys, threading
    from runanywhere import BlockingRegistry, ModelRegistry
    reg = BlockingRegistry(ModelRegistry(home=sys.argv[1], catalogs=[sys.argv[2]],
                                         include_builtin=False))
    print("started", flush=True)
    try:
        reg.download_model(sys.argv[3])
        print(json.dumps({"interrupted": False}))
    except KeyboardInterrupt:
        threads = [t.name for t in threading.enumerate()
                   if t.name.startswith("ra-") and t.is_alive()]
        print(json.dumps({"interrupted": True, "threads": threads}), flush=True)
""")


# A Ctrl-C goes to any thread of the process that does not block it; only one that lands in the
# main thread (waiting on the call's result) raises KeyboardInterrupt at once. So every other
# thread alive during a blocking call must block SIGINT: read from /proc, at 1 MiB downloaded.
MASKS = textwrap.dedent("""
    import json, os, signal, sys, threading
    from runanywhere import BlockingRegistry, ModelRegistry
    reg = BlockingRegistry(ModelRegistry(home=sys.argv[1], catalogs=[sys.argv[2]],
                                         include_builtin=False))
    seen = {}

    def blocks_sigint(tid):
        with open(f"/proc/self/task/{tid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigBlk:"))
        return bool(mask >> (signal.SIGINT - 1) & 1)

    def on_detail(p):
        if p.bytes_loaded >= 2**20 and not seen:
            main = threading.main_thread()
            seen.update({t.name: blocks_sigint(t.native_id) for t in threading.enumerate()
                         if t is not main and t.native_id is not None})
            seen["(main)"] = blocks_sigint(main.native_id)
            os.kill(os.getpid(), signal.SIGINT)

    try:
        reg.download_model(sys.argv[3], on_detail=on_detail)
        print(json.dumps({"interrupted": False, "threads": seen}))
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True, "threads": seen}), flush=True)
""")


def test_only_the_calling_thread_can_take_a_ctrl_c_in_a_blocking_call(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    name = f"blocking-masks-{os.urandom(3).hex()}"  # its own path: the test can run many times
    _, _, cat = slow_model(fault_server, write_catalog, name)
    out = subprocess.run([sys.executable, "-c", MASKS, str(home), str(cat), name],
                         capture_output=True, text=True, timeout=60)
    report = json.loads(out.stdout.splitlines()[-1])
    threads = report["threads"]
    assert threads.pop("(main)") is False, out.stderr  # the caller takes it
    assert "runanywhere-loop" in threads and any(n.startswith("ra-") for n in threads), threads
    assert [n for n, blocked in threads.items() if not blocked] == [], threads
    assert report["interrupted"] is True, out.stderr
    assert fault_server.bytes_served(name) < SIZE


def test_keyboard_interrupt_in_a_blocking_call(fault_server: FaultServer, write_catalog: Catalog,
                                               home: Path) -> None:
    name = f"blocking-ki-{os.urandom(3).hex()}"  # its own path: the test can run many times
    _, _, cat = slow_model(fault_server, write_catalog, name)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(cat), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: fault_server.bytes_served(name) >= MiB, what="1 MiB served")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    report = json.loads(out.splitlines()[-1])
    assert report == {"interrupted": True, "threads": []}, err
    assert fault_server.bytes_served(name) < SIZE
    assert check_cache(home) == [] and covered(home) >= MiB // 2
