"""Progress that keeps up and ends in a state: FAILED (with why) and CANCELLED reach callbacks and
adapters; reports keep coming on a slow link with large chunks and while nothing arrives; the
ready display prints plain lines in a log and draws a live bar in a notebook (nbclient)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.adapters import AdapterError, ModelLoading
from runanywhere.errors import DownloadCancelledError, DownloadError
from runanywhere.progress import DownloadProgress, ProgressDisplay, Stage
from runanywhere_vad_silero import SileroVADAdapter
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.pulls import MiB, fast_config, make_registry

pytestmark = pytest.mark.timeout(120, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]


def model(server: FaultServer, write_catalog: Catalog, name: str, size: int,
          *script: fs.Behaviour) -> tuple[bytes, Path]:
    data = os.urandom(size)
    url = server.add(name, data, *script)
    return data, write_catalog([model_entry(name, url, size,
                                            hashlib.sha256(data).hexdigest())])


def test_failed_reaches_the_callback_with_the_error(fault_server: FaultServer,
                                                    write_catalog: Catalog,
                                                    home: Path) -> None:
    _, cat = model(fault_server, write_catalog, "ends-failed", 1000, fs.status(404))
    seen: list[DownloadProgress] = []
    simple: list[tuple[float, str]] = []
    r = asyncio.run(make_registry(home, cat).download_model(
        "ends-failed", lambda pct, msg: simple.append((pct, msg)), on_detail=seen.append))
    assert isinstance(r.error, DownloadError)
    last = seen[-1]
    assert last.stage is Stage.FAILED and last.error is r.error
    assert "404" in last.message and simple[-1][1] == last.message


def test_cancelled_reaches_the_callback(fault_server: FaultServer, write_catalog: Catalog,
                                        home: Path) -> None:
    gate = threading.Event()
    _, cat = model(fault_server, write_catalog, "ends-cancelled", 1000, fs.hold(gate))
    reg = make_registry(home, cat, timeout=30.0)
    seen: list[DownloadProgress] = []

    async def scenario() -> Any:
        task = asyncio.ensure_future(reg.download_model("ends-cancelled", on_detail=seen.append))
        while not fault_server.hits("ends-cancelled"):
            await asyncio.sleep(0.01)
        reg.loader.cancel_download("ends-cancelled")
        return await task

    r = asyncio.run(scenario())
    gate.set()
    assert isinstance(r.error, DownloadCancelledError)
    assert seen[-1].stage is Stage.CANCELLED and isinstance(seen[-1].error,
                                                             DownloadCancelledError)


def test_a_queued_download_cancelled_reports_cancelled(fault_server: FaultServer,
                                                       write_catalog: Catalog,
                                                       home: Path) -> None:
    gate = threading.Event()
    _, cat_a = model(fault_server, write_catalog, "q-first", 1000, fs.hold(gate))
    model(fault_server, write_catalog, "q-second", 1000)
    reg = make_registry(home, cat_a, concurrency=1, timeout=30.0)
    reg.catalog.register(model_entry("q-second", fault_server.url("q-second"), 1000, None))
    seen: list[DownloadProgress] = []

    async def scenario() -> Any:
        first = asyncio.ensure_future(reg.download_model("q-first"))
        while not fault_server.hits("q-first"):
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(reg.download_model("q-second", on_detail=seen.append))
        while reg.loader.get_queued_downloads() != ["q-second"]:
            await asyncio.sleep(0.01)
        reg.loader.cancel_download("q-second")
        r = await second
        gate.set()
        await first
        return r

    r = asyncio.run(scenario())
    assert isinstance(r.error, DownloadCancelledError)
    assert [p.stage for p in seen][-1] is Stage.CANCELLED


def test_reports_keep_up_with_a_slow_link_and_large_chunks(fault_server: FaultServer,
                                                           write_catalog: Catalog,
                                                           home: Path) -> None:
    """4 MiB chunks, 400 KB/s: the old reports came once per chunk (one report for the file)."""
    _, cat = model(fault_server, write_catalog, "slow-chunks", 800_000, fs.slow(400_000))
    reg = make_registry(home, cat, chunk_size=4 * MiB, timeout=30.0,
                        fetch_config=fast_config(split_threshold=2**40, stall_window=30.0))
    seen: list[DownloadProgress] = []
    r = asyncio.run(reg.download_model("slow-chunks", on_detail=seen.append))
    assert r.success
    during = {p.bytes_loaded for p in seen if p.stage is Stage.DOWNLOADING}
    assert len(during) >= 8, sorted(during)  # bytes are reported as they land, not per chunk
    speeds = [p.speed for p in seen if p.stage is Stage.DOWNLOADING and p.bytes_loaded]
    assert max(speeds) < 2 * 400_000  # never far above the link


def test_reports_keep_coming_while_nothing_arrives(fault_server: FaultServer,
                                                   write_catalog: Catalog,
                                                   home: Path) -> None:
    gate = threading.Event()
    _, cat = model(fault_server, write_catalog, "heartbeat", 1000, fs.hold(gate))
    reg = make_registry(home, cat, timeout=30.0,
                        fetch_config=fast_config(stall_window=30.0))
    seen: list[DownloadProgress] = []

    async def scenario() -> Any:
        task = asyncio.ensure_future(reg.download_model("heartbeat", on_detail=seen.append))
        while not fault_server.hits("heartbeat"):
            await asyncio.sleep(0.01)
        held = len(seen)
        while len(seen) < held + 4:  # the server sends nothing: only the heartbeat reports
            await asyncio.sleep(0.01)
        gate.set()
        return await task

    assert asyncio.run(scenario()).success
    assert seen[-1].stage is Stage.DONE


def test_an_adapter_hears_the_failure(fault_server: FaultServer, write_catalog: Catalog,
                                      home: Path) -> None:
    _, cat = model(fault_server, write_catalog, "silero-vad", 1000, fs.status(410))
    adapter = SileroVADAdapter(registry=make_registry(home, cat))
    loading: list[ModelLoading] = []
    errors: list[AdapterError] = []
    adapter.on(ModelLoading, loading.append)
    adapter.on(AdapterError, errors.append)
    assert not asyncio.run(adapter.load_model("silero-vad")).success
    assert loading[-1].message.startswith("failed: ") and "410" in loading[-1].message
    assert len(errors) == 1 and isinstance(errors[0].error, DownloadError)


def test_the_ready_display_prints_plain_lines_in_a_log(fault_server: FaultServer,
                                                       write_catalog: Catalog,
                                                       home: Path) -> None:
    _, cat = model(fault_server, write_catalog, "shown", 300_000)
    log = io.StringIO()
    r = asyncio.run(make_registry(home, cat).download_model(
        "shown", on_detail=ProgressDisplay(file=log)))
    assert r.success
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("shown: done 100.0% 293.0 KiB/293.0 KiB")
    assert all("\r" not in ln for ln in lines)


NOTEBOOK_CODE = """
import os
from runanywhere import BlockingRegistry, ModelRegistry
reg = BlockingRegistry(ModelRegistry(home=os.environ["NB_HOME"],
                                     catalogs=[os.environ["NB_CATALOG"]],
                                     include_builtin=False))
path = reg.download_model("in-a-notebook", on_progress="auto").unwrap()
print("PATH", path)
"""


def test_a_notebook_gets_a_live_bar(fault_server: FaultServer, write_catalog: Catalog, home: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    data, cat = model(fault_server, write_catalog, "in-a-notebook", 2 * MiB, fs.slow(4 * MiB))
    monkeypatch.setenv("NB_HOME", str(home))
    monkeypatch.setenv("NB_CATALOG", str(cat))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    path = Path(text.split("PATH ", 1)[1].split()[0])
    assert path.read_bytes() == data
    widgets = [o for o in outputs if o.output_type == "display_data"
               and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, outputs  # tqdm's notebook bar, not text written over itself
