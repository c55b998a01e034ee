"""What the index must not forget: lost index files, first-use hashes, and touched files.

* ``index.db`` deleted or truncated to nothing: an empty SQLite file is a valid empty database,
  so without care every model would vanish. It is rebuilt from the manifests instead, pins and
  first-use hashes included, and ``--offline pull`` keeps working.
* A first-use hash (a model without ``hash`` in the catalog) survives ``rm``, ``clear`` and an
  index rebuild; ``info`` shows it; only ``cache forget`` drops it.
* A cached file whose mtime alone moved (``touch``, a clock jump) is re-hashed, not downloaded
  again; one whose bytes changed too is quarantined and fetched again.

Everything goes through the command line, as a user meets it; every case ends with
``check_cache``. Tampering flips bytes (XOR), it never writes a constant.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sqlite3
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
SIZE = 200_000


class Cli:
    def __init__(self, home: Path, catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.home, self.catalog, self.capsys = home, catalog, capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = main(["--home", str(self.home), "--catalog", str(self.catalog), "--no-durable",
                     *argv])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)


def xor(data: bytes, mask: int = 0x5A) -> bytes:
    return bytes(b ^ mask for b in data)


def flip_byte(path: Path, at: int) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x5A]))


def lose_index(home: Path, how: str) -> None:
    gc.collect()  # the in-process CLI runs left caches behind: close their connections first
    db = home / "index.db"
    if how == "truncated-to-zero":
        os.truncate(db, 0)
    elif how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    else:  # garbage: the write-ahead log lost and the header damaged (a corrupt index)
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        with open(db, "r+b") as f:
            f.write(xor(f.read(100)))


def served(server: FaultServer, name: str) -> int:
    return server.bytes_served("/" + name)


@pytest.fixture
def models(fault_server: FaultServer, write_catalog: Catalog, home: Path,
           capsys: pytest.CaptureFixture[str]) -> tuple[Cli, dict[str, bytes]]:
    """Three pulled models (one pinned) and one trusted on first use."""
    tag = os.urandom(3).hex()
    data = {f"m{i}-{tag}": os.urandom(SIZE) for i in range(3)}
    data[f"tofu-{tag}"] = os.urandom(SIZE)
    entries = [model_entry(mid, fault_server.add(mid, d), SIZE,
                           None if mid.startswith("tofu") else hashlib.sha256(d).hexdigest())
               for mid, d in data.items()]
    cli = Cli(home, write_catalog(entries), capsys)
    code, _, err = cli("pull", *data, "--quiet")
    assert code == 0, err
    assert cli("cache", "pin", f"m0-{tag}")[0] == 0
    return cli, data


def expected(data: dict[str, bytes]) -> dict[str, dict[str, str]]:
    return {mid: {mid: hashlib.sha256(d).hexdigest()} for mid, d in data.items()}


# -- a lost index ---------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated-to-zero", "deleted"])
def test_lost_index_is_rebuilt_from_the_manifests(models: tuple[Cli, dict[str, bytes]],
                                                  home: Path, how: str) -> None:
    cli, data = models
    lose_index(home, how)
    code, out, err = cli("--offline", "pull", *data, "--json")
    assert code == 0, err
    assert [m["path"] for m in json.loads(out)["models"]] == [
        str(home / "models" / mid / "1" / mid) for mid in data]
    # The CLI's one warning line on stderr, where a person running it sees it.
    (warning,) = [line for line in err.splitlines() if "warning" in line]
    assert "rebuilt the index" in warning and "4 model(s) restored" in warning
    assert ("was missing" if how == "deleted" else "was empty (0 bytes)") in warning
    assert "1 first-use hash(es) restored" in warning
    listing = {m["id"]: m for m in cli.json("cache", "ls")["models"]}
    assert set(listing) == set(data)
    assert [mid for mid, m in listing.items() if m["pinned"]] == [next(iter(data))]
    assert check_cache(home, expected(data)) == sorted(data)


def test_a_new_home_is_not_mistaken_for_a_lost_index(home: Path, write_catalog: Catalog,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(home, write_catalog([]), capsys)
    code, _, err = cli("cache", "ls")
    assert code == 0 and "rebuilt" not in err
    assert check_cache(home) == []


# -- first-use hashes -----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["truncated-to-zero", "deleted", "garbage"])
def test_first_use_hash_survives_a_rebuild(models: tuple[Cli, dict[str, bytes]],
                                           fault_server: FaultServer, home: Path, how: str) -> None:
    cli, data = models
    tofu = next(m for m in data if m.startswith("tofu"))
    sha = hashlib.sha256(data[tofu]).hexdigest()
    lose_index(home, how)
    assert cli("cache", "rm", tofu)[0] == 0
    fault_server.set_data(tofu, xor(data[tofu]))  # the origin now serves other bytes, same size
    code, _, err = cli("pull", tofu)
    assert code == 1 and "sha256 mismatch" in err, err
    doc = cli.json("info", tofu)
    assert [(r["path"], r["sha256"]) for r in doc["recorded_hashes"]] == [(tofu, sha)]
    assert check_cache(home, expected(data)) == sorted(set(data) - {tofu})


def test_forget_is_the_only_way_to_drop_a_recorded_hash(models: tuple[Cli, dict[str, bytes]],
                                                        fault_server: FaultServer,
                                                        home: Path) -> None:
    cli, data = models
    tofu = next(m for m in data if m.startswith("tofu"))
    sha = hashlib.sha256(data[tofu]).hexdigest()
    code, out, _ = cli("info", tofu)
    assert code == 0 and f"sha256:{sha} (recorded at first use" in out
    assert cli("cache", "rm", tofu)[0] == 0 and cli("cache", "clear")[0] == 0
    assert cli.json("info", tofu)["recorded_hashes"][0]["sha256"] == sha  # still there

    doc = cli.json("cache", "forget", tofu)
    assert [(r["path"], r["sha256"]) for r in doc["forgotten"]] == [(tofu, sha)]
    code, out, _ = cli("info", tofu)
    assert "nothing recorded yet" in out and sha not in out
    code, _, err = cli("cache", "forget", tofu)
    assert code == 1 and "no recorded first-use hash" in err and len(err.splitlines()) == 1

    other = xor(data[tofu])
    fault_server.set_data(tofu, other)  # after forget: the next download's bytes are recorded
    code, _, err = cli("pull", tofu, "--quiet")
    assert code == 0, err
    new = hashlib.sha256(other).hexdigest()
    assert cli.json("info", tofu)["recorded_hashes"][0]["sha256"] == new
    assert check_cache(home, {tofu: {tofu: new}}) == [tofu]


# -- a touched file -------------------------------------------------------------------------------
def _model_file(home: Path, mid: str) -> Path:
    return home / "models" / mid / "1" / mid


def test_an_mtime_change_leads_to_a_recheck_not_a_download(
        models: tuple[Cli, dict[str, bytes]], fault_server: FaultServer, home: Path) -> None:
    cli, data = models
    mid = next(iter(data))
    path = _model_file(home, mid)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 3_600 * 10**9))  # a clock jump
    before = served(fault_server, mid)

    code, out, err = cli("--offline", "pull", mid, "--json")
    assert code == 0, err
    assert json.loads(out)["models"][0]["path"] == str(path)
    assert cli("pull", mid, "--quiet")[0] == 0
    assert served(fault_server, mid) == before, "the whole file was downloaded again"
    code, out, _ = cli("cache", "verify", mid)
    assert code == 0 and f"{mid}: ok" in out
    # The re-check recorded the new mtime: the next hit is cheap again (no re-hash).
    con = sqlite3.connect(home / "index.db")
    (mtime,) = con.execute("SELECT mtime_ns FROM model_files WHERE model_id=?", (mid,)).fetchone()
    con.close()
    assert mtime == path.stat().st_mtime_ns
    assert check_cache(home, expected(data)) == sorted(data)


def test_changed_bytes_with_a_new_mtime_are_quarantined_and_fetched_again(
        models: tuple[Cli, dict[str, bytes]], fault_server: FaultServer, home: Path) -> None:
    cli, data = models
    mid = list(data)[1]
    flip_byte(_model_file(home, mid), SIZE // 2)  # a write: size kept, mtime moves
    before = served(fault_server, mid)

    code, _, err = cli("--offline", "pull", mid)
    assert code == 1 and "not in the cache" in err, err
    assert list((home / "quarantine").iterdir()), "the damaged copy is kept aside"
    assert check_cache(home, expected(data)) == sorted(set(data) - {mid})
    code, _, err = cli("pull", mid, "--quiet")
    assert code == 0, err
    assert served(fault_server, mid) - before == SIZE
    assert _model_file(home, mid).read_bytes() == data[mid]
    assert check_cache(home, expected(data)) == sorted(data)
