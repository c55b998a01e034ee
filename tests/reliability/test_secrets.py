"""Secrets in URLs: ``https://user:password@host/...`` is sent as HTTP Basic auth (as curl,
requests and pooch send it), to that origin only, and the password, like a token in a URL's
query (``?token=``, ``?sig=``, ``X-Amz-Signature=``), never shows: not in ``-v``/``-vv`` logs,
errors, ``info``, ``list``, ``cache ls``, ``--json``, ``sources.json``, any file of the cache,
or ``serve``'s ``/catalog.json``.

Real parts: nginx on 127.0.0.1 with ``auth_basic`` (a route that answers 401 without the right
user and password), the header server of ``support/tls.py`` (it records every
``Authorization`` header, over TLS too), the fault server, ``runanywhere serve`` as a process.
Every output is grepped for the password in each form it could leak in: as typed,
percent-encoded, inside the Basic header, and its first characters.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from harness.nginx import Nginx, Route
from runanywhere import ModelRegistry
from runanywhere.errors import DownloadError
from runanywhere.redact import has_secret, redact, redact_url, without_credentials
from runanywhere.transfer.http import Client, split_userinfo
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import make_registry, pull
from support.serving import cli_server
from support.terminal import cli_argv
from support.tls import HeaderServer, servers

pytestmark = pytest.mark.timeout(180, method="thread")
Catalog = Callable[[list[dict[str, Any]]], Path]

USER, PASSWORD = "alice", "p@ss w%rd#1"  # each of @, space, % and # must be percent-encoded
ENCODED = quote(PASSWORD, safe="")
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
#: Every form the password could leak in.
LEAKS = (PASSWORD, ENCODED, BASIC.split()[1], "p@ss", "p%40ss", "w%rd", "w%25rd")
DATA = os.urandom(300_000)
SHA = hashlib.sha256(DATA).hexdigest()


def assert_no_secret(text: str, where: str, leaks: tuple[str, ...] = LEAKS) -> None:
    for leak in leaks:
        assert leak not in text, f"{leak!r} shows in {where}:\n{text[:3000]}"


def assert_none_on_disk(home: Path, leaks: tuple[str, ...] = LEAKS) -> None:
    for p in home.rglob("*"):
        if p.is_file() and not p.is_symlink():
            raw = p.read_bytes()
            for leak in leaks:
                assert leak.encode() not in raw, f"{leak!r} was written to {p}"


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """nginx serving ``/private/model.bin`` to alice (her password) and a 401 to anyone else."""
    root = tmp_path_factory.mktemp("private-origin")
    (root / "model.bin").write_bytes(DATA)
    users = root.parent / f"{root.name}.users"
    users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    routes = (Route("/", folder=root / "public"), Route("/private/", folder=root, users=users))
    (root / "public").mkdir()
    with Nginx(root, tmp_path_factory.mktemp("private-nginx"), routes=routes) as srv:
        yield srv


def with_creds(url: str, user: str = USER, password: str = PASSWORD) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cli_argv("--home", str(home), *args), capture_output=True, text=True,
                       timeout=120, env=dict(os.environ))
    return r


# -- the masking function, row by row -------------------------------------------------------------
#: URL or text -> as shown.
REDACT: list[tuple[str, str]] = [
    ("https://alice:p%40ss@host/f.bin", "https://alice:***@host/f.bin"),
    ("http://alice:p%40ss@127.0.0.1:8080/a?b=1#c", "http://alice:***@127.0.0.1:8080/a?b=1#c"),
    ("https://ghp_T0KEN@host/f", "https://***@host/f"),
    ("https://:pw@host/f", "https://:***@host/f"),
    ("https://host/f?token=T&keep=1", "https://host/f?token=***&keep=1"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Credential=C&X-Amz-Signature=S"
     "&X-Amz-Security-Token=T", "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&"
     "X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***"),
    ("https://acct.blob.core.windows.net/c/b?sv=2024&sig=abc%3D", "https://acct.blob.core."
     "windows.net/c/b?sv=2024&sig=***"),
    ("https://cdn/x?Expires=1&Signature=s&Key-Pair-Id=K", "https://cdn/x?Expires=1&"
     "Signature=***&Key-Pair-Id=K"),
    ("https://h/x?tok%65n=s3cret&access_token=a&api_key=k", "https://h/x?tok%65n=***&"
     "access_token=***&api_key=***"),
    ("https://h/x?token=", "https://h/x?token="),
    ("hf://acme/tiny@main/model.onnx", "hf://acme/tiny@main/model.onnx"),
    ("failed: https://u:pw@h/f (and http://h/g?sig=z).", "failed: https://u:***@h/f (and "
     "http://h/g?sig=***)."),
    ("no URL here: user:pw@host", "no URL here: user:pw@host"),
]


@pytest.mark.parametrize(("text", "shown"), REDACT)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert has_secret(text) is (shown != text) or "://" not in text


@pytest.mark.parametrize(("url", "stored", "header"), [
    ("https://alice:p%40ss%20w@h/f?x=1", "https://h/f?x=1",
     "Basic " + base64.b64encode(b"alice:p@ss w").decode()),
    ("https://alice@h/f", "https://h/f", "Basic " + base64.b64encode(b"alice:").decode()),
    ("https://h/f", "https://h/f", None),
    ("https://h:8443/a@b", "https://h:8443/a@b", None),
])
def test_credentials_in_a_url(url: str, stored: str, header: str | None) -> None:
    """What is sent (Basic, percent-decoded, as curl sends it), what is written to disk (no
    user information), and the URL without its user information that is actually requested."""
    clean, auth = split_userinfo(url)
    assert auth == header and "@" not in clean.split("/")[2]
    assert without_credentials(url) == stored
    assert redact_url(stored) == stored


# -- Basic auth, only to its origin ----------------------------------------------------------------
def test_credentials_reach_their_origin_and_only_it(tmp_path: Path) -> None:
    """The header server records every Authorization header: the origin gets Basic auth on
    the first request and after a redirect on the same origin; a redirect to another host
    (localhost is not 127.0.0.1) goes without it."""
    with HeaderServer() as plain:
        plain.files["/landing"] = DATA
        plain.redirects["/same-host"] = "/landing"
        plain.redirects["/other-host"] = plain.url("/landing", host="localhost")
        for path in ("/same-host", "/other-host"):
            with Client(timeout=5.0) as client:
                resp = client.get(with_creds(plain.url(path)))
                assert resp.status == 200 and "@" not in resp.url
                resp.close()
        seen = [(s.host.split(":")[0], s.path, s.authorization) for s in plain.seen]
        assert seen == [("127.0.0.1", "/same-host", BASIC), ("127.0.0.1", "/landing", BASIC),
                        ("127.0.0.1", "/other-host", BASIC), ("localhost", "/landing", None)]


def test_a_redirect_from_https_to_http_is_refused_with_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with servers(tmp_path) as (tls, plain):
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # support/tls.py's CA
        plain.files["/landing"] = DATA
        tls.redirects["/down"] = plain.url("/landing")
        with Client(timeout=5.0) as client, pytest.raises(DownloadError) as e:
            client.get(with_creds(tls.url("/down")))
        assert "refusing a redirect from https to http" in str(e.value)
        assert plain.tokens() == [], "the http server never saw the request"
        assert_no_secret(str(e.value) + repr(e.value), "the error")


def test_a_pull_follows_a_cross_host_redirect_without_the_credentials(
        fault_server: FaultServer, write_catalog: Catalog, home: Path) -> None:
    """The same through a whole pull: ranges, the roster's remembered redirect target."""
    from support import fault_server as fs

    fault_server.add("landing-elsewhere", DATA)
    fault_server.add("hop", b"", fs.redirect(f"http://localhost:{fault_server.port}"
                                             "/landing-elsewhere"),
                     then=fs.redirect(f"http://localhost:{fault_server.port}/landing-elsewhere"))
    cat = write_catalog([model_entry("hop", with_creds(fault_server.url("hop")), len(DATA),
                                     SHA)])
    r = pull(make_registry(home, cat), "hop")
    assert r.success, r.error
    hops = fault_server.hits("hop")
    landings = fault_server.hits("landing-elsewhere")
    assert hops and all(h.authorization == BASIC for h in hops)
    assert landings and all(h.authorization is None for h in landings)
    assert all((h.host or "").startswith("localhost") for h in landings)


# -- never shown ----------------------------------------------------------------------------------
def test_a_password_in_a_url_is_sent_and_never_shows(private: Nginx, write_catalog: Catalog,
                                                     home: Path) -> None:
    """A catalog model and a ``pull URL`` behind Basic auth: both arrive (without the
    credentials nginx answers 401), and the password is in no output, no file, no served
    catalog."""
    url = with_creds(f"{private.url}/private/model.bin")
    cat = write_catalog([model_entry("private", url, len(DATA), SHA, description=f"from {url}")])
    outputs: dict[str, str] = {}

    def run(name: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        r = cli(home, "--catalog", str(cat), *args)
        outputs[name] = r.stdout + r.stderr
        assert (r.returncode == 0) is ok, f"{name}: {r.stdout}{r.stderr}"
        return r

    wrong = with_creds(f"{private.url}/private/model.bin", password="wr0ng " + PASSWORD)
    refused = run("pull, wrong password", "-vv", "--debug", "pull", wrong, "--sha256", SHA,
                  "--id", "refused", "--json", ok=False)  # first: no stored blob to reuse
    assert "401" in refused.stdout
    run("pull -vv", "-vv", "pull", "private")
    run("pull URL --json -vv", "-vv", "pull", url, "--sha256", SHA, "--id", "by-url", "--json")
    run("pull URL tofu", "-vv", "pull", url, "--trust-first-use", "--id", "tofu", "--json")
    for args in (("info", "private"), ("info", "private", "--json"), ("info", "by-url"),
                 ("info", "tofu", "--json"), ("list", "--json"), ("list",), ("cache", "ls"),
                 ("cache", "ls", "--json")):
        run(" ".join(args), *args)
    assert Path(json.loads(outputs["pull URL --json -vv"].splitlines()[-1])["models"][0][
        "path"]).read_bytes() == DATA
    with cli_server(home, catalogs=[cat]) as (base, _), urllib.request.urlopen(
            f"{base}/catalog.json", timeout=10) as resp:
        served = resp.read().decode()
    outputs["serve /catalog.json"] = served
    outputs["sources.json"] = (home / "sources.json").read_text()
    for where, text in outputs.items():
        assert_no_secret(text, where, (*LEAKS, "wr0ng"))
    assert_none_on_disk(home)
    # What is shown still says which URL it is, and that it had a password.
    assert f"{USER}:***@127.0.0.1" in outputs["info private"]
    served_urls = [u for m in json.loads(served)["models"] for u in m.get("mirrors", [])]
    assert not [u for u in served_urls if "@" in u], "credentials are not serve's to hand out"
    private.wait_records(1, status=401)  # the wrong password (nothing else) was refused
    asked = private.records(prefix="/private/")
    assert asked and all(r.authorization for r in asked), "every request carried the password"
    assert len(private.records(status=401)) == len(private.records(status=401, prefix="/priv"))
    assert sorted(check_cache(home)) == ["by-url", "private", "tofu"]


def test_a_token_in_a_url_query_is_masked_in_messages(fault_server: FaultServer,
                                                      write_catalog: Catalog, home: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A signed link that the server refuses: the error, the logs (a library user's handler
    and the CLI's -vv) and --json name the URL with the secrets masked, the rest of it kept."""
    url = (f"{fault_server.url('expired')}?X-Amz-Credential=AKIA0SECRET%2F20260101"
           "&X-Amz-Signature=5IGNATURE&token=T0KEN&sig=S1G&keep=visible")
    leaks = ("AKIA0SECRET", "5IGNATURE", "T0KEN", "S1G")
    fault_server.add("expired", DATA)
    from support import fault_server as fs

    fault_server.script("expired", then=fs.status(403))
    cat = write_catalog([model_entry("signed", url, len(DATA), SHA)])
    caplog.set_level(logging.DEBUG, logger="runanywhere")
    r = pull(make_registry(home, cat), "signed")
    assert isinstance(r.error, DownloadError)
    shown = str(r.error)
    assert "X-Amz-Signature=***" in shown and "keep=visible" in shown
    assert_no_secret(shown + repr(r.error) + caplog.text, "the error and the log", leaks)
    out = cli(home, "--catalog", str(cat), "-vv", "pull", "signed", "--json")
    assert out.returncode != 0 and "token=***" in out.stdout
    info = cli(home, "--catalog", str(cat), "info", "signed")
    assert "sig=***" in info.stdout
    assert_no_secret(out.stdout + out.stderr + info.stdout, "the command line", leaks)
    # Logged URLs too: the primary refuses, the log says which mirror is next (its token masked).
    fault_server.add("mirror-ok", DATA)
    mirror = f"{fault_server.url('mirror-ok')}?token=M1RR0R-T0KEN"
    mirrored = write_catalog([model_entry("mirrored", url, len(DATA), SHA, mirrors=[mirror])])
    caplog.clear()
    assert pull(make_registry(home, mirrored), "mirrored").success
    assert "switching to the mirror" in caplog.text and "token=***" in caplog.text
    again = cli(home, "--catalog", str(mirrored), "-vv", "pull", "mirrored", "--json")
    assert again.returncode == 0, again.stderr
    assert_no_secret(caplog.text + again.stderr, "the logs", (*leaks, "M1RR0R"))
    bad_catalog = cli(home, "--catalog", f"http://127.0.0.1:9/catalog.json?token={leaks[2]}",
                      "list")
    assert bad_catalog.returncode != 0 and "token=***" in bad_catalog.stderr
    assert_no_secret(bad_catalog.stderr, "a catalog URL's error", leaks)
    assert_none_on_disk(home, ("wr0ng",))
    assert check_cache(home) == ["mirrored"]


def test_the_registry_remembers_a_source_without_its_password(private: Nginx,
                                                              home: Path) -> None:
    """``registry.fetch`` with credentials: the file arrives; ``sources.json`` keeps the URL
    without them, so a later run knows the model by id (from the cache), and a download of it
    is answered 401 and says how to give them."""
    url = with_creds(f"{private.url}/private/model.bin")
    reg = ModelRegistry(home=home, include_builtin=False)
    import asyncio

    got = asyncio.run(reg.fetch(url, sha256=SHA, model_id="remembered"))
    assert got.success and got.unwrap().read_bytes() == DATA
    stored = json.loads((home / "sources.json").read_text())["models"][0]
    assert stored["url"] == f"{private.url}/private/model.bin"
    later = ModelRegistry(home=home, include_builtin=False)
    assert asyncio.run(later.download_model("remembered")).unwrap().read_bytes() == DATA
    asyncio.run(later.clear_cache("remembered"))
    again = asyncio.run(ModelRegistry(home=home, include_builtin=False).download_model(
        "remembered"))
    assert isinstance(again.error, DownloadError) and "401" in str(again.error)
    assert "asks for credentials" in str(again.error)
    assert_none_on_disk(home)
