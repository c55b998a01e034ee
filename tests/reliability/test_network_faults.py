"""Every way a server can misbehave ends in a correct file or a typed error, never in a bad entry.

Each case serves a fresh random file from the tests' own fault server (``support/fault_server.py``)
and pulls it through the public registry. A *recovery* case breaks one (or every) answer in a way
a client can survive and must end with the right bytes, fetched about once. A *failure* case must
end with the typed error, nothing visible in the cache, and no known-bad partial kept. Every case
ends with ``check_cache``.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.net import free_port
from runanywhere import ModelRegistry
from runanywhere.errors import DownloadError, IntegrityError, ModelError
from support import fault_server as fs
from support.catalogs import model_entry
from support.fault_server import FaultServer
from support.invariants import check_cache
from support.pulls import MiB, covered, fast_config, make_registry, partial_files, pull

# A hung download thread would also hang asyncio.run's executor shutdown: dump and exit.
pytestmark = pytest.mark.timeout(120, method="thread")

SIZE = 2 * MiB + 12_345  # above fast_config's split threshold: 8 ranges of about 270 kB
SMALL = 300_000  # below it: one connection, so request counts are exact


class Case:
    """A model on the fault server plus a registry on a fresh cache, for one test."""

    def __init__(self, server: FaultServer, tmp_path: Path, write_catalog: Callable[..., Path],
                 name: str, size: int = SIZE, *, with_hash: bool = True,
                 mirrors: tuple[str, ...] = (), primary: str | None = None,
                 estimate: bool = False, **loader: Any) -> None:
        """``mirrors`` are names served with the same bytes; ``primary`` overrides the URL;
        ``estimate``: the catalog gives a ``size_estimate`` (a little off), not the size."""
        self.server = server
        self.name = name
        self.path = "/" + name
        self.data = os.urandom(size)
        self.sha = hashlib.sha256(self.data).hexdigest()
        self.url = server.add(name, self.data)
        mirror_urls = [server.add(m, self.data) for m in mirrors]
        self.home = tmp_path / "home"
        entry = model_entry(name, primary or self.url, size, self.sha if with_hash else None,
                            mirrors=mirror_urls)
        if estimate:
            entry["size_estimate"] = entry.pop("size") - 1000
        self.catalog = write_catalog([entry])
        self.registry: ModelRegistry = make_registry(self.home, self.catalog, **loader)

    def script(self, *script: fs.Behaviour, then: fs.Behaviour | None = None) -> Case:
        self.server.script(self.name, *script, then=then)
        return self

    def pull(self) -> Any:
        return pull(self.registry, self.name)

    def served(self) -> int:
        return self.server.bytes_served(self.path)

    def requests(self) -> int:
        return self.server.requests(self.path)

    def assert_ok(self, result: Any) -> None:
        assert result.success, f"{self.name}: {result.error!r}"
        assert Path(result.value).read_bytes() == self.data
        assert check_cache(self.home, {self.name: {Path(result.value).name: self.sha}}) == [
            self.name]

    def assert_failed(self, result: Any, kind: type[ModelError]) -> ModelError:
        assert not result.success, f"{self.name}: a misbehaving server was accepted"
        err = result.error
        assert isinstance(err, kind), f"{self.name}: {err!r} is not a {kind.__name__}"
        assert self.name not in check_cache(self.home)
        assert self.name not in [e.model_id for e in self.registry.cache.entries()]
        if isinstance(err, IntegrityError):
            assert partial_files(self.home, self.sha) == [], "a known-bad partial was kept"
        return err


@pytest.fixture
def case(fault_server: FaultServer, tmp_path: Path, write_catalog: Callable[..., Path]
         ) -> Callable[..., Case]:
    def make(name: str, size: int = SIZE, **kw: Any) -> Case:
        return Case(fault_server, tmp_path, write_catalog, name, size, **kw)
    return make


# -- recoveries: (script for the first requests, behaviour for all later ones) --------------------
RECOVER: dict[str, tuple[list[fs.Behaviour], fs.Behaviour | None]] = {
    "reset-before-body": ([fs.reset(0)], None),
    "reset-mid-body": ([fs.reset(100_000)], None),
    "reset-on-a-later-range": ([fs.ok(), fs.ok(), fs.reset(50_000)], None),
    "stall-before-body": ([fs.stall(0)], None),
    "stall-mid-body": ([fs.stall(40_000)], None),
    "trickle-body": ([fs.trickle(0.2)], None),
    "trickle-headers": ([fs.trickle_head(0.2)], None),
    "fewer-bytes-than-content-length": ([fs.short(10_000)], None),
    "more-bytes-than-content-length": ([], fs.extra(5000)),
    "no-content-length-garbage-after": ([], fs.no_length(777)),
    "content-length-too-small-206": ([], fs.lie_length(-5)),
    "content-length-too-large-206": ([fs.lie_length(+5)], None),
    "range-ignored-200": ([], fs.ignore_range()),
    "range-ignored-then-reset": ([fs.ok(), fs.reset(50_000)], fs.ignore_range()),
    "shorter-range-than-asked": ([], fs.partial_range(150_000)),
    "content-range-elsewhere": ([fs.wrong_range()], None),
    "http-500-once": ([fs.status(500)], None),
    "http-502-once": ([fs.status(502)], None),
    "http-503-once": ([fs.status(503)], None),
    "http-429-once": ([fs.status(429)], None),
    "chunked-encoding": ([], fs.chunked()),
    "garbage-status-line": ([fs.garbage()], None),
    "silent-server": ([fs.silent()], None),
    "hangup-without-answer": ([fs.hangup()], None),
    "redirect-then-ok": ([fs.redirect("/redirect-then-ok-target")], None),
}


@pytest.mark.parametrize("name", sorted(RECOVER))
def test_recovers(case: Callable[..., Case], fault_server: FaultServer, name: str) -> None:
    script, then = RECOVER[name]
    c = case(name).script(*script, then=then)
    target = fault_server.add(f"{name}-target", c.data)
    r = c.pull()
    c.assert_ok(r)
    served = c.served() + fault_server.bytes_served(target.rsplit("/", 1)[1])
    if name == "range-ignored-then-reset":
        # Range stops working mid-way: each range connection already open gets the whole file
        # (on loopback, its socket buffers swallow 2 MiB at once) and one of them becomes the
        # single stream. Nothing is asked again after that.
        assert c.requests() <= 2 + 8
        return
    # Resumed, not restarted: about one file's worth crossed the wire (plus the fault's waste).
    assert served <= 1.5 * SIZE + 10_000, f"{name}: {served} bytes for a {SIZE}-byte file"


# -- failures: (script, then, expected error) -----------------------------------------------------
FAIL: dict[str, tuple[fs.Behaviour, type[ModelError]]] = {
    "http-404": (fs.status(404), DownloadError),
    "http-403": (fs.status(403), DownloadError),
    "http-410": (fs.status(410), DownloadError),
    "http-416": (fs.status(416), DownloadError),
    "gzip-not-asked-for": (fs.gzip(), DownloadError),
    "html-page-200": (fs.html(), IntegrityError),
    "html-page-200-no-length": (fs.html(length=False), IntegrityError),
    "html-page-padded-to-size": (fs.html(pad_to=SIZE), IntegrityError),
    "empty-body": (fs.empty(), IntegrityError),
    "empty-body-no-length": (fs.empty(length=False), DownloadError),
    "whole-file-length-too-large": (fs.lie_length(+100, whole=True), IntegrityError),
    "whole-file-length-too-small": (fs.lie_length(-100, whole=True), IntegrityError),
    "whole-file-no-length-extra-bytes": (fs.no_length(100, whole=True), IntegrityError),
    "wrong-total-in-content-range": (fs.wrong_total(), IntegrityError),
    "http-503-forever": (fs.status(503), DownloadError),
    "http-500-forever": (fs.status(500), DownloadError),
    "reset-forever": (fs.reset(0), DownloadError),
    "garbage-forever": (fs.garbage(), DownloadError),
    "hangup-forever": (fs.hangup(), DownloadError),
    "redirect-loop": (fs.redirect("/redirect-loop"), DownloadError),
    "redirect-to-file-url": (fs.redirect("file:///etc/passwd"), DownloadError),
    "redirect-to-ftp-url": (fs.redirect("ftp://127.0.0.1/model.bin"), DownloadError),
    "trickle-forever": (fs.trickle(0.2), DownloadError),
}
#: Cases that take one stall window per attempt: fewer attempts keep them short.
FEW_ATTEMPTS = {"trickle-forever"}


@pytest.mark.parametrize("name", sorted(FAIL))
def test_fails_typed(case: Callable[..., Case], name: str) -> None:
    behaviour, kind = FAIL[name]
    c = case(name, retry_attempts=1 if name in FEW_ATTEMPTS else 3).script(then=behaviour)
    t0 = time.monotonic()
    err = c.assert_failed(c.pull(), kind)
    assert str(err) and "\n" not in str(err) and "\r" not in str(err)
    if name == "trickle-forever":
        assert "stalled" in str(err)
    assert time.monotonic() - t0 < 30


def test_wrong_bytes_of_the_right_size_fail_and_the_partial_is_discarded(
        case: Callable[..., Case], fault_server: FaultServer) -> None:
    c = case("wrong-bytes")
    fault_server.set_data(c.name, os.urandom(SIZE))
    c.assert_failed(c.pull(), IntegrityError)
    assert partial_files(c.home) == []


def test_redirect_chain_longer_than_ten_fails(case: Callable[..., Case],
                                              fault_server: FaultServer) -> None:
    c = case("redirect-chain")
    for i in range(12):
        fault_server.add(f"hop{i}", b"", then=fs.redirect(f"/hop{i + 1}"))
    c.script(then=fs.redirect("/hop0"))
    c.assert_failed(c.pull(), DownloadError)


def test_client_errors_are_final_without_retries(case: Callable[..., Case]) -> None:
    for code in (400, 401, 403, 404, 410):
        c = case(f"final-{code}", SMALL).script(then=fs.status(code))
        err = c.assert_failed(c.pull(), DownloadError)
        assert getattr(err, "status", None) == code
        assert c.requests() == 1, f"HTTP {code} was retried"


def test_server_errors_are_retried_then_given_up(case: Callable[..., Case]) -> None:
    c = case("retried-503", SMALL, retry_attempts=3).script(then=fs.status(503))
    c.assert_failed(c.pull(), DownloadError)
    assert c.requests() == 1 + 3


# -- Retry-After ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [503, 429])
def test_retry_after_seconds_is_honoured(case: Callable[..., Case], code: int) -> None:
    c = case(f"retry-after-{code}", SMALL).script(fs.status(code, retry_after="1"))
    c.assert_ok(c.pull())
    refused, retried = c.server.hits(c.path)[:2]
    assert refused.status == code and retried.status in (200, 206)
    # The retry came after the server's answer, at least Retry-After later (retry_delay is 10 ms).
    assert retried.arrived - refused.ended >= 0.95


def test_retry_after_http_date_is_honoured(case: Callable[..., Case]) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1-2 s away (1 s resolution)
    c = case("retry-after-date", SMALL).script(fs.status(503, retry_after=when))
    c.assert_ok(c.pull())
    refused, retried = c.server.hits(c.path)[:2]
    assert retried.arrived - refused.ended >= 0.9


def test_retry_after_holds_back_only_the_refused_range(case: Callable[..., Case]) -> None:
    """One range is refused with Retry-After while the others go on: ordering, not a stopwatch."""
    c = case("retry-after-ordering").script(fs.ok(), fs.status(503, retry_after="1"))
    c.assert_ok(c.pull())
    hits = c.server.hits(c.path)
    refused = next(h for h in hits if h.status == 503)
    retry = next(h for h in hits if h.arrived > refused.ended and h.range == refused.range)
    others = [h for h in hits if h is not refused and h is not retry]
    assert others and all(h.ended <= retry.arrived for h in others), \
        "the other ranges should have finished while the refused one waited"
    assert retry.arrived - refused.ended >= 0.95


def test_no_retry_after_uses_the_short_backoff(case: Callable[..., Case]) -> None:
    c = case("no-retry-after", SMALL).script(fs.status(503), fs.status(503))
    c.assert_ok(c.pull())
    assert [h.status for h in c.server.hits(c.path)] == [503, 503, 206]


# -- mirrors --------------------------------------------------------------------------------------
def test_mirror_used_when_the_primary_keeps_failing(case: Callable[..., Case],
                                                    fault_server: FaultServer) -> None:
    c = case("mirrored", SMALL, retry_attempts=2, mirrors=("mirrored-copy",))
    c.script(then=fs.status(503))
    c.assert_ok(c.pull())
    assert c.requests() == 1 + 2  # the primary: first try and its retries, no more
    assert fault_server.requests("/mirrored-copy") == 1


def test_mirror_used_at_once_after_a_client_error(case: Callable[..., Case],
                                                  fault_server: FaultServer) -> None:
    c = case("mirrored-404", SMALL, mirrors=("mirrored-404-copy",)).script(then=fs.status(404))
    c.assert_ok(c.pull())
    assert c.requests() == 1
    assert fault_server.requests("/mirrored-404-copy") == 1


def test_mirror_used_when_the_primary_refuses_connections(case: Callable[..., Case],
                                                          fault_server: FaultServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    c = case("refused", SMALL, mirrors=("refused-copy",), primary=dead)
    c.assert_ok(c.pull())
    assert fault_server.requests("/refused-copy") == 1


def test_all_mirrors_failing_is_a_download_error(case: Callable[..., Case],
                                                 fault_server: FaultServer) -> None:
    c = case("mirror-bad", SMALL, mirrors=("mirror-bad-copy",)).script(then=fs.status(503))
    fault_server.script("mirror-bad-copy", then=fs.status(502))
    c.assert_failed(c.pull(), DownloadError)
    assert c.requests() >= 1 and fault_server.requests("/mirror-bad-copy") >= 1


# -- wrong bytes: blamed on the URLs that sent them, every URL gets a clean try -------------------
def test_a_primary_sending_another_file_leaves_the_mirror_a_clean_try(
        case: Callable[..., Case], fault_server: FaultServer) -> None:
    """A longer file without Content-Length: caught at its extra bytes, after all the others
    were written. They are dropped, and the mirror is asked for the file from byte 0."""
    c = case("longer-primary", SMALL, mirrors=("longer-primary-copy",))
    fault_server.set_data(c.name, os.urandom(SMALL + 100))
    c.script(then=fs.no_length(0, whole=True))
    c.assert_ok(c.pull())
    assert c.requests() == 1
    assert [h.range for h in fault_server.hits("/longer-primary-copy")] == [f"bytes=0-{SMALL - 1}"]


def test_a_file_mixed_from_two_urls_is_fetched_again_from_one(
        case: Callable[..., Case], fault_server: FaultServer) -> None:
    """The primary's first range comes from another file, then it answers 404 and the mirror
    sends the rest: the whole file is wrong, nobody alone is to blame, so the mirror (the one
    still usable) is asked for all of it."""
    c = case("mixed", mirrors=("mixed-copy",))
    fault_server.set_data(c.name, os.urandom(SIZE))
    c.script(fs.ok(), then=fs.status(404))
    c.assert_ok(c.pull())
    mirror = fault_server.hits("/mixed-copy")
    assert any((h.range or "").startswith("bytes=0-") for h in mirror)


def test_wrong_bytes_everywhere_name_each_sender(case: Callable[..., Case],
                                                 fault_server: FaultServer) -> None:
    c = case("all-wrong", SMALL, mirrors=("all-wrong-copy",))
    fault_server.set_data(c.name, os.urandom(SMALL))
    fault_server.set_data("all-wrong-copy", os.urandom(SMALL))
    err = c.assert_failed(c.pull(), IntegrityError)
    mirror = fault_server.url("all-wrong-copy")
    assert err.url == mirror and f"from {mirror}" in str(err)
    assert f"{c.url}: sha256 mismatch" in str(err) and f"{mirror}: sha256 mismatch" in str(err)
    for path in (c.path, "/all-wrong-copy"):  # each alone, from byte 0
        assert [h.range for h in fault_server.hits(path)] == [f"bytes=0-{SMALL - 1}"]


# -- sizes the catalog only estimates: learned like a body is fetched ------------------------------
def test_a_size_estimate_is_learned_through_a_503(case: Callable[..., Case]) -> None:
    c = case("estimate-503", SMALL, estimate=True).script(fs.status(503, retry_after="1"))
    c.assert_ok(c.pull())
    refused, probe = c.server.hits(c.path)[:2]
    assert refused.range == probe.range == "bytes=0-0"
    assert (refused.status, probe.status) == (503, 206)


def test_a_garbage_answer_to_the_size_probe_is_retried(case: Callable[..., Case]) -> None:
    c = case("estimate-garbage", SMALL, estimate=True).script(fs.garbage())
    c.assert_ok(c.pull())


def test_a_size_estimate_is_learned_from_the_mirror_that_can_say(
        case: Callable[..., Case], fault_server: FaultServer) -> None:
    c = case("estimate-mirror", SMALL, estimate=True, mirrors=("estimate-mirror-copy",))
    c.script(then=fs.status(404))
    c.assert_ok(c.pull())
    assert c.requests() == 1  # the probe's 404; the body is not asked of it again
    assert [h.range for h in fault_server.hits("/estimate-mirror-copy")] == [
        "bytes=0-0", f"bytes=0-{SMALL - 1}"]


def test_a_size_nobody_can_say_is_a_typed_error_after_the_retries(
        case: Callable[..., Case]) -> None:
    c = case("estimate-down", SMALL, estimate=True, retry_attempts=2).script(then=fs.status(503))
    err = c.assert_failed(c.pull(), DownloadError)
    assert c.requests() == 1 + 2 and "size" in str(err) and "503" in str(err)


def test_a_size_probe_with_dribbled_headers_is_broken_and_retried(
        case: Callable[..., Case]) -> None:
    c = case("estimate-dribble", SMALL, estimate=True, timeout=1.0).script(fs.trickle_head(0.2))
    c.assert_ok(c.pull())
    assert [h.range for h in c.server.hits(c.path)] == [
        "bytes=0-0", "bytes=0-0", f"bytes=0-{SMALL - 1}"]


# -- signed links ---------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [400, 403])
def test_a_4xx_at_a_remembered_redirect_target_asks_for_a_fresh_link(
        case: Callable[..., Case], fault_server: FaultServer, code: int) -> None:
    """A signed link that expired mid-download answers 400 (GCS) or 403 (S3): the URL is asked
    again for a fresh one instead of giving up."""
    c = case(f"signed-{code}", SMALL)
    fault_server.add(f"signed-{code}-target", c.data, fs.reset(50_000), fs.status(code))
    c.script(then=fs.redirect(f"/signed-{code}-target"))
    c.assert_ok(c.pull())
    assert c.requests() == 2
    assert [h.status for h in fault_server.hits(f"/signed-{code}-target")][1:] == [code, 206]


# -- the watchdog ---------------------------------------------------------------------------------
def test_trickle_is_caught_by_the_watchdog_and_retried(case: Callable[..., Case]) -> None:
    c = case("watchdog", SMALL, timeout=30.0).script(fs.trickle(0.2))
    c.assert_ok(c.pull())
    first, second = c.server.hits(c.path)[:2]
    assert first.behaviour == "trickle" and second.behaviour == "ok"
    assert first.sent < 50  # dropped early, not read to the end at 5 bytes/s
    # The socket timeout (30 s) never fired: a trickle keeps the socket busy. The watchdog did.
    assert second.arrived - first.arrived < 10


# -- the source changes while it downloads --------------------------------------------------------
def test_changed_source_with_a_catalog_hash_fails_and_leaves_no_partial(
        case: Callable[..., Case]) -> None:
    c = case("changes-mid-way")
    c.script(fs.ok(), fs.swap(os.urandom(SIZE)))
    c.assert_failed(c.pull(), IntegrityError)
    assert partial_files(c.home) == []


def test_changed_source_without_hash_restarts_and_never_mixes_versions(
        case: Callable[..., Case]) -> None:
    """TOFU: If-Range turns the change into a 200; the client restarts on the new version."""
    c = case("changes-tofu", with_hash=False)
    new = os.urandom(SIZE)
    c.script(fs.ok(), fs.swap(new))
    r = c.pull()
    assert r.success, r.error
    assert Path(r.value).read_bytes() == new
    check_cache(c.home)
    if_ranges = {h.if_range for h in c.server.hits(c.path)[1:] if h.if_range}
    assert if_ranges, "ranges after the first must carry If-Range"


def test_if_range_carries_the_first_etag(case: Callable[..., Case]) -> None:
    c = case("if-range")
    c.assert_ok(c.pull())
    hits = c.server.hits(c.path)
    assert len(hits) > 2
    assert hits[0].if_range is None
    assert {h.if_range for h in hits[1:]} == {fs.etag_of(c.data)}


def test_server_ignoring_if_range_after_a_change_restarts(case: Callable[..., Case]) -> None:
    """A 206 with a new ETag despite If-Range: the bytes held are from another version."""
    c = case("ignores-if-range", with_hash=False)
    new = os.urandom(SIZE)
    c.script(fs.ok(), fs.swap(new, if_range=False), then=fs.no_if_range())
    r = c.pull()
    assert r.success, r.error
    assert Path(r.value).read_bytes() == new
    check_cache(c.home)


def test_source_that_keeps_changing_gives_up(case: Callable[..., Case]) -> None:
    c = case("keeps-changing", with_hash=False)
    c.script(fs.ok(), *[fs.swap(os.urandom(SIZE)) for _ in range(30)])
    c.assert_failed(c.pull(), DownloadError)


# -- progress resets the retry budget --------------------------------------------------------------
CUT = 1_000_000  # less than one 1 MiB read: 0.2 counted only whole chunks as progress


@pytest.mark.parametrize("connections", [1, 4])
def test_a_connection_cut_after_every_megabyte_still_completes_the_file(
        case: Callable[..., Case], connections: int) -> None:
    """Every answer is reset after 1 MB. Each try brings bytes, so none counts against the
    three retries and the 8 MB arrive (0.2 gave up at 4 MB); on one stream, and on four whose
    ranges are longer than a cut."""
    config = fast_config(connections=connections, split_threshold=MiB, min_part=3 * MiB,
                         stall_window=10.0)
    c = case(f"cut-every-mb-{connections}", 8 * CUT, fetch_config=config)
    c.script(then=fs.reset(CUT))
    c.assert_ok(c.pull())
    assert c.requests() >= 8, "each answer brought at most a megabyte"
    if connections == 1:  # resumed where each cut left it, never started over
        starts = [int((h.range or "bytes=0-").split("=")[1].split("-")[0])
                  for h in c.server.hits(c.path)]
        assert starts == sorted(set(starts)), starts


def test_a_server_cutting_after_a_few_bytes_is_given_up_on(case: Callable[..., Case]) -> None:
    """A byte per connection is not progress: the budget runs out (the first try and three
    retries), not the file."""
    c = case("cut-after-ten-bytes", SMALL).script(then=fs.reset(10))
    c.assert_failed(c.pull(), DownloadError)
    assert c.requests() == 4


# -- resume after a failed run --------------------------------------------------------------------
def test_a_failed_run_keeps_its_bytes_and_the_next_run_resumes(case: Callable[..., Case]) -> None:
    c = case("resume-after-failure", retry_attempts=1)
    c.script(fs.ok(), fs.ok(), fs.ok(), then=fs.status(503))
    c.assert_failed(c.pull(), DownloadError)
    kept = covered(c.home, c.sha)
    assert kept > 0, "the bytes that arrived were thrown away"
    before = c.served()
    c.script(then=fs.ok())
    c.assert_ok(c.pull())
    assert c.served() - before <= SIZE - kept + 8 * MiB // 8
