"""``runanywhere serve``: routes, HTTP semantics, security rules, the Hub routes with
huggingface_hub's own client, the catalog another home pulls from, pull-through, Ctrl-C."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_port
from runanywhere import ModelMetadata, ModelRegistry
from runanywhere.catalog import parse_model
from runanywhere.errors import ServeError
from runanywhere.serve import ModelServer, ServeOptions
from support.catalogs import model_entry
from support.serving import InProcessServer, cli_server, wait_healthy
from support.silero_wheel import ONNX_SHA256, ONNX_SIZE, silero_data_dir

SILERO_PATH = "silero_vad.onnx"


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def silero() -> Path:
    return silero_data_dir() / "silero_vad.onnx"


@pytest.fixture
def registry(home: Path, silero: Path) -> ModelRegistry:
    """A home holding the real Silero VAD (built-in catalog entry, sideloaded, verified)."""
    reg = ModelRegistry(home=home)
    reg.import_model("silero-vad", silero)
    return reg


@pytest.fixture
def served(registry: ModelRegistry) -> Iterator[InProcessServer]:
    with InProcessServer(registry, cors=("http://app.test",)) as s:
        yield s


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET"
        ) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def raw(url: str, target: str, headers: dict[str, str] | None = None, method: str = "GET"
        ) -> tuple[int, dict[str, str], bytes]:
    """A request whose target is sent exactly as given (no normalisation by a client)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- listing and files ---------------------------------------------------------------------------
def test_models_lists_each_file_with_size_and_sha256(served: InProcessServer, home: Path) -> None:
    status, headers, body = get(f"{served.url}/v1/models")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    (m,) = json.loads(body)["models"]
    assert m["id"] == "silero-vad" and m["size"] == ONNX_SIZE
    assert m["files"] == [{
        "path": SILERO_PATH, "size": ONNX_SIZE, "sha256": ONNX_SHA256,
        "url": f"{served.url}/v1/models/silero-vad/files/{SILERO_PATH}",
        "blob_url": f"{served.url}/blobs/sha256/{ONNX_SHA256}/{SILERO_PATH}"}]
    assert str(home) not in body.decode()  # no local paths leak
    status, _, body = get(f"{served.url}/v1/models/silero-vad")
    assert status == 200 and json.loads(body)["files"][0]["sha256"] == ONNX_SHA256


def test_file_and_blob_routes_serve_the_verified_bytes(served: InProcessServer,
                                                       silero: Path) -> None:
    data = silero.read_bytes()
    for path, cache_control in ((f"/v1/models/silero-vad/files/{SILERO_PATH}", "no-cache"),
                                (f"/blobs/sha256/{ONNX_SHA256}",
                                 "public, max-age=31536000, immutable"),
                                (f"/blobs/sha256/{ONNX_SHA256}/whatever.onnx",
                                 "public, max-age=31536000, immutable")):
        status, headers, body = get(served.url + path)
        assert status == 200 and body == data, path
        assert headers["ETag"] == f'"{ONNX_SHA256}"'
        assert headers["Cache-Control"] == cache_control
        assert headers["Content-Length"] == str(ONNX_SIZE)
        assert headers["Accept-Ranges"] == "bytes"
        status, headers, body = get(served.url + path, method="HEAD")
        assert status == 200 and body == b"" and headers["Content-Length"] == str(ONNX_SIZE)


def test_ranges_and_conditional_requests(served: InProcessServer, silero: Path) -> None:
    data = silero.read_bytes()
    url = f"{served.url}/blobs/sha256/{ONNX_SHA256}"
    etag = f'"{ONNX_SHA256}"'
    size = len(data)

    def ask(**headers: str) -> tuple[int, dict[str, str], bytes]:
        return get(url, {k.replace("_", "-"): v for k, v in headers.items()})

    s, h, b = ask(Range="bytes=100-199")
    assert (s, b, h["Content-Range"]) == (206, data[100:200], f"bytes 100-199/{size}")
    s, h, b = ask(Range="bytes=-10")
    assert (s, b, h["Content-Range"]) == (206, data[-10:], f"bytes {size - 10}-{size - 1}/{size}")
    s, _, b = ask(Range=f"bytes={size - 5}-")
    assert (s, b) == (206, data[-5:])
    s, h, b = ask(Range="bytes=0-" + "9" * 40)  # absurd end: clamped
    assert (s, len(b), h["Content-Range"]) == (206, size, f"bytes 0-{size - 1}/{size}")
    for unsatisfiable in (f"bytes={size}-", "bytes=" + "9" * 40 + "-", "bytes=-0"):
        s, h, _ = ask(Range=unsatisfiable)
        assert (s, h["Content-Range"]) == (416, f"bytes */{size}"), unsatisfiable
    for ignored in ("bytes=0-1,5-9", "bytes=" + ",".join(f"{i}-{i}" for i in range(500)),
                    "items=0-5", "bytes=9-3", "bytes=x-y", "bytes=-"):
        s, _, b = ask(Range=ignored)
        assert (s, b) == (200, data), ignored
    # If-Range: our ETag (or exact date) lets the range apply; anything else gets everything.
    s, h, b = ask(Range="bytes=0-9", If_Range=etag)
    assert (s, b) == (206, data[:10])
    last_modified = h["Last-Modified"]
    s, _, b = ask(Range="bytes=0-9", If_Range=last_modified)
    assert (s, b) == (206, data[:10])
    for other in ('"0000"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        s, _, b = ask(Range="bytes=0-9", If_Range=other)
        assert (s, b) == (200, data), other
    # Revalidation and preconditions.
    assert ask(If_None_Match=etag)[0] == 304
    assert ask(If_None_Match=f'"x", W/{etag}')[0] == 304
    assert ask(If_None_Match='"x"')[0] == 200
    assert ask(If_Modified_Since=last_modified)[0] == 304
    s, h, b = ask(If_None_Match=etag)
    assert b == b"" and h["ETag"] == etag
    assert ask(If_Match='"x"')[0] == 412
    assert ask(If_Match=f"W/{etag}")[0] == 412  # If-Match compares strongly
    assert ask(If_Match=etag, Range="bytes=0-0")[0] == 206
    assert ask(If_Unmodified_Since="Mon, 01 Jan 2001 00:00:00 GMT")[0] == 412


def test_unknown_model_is_a_clear_404_naming_the_id(served: InProcessServer) -> None:
    s, _, b = get(f"{served.url}/v1/models/silero-vda/files/x.onnx")
    doc = json.loads(b)
    assert s == 404 and doc["id"] == "silero-vda"
    assert "'silero-vda' is not in this cache" in doc["error"] and "silero-vad" in doc["error"]
    s, _, b = get(f"{served.url}/v1/models/whisper-base")
    assert s == 404 and "--pull-through" in json.loads(b)["error"]
    s, _, b = get(f"{served.url}/v1/models/silero-vad/files/other.onnx")
    assert s == 404 and SILERO_PATH in json.loads(b)["error"]
    s, _, b = get(f"{served.url}/blobs/sha256/{'0' * 64}")
    assert s == 404 and "0" * 64 in json.loads(b)["error"]
    assert get(f"{served.url}/blobs/sha256/{ONNX_SHA256.upper()}")[0] == 404


TRAVERSALS = [
    "/v1/models/silero-vad/files/../../index.db",
    "/v1/models/silero-vad/files/..%2F..%2Findex.db",
    "/v1/models/silero-vad/files/%2e%2e/%2e%2e/index.db",
    "/v1/models/silero-vad/files/%252e%252e/index.db",
    "/v1/models/silero-vad/files/..\\..\\index.db",
    "/v1/models/silero-vad/files//etc/passwd",
    "/v1/models/silero-vad/files/%2Fetc%2Fpasswd",
    "/v1/models/silero-vad/files/silero_vad.onnx%00.txt",
    "/v1/models/..%2F..%2Fetc/files/passwd",
    "/v1/models/%2e%2e/files/index.db",
    "/blobs/sha256/../../../etc/passwd",
    "/blobs/sha256/..%2F..%2Findex.db",
    "/blobs/sha256/%2e%2e%2f%2e%2e%2findex.db",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/acme/x/resolve/main/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/models/..%2F../revision/main",
    "//etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_no_path_outside_the_cache_is_reachable(served: InProcessServer, home: Path,
                                                target: str) -> None:
    s, _, body = raw(served.url, target)
    assert s in (400, 404), (target, s)
    assert b"root:" not in body and b"SQLite format" not in body
    assert json.loads(body)["error"]


def test_a_symlink_planted_in_the_cache_is_never_followed(
        registry: ModelRegistry, home: Path, tmp_path: Path) -> None:
    entry = registry.cache.entry("silero-vad")
    assert entry is not None
    # A folder outside the cache holding a same-size, same-mtime impostor; the model's folder
    # becomes a link to it: the cheap checks pass, the server's own checks must not.
    outside = tmp_path / "outside"
    outside.mkdir()
    impostor = outside / SILERO_PATH
    impostor.write_bytes(b"x" * ONNX_SIZE)
    st = entry.path.stat()
    os.utime(impostor, ns=(st.st_atime_ns, st.st_mtime_ns))
    folder = entry.path.parent
    os.rename(folder, tmp_path / "kept")
    os.symlink(outside, folder)
    with InProcessServer(registry) as s:
        for path in (f"/v1/models/silero-vad/files/{SILERO_PATH}", f"/blobs/sha256/{ONNX_SHA256}"):
            status, _, body = get(s.url + path)
            assert status in (404, 500) and b"xxxx" not in body, path
    # The file itself a link to a file outside (the index's lstat check refuses it first).
    os.unlink(folder)
    folder.mkdir()
    os.symlink(impostor, folder / SILERO_PATH)
    with InProcessServer(registry) as s:
        status, _, body = get(f"{s.url}/v1/models/silero-vad/files/{SILERO_PATH}")
        assert status == 404 and b"xxxx" not in body


# -- CORS and tokens -----------------------------------------------------------------------------
def test_cors_for_listed_origins_only(served: InProcessServer) -> None:
    url = f"{served.url}/blobs/sha256/{ONNX_SHA256}"
    _, h, _ = get(url, {"Origin": "http://app.test", "Range": "bytes=0-0"})
    assert h["Access-Control-Allow-Origin"] == "http://app.test"
    assert "Content-Range" in h["Access-Control-Expose-Headers"]
    assert "ETag" in h["Access-Control-Expose-Headers"]
    _, h, _ = get(url, {"Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in h
    s, h, _ = get(url, {"Origin": "http://app.test", "Access-Control-Request-Method": "GET",
                        "Access-Control-Request-Headers": "range,authorization"},
                  method="OPTIONS")
    assert s == 204 and h["Access-Control-Allow-Origin"] == "http://app.test"
    assert "Range" in h["Access-Control-Allow-Headers"]
    assert "Authorization" in h["Access-Control-Allow-Headers"]
    # Errors carry the CORS headers too, so a page can read why.
    s, h, _ = get(f"{served.url}/v1/models/nope", {"Origin": "http://app.test"})
    assert s == 404 and h["Access-Control-Allow-Origin"] == "http://app.test"


def test_a_token_guards_every_route_but_healthz(registry: ModelRegistry, silero: Path) -> None:
    token = "s3cret-token-for-tests"
    with InProcessServer(registry, token=token, cors=("*",)) as s:
        blob = f"{s.url}/blobs/sha256/{ONNX_SHA256}"
        assert get(f"{s.url}/healthz")[0] == 200
        for path in ("/v1/models", "/catalog.json", f"/blobs/sha256/{ONNX_SHA256}",
                     f"/v1/models/silero-vad/files/{SILERO_PATH}"):
            status, h, _ = get(s.url + path)
            assert status == 401 and h["WWW-Authenticate"].startswith("Bearer"), path
            assert get(s.url + path, {"Authorization": "Bearer wrong"})[0] == 401
            assert get(s.url + path, {"Authorization": f"Bearer {token}"})[0] == 200
        assert get(f"{s.url}/v1/models?token={token}")[0] == 200
        assert get(f"{blob}?sig=0123")[0] == 401
        # Preflights come without credentials.
        assert get(blob, {"Origin": "http://a.test"}, method="OPTIONS")[0] == 204
        # The catalog's links carry a per-blob signature that opens that blob only.
        _, _, body = get(f"{s.url}/catalog.json?token={token}")
        (m,) = json.loads(body)["models"]
        assert token not in body.decode() and "?sig=" in m["url"]
        status, _, data = get(m["url"])
        assert status == 200 and data == silero.read_bytes()
        sig = m["url"].split("?sig=")[1]
        assert get(f"{s.url}/v1/models?sig={sig}")[0] == 401
        assert get(f"{s.url}/blobs/sha256/{'1' * 64}?sig={sig}")[0] == 401
        file_url = f"{s.url}/v1/models/silero-vad/files/{SILERO_PATH}"
        assert get(f"{file_url}?sig={sig}")[0] == 401
        file_sig = s.server.sign(f"file:silero-vad/{SILERO_PATH}")
        assert get(f"{file_url}?sig={file_sig}")[0] == 200


def test_a_token_is_required_off_loopback(registry: ModelRegistry, home: Path) -> None:
    with pytest.raises(ServeError, match="token"):
        ModelServer(registry, ServeOptions(host="0.0.0.0"))
    ModelServer(registry, ServeOptions(host="0.0.0.0", token="t"))
    ModelServer(registry, ServeOptions(host="::1"))
    r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(home), "serve",
                        "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--token" in r.stderr
    r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(home), "serve",
                        "--cors", "http://x/path"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "origin" in r.stderr


# -- the catalog another home pulls from ---------------------------------------------------------
def test_a_second_home_pulls_everything_through_catalog_json(
        registry: ModelRegistry, home: Path, tmp_path: Path, silero: Path,
        write_catalog: Callable[[list[dict[str, Any]]], Path]) -> None:
    # Besides Silero: a multi-file model and one no catalog knows any more.
    folder = tmp_path / "multi"
    (folder / "sub").mkdir(parents=True)
    files = {"a.bin": os.urandom(70_000), "sub/b.json": b'{"x": 1}'}
    for p, b in files.items():
        (folder / p).write_bytes(b)
    registry.register_model({
        "id": "multi", "name": "Multi", "type": "stt", "format": "onnx", "provider": "tests",
        "version": "3", "size": sum(len(b) for b in files.values()),
        "files": [{"path": p, "url": f"https://origin.test/{p}", "size": len(b),
                   "hash": f"sha256:{sha(b)}"} for p, b in files.items()]})
    registry.import_model("multi", folder)
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(os.urandom(1000))
    registry.register_model(model_entry("orphan", "https://origin.test/o.bin", 1000,
                                        sha(orphan.read_bytes())))
    registry.import_model("orphan", orphan)
    registry.unregister_model("orphan")

    other = tmp_path / "other-home"
    with InProcessServer(registry) as s:
        url = f"{s.url}/catalog.json"
        doc = json.loads(get(url)[2])
        by_id = {m["id"]: m for m in doc["models"]}
        assert set(by_id) == {"silero-vad", "multi", "orphan"}
        assert by_id["silero-vad"]["mirrors"] == [registry.require_model("silero-vad").url]
        assert by_id["multi"]["version"] == "3" and len(by_id["multi"]["files"]) == 2
        r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(other),
                            "--catalog", url, "pull", "silero-vad", "multi", "orphan", "--json"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert all(m["ok"] for m in json.loads(r.stdout)["models"])
    # Every byte verified on the way in, and the same bytes as the server's.
    second = ModelRegistry(home=other, catalogs=[url])
    got = {e.model_id: e for e in second.cache.entries()}
    assert set(got) == {"silero-vad", "multi", "orphan"}
    assert got["silero-vad"].path.read_bytes() == silero.read_bytes()
    assert got["silero-vad"].path.name == SILERO_PATH
    for p, b in files.items():
        assert (got["multi"].path / p).read_bytes() == b
    assert all(r.ok for r in second.cache.verify())
    # The server is gone: the kept copy of its catalog still names the models.
    r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(other), "--catalog",
                        url, "list", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "multi" in r.stdout
    assert "using the copy" in r.stderr


# -- the Hugging Face Hub routes -----------------------------------------------------------------
COMMIT_A = "a" * 8 + "1234567890abcdef1234567890abcdef"
COMMIT_B = "b" * 8 + "1234567890abcdef1234567890abcdef"


def hub_model(model_id: str, repo: str, commit: str, files: dict[str, bytes], *,
              dataset: bool = False, single: bool = False) -> ModelMetadata:
    """A catalog entry whose files come from ``hf://[datasets/]repo@commit/PATH``."""
    if single:
        ((path, data),) = files.items()
        raw = model_entry(model_id, f"http://x.test/{path.rsplit('/', 1)[-1]}", len(data),
                          sha(data))
    else:
        raw = {"id": model_id, "name": model_id, "type": "custom", "format": "custom",
               "provider": "tests", "version": commit[:7],
               "size": sum(len(b) for b in files.values()),
               "files": [{"path": p, "url": f"http://x.test/{p}", "size": len(b),
                          "hash": f"sha256:{sha(b)}"} for p, b in files.items()]}
    meta = parse_model(raw)
    prefix = "datasets/" if dataset else ""
    hub_paths = list(files)
    return dataclasses.replace(meta, files=tuple(
        dataclasses.replace(f, url=f"hf://{prefix}{repo}@{commit}/{p}")
        for f, p in zip(meta.files, hub_paths, strict=True)))


@pytest.fixture
def hub_files(silero: Path) -> dict[str, bytes]:
    return {"config.json": b'{"model_type": "silero"}\n',
            "onnx/model.onnx": silero.read_bytes(),
            "tokenizer/vocab.txt": b"a\nb\nc\n" * 100,
            "big.dat": os.urandom(11 * 2**20)}


@pytest.fixture
def hub_registry(registry: ModelRegistry, hub_files: dict[str, bytes], tmp_path: Path
                 ) -> ModelRegistry:
    src = tmp_path / "hub-src"
    for p, b in hub_files.items():
        (src / p).parent.mkdir(parents=True, exist_ok=True)
        (src / p).write_bytes(b)
    registry.register_model(hub_model("acme-tiny", "acme/tiny", COMMIT_A, hub_files))
    registry.import_model("acme-tiny", src)
    # A second, single-file model of the same repo at another commit (newer in the cache).
    newer = {"onnx/model.onnx": hub_files["onnx/model.onnx"]}
    registry.register_model(hub_model("acme-tiny-b", "acme/tiny", COMMIT_B, newer, single=True))
    registry.import_model("acme-tiny-b", src / "onnx" / "model.onnx")
    data = {"data/train.csv": b"x,y\n1,2\n"}
    registry.register_model(hub_model("acme-set", "acme/set", COMMIT_A, data, dataset=True))
    (tmp_path / "set-src" / "data").mkdir(parents=True)
    (tmp_path / "set-src" / "data" / "train.csv").write_bytes(data["data/train.csv"])
    registry.import_model("acme-set", tmp_path / "set-src")
    return registry


def hf_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


HF_CLIENT = """
import json, sys, hashlib
from huggingface_hub import hf_hub_download, snapshot_download, model_info
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, \
    RevisionNotFoundError
out = {}
for rev, name in json.loads(sys.argv[1]):
    p = hf_hub_download("acme/tiny", name, revision=rev)
    out[f"{rev}:{name}"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
snap = snapshot_download("acme/tiny", revision=sys.argv[2])
import os
out["snapshot"] = sorted(os.path.relpath(os.path.join(d, f), snap)
                         for d, _, fs in os.walk(snap) for f in fs)
p = hf_hub_download("acme/set", "data/train.csv", repo_type="dataset")
out["dataset"] = open(p).read()
info = model_info("acme/tiny", files_metadata=True)
out["info"] = {"sha": info.sha, "siblings": sorted(s.rfilename for s in info.siblings),
               "lfs": sorted(s.rfilename for s in info.siblings if s.lfs)}
errors = {}
for what, call in (("file", lambda: hf_hub_download("acme/tiny", "nope.txt")),
                   ("repo", lambda: hf_hub_download("acme/none", "x")),
                   ("rev", lambda: hf_hub_download("acme/tiny", "config.json",
                                                   revision="c" * 40))):
    try:
        call()
        errors[what] = None
    except Exception as e:
        errors[what] = type(e).__name__
out["errors"] = errors
print(json.dumps(out))
"""


def test_huggingface_hub_downloads_byte_identical_files(
        hub_registry: ModelRegistry, hub_files: dict[str, bytes], tmp_path: Path) -> None:
    asks = [[COMMIT_A, p] for p in hub_files] + [["main", "onnx/model.onnx"],
                                                  [COMMIT_B, "onnx/model.onnx"]]
    with InProcessServer(hub_registry) as s:
        r = subprocess.run([sys.executable, "-c", HF_CLIENT, json.dumps(asks), COMMIT_A],
                           capture_output=True, text=True, timeout=180,
                           env=hf_env(tmp_path, s.url))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    for p, b in hub_files.items():
        assert out[f"{COMMIT_A}:{p}"] == sha(b), p
    # "main" is the newest commit held here: COMMIT_B, which holds only the ONNX file.
    assert out[f"{COMMIT_B}:onnx/model.onnx"] == sha(hub_files["onnx/model.onnx"])
    assert out["snapshot"] == sorted(hub_files)
    assert out["dataset"] == "x,y\n1,2\n"
    assert out["info"]["sha"] == COMMIT_B
    assert out["info"]["siblings"] == ["onnx/model.onnx"] == out["info"]["lfs"]
    assert out["errors"] == {"file": "RemoteEntryNotFoundError",
                             "repo": "RepositoryNotFoundError", "rev": "RevisionNotFoundError"}
    assert out["main:onnx/model.onnx"] == sha(hub_files["onnx/model.onnx"])


def test_resolve_headers_match_what_huggingface_hub_reads(
        hub_registry: ModelRegistry, hub_files: dict[str, bytes]) -> None:
    with InProcessServer(hub_registry) as s:
        base = f"{s.url}/acme/tiny/resolve/{COMMIT_A}"
        big = hub_files["onnx/model.onnx"]
        st, h, body = get(f"{base}/onnx/model.onnx", {"Accept-Encoding": "identity"}, "HEAD")
        assert st == 200 and body == b""
        assert h["X-Repo-Commit"] == COMMIT_A
        assert h["ETag"] == h["X-Linked-Etag"] == f'"{sha(big)}"'
        assert h["X-Linked-Size"] == h["Content-Length"] == str(len(big))
        assert h["Cache-Control"] == "public, max-age=31536000, immutable"
        st, h, body = get(f"{base}/config.json")
        data = hub_files["config.json"]
        git_oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert (st, body, h["ETag"]) == (200, data, f'"{git_oid}"')
        assert "X-Linked-Etag" not in h
        st, h, body = get(f"{base}/onnx/model.onnx", {"Range": "bytes=100-"})
        assert (st, body) == (206, big[100:])
        st, h, body = get(f"{base}/missing.bin")
        assert st == 404 and h["X-Error-Code"] == "EntryNotFound"
        assert h["X-Repo-Commit"] == COMMIT_A
        st, h, body = get(f"{s.url}/acme/tiny/resolve/main/config.json")
        assert st == 404 and h["X-Repo-Commit"] == COMMIT_B  # main: the newest commit here
        st, h, _ = get(f"{s.url}/api/models/acme/tiny/revision/{'c' * 40}")
        assert st == 404 and h["X-Error-Code"] == "RevisionNotFound"
        st, h, _ = get(f"{s.url}/api/models/acme/other")
        assert st == 404 and h["X-Error-Code"] == "RepoNotFound"
        st, _, body = get(f"{s.url}/api/models/acme/tiny/revision/{COMMIT_A}?blobs=true")
        info = json.loads(body)
        assert info["sha"] == COMMIT_A and info["id"] == info["modelId"] == "acme/tiny"
        sib = {x["rfilename"]: x for x in info["siblings"]}
        pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha(big)}\n"
                   f"size {len(big)}\n")
        assert sib["onnx/model.onnx"]["lfs"] == {"sha256": sha(big), "size": len(big),
                                                 "pointerSize": len(pointer)}
        assert sib["config.json"]["blobId"] == git_oid and "lfs" not in sib["config.json"]
        assert sib["big.dat"]["lfs"]["size"] == 11 * 2**20  # LFS by size
        st, _, body = get(f"{s.url}/api/models/acme/tiny/tree/{COMMIT_A}/tokenizer")
        assert [e["path"] for e in json.loads(body)] == ["tokenizer/vocab.txt"]


def test_transformers_js_style_fetch_of_main(hub_registry: ModelRegistry,
                                             hub_files: dict[str, bytes]) -> None:
    """transformers.js asks ``{host}/{model}/resolve/{revision}/{file}`` with revision main."""
    with InProcessServer(hub_registry, cors=("*",)) as s:
        st, h, body = get(f"{s.url}/acme/tiny/resolve/main/onnx/model.onnx",
                          {"Origin": "http://page.test"})
        assert (st, body) == (200, hub_files["onnx/model.onnx"])
        assert h["Access-Control-Allow-Origin"] == "*"
        assert h["Cache-Control"] == "no-cache"  # a branch may move


# -- pull-through --------------------------------------------------------------------------------
def test_pull_through_pulls_once_for_many_concurrent_requests(
        nginx: Any, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Callable[[list[dict[str, Any]]], Path], home: Path) -> None:
    name, digest, size = payload("pt-model.bin", 6 * 2**20 + 123)
    cat = write_catalog([model_entry("pt-model", f"{nginx.url}/{name}", size, digest)])
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False)
    before = nginx.bytes_served(contains=name)
    with InProcessServer(reg, pull_through=True) as s:
        url = f"{s.url}/v1/models/pt-model/files/{name}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: get(url), range(8)))
        assert all(st == 200 and sha(body) == digest for st, _, body in results)
        assert s.server.pulled == ["pt-model"]
        # Now cached: the blob route and the catalog offer it; nothing more from the origin.
        assert get(f"{s.url}/blobs/sha256/{digest}")[0] == 200
    assert nginx.bytes_served(contains=name) - before == size
    assert reg.cache.entry("pt-model") is not None


def test_pull_through_by_blob_and_clean_errors(
        nginx: Any, payload: Callable[[str, int], tuple[str, str, int]],
        write_catalog: Callable[[list[dict[str, Any]]], Path], home: Path) -> None:
    name, digest, size = payload("pt-blob.bin", 300_000)
    cat = write_catalog([
        model_entry("pt-blob", f"{nginx.url}/{name}", size, digest),
        model_entry("pt-gone", f"{nginx.url}/no-such-file.bin", 10, "cd" * 32),
        model_entry("pt-lies", f"{nginx.url}/{name}", size, "ef" * 32)])
    reg = ModelRegistry(home=home, catalogs=[cat], include_builtin=False)
    with InProcessServer(reg, pull_through=True) as s:
        doc = json.loads(get(f"{s.url}/catalog.json")[2])
        assert {m["id"] for m in doc["models"]} == {"pt-blob", "pt-gone", "pt-lies"}
        st, _, body = get(f"{s.url}/blobs/sha256/{digest}")
        assert st == 200 and sha(body) == digest
        st, _, body = get(f"{s.url}/v1/models/pt-gone/files/no-such-file.bin")
        assert st == 502 and "404" in json.loads(body)["error"]
        st, _, body = get(f"{s.url}/v1/models/pt-lies/files/{name}")
        assert st == 502 and json.loads(body)["error_type"] == "IntegrityError"
        assert get(f"{s.url}/v1/models/not-in-catalog/files/x")[0] == 404
    assert reg.cache.entry("pt-lies") is None


# -- hostile clients -----------------------------------------------------------------------------
@pytest.fixture
def big_model(home: Path, tmp_path: Path) -> tuple[ModelRegistry, bytes]:
    data = os.urandom(48 * 2**20)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    reg = ModelRegistry(home=home, include_builtin=False)
    reg.register_model(model_entry("big", "https://origin.test/big.bin", len(data), sha(data)))
    reg.import_model("big", src)
    return reg, data


def test_slow_and_stuck_clients_do_not_stall_others(big_model: tuple[ModelRegistry, bytes]
                                                    ) -> None:
    reg, data = big_model
    digest = sha(data)
    with InProcessServer(reg, stall_timeout=2.0) as s:
        host, port = "127.0.0.1", int(s.url.rsplit(":", 1)[1])
        held: list[socket.socket] = []
        try:
            for i in range(40):  # half a request line, then nothing
                c = socket.create_connection((host, port))
                c.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * i)
                held.append(c)
            for _ in range(6):  # a whole file asked for, not read
                c = socket.create_connection((host, port))
                c.sendall(f"GET /blobs/sha256/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                          .encode())
                held.append(c)
            t0 = time.monotonic()
            st, _, body = get(f"{s.url}/blobs/sha256/{digest}")
            assert st == 200 and body == data
            assert time.monotonic() - t0 < 10
            # A reader that stops reading is cut off once it stalls past the limit: what it
            # reads afterwards is what the socket buffers held, then the end.
            stuck = held[-1]
            time.sleep(3.0)
            got = 0
            stuck.settimeout(10)
            with contextlib.suppress(ConnectionError):
                while chunk := stuck.recv(1 << 20):
                    got += len(chunk)
            assert 0 < got < len(data)
        finally:
            for c in held:
                c.close()


def test_hostile_headers_get_clean_errors(served: InProcessServer) -> None:
    target = f"/blobs/sha256/{ONNX_SHA256}"
    s, _, _ = raw(served.url, target, {"Range": "bytes=" + ",".join(["0-1"] * 3000)})
    assert s in (200, 400, 431)
    s, _, _ = raw(served.url, target, {"X-Big": "a" * 100_000})
    assert s in (400, 431)
    s, _, _ = raw(served.url, "/" + "a" * 20_000)
    assert s in (400, 404, 414)
    s, _, body = raw(served.url, target, method="DELETE")
    assert s == 405 and json.loads(body)["error"]
    assert get(f"{served.url}/healthz")[0] == 200  # still serving


# -- the command ---------------------------------------------------------------------------------
def test_ctrl_c_stops_cleanly(home: Path, silero: Path) -> None:
    ModelRegistry(home=home).import_model("silero-vad", silero)
    with cli_server(home) as (url, proc):
        st, _, body = get(f"{url}/blobs/sha256/{ONNX_SHA256}")
        assert st == 200 and len(body) == ONNX_SIZE
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert "Traceback" not in err and "stopped" in err
    assert f"GET /blobs/sha256/{ONNX_SHA256}" in err  # the access log
    assert "listening on" in err


def test_sigterm_stops_with_0_even_with_a_client_mid_download(
        big_model: tuple[ModelRegistry, bytes], home: Path) -> None:
    _, data = big_model
    with cli_server(home, "--no-access-log") as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(f"GET /blobs/sha256/{sha(data)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert c.recv(1000).startswith(b"HTTP/1.1 200")  # the body is on its way
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - t0 < 10
        c.close()
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()


def test_serve_without_aiohttp_names_the_extra(home: Path) -> None:
    code = ("import sys; sys.modules['aiohttp'] = None\n"
            "from runanywhere.cli.main import main\n"
            f"sys.exit(main(['--home', {str(home)!r}, 'serve']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "runanywhere[serve]" in r.stderr and "Traceback" not in r.stderr


def test_import_runanywhere_does_not_import_aiohttp() -> None:
    code = ("import sys, runanywhere, runanywhere.registry, runanywhere.cli.main, "
            "runanywhere.serve, runanywhere.serve.devserver; "
            "print([m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'yarl')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_port_in_use_is_one_line(home: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(home), "serve",
                            "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{port}" in r.stderr.strip().splitlines()[-1]


def test_free_port_helper_and_health(home: Path) -> None:
    """``--port 0`` picks a free port and says which."""
    proc = subprocess.Popen([sys.executable, "-m", "runanywhere", "--home", str(home), "serve",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line, "serve exited before listening"
        url = line.split("listening on ")[1].split()[0]
        wait_healthy(url, proc=proc)
        assert free_port() != int(url.rsplit(":", 1)[1])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)


CHAIN_CLIENT = """
import hashlib, json, os, sys
from huggingface_hub import hf_hub_download, snapshot_download
commit = sys.argv[1]
out = {name: hashlib.sha256(open(hf_hub_download("acme/chain", name, revision=commit),
                                 "rb").read()).hexdigest() for name in sys.argv[2:]}
snap = snapshot_download("acme/chain", revision=commit)
out["snapshot"] = sorted(os.path.relpath(os.path.join(d, f), snap)
                         for d, _, fs in os.walk(snap) for f in fs)
print(json.dumps(out))
"""


def test_a_model_pulled_from_the_hub_is_served_on_the_hubs_routes(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole chain with parts no one here wrote at both ends: ``runanywhere pull
    hf://...`` from the Hub stand-in (its fidelity huggingface_hub checks), then ``serve``, then
    huggingface_hub's own ``hf_hub_download`` and ``snapshot_download`` against the server."""
    from support.hub_server import HubServer

    files = {"model.onnx": os.urandom(200_000), "config.json": b'{"n": 1}\n',
             "sub/tokens.txt": b"a\nb\n"}
    with HubServer(lfs_threshold=1024) as hub:
        commit = hub.add_repo("acme/chain", files)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        reg = ModelRegistry(home=home, include_builtin=False)
        assert asyncio.run(reg.fetch("hf://acme/chain", model_id="chain")).success
    monkeypatch.delenv("HF_ENDPOINT")
    served = ModelRegistry(home=home, include_builtin=False)  # knows "chain" from sources.json
    with InProcessServer(served) as s:
        r = subprocess.run([sys.executable, "-c", CHAIN_CLIENT, commit, *files],
                           capture_output=True, text=True, timeout=180,
                           env=hf_env(tmp_path, s.url))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert {name: out[name] for name in files} == {n: sha(b) for n, b in files.items()}
    assert out["snapshot"] == sorted(files)


def test_a_new_route_group_is_one_registration(registry: ModelRegistry,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What the package docstring promises a later route group (the OpenAI one): add it to
    ROUTE_GROUPS and it gets the Host check, the token and CORS, and its methods are in the
    preflight."""
    from aiohttp import web

    import runanywhere.serve.app as app_module
    from runanywhere.serve.context import ServeContext

    def add_echo_routes(router: web.UrlDispatcher, ctx: ServeContext) -> None:
        async def echo(request: web.Request) -> web.Response:
            doc = await request.json()
            return web.json_response({"echo": doc, "pull_through": ctx.options.pull_through})

        router.add_post("/v1/echo", echo)

    monkeypatch.setattr(app_module, "ROUTE_GROUPS", (*app_module.ROUTE_GROUPS, add_echo_routes))
    with InProcessServer(registry, token="t0k", cors=("http://app.test",)) as s:
        url = f"{s.url}/v1/echo"
        body = json.dumps({"x": 1}).encode()

        def post(headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", **headers})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, dict(r.headers.items()), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers.items()), e.read()

        assert post({})[0] == 401
        status, headers, answer = post({"Authorization": "Bearer t0k", "Origin": "http://app.test"})
        assert status == 200 and json.loads(answer)["echo"] == {"x": 1}
        assert headers["Access-Control-Allow-Origin"] == "http://app.test"
        conn = http.client.HTTPConnection("127.0.0.1", int(s.url.rsplit(":", 1)[1]), timeout=30)
        conn.putrequest("POST", "/v1/echo", skip_host=True)
        conn.putheader("Host", "attacker.example")
        conn.putheader("Authorization", "Bearer t0k")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        assert conn.getresponse().status == 403
        conn.close()
        status, headers, _ = get(url, {"Origin": "http://app.test",
                                       "Access-Control-Request-Method": "POST"}, "OPTIONS")
        assert status == 204 and "POST" in headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in headers["Access-Control-Allow-Headers"]
        assert get(f"{s.url}/v1/models?token=t0k")[0] == 200  # the other groups as before
