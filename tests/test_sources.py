"""Real-world sources: any URL with a hash, ``hf://`` references through a Hub stand-in, estimated
sizes, mirrors on bad bytes, proxies with credentials, CA bundles, DNS and certificate failures,
kept-alive connections and redirects followed once.

Real parts: nginx with TLS (a CA made by trustme, handed over through ``SSL_CERT_FILE``), its
Hub-shaped route (302 to a signed, expiring CDN link on another port), the Hub stand-in of
``support.hub_server`` (whose fidelity huggingface_hub's own client checks, test at the end), a
proxy of the tests' own that requires credentials. Connection counts come from nginx's log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Hub, Nginx, Route, Site
from runanywhere import BlockingRegistry, FetchConfig, ModelRegistry, Settings
from runanywhere.errors import (
    DownloadError,
    IntegrityError,
    InvalidCatalogError,
    ModelNotFoundError,
    OfflineError,
)
from runanywhere.transfer import Streams
from support.catalogs import model_entry
from support.hub_server import HubServer, git_blob_sha1
from support.invariants import check_cache
from support.proxy import Proxy
from support.pulls import MiB, fast_config, make_registry, pull
from support.terminal import cli_argv

pytestmark = pytest.mark.timeout(180, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]
TOKEN = "hf_tests_token"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- servers ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls-origin")
    (root / "hub" / "acme" / "big").mkdir(parents=True)
    (root / "hub" / "acme" / "big" / "weights.bin").write_bytes(os.urandom(40 * MiB))
    return root


@pytest.fixture(scope="module")
def tls(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """An origin on http and https, and a Hub route whose 302 leads to a CDN on https."""
    sites = [Site("origin", routes=(Route("/"),), http=True, https=True),
             Site("cdn", http=False, https=True)]
    with Nginx(files, tmp_path_factory.mktemp("tls-nginx"), sites=sites,
               hub=Hub(files / "hub", cdn_scheme="https")) as srv:
        yield srv


@pytest.fixture
def trust(tls: Nginx, monkeypatch: pytest.MonkeyPatch) -> Nginx:
    """Trust the test CA the way users do: through the environment."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    return tls


def put(root: Path, name: str, data: bytes) -> str:
    (root / name).write_bytes(data)
    return sha(data)


SMALL = b"vocab\n" * 100
BIG = os.urandom(3 * MiB)


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(lfs_threshold=1024) as server:
        server.add_repo("acme/tiny", {"model.onnx": BIG, "tokens.txt": SMALL,
                                      "sub/extra.json": b'{"a": 1}', "sub/skip.md": b"# no"})
        server.add_repo("acme/secret", {"weights.bin": os.urandom(5000)}, private=True,
                        tokens=[TOKEN])
        server.add_repo("acme/data", {"part.csv": b"a,b\n1,2\n"}, repo_type="dataset")
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


# -- any URL with a hash ---------------------------------------------------------------------------

def test_url_with_its_sha256_over_https(trust: Nginx, files: Path, home: Path) -> None:
    data = os.urandom(300_000)
    digest = put(files, "any-url.onnx", data)
    url = f"{trust.base('origin', 'https')}/any-url.onnx"
    r = cli("pull", url, "--sha256", digest, home=home)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.split(": ", 1)[1].split(" (")[0])
    assert path.read_bytes() == data and r.stdout.startswith("any-url.onnx: ")
    served = len(trust.records(contains="any-url.onnx"))
    again = cli("pull", url, "--sha256", digest, "-q", home=home)  # a cache hit: no request
    assert again.stdout.strip() == str(path) and len(trust.records(contains="any-url.onnx")) \
        == served
    by_id = cli("pull", "any-url.onnx", "--offline", "-q", home=home)  # known by id, offline
    assert by_id.returncode == 0 and by_id.stdout.strip() == str(path)
    listing = cli("cache", "ls", "--json", home=home)
    (entry,) = json.loads(listing.stdout)["models"]
    assert entry["id"] == "any-url.onnx" and entry["source"] == url
    assert check_cache(home) == ["any-url.onnx"]


def test_url_with_the_wrong_hash_leaves_nothing(trust: Nginx, files: Path, home: Path) -> None:
    put(files, "wrong-hash.bin", os.urandom(5000))
    r = cli("pull", f"{trust.base('origin', 'https')}/wrong-hash.bin", "--sha256", "ab" * 32,
            home=home)
    assert r.returncode == 1 and "sha256 mismatch" in r.stderr and "Traceback" not in r.stderr
    assert check_cache(home) == []


def test_a_url_without_a_hash_needs_trust_first_use(trust: Nginx, files: Path,
                                                    home: Path) -> None:
    data = os.urandom(4000)
    put(files, "tofu.bin", data)
    url = f"{trust.base('origin', 'https')}/tofu.bin"
    refused = cli("pull", url, home=home)
    assert refused.returncode == 1 and "--sha256" in refused.stderr
    assert "--trust-first-use" in refused.stderr
    ok = cli("pull", url, "--trust-first-use", "--id", "my-tofu", "-q", home=home)
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()).read_bytes() == data
    assert check_cache(home) == ["my-tofu"]


def test_fetch_from_the_api(trust: Nginx, files: Path, home: Path) -> None:
    data = os.urandom(20_000)
    digest = put(files, "api-fetch.bin", data)
    url = f"{trust.base('origin', 'https')}/api-fetch.bin"
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch(url, sha256=digest))
    assert r.success and r.unwrap().read_bytes() == data
    with BlockingRegistry(ModelRegistry(home=home, include_builtin=False)) as blocking:
        again = blocking.fetch(url, sha256=digest)
    assert again.unwrap() == r.unwrap()
    bad = asyncio.run(reg.fetch(f"{trust.base('origin', 'https')}/api-fetch.bin"))
    assert isinstance(bad.error, InvalidCatalogError)  # no hash, no trust_first_use


# -- the Hugging Face Hub --------------------------------------------------------------------------

def test_hf_file_by_branch_and_the_token_stays_off_the_cdn(hf_env: HubServer, home: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    r = cli("pull", "hf://acme/tiny/model.onnx", "-q", home=home)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).read_bytes() == BIG
    cdn = [q for q in hf_env.requests if q.server == "cdn"]
    hubs = [q for q in hf_env.requests if q.server == "hub"]
    assert cdn and all(q.headers.get("authorization") is None for q in cdn)
    assert hubs and all(q.headers.get("authorization") == f"Bearer {TOKEN}" for q in hubs)
    info = json.loads(cli("info", "acme--tiny-model.onnx", "--json", home=home).stdout)
    assert info["url"].startswith("hf://acme/tiny@") and info["hash"] == f"sha256:{sha(BIG)}"


def test_hf_small_file_is_checked_against_its_git_blob_id(hf_env: HubServer,
                                                          home: Path) -> None:
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch("hf://acme/tiny/tokens.txt"))
    assert r.success and r.unwrap().read_bytes() == SMALL
    meta = reg.require_model("acme--tiny-tokens.txt")
    assert meta.files[0].git_sha1 == git_blob_sha1(SMALL) and meta.files[0].hash is None
    # The same entry with another blob id: the bytes do not match what the Hub published.
    entry = meta.to_dict() | {"id": "lying", "git_sha1": "0" * 40}
    reg.register_model(entry)
    bad = asyncio.run(reg.download_model("lying"))
    assert isinstance(bad.error, IntegrityError) and "git blob id" in str(bad.error)
    assert check_cache(home) == ["acme--tiny-tokens.txt"]


def test_hf_folder_and_whole_repository_with_globs(hf_env: HubServer, home: Path) -> None:
    reg = ModelRegistry(home=home, include_builtin=False)
    folder = asyncio.run(reg.fetch("hf://acme/tiny/sub", exclude=["*.md"])).unwrap()
    assert (folder / "sub" / "extra.json").read_bytes() == b'{"a": 1}'
    assert not (folder / "sub" / "skip.md").exists()
    whole = asyncio.run(reg.fetch("hf://acme/tiny", include=["*.onnx", "*.txt"],
                                  model_id="tiny-all")).unwrap()
    assert sorted(p.name for p in whole.rglob("*") if p.is_file()) == ["model.onnx",
                                                                         "tokens.txt"]
    data = asyncio.run(reg.fetch("hf://datasets/acme/data/part.csv")).unwrap()
    assert data.read_bytes() == b"a,b\n1,2\n"
    assert set(check_cache(home)) == {"acme--tiny-sub", "tiny-all", "acme--data-part.csv"}


def test_hf_by_commit_is_pinned_and_a_moved_branch_is_not_followed(
        hf_env: HubServer, home: Path) -> None:
    first = hf_env.add_repo("acme/moving", {"w.bin": b"one" * 500})
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch("hf://acme/moving/w.bin"))
    assert r.unwrap().read_bytes() == b"one" * 500
    assert reg.require_model("acme--moving-w.bin").version == first[:12]
    hf_env.add_repo("acme/moving", {"w.bin": b"two" * 500})  # main moves on
    fresh = ModelRegistry(home=home, include_builtin=False)  # the pin holds without the Hub
    assert asyncio.run(fresh.download_model("acme--moving-w.bin")).unwrap().read_bytes() == \
        b"one" * 500
    old = asyncio.run(fresh.fetch(f"hf://acme/moving@{first}/w.bin", model_id="old-w"))
    assert old.unwrap().read_bytes() == b"one" * 500
    assert not [q for q in hf_env.requests if "/revision/" in q.path and first in q.path]


def test_fetching_a_moved_branch_again_gives_its_new_bytes(hf_env: HubServer,
                                                           home: Path) -> None:
    """A small file (known by its git blob id, no sha256) changes on main: fetching the same
    reference again must give the new bytes, whatever their size, never the cached old ones,
    and a later pull after ``clear`` must not be held to the old first-use hash."""
    hf_env.add_repo("acme/cfg", {"config.json": b'{"layers": 1}'})
    assert asyncio.run(ModelRegistry(home=home, include_builtin=False).fetch(
        "hf://acme/cfg/config.json")).unwrap().read_bytes() == b'{"layers": 1}'
    for content in (b'{"layers": 2}', b'{"layers": 333}'):  # the same size, then another
        commit = hf_env.add_repo("acme/cfg", {"config.json": content})
        reg = ModelRegistry(home=home, include_builtin=False)
        got = asyncio.run(reg.fetch("hf://acme/cfg/config.json")).unwrap()
        assert got.read_bytes() == content
        assert reg.require_model("acme--cfg-config.json").version == commit[:12]
        (record,) = reg.cache.trusted_hashes("acme--cfg-config.json")
        assert record.sha256 == sha(content) and commit in record.url
    asyncio.run(reg.clear_cache(None))
    again = asyncio.run(ModelRegistry(home=home, include_builtin=False).download_model(
        "acme--cfg-config.json"))
    assert again.unwrap().read_bytes() == b'{"layers": 333}'
    assert check_cache(home) == ["acme--cfg-config.json"]


def test_hf_private_repo_with_the_login_token_file(hf_env: HubServer, home: Path,
                                                    tmp_path: Path) -> None:
    refused = cli("pull", "hf://acme/secret/weights.bin", home=home)
    assert refused.returncode != 0 and "not authorised" in refused.stderr
    assert "HF_TOKEN" in refused.stderr
    token_file = tmp_path / "hf-home" / "token"  # where `hf auth login` writes it
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(TOKEN + "\n")
    ok = cli("pull", "hf://acme/secret/weights.bin", "-q", home=home)
    assert ok.returncode == 0, ok.stderr


def test_hf_hub_offline_makes_no_request(hf_env: HubServer, home: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("pull", "hf://acme/tiny/tokens.txt", home=home).returncode == 0
    hf_env.clear_requests()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = cli("pull", "acme--tiny-tokens.txt", "-q", home=home)
    assert cached.returncode == 0 and Path(cached.stdout.strip()).read_bytes() == SMALL
    missing = cli("pull", "hf://acme/tiny/model.onnx", home=home)
    assert missing.returncode != 0 and "offline" in missing.stderr
    assert hf_env.requests == []
    reg = ModelRegistry(home=home, include_builtin=False)
    assert isinstance(asyncio.run(reg.fetch("hf://acme/tiny/sub")).error, OfflineError)


def test_hf_unknown_repo_is_a_clear_error(hf_env: HubServer, home: Path) -> None:
    reg = ModelRegistry(home=home, include_builtin=False)
    r = asyncio.run(reg.fetch("hf://acme/nope/x.bin"))
    assert isinstance(r.error, ModelNotFoundError) and "hf://acme/nope/x.bin" in str(r.error)


def test_a_signed_link_expiring_mid_download_is_fetched_again(hf_env: HubServer,
                                                              home: Path) -> None:
    hf_env.drop_next_cdn_body(MiB, expire_links=True)
    reg = ModelRegistry(home=home, include_builtin=False,
                        fetch_config=fast_config(retry_delay=0.01))
    r = asyncio.run(reg.fetch("hf://acme/tiny/model.onnx", model_id="expiring"))
    assert r.success and r.unwrap().read_bytes() == BIG
    resolves = [q for q in hf_env.requests if "/resolve/" in q.path]
    assert len(resolves) >= 2  # the first link died with the connection; a fresh one was asked
    assert check_cache(home) == ["expiring"]


# -- sizes, mirrors --------------------------------------------------------------------------------

def test_a_size_known_only_approximately(trust: Nginx, files: Path, write_catalog: Catalog,
                                         home: Path) -> None:
    data = os.urandom(1_234_567)
    digest = put(files, "estimated.bin", data)
    entry = {"id": "estimated", "name": "estimated", "type": "custom", "format": "custom",
             "provider": "tests", "version": "1", "size_estimate": 1_200_000,
             "url": f"{trust.base('origin', 'https')}/estimated.bin", "hash": f"sha256:{digest}"}
    cat = write_catalog([entry])
    info = cli("--catalog", str(cat), "info", "estimated", home=home)
    assert "estimate" in info.stdout
    seen: list[Any] = []
    reg = make_registry(home, cat)
    r = asyncio.run(reg.download_model("estimated", on_detail=seen.append))
    assert r.success and r.unwrap().read_bytes() == data
    assert seen[-1].total_bytes == len(data)  # learned from the origin
    assert check_cache(home) == ["estimated"]


def test_the_builtin_speecht5_has_estimates_and_says_so(home: Path) -> None:
    r = cli("info", "speecht5-tts", home=home)
    assert r.returncode == 0
    assert r.stdout.count("(estimate)") == 2 and "estimate" in r.stdout.splitlines()[6]


@pytest.mark.parametrize("fault", ["bytes", "length"])
def test_a_bad_primary_moves_on_to_a_good_mirror(trust: Nginx, files: Path,
                                                 write_catalog: Catalog, home: Path,
                                                 fault: str) -> None:
    data = os.urandom(50_000)
    digest = put(files, f"good-{fault}.bin", data)
    bad = bytes(b ^ 0x5A for b in data) if fault == "bytes" else data + b"x"
    put(files, f"bad-{fault}.bin", bad)
    base = trust.base("origin", "https")
    cat = write_catalog([model_entry(f"mirrored-{fault}", f"{base}/bad-{fault}.bin", len(data),
                                     digest, mirrors=[f"{base}/good-{fault}.bin"])])
    r = pull(make_registry(home, cat), f"mirrored-{fault}")
    assert r.success, r.error
    assert r.unwrap().read_bytes() == data
    assert check_cache(home) == [f"mirrored-{fault}"]


def test_every_url_tried_is_named(trust: Nginx, files: Path, write_catalog: Catalog,
                                  home: Path) -> None:
    data = os.urandom(20_000)
    put(files, "all-bad.bin", bytes(b ^ 1 for b in data))
    base = trust.base("origin", "https")
    cat = write_catalog([model_entry("all-bad", f"{base}/all-bad.bin", len(data), sha(data),
                                     mirrors=[f"{base}/missing.bin"])])
    r = pull(make_registry(home, cat), "all-bad")
    message = str(r.error)
    assert f"{base}/all-bad.bin: sha256 mismatch" in message
    assert f"{base}/missing.bin" in message and "404" in message
    assert check_cache(home) == []


# -- network habits --------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_with_credentials(trust: Nginx, files: Path, write_catalog: Catalog, home: Path,
                                  monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    data = os.urandom(30_000)
    digest = put(files, f"proxied-{scheme}.bin", data)
    cat = write_catalog([model_entry(f"proxied-{scheme}",
                                     f"{trust.base('origin', scheme)}/proxied-{scheme}.bin",
                                     len(data), digest)])
    with Proxy("alice", "s3cret:/x") as proxy:
        monkeypatch.setenv(f"{scheme}_proxy", proxy.url("alice", "s3cret%3A%2Fx"))
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.setenv("no_proxy", "")
        r = pull(make_registry(home, cat), f"proxied-{scheme}")
        assert r.success, r.error
        assert r.unwrap().read_bytes() == data
        assert proxy.log.requests and all(auth == proxy.expected
                                          for _, _, auth in proxy.log.requests)
        method = "CONNECT" if scheme == "https" else "GET"
        assert {m for m, _, _ in proxy.log.requests} == {method}


def test_a_proxy_refusing_us_fails_at_once(trust: Nginx, files: Path, write_catalog: Catalog,
                                           home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(1000)
    cat = write_catalog([model_entry("refused", f"{trust.base('origin', 'http')}/refused.bin",
                                     len(data), put(files, "refused.bin", data))])
    with Proxy("alice", "right") as proxy:
        monkeypatch.setenv("http_proxy", proxy.url("alice", "wrong"))
        monkeypatch.setenv("NO_PROXY", "")
        monkeypatch.setenv("no_proxy", "")
        r = pull(make_registry(home, cat), "refused")
        assert isinstance(r.error, DownloadError) and "407" in str(r.error)
        assert len(proxy.log.requests) == 1  # no retry of what cannot heal


def test_dns_and_certificate_failures_fail_fast(tls: Nginx, files: Path,
                                                write_catalog: Catalog, home: Path,
                                                caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    data = os.urandom(1000)
    digest = put(files, "untrusted.bin", data)
    cat = write_catalog([
        model_entry("no-dns", "http://no-such-host.invalid/x.bin", 10, "0" * 64),
        model_entry("untrusted", f"{tls.base('origin', 'https')}/untrusted.bin", len(data),
                    digest),
        model_entry("fallback", f"{tls.base('origin', 'https')}/untrusted.bin", len(data),
                    digest, mirrors=[f"{tls.base('origin', 'http')}/untrusted.bin"])])
    caplog.set_level(logging.INFO, logger="runanywhere")
    reg = make_registry(home, cat, retry_delay=5.0)  # a retry would show as a 5 s wait
    r = pull(reg, "no-dns")
    assert "cannot resolve host no-such-host.invalid" in str(r.error)
    r = pull(reg, "untrusted")
    assert "is not trusted" in str(r.error) and "SSL_CERT_FILE" in str(r.error)
    assert not [rec for rec in caplog.records if "retry" in rec.getMessage()]
    ok = pull(reg, "fallback")
    assert ok.success and ok.unwrap().read_bytes() == data


# -- connections -----------------------------------------------------------------------------------

def test_pieces_reuse_connections_and_follow_the_redirect_once(trust: Nginx, files: Path,
                                                               write_catalog: Catalog,
                                                               home: Path) -> None:
    data = (files / "hub" / "acme" / "big" / "weights.bin").read_bytes()
    url = trust.hub_url("acme/big", "weights.bin", scheme="https")
    cat = write_catalog([model_entry("big-hub", url, len(data), sha(data))])
    config = fast_config(connections=4, piece_size=2 * MiB, min_part=MiB,
                         split_threshold=MiB)
    r = pull(make_registry(home, cat, fetch_config=config), "big-hub")
    assert r.success, r.error
    pieces = trust.wait_records(20, site="cdn", prefix="/lfs/", status=206)
    assert len(pieces) >= 20  # 40 MiB in pieces of 2 MiB
    cdn_connections = trust.connections(site="cdn")
    assert cdn_connections <= 4  # one per parallel stream, reused for every next piece
    assert trust.tls_handshakes(site="cdn") <= cdn_connections
    assert len(trust.records(site="origin", contains="/resolve/")) == 1  # the redirect, once
    assert check_cache(home) == ["big-hub"]


def test_the_connections_setting_sets_the_streams_per_file(trust: Nginx, files: Path,
                                                          write_catalog: Catalog,
                                                          tmp_path: Path) -> None:
    """`--connections N` and RUNANYWHERE_CONNECTIONS decide how many streams fetch one file
    (behind a CDN that caps each connection, more is faster), as nginx counts them; a number
    that cannot work is refused before anything is fetched, and the API refuses a second,
    different number in its FetchConfig."""
    data = (files / "hub" / "acme" / "big" / "weights.bin").read_bytes()  # 40 MiB
    url = trust.hub_url("acme/big", "weights.bin", scheme="https")
    cat = write_catalog([model_entry("big-conns", url, len(data), sha(data))])
    seen: dict[str, int] = {}
    for how, args, env in (("option", ["--connections", "2"], {}),
                           ("env", [], {"RUNANYWHERE_CONNECTIONS": "5"})):
        mark = trust.log_size()
        r = cli("--catalog", str(cat), *args, "pull", "big-conns", "--quiet",
                home=tmp_path / how, env=env)
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip()).read_bytes() == data
        trust.wait_records(2, since=mark, site="cdn", status=206)
        seen[how] = trust.connections(since=mark, site="cdn")
    assert seen == {"option": 2, "env": 5}
    mark = trust.log_size()
    bad = cli("--catalog", str(cat), "pull", "big-conns", home=tmp_path / "bad",
              env={"RUNANYWHERE_CONNECTIONS": "0"})
    assert bad.returncode == 2
    assert "RUNANYWHERE_CONNECTIONS: 0 is not between 1 and 64" in bad.stderr
    assert trust.records(since=mark) == []
    with pytest.raises(ValueError, match="connections given twice"):
        ModelRegistry(home=tmp_path / "api", catalogs=[cat], include_builtin=False,
                      settings=Settings(home=tmp_path / "api", connections=3),
                      fetch_config=FetchConfig(streams=Streams(connections=6)))


def test_stolen_tails_cost_no_new_connection(files: Path, write_catalog: Catalog, home: Path,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """A worker that runs out of pieces takes over the far half of a slower range on its
    kept-alive connection; the victim stops where the thief starts (its answer cut short, its
    connection closed) and does not steal in turn, so however many steals, a download uses at
    most one connection per worker, plus one for the redirect."""
    data = (files / "hub" / "acme" / "big" / "weights.bin").read_bytes()
    sites = [Site("origin", http=False, https=True, routes=()),
             Site("cdn", http=False, https=True, routes=())]
    with Nginx(files, tmp_path / "nginx", sites=sites, hub=Hub(files / "hub", rate="10m")) as srv:
        monkeypatch.setenv("SSL_CERT_FILE", str(srv.ca_file))
        cat = write_catalog([model_entry("stolen", srv.hub_url("acme/big", "weights.bin"),
                                         len(data), sha(data))])
        # 1 MiB first, then 3 pieces of 13 MiB for the other 3 workers: the first to finish
        # has nothing left to claim and steals
        config = fast_config(connections=4, min_part=MiB, split_threshold=MiB,
                             piece_size=16 * MiB)
        r = pull(make_registry(home, cat, fetch_config=config), "stolen")
        assert r.success, r.error
        time.sleep(0.5)  # nginx logs a cut answer when it notices the closed connection
        pieces = srv.records(site="cdn")
        assert [p for p in pieces if not p.completed], "no range was stolen: the test is moot"
        assert srv.connections(site="cdn") <= 4, pieces
        assert len(srv.records(site="origin")) == 1
    assert check_cache(home) == ["stolen"]


def test_huggingface_hub_accepts_the_stand_in() -> None:
    """The Hub stand-in is faithful: huggingface_hub's own hf_hub_download, snapshot_download
    and HfApi run against it (in a process of their own: huggingface_hub reads HF_ENDPOINT once,
    when it is imported)."""
    pytest.importorskip("huggingface_hub")
    here = Path(__file__).parent
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(here / "hub_fidelity")], capture_output=True, text=True,
                       timeout=300, cwd=here.parent,
                       env={**os.environ, "RUNANYWHERE_HUB_FIDELITY": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
