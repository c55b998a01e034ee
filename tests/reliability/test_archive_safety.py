"""Archive models are unpacked after verification, and hostile archives are refused whole.

Every hostile archive carries the catalog's correct hash (the attacker controls the catalog
entry's source, or the publisher was compromised): verification passes, so only the unpacker
stands between the archive and the filesystem. It must raise ``UnsafeArchiveError``, leave nothing
visible and write nothing outside the cache's scratch folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runanywhere.errors import IntegrityError, UnsafeArchiveError
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import make_registry, pull

pytestmark = pytest.mark.timeout(120, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
Member = tuple[str, str, Any]  # (kind, name, content or link target)


def make_tar(members: list[Member], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:  # type: ignore[call-overload]
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = value
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
            tar.addfile(info)
    return buf.getvalue()


def make_zip(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for kind, name, value in members:
            info = zipfile.ZipInfo(name)
            if kind == "sym":
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(info, value)
            elif kind == "fifo":
                info.external_attr = (stat.S_IFIFO | 0o644) << 16
                zf.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, value)
    return buf.getvalue()


class Pull:
    def __init__(self, server: FaultServer, write_catalog: Catalog, tmp_path: Path) -> None:
        self.server = server
        self.write_catalog = write_catalog
        self.tmp = tmp_path
        self.home = tmp_path / "home"

    def __call__(self, model_id: str, data: bytes, kind: str) -> Any:
        self.sha = hashlib.sha256(data).hexdigest()
        url = self.server.add(model_id, data)
        cat = self.write_catalog([model_entry(model_id, url, len(data),
                                              hashlib.sha256(data).hexdigest(), archive=kind)])
        self.registry = make_registry(self.home, cat)
        return pull(self.registry, model_id)

    def assert_refused(self, result: Any, model_id: str,
                       kind: type[Exception] = UnsafeArchiveError) -> None:
        assert isinstance(result.error, kind), result
        assert "\n" not in str(result.error)
        assert model_id not in check_cache(self.home)
        assert model_id not in [e.model_id for e in self.registry.cache.entries()]
        escaped = [p for p in self.tmp.rglob("*evil*")] + [p for p in Path("/tmp").glob("*evil*")]
        assert not escaped, f"written outside: {escaped}"
        assert not list((self.home / "partials").glob("unpack-*")), "scratch folder left behind"
        assert not (self.home / "blobs" / "sha256" / self.sha).exists(), "refused archive kept"
        assert not (self.home / "models" / model_id).exists() or not any(
            (self.home / "models" / model_id).iterdir())


@pytest.fixture
def get(fault_server: FaultServer, write_catalog: Catalog, tmp_path: Path) -> Pull:
    return Pull(fault_server, write_catalog, tmp_path)


# -- well-formed archives -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tar.gz", "tar.bz2", "tar.xz", "zip"])
def test_archive_is_unpacked_after_verification(get: Pull, kind: str) -> None:
    files = {"model.onnx": b"\x08\x01onnx" * 1000, "vocab/tokens.txt": b"a\nb\nc\n"}
    members: list[Member] = [("dir", "vocab", None)] if kind != "zip" else []
    members += [("file", n, d) for n, d in files.items()]
    if kind == "zip":
        data = make_zip(members)
    else:
        members.append(("sym", "latest.onnx", "model.onnx"))  # inside: becomes a plain copy
        data = make_tar(members, "w:" + kind.split(".")[1])
    mid = "ok-" + kind.replace(".", "")
    r = get(mid, data, kind)
    assert r.success, r.error
    root = Path(r.value)
    for name, content in files.items():
        assert (root / name).read_bytes() == content
    if kind != "zip":
        link = root / "latest.onnx"
        assert link.is_file() and not link.is_symlink()
        assert link.read_bytes() == files["model.onnx"]
    assert check_cache(get.home) == [mid]
    # The archive itself is not kept once it was unpacked (only the files are the model).
    assert not (get.home / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).exists()


def test_corrupt_archive_with_a_matching_hash_is_an_integrity_error(get: Pull) -> None:
    data = make_tar([("file", "model.bin", os.urandom(100_000))])[:-2000]  # truncated stream
    r = get("truncated", data, "tar.gz")
    get.assert_refused(r, "truncated", IntegrityError)


def test_empty_archive_is_refused(get: Pull) -> None:
    r = get("empty-archive", make_tar([("dir", "nothing-here", None)]), "tar.gz")
    get.assert_refused(r, "empty-archive", IntegrityError)


# -- hostile tar archives -------------------------------------------------------------------------
def hostile_tars(tmp: Path) -> dict[str, list[Member]]:
    ok = ("file", "fine.bin", b"fine")
    return {
        "dotdot": [ok, ("file", "../evil-dotdot", b"pwned")],
        "nested-dotdot": [ok, ("file", "a/b/../../../evil-nested", b"pwned")],
        "absolute": [ok, ("file", str(tmp / "evil-absolute"), b"pwned")],
        "symlink-absolute": [ok, ("sym", "evil-link", "/etc/passwd")],
        "symlink-escape": [ok, ("sym", "sub/evil-link", "../../outside")],
        "symlink-then-write-through": [("sym", "evil-dir", str(tmp)),
                                       ("file", "evil-dir/evil-through", b"pwned")],
        "hardlink-absolute": [ok, ("hard", "evil-hard", "/etc/passwd")],
        "hardlink-escape": [ok, ("hard", "evil-hard", "../../etc/passwd")],
        "hardlink-to-nonmember": [ok, ("hard", "evil-hard", "not-in-archive")],
        "char-device": [ok, ("chr", "evil-null", None)],
        "block-device": [ok, ("blk", "evil-blk", None)],
        "fifo": [ok, ("fifo", "evil-fifo", None)],
        "duplicate-member": [ok, ("file", "fine.bin", b"evil twin")],
    }


@pytest.mark.parametrize("case", sorted(hostile_tars(Path("/x"))))
def test_hostile_tar_is_refused(get: Pull, tmp_path: Path, case: str) -> None:
    members = hostile_tars(tmp_path)[case]
    r = get(f"tar-{case}", make_tar(members), "tar.gz")
    get.assert_refused(r, f"tar-{case}")


@pytest.mark.parametrize("compression", ["bz2", "xz"])
def test_hostile_tar_is_refused_in_every_compression(get: Pull, compression: str) -> None:
    data = make_tar([("file", "../evil-compressed", b"pwned")], f"w:{compression}")
    r = get(f"tar-{compression}", data, f"tar.{compression}")
    get.assert_refused(r, f"tar-{compression}")


# -- hostile zip archives -------------------------------------------------------------------------
def hostile_zips(tmp: Path) -> dict[str, list[Member]]:
    ok = ("file", "fine.bin", b"fine")
    return {
        "dotdot": [ok, ("file", "../evil-zip-dotdot", b"pwned")],
        "absolute": [ok, ("file", str(tmp / "evil-zip-absolute"), b"pwned")],
        "backslash-dotdot": [ok, ("file", "..\\evil-zip-backslash", b"pwned")],
        "drive-letter": [ok, ("file", "C:/evil-zip-drive", b"pwned")],
        "symlink": [ok, ("sym", "evil-zip-link", "/etc/passwd")],
        "fifo": [ok, ("fifo", "evil-zip-fifo", None)],
        "duplicate-member": [ok, ("file", "fine.bin", b"evil twin")],
    }


@pytest.mark.parametrize("case", sorted(hostile_zips(Path("/x"))))
def test_hostile_zip_is_refused(get: Pull, tmp_path: Path, case: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we want
        data = make_zip(hostile_zips(tmp_path)[case])
    r = get(f"zip-{case}", data, "zip")
    get.assert_refused(r, f"zip-{case}")


def test_a_refused_archive_does_not_disturb_other_models(get: Pull) -> None:
    good = make_tar([("file", "model.bin", b"good" * 100)])
    assert get("neighbour", good, "tar.gz").success
    r = get("attacker", make_tar([("file", "../neighbour/model.bin", b"evil")]), "tar.gz")
    get.assert_refused(r, "attacker")
    assert check_cache(get.home) == ["neighbour"]
    assert get.registry.cache.entry("neighbour") is not None
