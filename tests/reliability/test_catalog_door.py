"""Bad input refused at the door: when the catalog (or a size) is read, not after the download.

* a URL with CR/LF, a tab, a space or a non-ASCII character (in ``url``, a mirror or a file's
  URL) was accepted, retried for about 6 s and failed with a two-line message;
* paths that cannot exist on a disk (``a`` and ``a/b`` in one model, a 300-byte name, a
  300-character version) were accepted and failed with "File exists" / "File name too long"
  after every byte was downloaded;
* ``--max-size 1e400`` and ``RUNANYWHERE_DISK_LIMIT=1e400`` ended in an ``OverflowError``
  traceback.

Each case goes through ``runanywhere`` as a user meets it, against a fault server that counts
requests: nothing may be asked for, nothing written, and the one error line names the catalog
file, the model and the field. Every case ends with ``check_cache``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.cli.main import main
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache

pytestmark = pytest.mark.timeout(120, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
GOOD_HASH = "cd" * 32


def _files(*paths: str, url: str = "") -> dict[str, Any]:
    return {"url": None, "size": 10 * len(paths), "files": [
        {"path": p, "url": f"{url}/f{i}", "size": 10, "hash": f"sha256:{GOOD_HASH}"}
        for i, p in enumerate(paths)]}


#: (case, change to a good entry (``{url}`` is the server), field the error must name)
DOOR: list[tuple[str, Callable[[str], dict[str, Any]], str]] = [
    ("url-crlf-header", lambda u: {"url": f"{u}/m.onnx\r\nX-Injected: yes"}, "url"),
    ("url-lf", lambda u: {"url": f"{u}/m.onnx\n"}, "url"),
    ("url-space", lambda u: {"url": f"{u}/my model.onnx"}, "url"),
    ("url-tab", lambda u: {"url": f"{u}/m.onnx\t"}, "url"),
    ("url-non-ascii", lambda u: {"url": f"{u}/mod\u00e8le.onnx"}, "url"),
    ("mirror-crlf", lambda u: {"mirrors": [f"{u}/mirror\r\n.onnx"]}, "mirrors[0]"),
    ("file-url-space", lambda u: _files("a.onnx", url=f"{u}/x y"), "files[0].url"),
    ("file-and-folder", lambda u: _files("a", "a/b", url=u), "files[1].path"),
    ("folder-and-file", lambda u: _files("enc/model.onnx", "ENC", url=u), "files[1].path"),
    ("long-name", lambda u: _files("x" * 300, url=u), "files[0].path"),
    ("long-folder", lambda u: _files("d" * 256 + "/m.onnx", url=u), "files[0].path"),
    ("long-path", lambda u: _files("/".join(["p" * 150] * 8), url=u), "files[0].path"),
    ("long-version", lambda u: {"version": "1" * 300}, "version"),
    ("version-newline", lambda u: {"version": "1\n2"}, "version"),
]


@pytest.mark.parametrize(("change", "field"), [(c, f) for _, c, f in DOOR],
                         ids=[name for name, _, _ in DOOR])
def test_refused_when_the_catalog_is_read(fault_server: FaultServer, tmp_path: Path, home: Path,
                                          write_catalog: Catalog,
                                          capsys: pytest.CaptureFixture[str],
                                          change: Callable[[str], dict[str, Any]],
                                          field: str) -> None:
    entry = model_entry("door", fault_server.url("m.onnx"), 10, GOOD_HASH)
    entry.update(change(fault_server.base))
    entry = {k: v for k, v in entry.items() if v is not None}
    catalog = write_catalog([entry])
    before_requests = fault_server.requests()
    before = set(tmp_path.rglob("*"))
    t0 = time.monotonic()
    code = main(["--home", str(home), "--catalog", str(catalog), "pull", "door"])
    out, err = capsys.readouterr()
    assert time.monotonic() - t0 < 2, "not refused at the door (retried?)"
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert catalog.name in lines[0] and "model 'door'" in lines[0] and field in lines[0], lines
    assert fault_server.requests() == before_requests, "a request was made"
    created = set(tmp_path.rglob("*")) - before
    assert all(p == home or home in p.parents for p in created), created
    assert check_cache(home) == []


def test_registering_a_bad_entry_from_python_is_refused_too(home: Path) -> None:
    from runanywhere import ModelRegistry
    from runanywhere.errors import InvalidCatalogError

    reg = ModelRegistry(home=home, include_builtin=False)
    bad = model_entry("api", "http://127.0.0.1:9/m.onnx\r\nHost: evil", 10, GOOD_HASH)
    with pytest.raises(InvalidCatalogError, match="control character"):
        reg.register_model(bad)
    assert reg.get_model("api") is None
    assert check_cache(home) == []


# -- sizes too large to be sizes ------------------------------------------------------------------
def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runanywhere", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("size", ["1e400", "inf", "nan", "1e30"])
def test_an_absurd_max_size_is_a_one_line_error(home: Path, size: str) -> None:
    r = _run("--home", str(home), "cache", "prune", "--max-size", size)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("runanywhere: error:") and len(r.stderr.splitlines()) == 1
    assert "Traceback" not in r.stderr and "OverflowError" not in r.stderr
    assert size in r.stderr
    assert check_cache(home) == []


@pytest.mark.parametrize("size", ["1e400", "-inf"])
def test_an_absurd_disk_limit_variable_is_a_one_line_error(home: Path, size: str) -> None:
    r = _run("--home", str(home), "cache", "ls", env={"RUNANYWHERE_DISK_LIMIT": size})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "RUNANYWHERE_DISK_LIMIT" in r.stderr
    assert check_cache(home) == []
