"""Fidelity tests: huggingface_hub's own client against the loopback HubServer.

huggingface_hub reads HF_ENDPOINT / HF_HOME when it is imported, so the session fixture starts the
server, sets the environment, and only then imports it (tests import it inside their bodies).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

from support.hub_server import HubServer, RecordedRequest, git_blob_sha1, lfs_pointer

TOKEN = "hf_good_token"
OTHER_TOKEN = "hf_valid_but_unauthorized"


def _bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


V1 = {
    "config.json": b'{"hidden": 8}\n',
    "model.safetensors": _bytes(1, 64 * 1024),
    "sub/dir/vocab.txt": b"a\nb\nc\n",
    "weights/part-1.bin": _bytes(2, 5000),
}
V2 = {**V1, "config.json": b'{"hidden": 16}\n', "model.safetensors": _bytes(3, 70 * 1024)}
DATA = {f"data/part-{i}.csv": f"id,value\n{i},{i * i}\n".encode() for i in range(5)}
DATA["data/big.parquet"] = _bytes(4, 3000)
SECRET = {"config.json": b"{}", "model.bin": _bytes(5, 4096)}
BIG = _bytes(6, 10 * 1024 * 1024 + 5000)  # just over huggingface_hub's 10 MiB read chunk


class Env:
    """The session's server plus the commit shas the tests refer to."""

    def __init__(self, hub: HubServer) -> None:
        self.hub = hub
        self.v1 = hub.add_repo("acme/tiny", V1, message="v1")
        self.v2 = hub.add_repo("acme/tiny", V2, message="v2")
        self.tag = hub.add_tag("acme/tiny", "v1.0", self.v1)
        self.data = hub.add_repo("acme/data", DATA, repo_type="dataset")
        self.pr = hub.add_repo(
            "acme/data", {"extra.txt": b"pr"}, repo_type="dataset", branch="refs/pr/1"
        )
        self.big = hub.add_repo("acme/big", {"big.bin": BIG})
        self.secret = hub.add_repo("acme/secret", SECRET, private=True, tokens=[TOKEN])
        self.gated = hub.add_repo("acme/gated", SECRET, gated=True, tokens=[TOKEN])
        hub.add_token(OTHER_TOKEN)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    saved = dict(os.environ)
    with HubServer(lfs_threshold=1024) as hub:
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
            os.environ.pop(name, None)
        os.environ.update(
            HF_ENDPOINT=hub.endpoint,
            HF_HOME=str(tmp_path_factory.mktemp("hf_home")),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        yield Env(hub)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def hf(env: Env) -> ModuleType:
    import huggingface_hub
    import huggingface_hub.constants
    import huggingface_hub.errors

    assert env.hub.endpoint == huggingface_hub.constants.ENDPOINT
    return huggingface_hub


@pytest.fixture(autouse=True)
def _fresh_log(env: Env) -> None:
    env.hub.clear_requests()


def _log(hub: HubServer) -> list[tuple[str, str, str, int]]:
    return [(r.server, r.method, urlsplit(r.path).path, r.status) for r in hub.requests]


def _cdn(hub: HubServer) -> list[RecordedRequest]:
    return [r for r in hub.requests if r.server == "cdn"]


# ----- hf_hub_download -----


def test_small_file_by_branch(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    path = Path(hf.hf_hub_download("acme/tiny", "config.json", cache_dir=tmp_path))
    assert path.read_bytes() == V2["config.json"]
    assert path.resolve().name == git_blob_sha1(V2["config.json"])  # blob named by ETag
    assert path.parent.name == env.v2
    assert (tmp_path / "models--acme--tiny" / "refs" / "main").read_text() == env.v2
    url = "/acme/tiny/resolve/main/config.json"
    assert _log(env.hub) == [("hub", "HEAD", url, 200), ("hub", "GET", url, 200)]
    assert env.hub.requests[0].headers["accept-encoding"] == "identity"


def test_lfs_file_by_branch_redirects_to_cdn(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    path = Path(hf.hf_hub_download("acme/tiny", "model.safetensors", cache_dir=tmp_path))
    assert path.read_bytes() == V2["model.safetensors"]
    assert path.resolve().name == hashlib.sha256(V2["model.safetensors"]).hexdigest()
    log = _log(env.hub)
    assert log[0] == ("hub", "HEAD", "/acme/tiny/resolve/main/model.safetensors", 302)
    assert log[1][:2] == ("cdn", "GET") and log[1][3] == 200 and len(log) == 2


def test_files_by_commit_and_tag(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    for name in ("config.json", "model.safetensors"):
        path = hf.hf_hub_download("acme/tiny", name, revision=env.v1, cache_dir=tmp_path)
        assert Path(path).read_bytes() == V1[name]
        assert Path(path).parent.name == env.v1
    tagged = hf.hf_hub_download("acme/tiny", "config.json", revision="v1.0", cache_dir=tmp_path)
    assert Path(tagged).read_bytes() == V1["config.json"]
    env.hub.clear_requests()  # a commit sha that is cached needs no request at all
    hf.hf_hub_download("acme/tiny", "config.json", revision=env.v1, cache_dir=tmp_path)
    assert env.hub.requests == []


def test_dataset_file_and_subfolder(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    path = hf.hf_hub_download(
        "acme/data", "part-3.csv", subfolder="data", repo_type="dataset", cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == DATA["data/part-3.csv"]
    assert _log(env.hub)[0][2] == "/datasets/acme/data/resolve/main/data/part-3.csv"
    pr = hf.hf_hub_download(
        "acme/data", "extra.txt", repo_type="dataset", revision="refs/pr/1", cache_dir=tmp_path
    )
    assert Path(pr).read_bytes() == b"pr"
    assert env.hub.requests[-1].path == "/datasets/acme/data/resolve/refs%2Fpr%2F1/extra.txt"
    assert (tmp_path / "datasets--acme--data" / "refs" / "refs" / "pr" / "1").read_text() == env.pr


def test_private_repo_token_never_reaches_cdn(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    for name in SECRET:
        path = hf.hf_hub_download("acme/secret", name, token=TOKEN, cache_dir=tmp_path)
        assert Path(path).read_bytes() == SECRET[name]
    hub_auth = [r.headers.get("authorization") for r in env.hub.requests if r.server == "hub"]
    assert hub_auth == [f"Bearer {TOKEN}"] * 3  # HEAD+GET config.json, HEAD model.bin
    assert len(_cdn(env.hub)) == 1
    assert all("authorization" not in r.headers for r in _cdn(env.hub))


def test_private_repo_refusals(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    errors = hf.errors
    with pytest.raises(errors.RepositoryNotFoundError) as anonymous:
        hf.hf_hub_download("acme/secret", "config.json", cache_dir=tmp_path)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(errors.RepositoryNotFoundError) as unauthorized:
        hf.hf_hub_download("acme/secret", "config.json", token=OTHER_TOKEN, cache_dir=tmp_path)
    assert unauthorized.value.response.status_code == 404
    with pytest.raises(errors.HfHubHTTPError, match="Invalid credentials") as bogus:
        hf.HfApi().model_info("acme/tiny", token="hf_bogus")
    assert bogus.value.response.status_code == 401
    with pytest.raises(errors.RepositoryNotFoundError):
        hf.snapshot_download("acme/secret", cache_dir=tmp_path)


@pytest.mark.parametrize("source", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "token_file"])
def test_implicit_token_sources(
    env: Env, hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    token_file = Path(hf.constants.HF_TOKEN_PATH)
    assert token_file == Path(os.environ["HF_HOME"]) / "token"
    if source == "token_file":
        token_file.write_text(TOKEN + "\n")  # `hf auth login` writes it there; read per call
    else:
        monkeypatch.setenv(source, TOKEN)
    try:
        path = hf.hf_hub_download("acme/secret", "config.json", cache_dir=tmp_path)
    finally:
        token_file.unlink(missing_ok=True)
    assert Path(path).read_bytes() == SECRET["config.json"]


def test_gated_repo(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    info = hf.HfApi().model_info("acme/gated")  # metadata stays public
    assert info.gated == "manual" and info.sha == env.gated
    with pytest.raises(hf.errors.GatedRepoError) as anonymous:
        hf.hf_hub_download("acme/gated", "config.json", cache_dir=tmp_path)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(hf.errors.GatedRepoError) as refused:
        hf.hf_hub_download("acme/gated", "config.json", token=OTHER_TOKEN, cache_dir=tmp_path)
    assert refused.value.response.status_code == 403
    ok = hf.hf_hub_download("acme/gated", "model.bin", token=TOKEN, cache_dir=tmp_path)
    assert Path(ok).read_bytes() == SECRET["model.bin"]


def test_not_found_errors(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    errors = hf.errors
    with pytest.raises(errors.RevisionNotFoundError):
        hf.hf_hub_download("acme/tiny", "config.json", revision="nope", cache_dir=tmp_path)
    with pytest.raises(errors.RemoteEntryNotFoundError):
        hf.hf_hub_download("acme/tiny", "missing.txt", cache_dir=tmp_path)
    assert (tmp_path / "models--acme--tiny" / ".no_exist" / env.v2 / "missing.txt").exists()
    with pytest.raises(errors.RepositoryNotFoundError):
        hf.hf_hub_download("acme/none", "config.json", cache_dir=tmp_path)
    with pytest.raises(errors.RevisionNotFoundError):
        hf.HfApi().model_info("acme/tiny", revision="0" * 40)


def test_offline_mode_serves_cache(
    env: Env, hf: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    online = hf.hf_hub_download("acme/tiny", "config.json", cache_dir=tmp_path)
    monkeypatch.setattr(hf.constants, "HF_HUB_OFFLINE", True)
    env.hub.clear_requests()
    assert hf.hf_hub_download("acme/tiny", "config.json", cache_dir=tmp_path) == online
    with pytest.raises(hf.errors.LocalEntryNotFoundError):
        hf.hf_hub_download("acme/tiny", "model.safetensors", cache_dir=tmp_path)
    assert env.hub.requests == []


def test_resolve_cache_redirect(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    env.hub.resolve_cache = True
    try:
        path = hf.hf_hub_download("acme/tiny", "sub/dir/vocab.txt", token=TOKEN, cache_dir=tmp_path)
    finally:
        env.hub.resolve_cache = False
    assert Path(path).read_bytes() == V2["sub/dir/vocab.txt"]
    cached = f"/api/resolve-cache/models/acme/tiny/{env.v2}/sub/dir/vocab.txt"
    assert _log(env.hub) == [
        ("hub", "HEAD", "/acme/tiny/resolve/main/sub/dir/vocab.txt", 307),
        ("hub", "HEAD", cached, 200),
        ("hub", "GET", cached, 200),
    ]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in env.hub.requests)


def test_dropped_connection_restarts_or_resumes(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    """hf retries the same URL; it resumes with Range only from whole 10 MiB chunks it wrote."""
    env.hub.drop_next_cdn_body(1000)
    path = hf.hf_hub_download("acme/tiny", "weights/part-1.bin", cache_dir=tmp_path)
    assert Path(path).read_bytes() == V2["weights/part-1.bin"]
    assert [(r.status, r.headers.get("range")) for r in _cdn(env.hub)] == [(200, None), (200, None)]
    env.hub.clear_requests()
    chunk = hf.constants.DOWNLOAD_CHUNK_SIZE
    env.hub.drop_next_cdn_body(chunk + 100)
    big = hf.hf_hub_download("acme/big", "big.bin", cache_dir=tmp_path)
    assert Path(big).read_bytes() == BIG
    assert [(r.status, r.headers.get("range")) for r in _cdn(env.hub)] == [
        (200, None),
        (206, f"bytes={chunk}-"),
    ]


def test_link_expiring_mid_download_is_fatal_for_hf(
    env: Env, hf: ModuleType, tmp_path: Path
) -> None:
    """huggingface_hub retries the same signed URL and does not re-resolve: documents that."""
    env.hub.drop_next_cdn_body(1000, expire_links=True)
    with pytest.raises(hf.errors.HfHubHTTPError) as expired:
        hf.hf_hub_download("acme/tiny", "weights/part-1.bin", revision=env.v1, cache_dir=tmp_path)
    assert expired.value.response.status_code == 403
    assert [r.status for r in _cdn(env.hub)] == [200, 403]
    again = hf.hf_hub_download(
        "acme/tiny", "weights/part-1.bin", revision=env.v1, cache_dir=tmp_path
    )
    assert Path(again).read_bytes() == V1["weights/part-1.bin"]  # a fresh HEAD, a fresh link


# ----- snapshot_download -----


def test_snapshot_whole_repo(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    folder = Path(hf.snapshot_download("acme/tiny", cache_dir=tmp_path))
    assert folder.name == env.v2
    files = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert files == V2
    api_calls = [entry for entry in _log(env.hub) if entry[2].startswith("/api/")]
    assert api_calls == [
        ("hub", "GET", "/api/models/acme/tiny/revision/main", 200),
        ("hub", "GET", f"/api/models/acme/tiny/tree/{env.v2}", 200),
    ]
    tree_call = next(r for r in env.hub.requests if "/tree/" in r.path)
    assert urlsplit(tree_call.path).query == "recursive=true&expand=false"


def test_snapshot_allow_patterns_and_old_commit(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    folder = Path(
        hf.snapshot_download(
            "acme/tiny", revision=env.v1, allow_patterns=["*.json", "sub/*"], cache_dir=tmp_path
        )
    )
    got = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert got == {"config.json", "sub/dir/vocab.txt"}
    assert (folder / "config.json").read_bytes() == V1["config.json"]
    assert not any("/revision/" in r.path for r in env.hub.requests)  # a sha needs no resolving


def test_snapshot_dataset_paginated_tree(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    env.hub.page_size = 2
    try:
        folder = Path(hf.snapshot_download("acme/data", repo_type="dataset", local_dir=tmp_path))
    finally:
        env.hub.page_size = 1000
    assert {p: (folder / p).read_bytes() for p in DATA} == DATA
    tree_calls = [r for r in env.hub.requests if "/tree/" in r.path]
    assert len(tree_calls) == 4  # 7 entries (1 directory + 6 files), 2 per page
    assert "cursor=" in tree_calls[1].path
    assert all(r.headers.get("authorization") is None for r in tree_calls)


def test_keep_alive_connections_are_reused(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    hf.snapshot_download("acme/tiny", cache_dir=tmp_path, max_workers=1)
    hub_requests = [r for r in env.hub.requests if r.server == "hub"]
    assert len({r.client_port for r in hub_requests}) < len(hub_requests)


# ----- HfApi metadata -----


def test_model_info_files_metadata(env: Env, hf: ModuleType) -> None:
    info = hf.HfApi().model_info("acme/tiny", files_metadata=True)
    assert info.id == "acme/tiny" and info.sha == env.v2 and info.private is False
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(V2)
    for name, data in V2.items():
        sib = siblings[name]
        assert sib.size == len(data)
        if len(data) > 1024:
            pointer = lfs_pointer(data)
            assert sib.blob_id == git_blob_sha1(pointer)
            assert sib.lfs == {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "pointer_size": len(pointer),
            }
        else:
            assert sib.blob_id == git_blob_sha1(data) and sib.lfs is None
    plain = hf.HfApi().model_info("acme/tiny", revision=env.v1)
    assert plain.sha == env.v1 and plain.siblings[0].size is None


def test_dataset_info_and_refs(env: Env, hf: ModuleType) -> None:
    info = hf.HfApi().dataset_info("acme/data", files_metadata=True)
    assert info.sha == env.data
    assert {s.rfilename: s.size for s in info.siblings} == {k: len(v) for k, v in DATA.items()}
    prs = hf.HfApi().list_repo_refs("acme/data", repo_type="dataset", include_pull_requests=True)
    assert [(p.name, p.target_commit) for p in prs.pull_requests] == [("refs/pr/1", env.pr)]
    refs = hf.HfApi().list_repo_refs("acme/tiny")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", env.v2)]
    assert [(t.name, t.ref, t.target_commit) for t in refs.tags] == [
        ("v1.0", "refs/tags/v1.0", env.v1)
    ]


def test_list_repo_tree(env: Env, hf: ModuleType) -> None:
    api = hf.HfApi()
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("acme/tiny")}
    assert top == {
        "sub": "RepoFolder",
        "weights": "RepoFolder",
        "config.json": "RepoFile",
        "model.safetensors": "RepoFile",
    }
    nested = [e.path for e in api.list_repo_tree("acme/tiny", "sub/dir", revision=env.v1)]
    assert nested == ["sub/dir/vocab.txt"]
    files = {
        e.path: e for e in api.list_repo_tree("acme/tiny", recursive=True) if hasattr(e, "size")
    }
    big = files["model.safetensors"]
    assert big.size == len(V2["model.safetensors"])
    assert big.lfs.sha256 == hashlib.sha256(V2["model.safetensors"]).hexdigest()
    expanded = {e.path: e for e in api.list_repo_tree("acme/tiny", recursive=True, expand=True)}
    assert expanded["config.json"].last_commit.oid == env.v2
    assert expanded["sub/dir/vocab.txt"].last_commit.oid == env.v1
    assert expanded["sub"].last_commit.title == "v1"
    with pytest.raises(hf.errors.RemoteEntryNotFoundError):
        list(api.list_repo_tree("acme/tiny", "nope"))


def test_get_paths_info(env: Env, hf: ModuleType) -> None:
    infos = hf.HfApi().get_paths_info(
        "acme/data", ["data/big.parquet", "data", "missing.txt"], repo_type="dataset"
    )
    assert [type(i).__name__ for i in infos] == ["RepoFile", "RepoFolder"]
    big = infos[0]
    assert big.size == 3000 and big.lfs.size == 3000
    assert big.lfs.sha256 == hashlib.sha256(DATA["data/big.parquet"]).hexdigest()
    assert big.blob_id == git_blob_sha1(lfs_pointer(DATA["data/big.parquet"]))


def test_oids_match_real_git(env: Env, hf: ModuleType, tmp_path: Path) -> None:
    """Blob and tree ids equal what git computes for the same tree (LFS files as pointers)."""
    for name, data in V2.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(lfs_pointer(data) if len(data) > 1024 else data)
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    root = subprocess.run([*git, "write-tree"], check=True, capture_output=True, text=True)
    listing = subprocess.run(
        [*git, "ls-tree", "-r", "-t", root.stdout.strip()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    expected = {line.split("\t")[1]: line.split()[2] for line in listing}
    tree = hf.HfApi().list_repo_tree("acme/tiny", recursive=True)
    got = {e.path: getattr(e, "blob_id", None) or e.tree_id for e in tree}
    assert got == expected


# ----- HfFileSystem -----


def test_hf_file_system_urls(env: Env, hf: ModuleType) -> None:
    fs = hf.HfFileSystem(skip_instance_cache=True)
    assert fs.cat("hf://datasets/acme/data/data/part-0.csv") == DATA["data/part-0.csv"]
    old = fs.cat(f"hf://acme/tiny@{env.v1}/config.json")
    assert old == V1["config.json"]
    assert fs.cat("hf://acme/tiny@v1.0/model.safetensors") == V1["model.safetensors"]
    assert sorted(fs.ls("hf://datasets/acme/data/data", detail=False))[:2] == [
        "datasets/acme/data/data/big.parquet",
        "datasets/acme/data/data/part-0.csv",
    ]
    for uri in (
        "hf://datasets/acme/data@refs/pr/1/extra.txt",
        "hf://datasets/acme/data@refs%2Fpr%2F1/extra.txt",
    ):
        resolved = fs.resolve_path(uri)
        assert (resolved.revision, resolved.path_in_repo) == ("refs/pr/1", "extra.txt")
        assert (
            resolved.unresolve()
            == "datasets/acme/data@" + uri.split("@")[1].rsplit("/", 1)[0] + "/extra.txt"
        )
        assert fs.cat(uri) == b"pr"


def test_hf_file_system_private_lfs_keeps_token_off_cdn(env: Env, hf: ModuleType) -> None:
    fs = hf.HfFileSystem(token=TOKEN, skip_instance_cache=True)
    assert fs.cat("hf://acme/secret/model.bin") == SECRET["model.bin"]
    assert _cdn(env.hub) and all("authorization" not in r.headers for r in _cdn(env.hub))


# ----- the CDN and the wire, without huggingface_hub -----


def _head_location(hub: HubServer, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(hub.endpoint).port)
    conn.request("HEAD", path)
    response = conn.getresponse()
    assert response.status == 302
    assert response.getheader("X-Linked-Size") == str(len(V2["model.safetensors"]))
    assert (
        response.getheader("X-Linked-Etag")
        == f'"{hashlib.sha256(V2["model.safetensors"]).hexdigest()}"'
    )
    return str(response.getheader("Location"))


def _cdn_get(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(str(parts.hostname), parts.port)
    conn.request("GET", f"{parts.path}?{parts.query}", headers=headers or {})
    return conn.getresponse()


def test_cdn_ranges_if_range_and_expiry(env: Env) -> None:
    data = V2["model.safetensors"]
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    url = _head_location(env.hub, "/acme/tiny/resolve/main/model.safetensors")
    part = _cdn_get(url, {"Range": "bytes=10-19"})
    assert (part.status, part.read()) == (206, data[10:20])
    assert part.getheader("Content-Range") == f"bytes 10-19/{len(data)}"
    assert part.getheader("ETag") == etag and part.getheader("Accept-Ranges") == "bytes"
    assert _cdn_get(url, {"Range": "bytes=-5"}).read() == data[-5:]
    stale = _cdn_get(url, {"Range": "bytes=10-19", "If-Range": '"other"'})
    assert (stale.status, stale.read()) == (200, data)
    too_far = _cdn_get(url, {"Range": f"bytes={len(data)}-"})
    assert too_far.status == 416 and too_far.getheader("Content-Range") == f"bytes */{len(data)}"
    assert _cdn_get(url.replace("Signature=", "Signature=0")).status == 403
    env.hub.advance_clock(env.hub.link_ttl + 1)
    expired = _cdn_get(url)
    assert expired.status == 403 and b"Request has expired" in expired.read()
    assert (
        _cdn_get(_head_location(env.hub, "/acme/tiny/resolve/main/model.safetensors")).status == 200
    )
