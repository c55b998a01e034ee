"""The shared test servers themselves (``harness/``): ports, nginx's sites, TLS, bandwidth caps,
the Hub-shaped signed redirect and the access log. Later tests trust these; here they are shown
to do what their docstrings say, against the real nginx."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import accesslog
from harness.net import free_port, free_ports, wait_port
from harness.nginx import Hub, Nginx, Route, Served, Site, hub_direct_routes, rate_bytes
from harness.throttle import Bucket
from support.tamper import flip_byte, flipped, xor_range, zero_range

MiB = 2**20
REPO = "org/model"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("harness-root")
    (root / "blob.bin").write_bytes(os.urandom(10 * MiB))
    (root / "small.bin").write_bytes(os.urandom(100_000))
    (root / REPO).mkdir(parents=True)
    (root / REPO / "weights.bin").write_bytes(os.urandom(3 * MiB))
    return root


@pytest.fixture(scope="module")
def srv(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    sites = [
        Site("origin", http=True, https=True, routes=(
            Route("/"), Route("/fast/", rate="75m"), Route("/slow/", rate="20m"),
            Route("/redirect/", redirect="/"))),
        Site("cdn", http=True, https=True, routes=()),
        Site("capped", http=True, https=True, total_rate="4m"),
    ]
    with Nginx(files, tmp_path_factory.mktemp("harness-nginx"), sites=sites,
               hub=Hub(files), tls_names=["origin.test"]) as n:
        yield n


def _context(srv: Nginx) -> ssl.SSLContext | None:
    return srv.ssl_context() if srv.tls is not None else None


def get(url: str, srv: Nginx, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, context=_context(srv), timeout=30) as r:
        data: bytes = r.read()
        return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def head_no_redirect(url: str, srv: Nginx, headers: dict[str, str] | None = None
                     ) -> tuple[int, http.client.HTTPMessage]:
    opener = urllib.request.build_opener(_NoRedirect,
                                         urllib.request.HTTPSHandler(context=_context(srv)))
    req = urllib.request.Request(url, method="HEAD", headers=headers or {})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def status_of(url: str, srv: Nginx) -> tuple[int, bytes]:
    try:
        return 200, get(url, srv)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- ports ----------------------------------------------------------------------------------------
def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_wait_port_sees_a_listener_and_gives_up_on_none() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert wait_port(s.getsockname()[1], timeout=2)
    t = time.monotonic()
    assert not wait_port(free_port(), timeout=0.3)
    assert time.monotonic() - t < 2


def test_rates_use_nginx_units() -> None:
    assert rate_bytes("75m") == 75 * MiB and rate_bytes("2k") == 2048
    assert rate_bytes(1000) == 1000 and rate_bytes("1000") == 1000
    with pytest.raises(ValueError):
        rate_bytes("fast")


# -- serving, keep-alive, the log -----------------------------------------------------------------
def test_sites_listen_on_their_own_ports(srv: Nginx, files: Path) -> None:
    ports = srv.ports
    assert len(set(ports.values())) == len(ports) == 6
    assert srv.url == f"http://127.0.0.1:{ports['origin', 'http']}"
    want = (files / "small.bin").read_bytes()
    for site in ("origin", "capped"):
        for scheme in ("http", "https"):
            assert get(f"{srv.base(site, scheme)}/small.bin", srv) == want
    recs = srv.wait_records(4, uri="/small.bin")
    assert {(r.site, r.scheme, r.port) for r in recs} == {
        (s, sc, ports[s, sc]) for s in ("origin", "capped") for sc in ("http", "https")}
    assert all(r.status == 200 and r.body_bytes == len(want) and r.completed for r in recs)


def test_keepalive_reuses_one_connection_and_the_log_shows_it(srv: Nginx) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port_of("origin", "http"), timeout=10)
    uri = "/small.bin?keepalive"
    for _ in range(3):
        conn.request("GET", uri)
        resp = conn.getresponse()
        assert resp.status == 200 and not resp.will_close
        resp.read()
    conn.close()
    recs = srv.wait_records(3, uri=uri)
    assert [r.connection_requests for r in recs] == [1, 2, 3]
    assert srv.connections(uri=uri) == 1
    assert accesslog.connections_by_path(recs) == {"/small.bin": 1}


def test_log_records_range_if_range_and_authorization_presence(srv: Nginx) -> None:
    uri = "/small.bin?log-fields"
    req = urllib.request.Request(srv.url + uri, headers={
        "Range": "bytes=10-19", "If-Range": '"not-the-etag"',
        "Authorization": "Bearer secret-value", "User-Agent": "harness test \"quoted\""})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and len(r.read()) == 100_000  # a stale If-Range: the whole file
    (rec,) = srv.wait_records(uri=uri)
    assert rec.range == "bytes=10-19" and rec.range_span == (10, 19)
    assert rec.if_range == '"not-the-etag"' and rec.authorization is True
    assert rec.user_agent == 'harness test "quoted"' and rec.method == "GET"
    assert "secret-value" not in srv.access_log.read_text()
    get(srv.url + "/small.bin?no-auth", srv)
    (plain,) = srv.wait_records(uri="/small.bin?no-auth")
    assert plain.authorization is False and plain.range is None and plain.range_span is None
    assert plain.ssl_reused is None and plain.ssl_protocol == ""


def test_bytes_served_and_filters(srv: Nginx) -> None:
    get(srv.url + "/small.bin?count-a", srv)
    get(srv.url + "/redirect/small.bin?count-b", srv)  # 302, then the file
    srv.wait_records(3, contains="count-")
    assert srv.bytes_served(uri="/small.bin?count-a") == 100_000
    assert srv.bytes_served(contains="count-b") == 100_000 + sum(
        r.body_bytes for r in srv.records(prefix="/redirect/"))
    assert srv.records(prefix="/redirect/", contains="count-b")[0].status == 302


def test_records_since_a_mark_are_the_later_ones_only(srv: Nginx) -> None:
    get(srv.url + "/small.bin?before-mark", srv)
    srv.wait_records(contains="before-mark")
    mark = srv.log_size()
    get(srv.url + "/small.bin?after-mark", srv)
    srv.wait_records(contains="after-mark")
    assert [r.uri for r in srv.records(since=mark, contains="-mark")] == ["/small.bin?after-mark"]
    assert len(srv.records(contains="-mark")) == 2


def test_log_parser_skips_torn_lines() -> None:
    assert accesslog.parse_line('{"msec":"1.0","site":"o"') is None
    assert accesslog.parse_line("[1, 2]") is None
    assert accesslog.parse_line('{"msec": "1"}') is None


def test_redirect_route_points_at_the_same_server(srv: Nginx) -> None:
    status, headers = head_no_redirect(srv.url + "/redirect/small.bin", srv)
    assert status == 302
    assert headers["Location"].endswith(f":{srv.port}/small.bin")


# -- TLS ------------------------------------------------------------------------------------------
def test_certificate_covers_ip_localhost_and_extra_names(srv: Nginx) -> None:
    port = srv.port_of("origin", "https")
    ctx = srv.ssl_context()
    for name in ("127.0.0.1", "localhost", "origin.test"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=name) as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(raw, server_hostname="elsewhere.test")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_clients_trust_the_ca_through_the_environment(srv: Nginx) -> None:
    env = srv.tls_env()
    assert set(env) == {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}
    assert {Path(v) for v in env.values()} == {srv.ca_file}
    assert srv.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    code = ("import sys, urllib.request; "
            "print(len(urllib.request.urlopen(sys.argv[1], timeout=10).read()))")
    url = srv.base("origin", "https") + "/small.bin?env-ca"
    r = subprocess.run([sys.executable, "-c", code, url], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "100000", r.stderr
    r = subprocess.run([sys.executable, "-c", code, url],
                       env={k: v for k, v in os.environ.items() if k not in env},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stderr


def _tls_get(port: int, ctx: ssl.SSLContext, uri: str,
             session: ssl.SSLSession | None = None) -> tuple[ssl.SSLSession | None, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as s:
        s.sendall(f"GET {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        while s.recv(65536):
            pass
        return s.session, s.session_reused


def test_handshakes_and_resumed_sessions_are_counted(srv: Nginx) -> None:
    port = srv.port_of("origin", "https")
    ctx = srv.ssl_context()
    session, reused = _tls_get(port, ctx, "/small.bin?tls-first")
    assert not reused and session is not None
    _, reused = _tls_get(port, ctx, "/small.bin?tls-second", session)
    assert reused
    first = srv.wait_records(contains="tls-first")
    second = srv.wait_records(contains="tls-second")
    assert [r.ssl_reused for r in first + second] == [False, True]
    assert srv.tls_handshakes(contains="tls-") == 1
    assert accesslog.tls_resumptions(first + second) == 1
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    for _ in range(4):  # keep-alive over TLS: one handshake for four requests
        conn.request("GET", "/small.bin?tls-keepalive")
        conn.getresponse().read()
    conn.close()
    srv.wait_records(4, contains="tls-keepalive")
    assert srv.tls_handshakes(contains="tls-keepalive") == 1
    assert srv.connections(contains="tls-keepalive") == 1


# -- bandwidth ------------------------------------------------------------------------------------
def test_route_rates_are_per_connection(srv: Nginx) -> None:
    """``limit_rate`` sleeps after each 2 MiB sendfile chunk: 10 MiB at 20 MiB/s is ~0.4 s on
    nginx's clock (its ``$request_time``, which client-side scheduling does not disturb)."""
    get(srv.url + "/fast/blob.bin?rate-fast", srv)  # 10 MiB at 75 MiB/s
    get(srv.url + "/slow/blob.bin?rate-slow", srv)  # 10 MiB at 20 MiB/s
    (fast,) = srv.wait_records(contains="rate-fast")
    (slow,) = srv.wait_records(contains="rate-slow")
    assert 0.3 < slow.request_time < 5 and fast.request_time < slow.request_time, (fast, slow)
    # Two connections at once each get the whole rate: ~0.4 s each, where one shared 20 MiB/s
    # would need 0.9 s for the 20 MiB.
    threads = [threading.Thread(target=get, args=(srv.url + f"/slow/blob.bin?rate-pair-{i}", srv))
               for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    pair = srv.wait_records(2, contains="rate-pair-")
    assert max(r.request_time for r in pair) < 0.8, pair


def test_hub_repo_rates_cap_one_repo_on_the_cdn(files: Path, tmp_path: Path) -> None:
    """``Hub(repo_rates=...)``: one CDN, a cap for one repo's links, none for the others."""
    (files / "other").mkdir(exist_ok=True)
    (files / "other" / "blob.bin").write_bytes((files / "blob.bin").read_bytes())
    sites = [Site("origin", routes=()), Site("cdn", routes=())]
    hub = Hub(files, repo_rates=((REPO, "2m"),))
    with Nginx(files, tmp_path, sites=sites, hub=hub) as n:
        capped = get(n.hub_url(REPO, "weights.bin"), n)  # 3 MiB at 2 MiB/s
        free = get(n.hub_url("other", "blob.bin"), n)  # 10 MiB, no cap
        assert capped == (files / REPO / "weights.bin").read_bytes()
        assert free == (files / "blob.bin").read_bytes()
        slow = n.wait_records(site="cdn", contains="weights.bin")[-1]
        fast = n.wait_records(site="cdn", contains="other/blob.bin")[-1]
        assert slow.request_time >= 0.9 and fast.request_time < slow.request_time, (slow, fast)
        assert status_of(n.signed_url(REPO, "weights.bin", secret="guessed"), n)[0] == 403
    with pytest.raises(ValueError):
        Nginx(files, sites=sites, hub=Hub(files, repo_rates=(("../x", "2m"),)))


def test_total_rate_is_shared_by_every_connection_of_the_site(srv: Nginx, files: Path) -> None:
    """4 MiB/s for the whole site: four connections fetching 2 MiB each (8 MiB, http and https
    mixed) need about 2 s together, not the 0.5 s each would take alone."""
    def fetch(scheme: str, i: int) -> None:
        got = get(f"{srv.base('capped', scheme)}/blob.bin?capped-{i}", srv,
                  headers={"Range": f"bytes={i * 2 * MiB}-{(i + 1) * 2 * MiB - 1}"})
        assert len(got) == 2 * MiB

    threads = [threading.Thread(target=fetch, args=("https" if i % 2 else "http", i))
               for i in range(4)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t
    assert 1.8 < elapsed < 8, elapsed  # 8 MiB at 4 MiB/s, a burst of one 80 KiB chunk at most
    recs = srv.wait_records(4, contains="capped-")
    assert len(recs) == 4 and {r.status for r in recs} == {206}
    assert {r.port for r in recs} == {srv.port_of("capped", "http"),
                                      srv.port_of("capped", "https")}
    assert srv.connections(contains="capped-") == 4


def test_token_bucket_keeps_the_long_run_rate() -> None:
    import asyncio

    async def run() -> float:
        bucket = Bucket(1_000_000, 50_000)
        t = time.monotonic()
        await asyncio.gather(*(bucket.take(50_000) for _ in range(30)))  # 1.5 MB, 50 kB burst
        return time.monotonic() - t

    assert 1.3 < asyncio.run(run()) < 3


# -- the Hub route --------------------------------------------------------------------------------
def test_token_bucket_loses_nothing_when_takers_wake_late() -> None:
    """A busy event loop wakes every taker late; the bytes still leave at the rate (a bucket
    that dropped the oversleep gave 32 connections through a 100 MiB/s cap only 75 MiB/s)."""
    import asyncio

    async def run() -> float:
        bucket = Bucket(10_000_000, 100_000)  # 100 kB grants: 10 ms each
        stop = False

        async def hog() -> None:
            while not stop:
                time.sleep(0.004)  # blocks the loop, so every wake-up comes late
                await asyncio.sleep(0)

        task = asyncio.create_task(hog())
        t = time.monotonic()
        await asyncio.gather(*(bucket.take(100_000) for _ in range(100)))  # 10 MB: ~1 s
        elapsed = time.monotonic() - t
        stop = True
        await task
        return elapsed

    assert 0.9 < asyncio.run(run()) < 1.6  # the old bucket needed ~2 s


def test_hub_resolve_redirects_to_the_cdn_with_hub_headers(srv: Nginx, files: Path) -> None:
    data = (files / REPO / "weights.bin").read_bytes()
    for scheme in ("http", "https"):
        status, h = head_no_redirect(srv.hub_url(REPO, "weights.bin", scheme=scheme), srv)
        assert status == 302
        loc = urllib.parse.urlsplit(h["Location"])
        assert loc.scheme == scheme and loc.port == srv.port_of("cdn", scheme)
        assert loc.port != srv.port_of("origin", scheme)
        query = urllib.parse.parse_qs(loc.query)
        assert abs(int(query["expires"][0]) - (time.time() + 3600)) < 5
        assert h["X-Linked-Size"] == str(len(data))
        assert h["X-Linked-Etag"] == h["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert len(h["X-Repo-Commit"]) == 40
    commit = "ab" * 20
    _, h = head_no_redirect(srv.hub_url(REPO, "weights.bin", revision=commit), srv)
    assert h["X-Repo-Commit"] == commit
    assert srv.signer is not None
    srv.signer.cdn_scheme = "https"  # Hub(cdn_scheme=...): links on https whatever the request
    try:
        _, h = head_no_redirect(srv.hub_url(REPO, "weights.bin", scheme="http"), srv)
    finally:
        srv.signer.cdn_scheme = None
    assert h["Location"].startswith(f"https://127.0.0.1:{srv.port_of('cdn', 'https')}/lfs/")
    assert get(srv.hub_url(REPO, "weights.bin", scheme="https"), srv) == data  # followed
    cdn = srv.wait_records(site="cdn", prefix="/lfs/", status=200)
    assert cdn and cdn[-1].status == 200 and cdn[-1].body_bytes == len(data)
    assert srv.hub_endpoint() == srv.base("origin")


def test_hub_takes_a_known_hash_instead_of_hashing(srv: Nginx, files: Path) -> None:
    f = files / REPO / "remembered.bin"
    f.write_bytes(b"x" * 1000)
    assert srv.signer is not None
    srv.signer.remember(f, "ab" * 32)  # a caller's manifest knows it: the Hub says what it is told
    _, h = head_no_redirect(srv.hub_url(REPO, "remembered.bin"), srv)
    assert h["X-Linked-Etag"] == f'"{"ab" * 32}"'
    f.write_bytes(b"y" * 1001)  # changed: hashed again
    _, h = head_no_redirect(srv.hub_url(REPO, "remembered.bin"), srv)
    assert h["X-Linked-Etag"] == f'"{hashlib.sha256(b"y" * 1001).hexdigest()}"'


def test_cdn_refuses_expired_and_forged_links(srv: Nginx, files: Path) -> None:
    good = srv.signed_url(REPO, "weights.bin")
    req = urllib.request.Request(good, headers={"Range": "bytes=0-99"})
    with urllib.request.urlopen(req, context=srv.ssl_context(), timeout=10) as r:
        assert r.status == 206 and r.read() == (files / REPO / "weights.bin").read_bytes()[:100]
    expired = srv.signed_url(REPO, "weights.bin", expires=int(time.time()) - 1)
    assert status_of(expired, srv) == (403, b"expired link\n")
    forged = srv.signed_url(REPO, "weights.bin", secret="guessed")
    assert status_of(forged, srv) == (403, b"invalid link\n")
    other_file = good.replace("weights.bin", "other.bin")  # a signature is for one path
    assert status_of(other_file, srv)[0] == 403
    bare = good.split("?")[0]
    assert status_of(bare, srv)[0] == 403


def test_links_expire_after_the_ttl(srv: Nginx) -> None:
    assert srv.signer is not None
    srv.signer.ttl = 2  # the link must still work for the first GET, even on a busy machine
    try:
        _, h = head_no_redirect(srv.hub_url(REPO, "weights.bin"), srv)
    finally:
        srv.signer.ttl = 3600
    link = h["Location"]
    assert status_of(link, srv)[0] == 200
    expires = int(urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["expires"][0])
    time.sleep(max(0.0, expires + 1.1 - time.time()))
    assert status_of(link, srv)[0] == 403


def test_hub_errors_missing_file_and_token(srv: Nginx) -> None:
    status, h = head_no_redirect(srv.hub_url(REPO, "nope.bin"), srv)
    assert status == 404 and h["X-Error-Code"] == "EntryNotFound"
    status, _ = head_no_redirect(srv.hub_url(REPO, "../../blob.bin"), srv)
    assert status in (400, 404)
    assert srv.signer is not None
    srv.signer.token = "hf_test"
    try:
        status, h = head_no_redirect(srv.hub_url(REPO, "weights.bin", scheme="https"), srv)
        assert status == 401 and h["X-Error-Code"] == "RepoNotFound"
        status, _ = head_no_redirect(srv.hub_url(REPO, "weights.bin", scheme="https"), srv,
                                     {"Authorization": "Bearer hf_test"})
        assert status == 302
    finally:
        srv.signer.token = None
    resolves = srv.wait_records(site="origin", contains="/resolve/", status=401)
    assert not resolves[-1].authorization
    # Other tests of this module made unauthenticated 302s too: wait for ours, the one that
    # carried the token.
    ours = srv.wait_records(site="origin", contains="/resolve/", status=302, authorized=True)
    assert ours[-1].scheme == "https" and ours[-1].authorization


def test_hub_direct_routes_answer_like_the_hub(files: Path) -> None:
    data = (files / "small.bin").read_bytes()
    served = [Served("small.bin", len(data), hashlib.sha256(data).hexdigest())]
    commit = "0123456789abcdef0123456789abcdef01234567"
    routes = hub_direct_routes("/hf", "bench/payloads", files, served, commit)
    with Nginx(files, routes=routes) as n:
        url = f"{n.url}/hf/bench/payloads/resolve/main/small.bin"
        status, h = head_no_redirect(url, n)
        assert status == 200 and h["X-Repo-Commit"] == commit
        assert h["ETag"] == h["X-Linked-Etag"] == f'"{served[0].sha256}"'
        assert h["X-Linked-Size"] == str(len(data)) == h["Content-Length"]
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.read() == data
        tmp = n.tmp
    assert not tmp.exists(), "a temporary folder of its own is removed on stop"


def test_config_errors_are_reported_before_start(files: Path) -> None:
    with pytest.raises(ValueError):
        Nginx(files, sites=[Site("a"), Site("a")])
    with pytest.raises(ValueError):
        Nginx(files, sites=[Site("origin")], hub=Hub(files))  # no "cdn" site
    with pytest.raises(ValueError):
        Nginx(files, sites=[Site("origin", http=False)])
    with pytest.raises(RuntimeError):
        Nginx(files).ca_file  # noqa: B018


# -- tamper helpers -------------------------------------------------------------------------------
def test_tampering_always_changes_the_bytes(tmp_path: Path) -> None:
    for value in range(256):  # every byte value, the one a constant write would miss included
        assert flipped(bytes([value]), 0) != bytes([value])
    f = tmp_path / "f.bin"
    data = bytes(range(256)) * 4
    f.write_bytes(data)
    os.chmod(f, 0o444)
    before = f.stat().st_mtime_ns
    at = flip_byte(f, keep_mtime=True)
    after = f.read_bytes()
    assert at == len(data) // 2 and after[at] == data[at] ^ 0xFF
    assert after[:at] == data[:at] and after[at + 1:] == data[at + 1:]
    assert f.stat().st_mtime_ns == before
    xor_range(f, 0, 256, 0x01)
    assert all(a != b for a, b in zip(f.read_bytes()[:256], data[:256], strict=True))
    with pytest.raises(ValueError):
        xor_range(f, 0, 10, 0)
    with pytest.raises(ValueError):
        flip_byte(f, len(data))
    zero_range(f, 300, 10)
    assert f.read_bytes()[300:310] == bytes(10)
    with pytest.raises(AssertionError):
        zero_range(f, 300, 10)  # already zero: it would damage nothing


def test_log_format_is_valid_json_for_nginx(srv: Nginx) -> None:
    """Every line nginx wrote so far parses: the format is JSON-escaped end to end."""
    lines = [ln for ln in srv.access_log.read_text().splitlines() if ln.strip()]
    assert lines and all(isinstance(json.loads(ln), dict) for ln in lines)
    assert len(srv.records()) == len(lines)
