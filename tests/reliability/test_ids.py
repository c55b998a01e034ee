"""Ids of models pulled from a URL or an ``hf://`` reference: a failed pull claims nothing,
``cache rm`` and ``cache forget`` release a source's id, an ``hf://`` pull's id carries its owner
(never a built-in's id), and the reference itself names the model in every command.

Real parts: the tests' HTTP server (``support/fault_server.py``) as the origin of URLs, the Hub
stand-in (``support/hub_server.py``) for ``hf://``, the CLI as a process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runanywhere import ModelRegistry
from support.fault_server import FaultServer
from support.hub_server import HubServer
from support.invariants import check_cache
from support.terminal import cli_argv

pytestmark = pytest.mark.timeout(180, method="thread")
WEIGHTS = os.urandom(300_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(lfs_threshold=1024) as server:
        # Named like the built-in "whisper-tiny": its pull must not be refused.
        server.add_repo("acme/whisper-tiny", {"model.onnx": WEIGHTS, "vocab.txt": b"a\nb\n"})
        yield server


@pytest.fixture
def hf_env(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The Hub stand-in as ``HF_ENDPOINT`` (no token and a fresh ``HF_HOME`` already:
    ``support/isolation.py``, autouse)."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.clear_requests()
    return hub


def cli(*args: str, home: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RUNANYWHERE_HOME": str(home), **(env or {})})


# -- URLs ------------------------------------------------------------------------------------------

def test_a_failed_url_pull_does_not_claim_its_id(fault_server: FaultServer, home: Path) -> None:
    data = os.urandom(5000)
    good = fault_server.add("ids/right/model.onnx", data)
    typo = fault_server.url("ids/wrong/model.onnx")  # 404
    failed = cli("pull", typo, "--sha256", sha(data), home=home)
    assert failed.returncode != 0 and "404" in failed.stderr, failed.stderr
    fixed = cli("pull", good, "--sha256", sha(data), "-q", home=home)
    assert fixed.returncode == 0, fixed.stderr  # the same id, now for the corrected URL
    assert Path(fixed.stdout.strip()).read_bytes() == data
    assert check_cache(home) == ["model.onnx"]


def test_cache_forget_and_cache_rm_release_a_source(fault_server: FaultServer,
                                                    home: Path) -> None:
    a, b = os.urandom(4000), os.urandom(6000)
    url_a = fault_server.add("ids/release/a.bin", a)
    url_b = fault_server.add("ids/release/b.bin", b)
    assert cli("pull", url_a, "--sha256", sha(a), "--id", "mine", home=home).returncode == 0
    taken = cli("pull", url_b, "--sha256", sha(b), "--id", "mine", home=home)
    assert taken.returncode != 0 and "already names another model" in taken.stderr

    forget = cli("cache", "forget", "mine", home=home)  # releases the id, keeps the bytes
    assert forget.returncode == 0 and "released mine" in forget.stdout, forget.stderr
    assert check_cache(home) == ["mine"]
    took = cli("pull", url_b, "--sha256", sha(b), "--id", "mine", "-q", home=home)
    assert took.returncode == 0, took.stderr
    assert Path(took.stdout.strip()).read_bytes() == b

    rm = cli("cache", "rm", "mine", home=home)
    assert rm.returncode == 0 and "released the id of mine" in rm.stderr, rm.stderr
    assert check_cache(home) == []
    back = cli("pull", url_a, "--sha256", sha(a), "--id", "mine", "-q", home=home)
    assert back.returncode == 0 and Path(back.stdout.strip()).read_bytes() == a
    nothing = cli("cache", "forget", "never-pulled", home=home)
    assert nothing.returncode != 0 and "nothing to forget" in nothing.stderr


def test_cache_rm_removes_several_models_or_none(fault_server: FaultServer,
                                                 home: Path) -> None:
    ids = []
    for name in ("rm-one", "rm-two", "rm-three"):
        data = os.urandom(3000)
        url = fault_server.add(f"ids/{name}.bin", data)
        assert cli("pull", url, "--sha256", sha(data), "--id", name, home=home).returncode == 0
        ids.append(name)
    typo = cli("cache", "rm", "rm-one", "rm-tow", home=home)
    assert typo.returncode != 0 and "rm-tow" in typo.stderr
    assert sorted(check_cache(home)) == sorted(ids)  # a typo removes nothing
    r = cli("cache", "rm", *ids, "--json", home=home)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["removed"] == ids and doc["freed"] >= 9000
    assert check_cache(home) == []


# -- the Hub ---------------------------------------------------------------------------------------

def test_an_hf_pull_id_has_its_owner_and_never_takes_a_builtin_id(hf_env: HubServer,
                                                                    home: Path) -> None:
    whole = cli("pull", "hf://acme/whisper-tiny", "-q", home=home)
    assert whole.returncode == 0, whole.stderr
    one = cli("pull", "hf://acme/whisper-tiny/model.onnx", "-q", home=home)
    assert one.returncode == 0, one.stderr
    assert sorted(check_cache(home)) == ["acme--whisper-tiny", "acme--whisper-tiny-model.onnx"]
    builtin = json.loads(cli("info", "whisper-tiny", "--json", home=home).stdout)
    assert builtin["source"] == "builtin"  # the built-in is untouched


def test_the_hf_reference_names_the_model_in_every_command(hf_env: HubServer,
                                                           home: Path) -> None:
    ref = "hf://acme/whisper-tiny/model.onnx"
    pulled = cli("pull", ref, "-q", home=home)
    assert pulled.returncode == 0, pulled.stderr
    info = cli("info", ref, "--json", home=home)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["id"] == "acme--whisper-tiny-model.onnx"
    assert cli("cache", "pin", ref, home=home).returncode == 0
    verify = cli("cache", "verify", ref, home=home)
    assert verify.returncode == 0 and "acme--whisper-tiny-model.onnx: ok" in verify.stdout
    load = cli("load", ref, home=home)  # random bytes: a load error, not "unknown model"
    assert load.returncode != 0 and "not found" not in load.stderr.lower(), load.stderr
    assert "acme--whisper-tiny-model.onnx" in load.stderr

    reg = ModelRegistry(home=home, include_builtin=False)
    assert reg.require_model(ref).id == "acme--whisper-tiny-model.onnx"
    path = asyncio.run(reg.download_model(ref)).unwrap()
    assert path.read_bytes() == WEIGHTS

    rm = cli("cache", "rm", ref, home=home)
    assert rm.returncode == 0, rm.stderr
    assert check_cache(home) == []


def test_the_same_file_asked_for_at_its_commit_is_the_same_model(hf_env: HubServer,
                                                                 home: Path) -> None:
    commit = hf_env.add_repo("acme/pinned", {"w.bin": b"w" * 5000})
    first = cli("pull", "hf://acme/pinned/w.bin", "-q", home=home)
    assert first.returncode == 0, first.stderr
    again = cli("pull", f"hf://acme/pinned@{commit}/w.bin", home=home)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("acme--pinned-w.bin: ") and "cached" in again.stdout
    assert check_cache(home) == ["acme--pinned-w.bin"]


# -- the Hub offline or down -----------------------------------------------------------------------

def test_a_cached_hf_reference_is_served_offline_and_with_the_hub_down(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = "hf://acme/offline/model.onnx"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    with HubServer(lfs_threshold=1024) as server:  # this test's own: it is stopped below
        server.add_repo("acme/offline", {"model.onnx": WEIGHTS})
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        first = cli("pull", ref, "-q", home=home)
        assert first.returncode == 0, first.stderr
        asked = len(server.requests)
        offline = cli("pull", ref, "-q", home=home, env={"HF_HUB_OFFLINE": "1"})
        assert offline.returncode == 0, offline.stderr
        assert Path(offline.stdout.strip()).read_bytes() == WEIGHTS
        assert len(server.requests) == asked  # nothing asked while offline
    down = cli("pull", ref, home=home)  # the Hub is stopped now
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("acme--offline-model.onnx: ") and "cached" in down.stdout
    assert "using the cached copy" in down.stderr
    reg = ModelRegistry(home=home, include_builtin=False)
    assert asyncio.run(reg.fetch(ref)).unwrap().read_bytes() == WEIGHTS
    never = cli("pull", "hf://acme/offline/other.onnx", home=home)  # not cached: still an error
    assert never.returncode != 0 and "Traceback" not in never.stderr


def test_a_branch_that_moved_says_updated(hf_env: HubServer, home: Path) -> None:
    hf_env.add_repo("acme/moves", {"w.bin": b"one" * 2000})
    assert cli("pull", "hf://acme/moves/w.bin", home=home).returncode == 0
    hf_env.add_repo("acme/moves", {"w.bin": b"two" * 2000})  # main moves on
    again = cli("pull", "hf://acme/moves/w.bin", home=home)
    assert again.returncode == 0, again.stderr
    assert "updated" in again.stdout and "cached" not in again.stdout, again.stdout
    doc = json.loads(cli("pull", "hf://acme/moves/w.bin", "--json", home=home).stdout)
    assert doc["models"][0]["cached_before"] is True and doc["models"][0]["updated"] is False
