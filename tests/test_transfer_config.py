"""``FetchConfig`` in groups (streams, retry, stalls, auth), the flat keywords of 0.2 as
deprecated aliases, and ``loader_config``: the one rule that puts a loader's configuration
together from what the caller gave, the settings and the Hub's token."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import pytest

from runanywhere import FetchConfig, ModelLoader, Settings
from runanywhere.retry import RetryPolicy
from runanywhere.transfer import Auth, Stalls, Streams
from runanywhere.transfer.config import FLAT_NAMES, loader_config, replace_flat

HUB = (("https", "huggingface.co", 443),)
MINE = (("https", "corp.example", 443),)


def test_the_groups_keep_the_defaults_of_0_2() -> None:
    c = FetchConfig()
    # max_connections: 16 in 0.2, 32 since growth doubles by what streams deliver (issue 26)
    assert (c.streams.connections, c.streams.max_connections, c.streams.chunk_size) == (
        8, 32, 2**20)
    assert (c.streams.split_threshold, c.streams.min_part, c.streams.piece_size) == (
        32 * 2**20, 8 * 2**20, None)
    assert (c.retry.attempts, c.retry.delay, c.retry.cap) == (3, 1.0, 30.0)
    assert (c.stalls.timeout, c.stalls.min_speed, c.stalls.window) == (60.0, 16 * 1024, 20.0)
    assert (c.auth.token, c.auth.origins, c.durable, c.flush_every) == (None, (), True,
                                                                        64 * 2**20)


#: Each flat keyword of 0.2, a value for it, and where it must land.
FLAT: list[tuple[str, Any]] = [
    ("connections", 3), ("max_connections", 5), ("split_threshold", 2**20),
    ("min_part", 2**19), ("piece_size", 2**22), ("chunk_size", 2**16),
    ("retry_attempts", 7), ("retry_delay", 0.25), ("retry_cap", 9.0), ("timeout", 5.0),
    ("min_speed", 1000.0), ("stall_window", 2.0), ("token", "tok"),
    ("token_origins", [("https", "corp.example", 443)]),
]


def test_every_flat_name_is_listed() -> None:
    assert {name for name, _ in FLAT} == set(FLAT_NAMES)


@pytest.mark.parametrize(("name", "value"), FLAT)
def test_a_flat_keyword_still_works_with_a_deprecation_warning(name: str, value: Any) -> None:
    group, field = FLAT_NAMES[name]
    with pytest.warns(DeprecationWarning, match=f"{name}=.*{group}="):
        c = FetchConfig(**{name: value})
    expected = tuple(value) if isinstance(value, list) else value
    assert getattr(getattr(c, group), field) == expected
    with pytest.warns(DeprecationWarning, match=f"{group}.{field}"):
        assert getattr(c, name) == expected, "reading the old attribute"


def test_flat_keywords_apply_over_the_groups_given_and_through_replace() -> None:
    with pytest.warns(DeprecationWarning):
        c = FetchConfig(streams=Streams(connections=2, chunk_size=4096), connections=6)
    assert (c.streams.connections, c.streams.chunk_size) == (6, 4096)
    with pytest.warns(DeprecationWarning):
        d = dataclasses.replace(c, retry_delay=0.5)  # how 0.2's users changed one field
    assert d.retry.delay == 0.5 and d.streams == c.streams


def test_the_new_form_warns_nothing_and_a_typo_is_an_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FetchConfig(streams=Streams(connections=2), retry=RetryPolicy(attempts=1),
                    stalls=Stalls(timeout=1.0), auth=Auth("t", MINE), durable=False)
        replace_flat(FetchConfig(), connections=2, durable=False)  # the tools' form
        # a setting newer than the flat keywords: tools name it flat, code by its group
        assert replace_flat(FetchConfig(), wide_start=None).streams.wide_start is None
    with pytest.raises(TypeError, match="conections"):
        FetchConfig(conections=2)
    with pytest.raises(TypeError, match="wide_start"):
        FetchConfig(wide_start=None)


def test_a_token_never_shows_in_a_repr() -> None:
    assert "s3cret" not in repr(FetchConfig(auth=Auth("s3cret", MINE)))


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return dataclasses.replace(Settings.from_env(), home=tmp_path, **kw)


#: (id, fetch_config given, settings fields, seed keywords) -> what the loader ends with, or the
#: ValueError's words.
MERGE: list[tuple[str, FetchConfig | None, dict[str, Any], dict[str, Any], Any]] = [
    ("defaults", None, {}, {}, {"streams.connections": 8, "durable": True}),
    ("the seed's keywords", None, {}, {"chunk_size": 4096, "retry_attempts": 1,
                                       "retry_delay": 0.1, "timeout": 5.0},
     {"streams.chunk_size": 4096, "retry.attempts": 1, "retry.delay": 0.1,
      "stalls.timeout": 5.0}),
    ("a keyword equal to the config's", FetchConfig(stalls=Stalls(timeout=5.0)), {},
     {"timeout": 5.0}, {"stalls.timeout": 5.0}),
    ("a keyword against the config's", FetchConfig(stalls=Stalls(timeout=5.0)), {},
     {"timeout": 6.0}, "timeout given both as an argument and in fetch_config"),
    ("settings' connections", None, {"connections": 12}, {},
     {"streams.connections": 12, "streams.max_connections": 12}),
    ("the same connections twice", FetchConfig(streams=Streams(connections=12)),
     {"connections": 12}, {}, {"streams.connections": 12}),
    ("two different connections", FetchConfig(streams=Streams(connections=6)),
     {"connections": 12}, {}, "connections given twice"),
    ("durability from the settings", None, {"durable": False}, {}, {"durable": False}),
    ("a fetch may not skip fsync", FetchConfig(durable=False), {"durable": True}, {},
     "durability is a setting of the cache"),
    ("the Hub's token to the Hub", None, {}, {}, {"auth.token": "hub", "auth.origins": HUB}),
    ("a token of the caller's own with its origins", FetchConfig(auth=Auth("mine", MINE)), {},
     {}, {"auth.token": "mine", "auth.origins": MINE}),
    ("a token of the caller's own, no origins: the Hub's", FetchConfig(auth=Auth("mine")), {},
     {}, {"auth.token": "mine", "auth.origins": HUB}),
    ("origins without a token do not get the Hub's", FetchConfig(auth=Auth(None, MINE)), {},
     {}, {"auth.token": "hub", "auth.origins": HUB}),
]


@pytest.mark.parametrize(("given", "fields", "seed", "expected"), [m[1:] for m in MERGE],
                         ids=[m[0] for m in MERGE])
def test_loader_config(tmp_path: Path, given: FetchConfig | None, fields: dict[str, Any],
                       seed: dict[str, Any], expected: Any) -> None:
    s = settings(tmp_path, **fields)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            loader_config(given, s, token="hub", token_origins=HUB, **seed)
        return
    c = loader_config(given, s, token="hub", token_origins=HUB, **seed)
    for path, value in expected.items():
        got: Any = c
        for part in path.split("."):
            got = getattr(got, part)
        assert got == value, path


def test_the_loader_takes_the_seed_keywords_into_its_config(tmp_path: Path) -> None:
    loader = ModelLoader(chunk_size=2**16, retry_attempts=1, retry_delay=0.2, timeout=9.0,
                         settings=settings(tmp_path))
    c = loader.config
    assert (c.streams.chunk_size, c.retry.attempts, c.retry.delay, c.stalls.timeout) == (
        2**16, 1, 0.2, 9.0)
    with pytest.raises(ValueError, match="given both"):
        ModelLoader(timeout=9.0, fetch_config=FetchConfig(stalls=Stalls(timeout=3.0)),
                    settings=settings(tmp_path))
