"""The trust rules of ``runanywhere serve`` (SECURITY.md, "Exposing a cache: serve").

* The ``Host`` header must name the server: loopback names, the address it is bound to (or the
  one the connection reached), ``--allow-host`` names; anything else gets 403, so a page on
  attacker.example that rebinds its name to 127.0.0.1 reaches nothing (DNS rebinding).
* A blank or whitespace-only token (``--token``, ``RUNANYWHERE_SERVE_TOKEN``) is refused at start.
* The access log never shows the token or a link's signature, however the query spells its
  name, and wherever in the target the token itself appears.
* A client that leaves mid-response, or sends oversized headers, leaves exactly one log line
  and never a traceback.
* Answers whose CORS headers depend on the Origin say so with ``Vary: Origin``.

Requests are raw (``http.client`` with the Host header set by hand, or a socket), as a browser
under DNS rebinding or a hostile client would send them. The log tests read the stderr of the
real command in a child process.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runanywhere import ModelRegistry
from runanywhere.errors import ServeError
from runanywhere.serve import ModelServer, ServeOptions
from support.catalogs import model_entry
from support.serving import InProcessServer, StderrLines, cli_server
from support.silero_wheel import ONNX_SHA256, silero_data_dir

TOKEN = "tok-7f3a9c1e5b"
BLOB = f"/blobs/sha256/{ONNX_SHA256}"


def request(url: str, target: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """A request whose target and Host are exactly as given (no client fills them in)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def silero_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve-trust") / "home"
    ModelRegistry(home=home).import_model("silero-vad", silero_data_dir() / "silero_vad.onnx")
    return home


@pytest.fixture
def registry(silero_home: Path) -> ModelRegistry:
    return ModelRegistry(home=silero_home)


# -- the Host header (DNS rebinding) -------------------------------------------------------------
FOREIGN_HOSTS = ["attacker.example", "attacker.example:{port}", "ATTACKER.example",
                 "localhost.attacker.example", "127.0.0.1.nip.io:{port}", "localhost:{port}.x",
                 "[::1].attacker.example", "evil@127.0.0.1", "127.0.0.1 attacker.example", ""]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_a_foreign_host_is_refused_without_a_token(registry: ModelRegistry, host: str) -> None:
    """The DNS-rebinding case: no token, a page whose name now resolves to 127.0.0.1."""
    with InProcessServer(registry, cors=("*",)) as s:
        value = host.format(port=port_of(s.url))
        for target in ("/v1/models", BLOB, "/catalog.json", "/acme/x/resolve/main/a.onnx"):
            status, _, body = request(s.url, target, {"Host": value, "Origin": "http://x.test"})
            assert status in (400, 403), (value, target, status)
            assert b"silero" not in body and len(body) < 1000, (value, target)
            if status == 403:
                assert "--allow-host" in json.loads(body)["error"]
        status, headers, _ = request(s.url, BLOB, {"Host": value, "Origin": "http://x.test",
                                                   "Access-Control-Request-Method": "GET"},
                                     method="OPTIONS")
        assert status in (400, 403) and "Access-Control-Allow-Origin" not in headers


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "LocalHost:{port}",
                                  "localhost.", "127.0.0.1", "127.0.0.1:{port}", "[::1]",
                                  "[::1]:{port}", "[::1]:1"])
def test_loopback_names_are_answered(registry: ModelRegistry, host: str) -> None:
    with InProcessServer(registry) as s:
        status, _, body = request(s.url, BLOB, {"Host": host.format(port=port_of(s.url))})
        assert status == 200 and hashlib.sha256(body).hexdigest() == ONNX_SHA256


def test_healthz_answers_any_host(registry: ModelRegistry) -> None:
    with InProcessServer(registry) as s:
        assert request(s.url, "/healthz", {"Host": "attacker.example"})[0] == 200
        assert request(s.url, "/v1/models", {"Host": "attacker.example"})[0] == 403


def test_allow_host_adds_names_and_star_turns_the_check_off(registry: ModelRegistry) -> None:
    with InProcessServer(registry, allow_hosts=("models.lan", "Box.Example")) as s:
        port = port_of(s.url)
        for ok in ("models.lan", f"models.lan:{port}", "box.example", "localhost"):
            assert request(s.url, BLOB, {"Host": ok})[0] == 200, ok
        for bad in ("attacker.example", "sub.models.lan", "models.lan.attacker.example"):
            assert request(s.url, BLOB, {"Host": bad})[0] == 403, bad
    with InProcessServer(registry, allow_hosts=("*",)) as s:
        assert request(s.url, BLOB, {"Host": "attacker.example"})[0] == 200


def test_the_public_url_host_is_allowed(registry: ModelRegistry) -> None:
    with InProcessServer(registry, public_url="https://models.team.example/cache") as s:
        assert request(s.url, BLOB, {"Host": "models.team.example"})[0] == 200
        assert request(s.url, BLOB, {"Host": "attacker.example"})[0] == 403


@pytest.mark.parametrize("value", ["", "-", "a b", "http://x", "x:80", "x/y"])
def test_a_malformed_allow_host_is_refused(registry: ModelRegistry, value: str) -> None:
    with pytest.raises(ServeError, match="--allow-host"):
        ModelServer(registry, ServeOptions(allow_hosts=(value,)))


def test_allow_host_on_the_command_line(silero_home: Path) -> None:
    with cli_server(silero_home, "--allow-host", "models.lan", "--allow-host", "box.lan",
                    "--no-access-log") as (url, _):
        for ok in ("models.lan", "box.lan", "127.0.0.1"):
            assert request(url, BLOB, {"Host": ok})[0] == 200
        status, _, body = request(url, BLOB, {"Host": "attacker.example"})
        assert status == 403
        error = json.loads(body)["error"]
        assert "attacker.example" in error and "--allow-host" in error
    with cli_server(silero_home, "--allow-host", "*", "--no-access-log") as (url, _):
        assert request(url, BLOB, {"Host": "attacker.example"})[0] == 200


# -- blank tokens --------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "env", "named"), [
    (["--token", ""], {}, "--token"),
    (["--token", " "], {}, "--token"),
    (["--token", "\t \t"], {}, "--token"),
    ([], {"RUNANYWHERE_SERVE_TOKEN": ""}, "RUNANYWHERE_SERVE_TOKEN"),
    ([], {"RUNANYWHERE_SERVE_TOKEN": "   "}, "RUNANYWHERE_SERVE_TOKEN"),
    (["--host", "0.0.0.0", "--token", "  "], {}, "--token"),
], ids=["flag-empty", "flag-space", "flag-tabs", "env-empty", "env-spaces", "off-loopback"])
def test_a_blank_token_is_refused_at_start(silero_home: Path, args: list[str],
                                           env: dict[str, str], named: str) -> None:
    r = subprocess.run([sys.executable, "-m", "runanywhere", "--home", str(silero_home),
                        "serve", "--port", "0", *args], capture_output=True, text=True,
                       timeout=60, env={**os.environ, **env})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert named in lines[0] and "blank" in lines[0]
    assert "listening" not in r.stderr


@pytest.mark.parametrize("token", ["", " ", "\n", " secret", "secret\n", "sec ret", "sécret"])
def test_a_token_that_cannot_travel_in_a_header_is_refused(registry: ModelRegistry,
                                                           token: str) -> None:
    with pytest.raises(ServeError, match="token"):
        ModelServer(registry, ServeOptions(token=token))


# -- the access log ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logged_server(silero_home: Path) -> Iterator[tuple[str, StderrLines]]:
    """The command with a token and its access log, stderr read as it comes."""
    with cli_server(silero_home, "--token", TOKEN, "--cors", "http://app.test") as (url, proc):
        assert proc.stderr is not None
        log = StderrLines(proc.stderr)
        yield url, log
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
        log.wait_closed()


def _signature(url: str) -> str:
    _, _, body = request(url, "/catalog.json", {"Host": "127.0.0.1",
                                                "Authorization": f"Bearer {TOKEN}"})
    (model,) = json.loads(body)["models"]
    sig: str = model["url"].split("?sig=")[1]
    return sig


SPELLINGS = {
    "plain": "/v1/models?token={t}",
    "upper-case": "/v1/models?TOKEN={t}",
    "mixed-case": "/v1/models?Token={t}",
    "encoded-letter": "/v1/models?tok%65n={t}",
    "encoded-first": "/v1/models?%74oken={t}",
    "encoded-upper-hex": "/v1/models?%74%6F%6B%65%6E={t}",
    "double-encoded": "/v1/models?tok%2565n={t}",
    "repeated": "/v1/models?token=nope&token={t}&token={t}",
    "after-another": "/v1/models?x=1&token={t}",
    "semicolon": "/v1/models?x=1;token={t}",
    "path-parameter": "/v1/models;token={t}",
    "in-the-path": "/v1/models/{t}",
    "deep-in-the-path": "/v1/models/silero-vad/files/{t}/x.onnx",
    "encoded-in-the-path": "/v1/models/{t_encoded}",
    "encoded-value": "/v1/models?token={t_encoded}",
    "after-a-fragment-mark": "/v1/models?x=1#token={t}",
    "as-another-key": "/v1/models?access={t}",
    "signature": BLOB + "?sig={sig}",
    "signature-upper-case": BLOB + "?SIG={sig}",
    "signature-encoded": BLOB + "?s%69g={sig}",
}


@pytest.mark.parametrize("case", SPELLINGS)
def test_the_access_log_masks_the_token(logged_server: tuple[str, StderrLines],
                                        case: str) -> None:
    url, log = logged_server
    sig = _signature(url)
    encoded = "".join(f"%{b:02X}" for b in TOKEN.encode())
    target = SPELLINGS[case].format(t=TOKEN, t_encoded=encoded, sig=sig)
    marker = f"case-{case}-{uuid.uuid4().hex[:8]}"
    request(url, target, {"Host": "127.0.0.1", "User-Agent": marker})
    line = log.wait_for(marker)
    assert TOKEN not in line and encoded not in line and sig not in line, line
    assert "***" in line, line


def test_the_access_log_never_shows_the_authorization_header(
        logged_server: tuple[str, StderrLines]) -> None:
    url, log = logged_server
    marker = f"case-header-{uuid.uuid4().hex[:8]}"
    status, _, _ = request(url, "/v1/models", {"Host": "127.0.0.1", "User-Agent": marker,
                                               "Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    line = log.wait_for(marker)
    assert TOKEN not in line and "/v1/models" in line and " 200 " in line
    marker = f"case-agent-{uuid.uuid4().hex[:8]}"
    request(url, "/v1/models", {"Host": "127.0.0.1", "User-Agent": f"{marker} {TOKEN}"})
    assert TOKEN not in log.wait_for(marker)
    assert not log.matching(TOKEN)


# -- clients that leave, headers too big ---------------------------------------------------------
@pytest.fixture(scope="module")
def big_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A home holding one 48 MiB model (big enough that a body takes many sendfile pieces),
    and the catalog that names it."""
    folder = tmp_path_factory.mktemp("serve-big")
    data = os.urandom(48 << 20)
    src = folder / "big.bin"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    catalog = folder / "catalog.json"
    catalog.write_text(json.dumps({"format_version": 1, "models": [
        model_entry("big", "https://origin.test/big.bin", len(data), digest)]}))
    ModelRegistry(home=folder / "home", catalogs=[catalog], include_builtin=False
                  ).import_model("big", src)
    return folder / "home", catalog, digest


@contextlib.contextmanager
def _server_log(home: Path, catalog: Path) -> Iterator[tuple[str, StderrLines]]:
    with cli_server(home, catalogs=[catalog]) as (url, proc):
        assert proc.stderr is not None
        log = StderrLines(proc.stderr)
        request(url, "/healthz", {"Host": "127.0.0.1", "User-Agent": "ready"})
        log.wait_for('"ready"')  # the banner and the first lines are in
        yield url, log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130
        log.wait_closed()


def _is_access_line(line: str) -> bool:
    return '"' in line and line.split(" ", 3)[2] in ("127.0.0.1", "::1")


def test_clients_leaving_mid_response_leave_one_line_each(
        big_home: tuple[Path, Path, str]) -> None:
    home, catalog, digest = big_home
    with _server_log(home, catalog) as (url, log):
        port = port_of(url)
        for i in range(24):
            marker = f"leaver-{i}"
            c = socket.create_connection(("127.0.0.1", port))
            c.sendall(f"GET /blobs/sha256/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"User-Agent: {marker}\r\n\r\n".encode())
            want = (1, 1000, 70_000, 3 << 20)[i % 4]  # the status line .. well into the body
            got = 0
            while got < want:
                chunk = c.recv(1 << 16)
                assert chunk, "the server closed first"
                got += len(chunk)
            if i % 2:  # half leave with a reset, half with an orderly close
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            log.wait_for(f'"{marker}"')
        request(url, "/healthz", {"Host": "127.0.0.1", "User-Agent": "last"})
        log.wait_for('"last"')
    lines = log.wait_closed()
    assert not [line for line in lines if "Traceback" in line or "Error" in line]
    for i in range(24):
        assert len([line for line in lines if f'"leaver-{i}"' in line]) == 1, i
    assert all(_is_access_line(line) for line in lines[4:-1]), "\n".join(lines)


BAD_REQUESTS = {
    "header-line-too-long": b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                            + b"a" * 100_000 + b"\r\n\r\n",
    "too-many-headers": b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
    "request-line-too-long": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
}


def test_oversized_and_malformed_requests_leave_one_line_each(
        big_home: tuple[Path, Path, str]) -> None:
    home, catalog, _ = big_home
    with _server_log(home, catalog) as (url, log):
        port = port_of(url)
        for name, data in BAD_REQUESTS.items():
            before = len(log.lines)
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.settimeout(10)
                with contextlib.suppress(ConnectionError):  # answered before all was sent
                    c.sendall(data)
                answer = c.recv(1 << 16)
            assert answer.startswith(b"HTTP/1."), name
            status = int(answer.split()[1])
            assert 400 <= status < 500, (name, status)
            marker = f"after-{name}"
            request(url, "/healthz", {"Host": "127.0.0.1", "User-Agent": marker})
            log.wait_for(marker)
            between = [line for line in log.lines[before:] if marker not in line]
            assert len(between) == 1, (name, between)
            assert f" {status} " in between[0], (name, between)
    lines = log.wait_closed()
    assert not [line for line in lines if "Traceback" in line or "Error handling" in line]
    assert all(_is_access_line(line) for line in lines[4:-1]), "\n".join(lines)


# -- CORS answers that depend on the Origin say so ------------------------------------------------
def _vary(headers: dict[str, str]) -> list[str]:
    return [v.strip().lower() for v in headers.get("Vary", "").split(",") if v.strip()]


@pytest.mark.parametrize("origin", [None, "http://app.test", "http://evil.test"])
def test_per_origin_answers_vary_on_origin(registry: ModelRegistry, origin: str | None) -> None:
    """A shared cache must not hand the answer meant for one origin (or for none) to another."""
    with InProcessServer(registry, cors=("http://app.test", "http://other.test")) as s:
        sent: dict[str, Any] = {"Host": "127.0.0.1", **({"Origin": origin} if origin else {})}
        for target, method, extra in ((BLOB, "GET", {}), ("/v1/models", "GET", {}),
                                      ("/v1/models/nope", "GET", {}),
                                      (BLOB, "GET", {"If-None-Match": f'"{ONNX_SHA256}"'}),
                                      (BLOB, "OPTIONS", {"Access-Control-Request-Method": "GET"}),
                                      ("/healthz", "GET", {})):
            status, headers, _ = request(s.url, target, {**sent, **extra}, method=method)
            assert "origin" in _vary(headers), (origin, target, method, status, headers)
            allowed = headers.get("Access-Control-Allow-Origin")
            assert allowed == (origin if origin == "http://app.test" else None), headers


def test_any_origin_answers_the_same_to_everyone(registry: ModelRegistry) -> None:
    with InProcessServer(registry, cors=("*",)) as s:
        for sent in ({}, {"Origin": "http://a.test"}, {"Origin": "http://b.test"}):
            _, headers, _ = request(s.url, BLOB, {"Host": "127.0.0.1", **sent})
            assert headers["Access-Control-Allow-Origin"] == "*"
            assert "origin" not in _vary(headers)
    with InProcessServer(registry) as s:  # no CORS at all: nothing depends on the Origin
        _, headers, _ = request(s.url, BLOB, {"Host": "127.0.0.1", "Origin": "http://a.test"})
        assert "Access-Control-Allow-Origin" not in headers and not _vary(headers)
