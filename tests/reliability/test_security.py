"""The security rules of SECURITY.md, one test (or more) per line.

* Who may write the cache folder: a world-writable folder, subfolder or index, or one owned by
  another user, is refused when the cache opens; a umask of 000 does not produce such a folder.
* ``HF_TOKEN``: sent to the Hub's hosts (``HF_ENDPOINT`` included) only, never after a redirect
  to another host, never over a redirect from https to http (refused), never written to the
  cache folder or printed, even with ``--debug``.
* ``runanywhere doctor`` reports each kind of trouble, prints one JSON document with ``--json``,
  exits non-zero on a problem (a home that is missing, a file or read-only is one, on one
  line), and changes nothing in the folder it looks at.

The token tests run the CLI in a child process against a real TLS server of the tests'
(``support/tls.py``, a throwaway certificate trusted through ``SSL_CERT_FILE``). Every case ends
with ``check_cache``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.catalog import ModelFile
from runanywhere.cli.main import main
from runanywhere.errors import CacheError
from runanywhere.store import ModelCache, StagedFile
from runanywhere.transfer import Auth, FetchConfig
from runanywhere.transfer.http import origin_of
from support.catalogs import model_entry
from support.invariants import check_cache
from support.tls import HeaderServer, servers

pytestmark = pytest.mark.timeout(120, method="thread")

Catalog = Callable[[list[dict[str, Any]]], Path]
SECRET = "hf_" + "s3cr3t" * 6


def run_cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runanywhere", *argv], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=90)


def publish(cache: ModelCache, mid: str, data: bytes) -> str:
    src = cache.directory.parent / f"src-{mid}-{os.urandom(4).hex()}"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    cache.publish(mid, "1", [StagedFile(f"{mid}.bin", src, sha, len(data))], kind="file",
                  source_sha256=sha)
    return sha


@pytest.fixture
def cached(home: Path) -> str:
    with ModelCache(directory=home, durable=False) as cache:
        return publish(cache, "kept", os.urandom(5000))


# -- who may write the cache folder ---------------------------------------------------------------
@pytest.mark.parametrize(("target", "how"), [
    ("", "world-writable"), ("blobs/sha256", "world-writable"), ("index.db", "world-writable"),
    ("", "other-owner"), ("models", "other-owner"), ("index.db", "other-owner"),
    ("manifests", "symlink")])
def test_a_cache_others_can_write_is_refused(home: Path, cached: str, target: str, how: str,
                                             tmp_path: Path) -> None:
    path = home / target if target else home
    st = os.lstat(path)
    if how == "world-writable":
        os.chmod(path, st.st_mode | 0o002)
    elif how == "other-owner":
        os.chown(path, 65534, 65534)  # nobody
    else:
        elsewhere = tmp_path / "planted"
        os.replace(path, elsewhere)
        path.symlink_to(elsewhere)
    r = run_cli("--home", str(home), "cache", "ls")
    assert r.returncode == 1 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"runanywhere: error: refusing the cache folder {home}")
    assert str(path) in line
    assert {"world-writable": "writable by every user", "other-owner": "owned by uid 65534",
            "symlink": "symbolic link"}[how] in line
    with pytest.raises(CacheError, match="refusing"):
        ModelCache(directory=home)
    doc = json.loads(run_cli("--home", str(home), "doctor", "--json").stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert not doc["ok"] and checks["permissions"]["status"] == "problem"
    # Put right, the same cache is used again, untouched.
    if how == "world-writable":
        os.chmod(path, st.st_mode)
    elif how == "other-owner":
        os.chown(path, st.st_uid, st.st_gid)
    else:
        path.unlink()
        os.replace(tmp_path / "planted", path)
    assert run_cli("--home", str(home), "cache", "ls").returncode == 0
    assert check_cache(home) == ["kept"]


def test_group_writable_is_allowed_and_reported(home: Path, cached: str) -> None:
    os.chmod(home, 0o775)
    assert run_cli("--home", str(home), "cache", "ls").returncode == 0
    r = run_cli("--home", str(home), "doctor")
    assert r.returncode == 0 and "WARNING  permissions" in r.stdout
    assert "writable by group" in r.stdout
    assert check_cache(home) == ["kept"]


def test_a_umask_of_000_does_not_make_a_refused_cache(home: Path) -> None:
    child = ("import os, sys; os.umask(0); from runanywhere.cli.main import main;"
             " sys.exit(main(sys.argv[1:]))")
    for _ in range(2):  # created (prune writes; a read-only ls creates nothing), then opened
        r = subprocess.run([sys.executable, "-c", child, "--home", str(home), "cache", "prune"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    for p in [home, *home.iterdir()]:
        if p.is_dir() or p.name == "index.db":
            assert not p.stat().st_mode & 0o002, f"{p} is world-writable"
    assert check_cache(home) == []


# -- tokens ---------------------------------------------------------------------------------------
@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[HeaderServer, HeaderServer, dict[str, str]]]:
    """(https hub, plain http server, env for the child: token, endpoint, trusted cert)."""
    with servers(tmp_path) as (tls, plain):
        env = {"HF_TOKEN": SECRET, "HF_ENDPOINT": tls.url("").rstrip("/"),
               "SSL_CERT_FILE": str(tmp_path / "cert.pem"), "NO_PROXY": "127.0.0.1,localhost"}
        yield tls, plain, env


def _model(write_catalog: Catalog, url: str, data: bytes, mid: str = "gated") -> Path:
    return write_catalog([model_entry(mid, url, len(data), hashlib.sha256(data).hexdigest())])


def _no_secret_on_disk(home: Path) -> None:
    for p in home.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert SECRET.encode() not in p.read_bytes(), f"the token was written to {p}"


def test_the_token_reaches_the_hub_and_only_the_hub(hub: Any, write_catalog: Catalog,
                                                   home: Path) -> None:
    tls, plain, env = hub
    data, public = os.urandom(30_000), os.urandom(20_000)
    tls.files["/gated.bin"], plain.files["/public.bin"] = data, public
    cat = _model(write_catalog, tls.url("/gated.bin"), data)
    r = run_cli("--home", str(home), "--catalog", str(cat), "pull", "gated", env=env)
    assert r.returncode == 0, r.stderr
    assert tls.tokens("/gated.bin") and set(tls.tokens("/gated.bin")) == {f"Bearer {SECRET}"}
    other = _model(write_catalog, plain.url("/public.bin"), public, "public")
    r = run_cli("--home", str(home), "--catalog", str(other), "pull", "public", env=env)
    assert r.returncode == 0, r.stderr
    assert plain.tokens() and set(plain.tokens()) == {None}
    _no_secret_on_disk(home)
    assert check_cache(home) == ["gated", "public"]


def test_the_token_does_not_follow_a_redirect_to_another_host(hub: Any, write_catalog: Catalog,
                                                              home: Path) -> None:
    tls, _plain, env = hub
    data = os.urandom(30_000)
    tls.files["/cdn/gated.bin"] = data
    tls.redirects["/resolve/gated.bin"] = tls.url("/cdn/gated.bin", host="localhost")
    cat = _model(write_catalog, tls.url("/resolve/gated.bin"), data)
    r = run_cli("--home", str(home), "--catalog", str(cat), "pull", "gated", env=env)
    assert r.returncode == 0, r.stderr
    assert set(tls.tokens("/resolve/gated.bin")) == {f"Bearer {SECRET}"}
    assert tls.tokens("/cdn/gated.bin") and set(tls.tokens("/cdn/gated.bin")) == {None}
    sha = hashlib.sha256(data).hexdigest()
    assert check_cache(home, {"gated": {"gated.bin": sha}}) == ["gated"]


def test_a_redirect_from_https_to_http_is_refused_with_a_token(hub: Any, write_catalog: Catalog,
                                                               home: Path) -> None:
    tls, plain, env = hub
    data = os.urandom(30_000)
    plain.files["/gated.bin"] = data
    tls.redirects["/resolve/gated.bin"] = plain.url("/gated.bin")
    cat = _model(write_catalog, tls.url("/resolve/gated.bin"), data)
    r = run_cli("--home", str(home), "--catalog", str(cat), "pull", "gated", env=env)
    assert r.returncode == 1
    assert "refusing a redirect from https to http" in r.stderr
    assert plain.tokens() == [], "the plain-text server was asked at all"
    # Without a token the same redirect is an ordinary one.
    r = run_cli("--home", str(home), "--catalog", str(cat), "pull", "gated",
                env={**env, "HF_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    assert set(plain.tokens()) == {None}
    assert check_cache(home) == ["gated"]


def test_a_token_given_in_python_goes_with_its_own_origins_only(
        hub: Any, write_catalog: Catalog, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller's own token and origins travel as a pair: ``HF_TOKEN`` in the environment
    must not be sent to the host the caller named for its own token."""
    _tls, plain, env = hub
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_ENDPOINT", env["HF_ENDPOINT"])
    data = os.urandom(20_000)
    plain.files["/corp.bin"] = data
    cat = _model(write_catalog, plain.url("/corp.bin"), data, "corp")
    config = FetchConfig(auth=Auth("corp-token", (origin_of(plain.url("/")),)))
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False, fetch_config=config)
    assert asyncio.run(reg.download_model("corp")).success
    assert set(plain.tokens("/corp.bin")) == {"Bearer corp-token"}
    with pytest.raises(ValueError, match="RUNANYWHERE_DURABLE"):
        ModelRegistry(home=home, catalogs=[cat], fetch_config=FetchConfig(durable=False))
    assert check_cache(home) == ["corp"]


OPEN_URL = """
import json, sys
from runanywhere.errors import DownloadError
from runanywhere.transfer.http import Client, origin_of
out = []
origins = [origin_of(u) for u in sys.argv[1].split(",")]
with Client(timeout=10, token="TOKEN", token_origins=origins) as client:
    for url in sys.argv[2:]:
        try:
            r = client.get(url)
            r.close()
            out.append(r.status)
        except DownloadError as e:
            out.append(str(e))
print(json.dumps(out))
""".replace("TOKEN", SECRET)


def test_the_client_keeps_the_token_on_its_first_origin(hub: Any, home: Path) -> None:
    """The transfer layer's own rule, whatever the caller's origin list says: every origin here
    is a token origin, yet the token stays on the first one and never goes down to http."""
    tls, plain, env = hub
    tls.files["/f"] = plain.files["/f"] = b"bytes"
    tls.redirects["/to-other-host"] = tls.url("/f", host="localhost")
    tls.redirects["/to-http"] = plain.url("/f")
    origins = ",".join([tls.url("/"), tls.url("/", host="localhost"), plain.url("/")])
    r = subprocess.run([sys.executable, "-c", OPEN_URL, origins, tls.url("/to-other-host"),
                        tls.url("/to-http")], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **env})
    other, downgrade = json.loads(r.stdout)
    assert other == 200 and isinstance(downgrade, str), (other, downgrade)
    assert "refusing a redirect from https to http" in downgrade
    assert set(tls.tokens("/to-other-host")) == {f"Bearer {SECRET}"}
    assert [s.authorization for s in tls.seen if s.path == "/f"] == [None]  # Host: localhost
    assert plain.tokens() == []
    assert check_cache(home) == []


def test_the_token_is_never_printed(hub: Any, write_catalog: Catalog, home: Path) -> None:
    tls, _plain, env = hub
    tls.statuses["/gated.bin"] = 403
    cat = _model(write_catalog, tls.url("/gated.bin"), b"x" * 100)
    for extra in ([], ["--debug"]):
        r = run_cli("--home", str(home), "--catalog", str(cat), *extra, "pull", "gated",
                    "--json", env=env)
        assert r.returncode != 0
        assert SECRET not in r.stdout + r.stderr
        assert "403" in r.stdout + r.stderr
    assert set(tls.tokens("/gated.bin")) == {f"Bearer {SECRET}"}
    _no_secret_on_disk(home)
    assert check_cache(home) == []


# -- doctor ---------------------------------------------------------------------------------------
def _snapshot(home: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(home)): (p.lstat().st_mode, p.lstat().st_size,
                                       p.lstat().st_mtime_ns) for p in home.rglob("*")}


def _doctor(home: Path) -> tuple[int, dict[str, Any], str]:
    r = run_cli("--home", str(home), "doctor", "--json")
    doc = json.loads(r.stdout)  # exactly one document
    return r.returncode, {c["name"]: c for c in doc["checks"]}, r.stderr


def test_doctor_on_a_healthy_cache(home: Path, cached: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(home)
    code, checks, _ = _doctor(home)
    assert code == 0 and {c["status"] for c in checks.values()} == {"ok"}
    assert set(checks) == {"folder", "permissions", "index", "paths", "models", "orphans",
                           "quarantine", "free space", "recorded hashes"}
    assert main(["--home", str(home), "doctor"]) == 0
    assert "no problem found" in capsys.readouterr().out
    assert _snapshot(home) == before, "doctor changed the folder"
    assert check_cache(home) == ["kept"]


def test_doctor_reports_each_kind_of_trouble(home: Path, cached: str, write_catalog: Catalog
                                             ) -> None:
    with ModelCache(directory=home, durable=False) as cache:
        bad = publish(cache, "rotten", os.urandom(4000))
        publish(cache, "touched", os.urandom(3000))
        url = "http://127.0.0.1:9/tofu.bin"
        cache.record_trusted("tofu", ModelFile("tofu.bin", url, 10), url, "ab" * 32, 10)
    blob = home / "blobs" / "sha256" / bad
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0x5A]))
    with ModelCache(directory=home, durable=False) as cache:
        assert not cache.verify("rotten")[0].ok  # quarantined
    touched = home / "models" / "touched" / "1" / "touched.bin"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (home / "blobs" / "sha256" / ("ef" * 32)).write_bytes(os.urandom(100))  # an orphan blob
    (home / "partials" / f"{'cd' * 32}.999999-deadbeef.part").write_bytes(os.urandom(100))
    (home / "partials" / f"{'cd' * 32}.999999-deadbeef.json").write_text(json.dumps(
        {"url": "x", "size": 100, "sha256": None, "host": os.uname().nodename, "pid": 999999}))
    before = _snapshot(home)

    code, checks, _ = _doctor(home)
    assert code == 0, "warnings alone are not a failure"
    assert checks["quarantine"]["status"] == "warning"
    assert checks["models"]["status"] == "warning"
    assert any("touched" in d for d in checks["models"]["details"])
    assert checks["orphans"]["status"] == "warning"
    details = " ".join(checks["orphans"]["details"])
    assert "orphan blob" in details and "abandoned partial" in details
    assert any("tofu tofu.bin" in d for d in checks["recorded hashes"]["details"])
    assert _snapshot(home) == before, "doctor changed the folder"

    os.truncate(home / "index.db", 0)  # a lost index is a problem: exit 1
    code, checks, _ = _doctor(home)
    assert code == 1 and checks["index"]["status"] == "problem"
    assert "rebuilds it from" in checks["index"]["summary"]
    with ModelCache(directory=home, durable=False) as cache:  # and the next run does
        assert {e.model_id for e in cache.entries()} == {"kept", "touched"}
    assert check_cache(home) == ["kept", "touched"]


@contextlib.contextmanager
def _read_only_copy(home: Path, point: Path) -> Iterator[Path]:
    """``home`` bind-mounted read-only at ``point`` (tests run as root, so chmod proves
    nothing: a read-only mount refuses root too)."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (mount); run it as CI does")
    point.mkdir()
    subprocess.run(["mount", "--bind", str(home), str(point)], check=True, timeout=60)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(point)], check=True, timeout=60)
        yield point
    finally:
        if subprocess.run(["umount", str(point)], timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], timeout=60)


#: A home no cache can live in, and what doctor's one line about it says.
UNUSABLE_HOMES = {"missing": "does not exist", "a-file": "is a file, not a folder",
                  "read-only": "cannot be written (read-only)"}


@pytest.mark.parametrize("how", list(UNUSABLE_HOMES))
def test_doctor_fails_on_a_home_that_cannot_hold_a_cache(home: Path, cached: str,
                                                         tmp_path: Path, how: str) -> None:
    with contextlib.ExitStack() as stack:
        if how == "missing":
            target = tmp_path / "nothing-here"
        elif how == "a-file":
            target = tmp_path / "a-file"
            target.write_bytes(b"not a folder")
        else:
            target = stack.enter_context(_read_only_copy(home, tmp_path / "ro"))
        before = _snapshot(target) if target.is_dir() else None
        r = run_cli("--home", str(target), "doctor")
        problems = [line for line in r.stdout.splitlines() if line.startswith("  PROBLEM")]
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
        assert len(problems) == 1 and problems[0].split()[1] == "folder", r.stdout
        assert UNUSABLE_HOMES[how] in problems[0]
        code, checks, _ = _doctor(target)
        assert code == 1 and [n for n, c in checks.items() if c["status"] == "problem"] == [
            "folder"]
        if before is not None:
            assert _snapshot(target) == before, "doctor changed the folder"
    assert not (tmp_path / "nothing-here").exists()
    if how == "a-file":
        assert target.read_bytes() == b"not a folder"
    assert check_cache(home) == ["kept"]
