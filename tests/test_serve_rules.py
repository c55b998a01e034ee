"""The pure decisions of ``runanywhere serve``, table by table: which Host names it answers to,
what the access log masks, which CORS headers an answer gets, which tokens it refuses. The
server-level tests (tests/reliability/test_serve_trust.py) drive the same rules over HTTP."""

from __future__ import annotations

import pytest

from runanywhere.errors import ServeError
from runanywhere.serve.cors import CorsPolicy, add_headers
from runanywhere.serve.hosts import HostRules, host_name
from runanywhere.serve.masking import mask_target
from runanywhere.serve.options import check_token

HOST_HEADERS = [
    ("localhost", "localhost"), ("LOCALHOST:8765", "localhost"), ("localhost.", "localhost"),
    ("127.0.0.1:80", "127.0.0.1"), ("[::1]", "::1"), ("[::1]:8765", "::1"),
    ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"), ("models.lan", "models.lan"),
    ("::1", None), ("[::1", None), ("[models.lan]", None), ("[::1]x", None),
    ("localhost:", None), ("localhost:port", None), ("localhost:123456", None),
    ("a b", None), ("user@localhost", None), ("-x.example", None), ("x_y.example", None),
    ("", None), ("a" * 64 + ".example", None),
]


@pytest.mark.parametrize(("header", "name"), HOST_HEADERS)
def test_host_header_parsing(header: str, name: str | None) -> None:
    assert host_name(header) == name


RULES = HostRules.build("127.0.0.1", ["models.lan", "10.1.2.3", "[fd00::7]"],
                        "https://Team.Example:8443/models")
ALLOWS = [
    ("localhost:1", None, True), ("127.0.0.1", None, True), ("127.9.9.9", None, True),
    ("[::1]", None, True), ("models.lan:8765", None, True), ("10.1.2.3", None, True),
    ("[fd00::7]:80", None, True), ("team.example", None, True),
    ("192.168.1.9:8765", "192.168.1.9", True),    # the address this connection reached
    ("192.168.1.9", "::ffff:192.168.1.9", True),  # ... on a dual-stack socket
    ("192.168.1.9", "192.168.1.10", False), ("192.168.1.9", None, False),
    ("attacker.example", "127.0.0.1", False), ("localhost.attacker.example", None, False),
    ("models.lan.attacker.example", None, False), ("sub.models.lan", None, False),
    ("2130706433", None, False), ("", None, False), (None, None, True),  # no Host: not a browser
]


@pytest.mark.parametrize(("host", "reached", "allowed"), ALLOWS)
def test_host_rules(host: str | None, reached: str | None, allowed: bool) -> None:
    assert RULES.allows(host, reached) is allowed


def test_star_turns_the_host_check_off_and_bad_names_are_refused() -> None:
    assert HostRules.build("127.0.0.1", ["*"], None).allows("attacker.example")
    for bad in ("", "http://x", "x:80", "x/y", "[x]", "a b"):
        with pytest.raises(ServeError, match="--allow-host"):
            HostRules.build("127.0.0.1", [bad], None)
    wildcard = HostRules.build("0.0.0.0", [], None)
    assert not wildcard.allows("attacker.example", "10.0.0.1")
    assert wildcard.allows("10.0.0.1:8765", "10.0.0.1")


T = "s3cr3t-Tok"
MASKS = [
    ("/v1/models?token=abc", "/v1/models?token=***"),
    ("/v1/models?TOKEN=abc&x=1", "/v1/models?TOKEN=***&x=1"),
    ("/v1/models?tok%65n=abc", "/v1/models?tok%65n=***"),
    ("/v1/models?tok%2565n=abc", "/v1/models?tok%2565n=***"),
    ("/a?token=1&token=2", "/a?token=***&token=***"),
    ("/a;token=abc", "/a;token=***"),
    ("/a?x=1;sig=abc#token=def", "/a?x=1;sig=***#token=***"),
    ("/a?Sig=abc", "/a?Sig=***"),
    ("/a?tokens=abc&mytoken=def", "/a?tokens=abc&mytoken=def"),  # other names stay
    (f"/v1/models/{T}", "/v1/models/***"),
    (f"/v1/models/x?access={T}", "/v1/models/x?access=***"),
    ("/v1/models/%73%33%63%72%33%74%2D%54%6F%6B", "/v1/models/***"),
    ("/v1/models/%2573%2533cr3t-Tok", "/v1/models/***"),
    ("/blobs/sha256/ab?sig=0f0f", "/blobs/sha256/ab?sig=***"),
    ("/v1/models", "/v1/models"),
]


@pytest.mark.parametrize(("target", "logged"), MASKS)
def test_mask_target(target: str, logged: str) -> None:
    assert mask_target(target, [T]) == logged


def test_cors_headers() -> None:
    listed = CorsPolicy(("http://a.test", "http://b.test"))
    assert listed.headers("http://a.test")["Access-Control-Allow-Origin"] == "http://a.test"
    for origin in (None, "", "http://c.test", "http://a.test.evil"):
        assert listed.headers(origin) == {"Vary": "Origin"}, origin
    assert listed.headers("http://a.test")["Vary"] == "Origin"
    anyone = CorsPolicy(("*",))
    assert anyone.headers(None)["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in anyone.headers("http://a.test")
    assert CorsPolicy().headers("http://a.test") == {}
    read_only = listed.with_methods(["GET", "HEAD"]).preflight("http://a.test")
    assert read_only["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "Content-Type" not in read_only["Access-Control-Allow-Headers"]
    posting = listed.with_methods(["GET", "HEAD", "POST"]).preflight("http://a.test")
    assert posting["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS, POST"
    assert "Content-Type" in posting["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(("before", "after"), [
    ({}, "Origin"), ({"Vary": "Accept-Encoding"}, "Accept-Encoding, Origin"),
    ({"Vary": "origin"}, "origin"), ({"Vary": "Range, Origin"}, "Range, Origin"),
])
def test_vary_is_added_to_not_replaced(before: dict[str, str], after: str) -> None:
    headers = dict(before)
    add_headers(headers, {"Vary": "Origin", "Access-Control-Allow-Origin": "http://a.test"})
    assert headers["Vary"] == after and headers["Access-Control-Allow-Origin"] == "http://a.test"


@pytest.mark.parametrize(("token", "refused"), [
    (None, None), ("abc", None), ("A-b_c.d~e+f/g=", None), ("x" * 200, None),
    ("", "blank"), ("   ", "blank"), ("\t\n", "blank"), (" abc", "spaces"),
    ("abc\n", "spaces"), ("a b", "spaces"), ("caf\u00e9", "non-ASCII"), ("a\x00b", "control"),
])
def test_tokens_a_bearer_header_can_carry(token: str | None, refused: str | None) -> None:
    if refused is None:
        check_token(token, "--token")
    else:
        with pytest.raises(ServeError, match=refused):
            check_token(token, "--token")
