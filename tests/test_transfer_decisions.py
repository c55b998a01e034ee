"""The transfer's pure decision code, table by table: what an answer means (status, Content-Range,
Content-Length, validators and If-Range), the schedule of ranges, the URL roster, and the one
retry policy (backoff, Retry-After, the budget that progress resets).

None of these opens a socket or a file: each row is an input and the decision it must give, so a
rule that changes shows up here as the row it breaks. The network tests
(``reliability/test_network_faults.py``) check the same rules end to end.
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest

from runanywhere.errors import DownloadCancelledError, DownloadError, IntegrityError
from runanywhere.retry import (
    RETRY_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientError,
    retry_after_seconds,
)
from runanywhere.shared.client import heals
from runanywhere.transfer.config import Streams
from runanywhere.transfer.response import Answer, SourceChanged, classify, total_size
from runanywhere.transfer.roster import UrlRoster
from runanywhere.transfer.schedule import Schedule
from runanywhere.transfer.stream import stale_link

MiB = 2**20
SIZE = 1000
ETAG = '"v1"'
LM = "Mon, 01 Jan 2024 00:00:00 GMT"


def headers(**h: str) -> Callable[[str], str | None]:
    """A case-insensitive header lookup, as ``Response.header`` is."""
    lower = {k.replace("_", "-").lower(): v for k, v in h.items()}
    return lambda name: lower.get(name.lower())


# -- what an answer means ------------------------------------------------------------------------
#: (id, status, headers, asked_from, known validators, bytes held) -> Answer or error type.
CLASSIFY: list[tuple[str, int, dict[str, str], int, Any, bool, Any]] = [
    ("206 as asked", 206, {"Content_Range": f"bytes 100-199/{SIZE}", "ETag": ETAG}, 100, None,
     False, Answer(True, 100, 100, (ETAG, None))),
    ("206 shorter than asked", 206, {"Content_Range": f"bytes 0-9/{SIZE}"}, 0, None, False,
     Answer(True, 0, 10, (None, None))),
    ("206 unknown total", 206, {"Content_Range": "bytes 0-9/*"}, 0, None, False,
     Answer(True, 0, 10, (None, None))),
    ("206 keeps the first validators", 206,
     {"Content_Range": f"bytes 5-9/{SIZE}", "Last_Modified": "later"}, 5, (None, LM), True,
     Answer(True, 5, 5, (None, LM))),
    ("206 weak etag is no validator", 206,
     {"Content_Range": f"bytes 0-9/{SIZE}", "ETag": 'W/"weak"'}, 0, None, False,
     Answer(True, 0, 10, (None, None))),
    ("206 without Content-Range", 206, {}, 0, None, False, TransientError),
    ("206 malformed Content-Range", 206, {"Content_Range": "bytes 1-x/1000"}, 0, None, False,
     TransientError),
    ("206 starting elsewhere", 206, {"Content_Range": f"bytes 101-199/{SIZE}"}, 100, None,
     False, TransientError),
    ("206 backwards", 206, {"Content_Range": f"bytes 100-50/{SIZE}"}, 100, None, False,
     TransientError),
    ("206 of another size", 206, {"Content_Range": "bytes 0-9/1001"}, 0, None, False,
     IntegrityError),
    ("206 of another version (If-Range ignored)", 206,
     {"Content_Range": f"bytes 0-9/{SIZE}", "ETag": '"v2"'}, 0, (ETAG, None), True,
     SourceChanged),
    ("200 whole file", 200, {"Content_Length": str(SIZE), "ETag": ETAG, "Last_Modified": LM},
     0, None, False, Answer(False, 0, SIZE, (ETAG, LM))),
    ("200 without length", 200, {}, 0, None, False, Answer(False, 0, None, (None, None))),
    ("200 same etag after bytes", 200, {"Content_Length": str(SIZE), "ETag": ETAG}, 500,
     (ETAG, None), True, Answer(False, 0, SIZE, (ETAG, None))),
    ("200 same Last-Modified after bytes", 200, {"Content_Length": str(SIZE),
                                                "Last_Modified": LM}, 500, (None, LM), True,
     Answer(False, 0, SIZE, (None, LM))),
    ("200 shorter (an error page?)", 200, {"Content_Length": "10"}, 0, None, False,
     IntegrityError),
    ("200 longer", 200, {"Content_Length": str(SIZE + 1)}, 0, None, False, IntegrityError),
    ("200 new etag: the file changed", 200, {"Content_Length": str(SIZE), "ETag": '"v2"'}, 500,
     (ETAG, None), True, SourceChanged),
    ("200 new Last-Modified", 200, {"Content_Length": str(SIZE), "Last_Modified": "later"},
     500, (None, LM), True, SourceChanged),
    ("200 after bytes, nothing to resume against", 200, {"Content_Length": str(SIZE)}, 500,
     None, True, SourceChanged),
    ("gzip not asked for", 200, {"Content_Length": str(SIZE), "Content_Encoding": "gzip"}, 0,
     None, False, DownloadError),
    ("identity spelled out", 200, {"Content_Length": str(SIZE),
                                   "Content_Encoding": " Identity "}, 0, None, False,
     Answer(False, 0, SIZE, (None, None))),
    *[(f"{s} heals", s, {}, 0, None, False, TransientError) for s in sorted(RETRY_STATUSES)],
    *[(f"{s} is final", s, {}, 0, None, False, DownloadError)
      for s in (301, 400, 401, 403, 404, 407, 410, 416, 451, 501)],
]


@pytest.mark.parametrize(("status", "hdrs", "asked_from", "known", "had", "expected"),
                         [c[1:] for c in CLASSIFY], ids=[c[0] for c in CLASSIFY])
def test_classify(status: int, hdrs: dict[str, str], asked_from: int, known: Any, had: bool,
                  expected: Any) -> None:
    def answer() -> Answer:
        return classify(status, headers(**hdrs), url="http://o/f", size=SIZE,
                        asked_from=asked_from, known=known, had_bytes=had)

    if isinstance(expected, Answer):
        assert answer() == expected
        return
    with pytest.raises(expected) as e:
        answer()
    if expected is DownloadError:  # final: not one that another try may heal
        assert not isinstance(e.value, TransientError)


def test_a_status_that_heals_carries_its_retry_after_and_error_body() -> None:
    with pytest.raises(TransientError) as e:
        classify(503, headers(Retry_After="7"), url="http://o/f", size=SIZE, asked_from=0,
                 known=None, had_bytes=False, error_body=lambda: b"busy\r\n  now")
    assert e.value.retry_after == 7.0 and e.value.status == 503
    assert "busy now" in str(e.value) and "\n" not in str(e.value)


#: The size a one-byte probe learns: (status, headers) -> total.
TOTALS: list[tuple[int, dict[str, str], int | None]] = [
    (206, {"Content_Range": "bytes 0-0/2327524"}, 2327524),
    (206, {"Content_Range": " bytes 0-0/5 "}, 5),
    (206, {"Content_Range": "bytes 0-0/*"}, None),
    (206, {"Content_Length": "1"}, None),
    (200, {"Content_Length": "2327524"}, 2327524),
    (200, {"Content_Length": "0"}, 0),
    (200, {"Content_Length": "-1"}, None),
    (200, {}, None),
    (204, {"Content_Length": "5"}, None),
]


@pytest.mark.parametrize(("status", "hdrs", "total"), TOTALS)
def test_total_size(status: int, hdrs: dict[str, str], total: int | None) -> None:
    assert total_size(status, headers(**hdrs)) == total


@pytest.mark.parametrize(("status", "fresh"), [(400, True), (403, True), (404, True),
                                               (410, True), (408, False), (429, False),
                                               (500, False), (503, False), (200, False),
                                               (206, False), (302, False)])
def test_a_stale_signed_link(status: int, fresh: bool) -> None:
    """A 4xx at a remembered redirect target asks the original URL for a fresh link; "try
    again later" does not."""
    assert stale_link(status) is fresh


# -- the schedule ---------------------------------------------------------------------------------
def schedule(size: int, connections: int = 4, **kw: Any) -> Schedule:
    opts: dict[str, Any] = {"split_threshold": 32 * MiB, "min_part": 8 * MiB,
                            "chunk_size": MiB, "piece_size": None, **kw}
    return Schedule(size, connections=connections, **opts)


#: (id, size, connections, options, gaps) -> (first segment, pending after begin).
BEGIN: list[tuple[str, int, int, dict[str, Any], list[tuple[int, int]],
                  tuple[int, int], list[tuple[int, int]]]] = [
    ("small file: one range", 10 * MiB, 4, {}, [(0, 10 * MiB)], (0, 10 * MiB), []),
    ("one connection: one range", 64 * MiB, 1, {}, [(0, 64 * MiB)], (0, 64 * MiB), []),
    ("large file: min_part first", 64 * MiB, 4, {}, [(0, 64 * MiB)], (0, 8 * MiB),
     [(8 * MiB, 64 * MiB)]),
    ("chunk larger than min_part", 64 * MiB, 4, {"chunk_size": 16 * MiB}, [(0, 64 * MiB)],
     (0, 16 * MiB), [(16 * MiB, 64 * MiB)]),
    ("resumed: the first gap", 64 * MiB, 4, {}, [(MiB, 2 * MiB), (40 * MiB, 64 * MiB)],
     (MiB, 2 * MiB), [(40 * MiB, 64 * MiB)]),
    ("resumed: a gap larger than min_part", 64 * MiB, 4, {},
     [(MiB, 20 * MiB), (40 * MiB, 64 * MiB)], (MiB, 9 * MiB),
     [(9 * MiB, 20 * MiB), (40 * MiB, 64 * MiB)]),
]


@pytest.mark.parametrize(("size", "connections", "opts", "gaps", "first", "pending"),
                         [b[1:] for b in BEGIN], ids=[b[0] for b in BEGIN])
def test_schedule_begins_with_one_range(size: int, connections: int, opts: dict[str, Any],
                                        gaps: list[tuple[int, int]], first: tuple[int, int],
                                        pending: list[tuple[int, int]]) -> None:
    s = schedule(size, connections, **opts)
    s.begin(gaps)
    assert [(g.start, g.end) for g in s.segments] == [first]
    assert s.pending == pending and s.ranges_ok is None


#: (id, size, connections, piece_size, ranges_ok) -> (pieces after plan, waiting).
PLAN: list[tuple[str, int, int, int | None, bool, int, int]] = [
    ("206: auto pieces of 16 MiB", 128 * MiB, 4, None, True, 1 + 8, 8),
    ("206: given pieces", 128 * MiB, 4, 40 * MiB, True, 1 + 3, 3),
    ("206: no piece under min_part", 40 * MiB, 8, None, True, 1 + 4, 4),
    ("200: one stream, nothing planned", 128 * MiB, 4, None, False, 1, 0),
    # a wide start: every starting stream finds a piece of its own (16 MiB would leave 16 idle)
    ("206: 32 streams on 256 MiB: 8 MiB pieces", 256 * MiB, 32, None, True, 1 + 31, 31),
    ("206: 12 streams on 100 MiB", 100 * MiB, 12, None, True, 1 + 11, 11),
]


@pytest.mark.parametrize(("size", "connections", "piece", "ok", "segments", "waiting"),
                         [p[1:] for p in PLAN], ids=[p[0] for p in PLAN])
def test_schedule_plans_pieces_in_file_order(size: int, connections: int, piece: int | None,
                                             ok: bool, segments: int, waiting: int) -> None:
    s = schedule(size, connections, piece_size=piece)
    s.begin([(0, size)])
    s.claim(0)
    s.ranges_ok = ok
    assert s.plan() == waiting
    assert len(s.segments) == segments
    starts = [g.start for g in s.segments]
    assert starts == sorted(starts), "pieces are handed out in file order"
    if ok:  # the pieces cover the file exactly, end to end
        spans = sorted((g.start, g.end) for g in s.segments)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    else:
        assert s.pending == [(8 * MiB, size)], "a 200 leaves the rest to a later pass"


#: (id, size, connections, max_connections, wide_start) -> streams a file starts with.
START: list[tuple[str, int, int, int, int | None, int]] = [
    ("one per 8 MiB", 100 * MiB, 8, 32, 8 * MiB, 12),
    ("never past max_connections", 512 * MiB, 8, 32, 8 * MiB, 32),
    ("a long download widens by measurement", 1024 * MiB, 8, 32, 8 * MiB, 8),
    ("never below connections", 40 * MiB, 8, 32, 8 * MiB, 8),
    ("a fixed number stays fixed", 2048 * MiB, 4, 4, 8 * MiB, 4),
    ("wide_start None: connections", 512 * MiB, 8, 32, None, 8),
    ("a larger share per stream", 256 * MiB, 8, 32, 16 * MiB, 16),
]


@pytest.mark.parametrize(("size", "connections", "most", "wide", "start"),
                         [s[1:] for s in START], ids=[s[0] for s in START])
def test_a_file_starts_with_one_stream_per_wide_start(size: int, connections: int, most: int,
                                                      wide: int | None, start: int) -> None:
    streams = Streams(connections=connections, max_connections=most, wide_start=wide)
    assert streams.start_for(size) == start


def test_claims_in_order_then_steal_the_far_half_of_the_longest() -> None:
    s = schedule(64 * MiB, 2, piece_size=32 * MiB)
    s.begin([(0, 64 * MiB)])
    a = s.claim(0)
    s.ranges_ok = True
    s.plan()
    b = s.claim(1)
    assert a is not None and b is not None and (a.start, b.start) == (0, 8 * MiB)
    c = s.claim(2)  # nothing unclaimed: half of the longest (b: 8-64 MiB) is stolen
    assert c is not None and (c.start, c.end, c.owner) == (36 * MiB, 64 * MiB, 2)
    assert b.end == 36 * MiB, "the victim stops where the thief starts"
    assert s.claim(3, steal=False) is None, "no steal without a kept-alive connection"


def test_no_steal_of_a_range_too_short_to_be_worth_a_connection() -> None:
    s = schedule(40 * MiB, 2)
    s.begin([(0, 40 * MiB)])
    seg = s.claim(0)
    assert seg is not None
    s.ranges_ok = True
    s.plan()
    while s.claim(1) is not None:
        pass  # every piece claimed, and halves stolen while they were long enough
    assert all(g.remaining < 2 * 8 * MiB for g in s.segments)
    assert s.claim(2) is None


def test_a_server_ignoring_range_turns_the_fetch_into_one_stream() -> None:
    s = schedule(64 * MiB, 4)
    s.begin([(0, 64 * MiB)])
    first = s.claim(0)
    s.ranges_ok = True
    s.plan()
    others = [s.claim(i) for i in (1, 2)]
    assert first is not None and all(o is not None for o in others)
    first.pos = 3 * MiB
    s.ranges_ok = False
    s.single_stream(first, held_prefix=2 * MiB)
    assert (first.pos, first.end) == (2 * MiB, 64 * MiB), "from the held prefix to the end"
    assert all(o is not None and o.end == o.pos for o in others), "the others stop"
    assert s.pending == []


# -- the URL roster -------------------------------------------------------------------------------
P, M1, M2 = "http://primary/f", "http://mirror1/f", "http://mirror2/f"


def test_roster_moves_on_and_names_every_url_tried() -> None:
    r = UrlRoster([P, M1, M2])
    assert (r.primary, r.current, r.tried_note()) == (P, P, "")
    assert r.leave(P, "HTTP 404") == M1
    assert r.leave(P, "HTTP 404") == M1, "a second worker leaving the same URL follows"
    assert r.tried_note() == "", "one URL tried says nothing more"
    assert r.leave(M1, "timed out") == M2
    assert r.tried_note() == f"; tried {P}: HTTP 404; {M1}: timed out"
    assert r.leave(M2, "refused") is None
    assert r.move_on() is None


def test_a_lone_sender_of_a_wrong_file_is_left_for_good() -> None:
    r = UrlRoster([P, M1, M2])
    r.fresh_partial()
    r.supplied(P)
    assert r.blame("sha256 mismatch") == [P]
    assert r.move_on() == M1
    assert r.leave(M1, "reset") == M2
    assert r.leave(M2, "reset") is None, "the sender of the wrong file never comes back"


def test_senders_of_a_mixed_wrong_file_are_suspects_tried_alone_after_the_others() -> None:
    r = UrlRoster([P, M1, M2])
    r.fresh_partial()
    r.supplied(P)
    r.supplied(M1)
    assert r.blame("sha256 mismatch") == [P, M1]
    assert r.move_on() == M2, "the URL that sent none of it goes first"
    assert r.leave(M2, "HTTP 404") in (P, M1), "then each suspect gets a try alone"


def test_caught_counts_only_for_a_url_whose_bytes_are_held() -> None:
    r = UrlRoster([P, M1])
    r.fresh_partial()
    assert not r.caught(P, "an HTML page"), "nothing of it held: just move on"
    r.supplied(P)
    assert r.caught(P, "an HTML page")
    r.fresh_partial()
    assert not r.caught(M1, "wrong length")


def test_roster_remembers_and_forgets_redirects() -> None:
    r = UrlRoster([P])
    assert r.target(P) == P
    r.redirected(P, "https://cdn/signed?sig=1")
    assert r.target(P) == "https://cdn/signed?sig=1"
    r.redirected(P, None)  # the link went stale
    assert r.target(P) == P
    r.redirected(P, P)
    assert r.target(P) == P


def test_roster_settles_on_the_url_that_knew_the_size() -> None:
    r = UrlRoster([P, M1, M2])
    r.settle_on(2, {P: "no size", M1: "HTTP 404"})
    assert r.current == M2
    assert r.leave(M2, "reset") is None, "the others were tried already"


def test_a_roster_needs_a_url() -> None:
    with pytest.raises(ValueError):
        UrlRoster([])


# -- the retry policy -----------------------------------------------------------------------------
NOW = 1_700_000_000.0
#: Retry-After as written -> seconds (None: absent or unreadable).
RETRY_AFTER: list[tuple[str | None, float | None]] = [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    (formatdate(NOW + 30, usegmt=True), 30.0),
    (formatdate(NOW - 30, usegmt=True), 0.0),
    ("soon", None),
    ("-5", None),
    ("1.5", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("value", "seconds"), RETRY_AFTER)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


#: (policy, retry number, Retry-After) -> the range the wait falls in.
BACKOFF: list[tuple[RetryPolicy, int, float | None, tuple[float, float]]] = [
    (RetryPolicy(delay=1.0, cap=30.0), 0, None, (0.5, 1.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 3, None, (4.0, 8.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 10, None, (15.0, 30.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 200, None, (15.0, 30.0)),
    (RetryPolicy(delay=0.0), 5, None, (0.0, 0.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 0, 7.0, (7.0, 7.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 0, 3600.0, (120.0, 120.0)),
    (RetryPolicy(delay=1.0, cap=0.1), 0, 60.0, (4.0, 4.0)),
    (RetryPolicy(delay=1.0, cap=30.0), 2, -3.0, (0.0, 0.0)),
]


@pytest.mark.parametrize(("policy", "retry", "retry_after", "bounds"), BACKOFF)
def test_backoff(policy: RetryPolicy, retry: int, retry_after: float | None,
                 bounds: tuple[float, float]) -> None:
    """Full jitter between half and all of the exponential step, capped; Retry-After wins, up
    to four times the cap (at least 4 s)."""
    for _ in range(50):
        assert bounds[0] <= policy.backoff(retry, retry_after) <= bounds[1]


@pytest.mark.parametrize("kw", [{"attempts": -1}, {"delay": -0.1}, {"cap": -1.0}])
def test_a_policy_refuses_negative_numbers(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kw)


class Script:
    """An attempt function that fails as told, then succeeds; ``done`` counts bytes brought."""

    def __init__(self, *outcomes: BaseException | int) -> None:
        #: Each outcome: an exception to raise after bringing ``brings`` bytes, or bytes + ok.
        self.outcomes = list(outcomes)
        self.calls = 0
        self.done = 0
        self.brings = 0

    def __call__(self) -> str:
        self.calls += 1
        self.done += self.brings
        outcome = self.outcomes.pop(0) if self.outcomes else 0
        if isinstance(outcome, BaseException):
            raise outcome
        return "ok"


def transient(slow: bool = False, retry_after: float | None = 0.0) -> TransientError:
    return TransientError("reset", url="http://o/f", retry_after=retry_after, slow=slow)


#: (id, policy, failures before success, bytes each try brings, slow?) -> tries made, or
#: "exhausted".
CALLS: list[tuple[str, RetryPolicy, int, int, bool, int | str]] = [
    ("succeeds at once", RetryPolicy(attempts=3), 0, 0, False, 1),
    ("succeeds on the last retry", RetryPolicy(attempts=3), 3, 0, False, 4),
    ("one failure too many", RetryPolicy(attempts=3), 4, 0, False, "exhausted"),
    ("no retries at all", RetryPolicy(attempts=0), 1, 0, False, "exhausted"),
    ("progress resets the budget", RetryPolicy(attempts=3), 10, 64 * 1024, False, 11),
    ("too little progress counts", RetryPolicy(attempts=3), 10, 64 * 1024 - 1, False,
     "exhausted"),
    ("a slow try never counts as progress", RetryPolicy(attempts=3), 10, MiB, True,
     "exhausted"),
    ("a lower progress bar", RetryPolicy(attempts=1, progress=1), 5, 1, False, 6),
]


@pytest.mark.parametrize(("policy", "failures", "brings", "slow", "expected"),
                         [c[1:] for c in CALLS], ids=[c[0] for c in CALLS])
def test_retry_policy_call(policy: RetryPolicy, failures: int, brings: int, slow: bool,
                           expected: int | str) -> None:
    attempt = Script(*[transient(slow) for _ in range(failures)])
    attempt.brings = brings
    if expected == "exhausted":
        with pytest.raises(RetriesExhausted) as e:
            policy.call(attempt, progress=lambda: attempt.done)
        assert e.value.retries == policy.attempts and isinstance(e.value.last, TransientError)
        assert not isinstance(e.value, TransientError), "nothing retries a spent call again"
        assert f"gave up after {policy.attempts} retries" in str(e.value)
    else:
        assert policy.call(attempt, progress=lambda: attempt.done) == "ok"
        assert attempt.calls == expected


def test_what_does_not_heal_is_raised_at_once() -> None:
    attempt = Script(DownloadError("HTTP 404"))
    with pytest.raises(DownloadError) as e:
        RetryPolicy(attempts=5).call(attempt)
    assert attempt.calls == 1 and not isinstance(e.value, RetriesExhausted)


def test_a_cancel_ends_the_wait_before_a_retry() -> None:
    cancel = threading.Event()
    cancel.set()
    attempt = Script(transient(retry_after=3600.0))
    with pytest.raises(DownloadCancelledError):
        RetryPolicy(attempts=5).call(attempt, cancel=cancel)
    assert attempt.calls == 1


def test_the_budget_spends_and_refills() -> None:
    budget = RetryPolicy(attempts=2, delay=0.0).budget()
    assert budget.spend(transient(retry_after=None)) == 0.0
    assert budget.spend(transient(retry_after=None)) == 0.0
    assert budget.spend(transient(retry_after=None)) is None
    budget.progressed()
    assert budget.spend(transient(retry_after=5.0)) == 5.0


# -- which S3 errors heal ------------------------------------------------------------------------
class ClientError(Exception):
    """botocore's ClientError as the tier reads it: duck-typed ``response``."""

    def __init__(self, status: int, code: str = "") -> None:
        super().__init__(f"{status} {code}")
        self.response = {"ResponseMetadata": {"HTTPStatusCode": status},
                         "Error": {"Code": code}}


def botocore_error(name: str, error: BaseException | None = None) -> Exception:
    """An exception named like botocore's, carrying ``kwargs["error"]`` as botocore does."""
    cls = type(name, (Exception,), {})
    e = cls(name)
    e.kwargs = {"error": error}  # type: ignore[attr-defined]
    return e


def name_resolution(errno: int) -> BaseException:
    gai = socket.gaierror(errno, "name resolution")
    wrapper = type("NameResolutionError", (Exception,), {})("cannot resolve")
    wrapper.__cause__ = gai
    return wrapper


S3_HEALS: list[tuple[str, BaseException, bool]] = [
    ("503 SlowDown", ClientError(503, "SlowDown"), True),
    ("500 InternalError", ClientError(500, "InternalError"), True),
    ("429", ClientError(429), True),
    ("400 RequestTimeout", ClientError(400, "RequestTimeout"), True),
    ("404", ClientError(404, "NoSuchKey"), False),
    ("403", ClientError(403, "AccessDenied"), False),
    ("412 lost a conditional write", ClientError(412, "PreconditionFailed"), False),
    ("400 BadDigest", ClientError(400, "BadDigest"), False),
    ("connection refused", botocore_error("EndpointConnectionError", ConnectionRefusedError()),
     True),
    ("connect timeout", botocore_error("ConnectTimeoutError"), True),
    ("read timeout", botocore_error("ReadTimeoutError"), True),
    ("connection dropped", botocore_error("ConnectionClosedError"), True),
    ("host does not resolve", botocore_error("EndpointConnectionError",
                                             name_resolution(socket.EAI_NONAME)), False),
    ("resolver did not answer", botocore_error("EndpointConnectionError",
                                               name_resolution(socket.EAI_AGAIN)), True),
    ("certificate", botocore_error("SSLError"), False),
    ("anything else", ValueError("no"), False),
]


@pytest.mark.parametrize(("error", "healing"), [h[1:] for h in S3_HEALS],
                         ids=[h[0] for h in S3_HEALS])
def test_which_s3_errors_heal(error: BaseException, healing: bool) -> None:
    assert heals(error) is healing
