"""More streams when every stream is capped (transfer/streams.py), and not when the limit is
shared or the CPU is busy: the policy on its own, then against nginx with a per-connection cap
(a CDN) and with one cap for the whole site (a shared link), counting connections in its log."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.nginx import Hub, Nginx, Site
from runanywhere.transfer.streams import StreamGrowth, cpu_clock
from support.catalogs import model_entry
from support.invariants import check_cache
from support.pulls import MiB, fast_config, make_registry, pull

Catalog = Callable[[list[dict[str, Any]]], Path]


def feed(g: StreamGrowth, rates: list[float], cpu_share: float = 0.1,
         unclaimed: int = 100) -> list[int]:
    """Drive the policy one window per rate (bytes/s), this process using ``cpu_share`` of the
    machine's 2 cores; what it added after each window (a settle time before each window that
    follows an addition, as new streams connect)."""
    t, arrived, cpu = 0.0, 0, 0.0
    assert g.more(t, arrived, cpu, unclaimed) == 0  # the first look starts the clock
    out = []
    for r in rates:
        t, arrived = t + g.settle, arrived + 1  # settling: connects, handshakes, a trickle
        assert g.more(t, arrived, cpu, unclaimed) == 0
        t += g.window
        arrived += int(r * g.window)
        cpu += 2 * cpu_share * g.window
        out.append(g.more(t, arrived, cpu, unclaimed))
        if not out[-1]:  # no addition: the next window follows at once, no settle time
            t -= g.settle
    return out


def test_capped_streams_double_to_the_limit() -> None:
    g = StreamGrowth(8, 32, cpus=2)
    # 8 x 20, then 16 x 20, then 32 x 20 MiB/s: each batch raised the rate as capped streams do
    assert feed(g, [160 * MiB, 320 * MiB, 640 * MiB]) == [8, 16, 0]
    assert g.streams == 32 and g.done


def test_a_shared_limit_stops_growth_after_one_try() -> None:
    g = StreamGrowth(8, 32, cpus=2)
    # +30% for twice the streams: less than half of what capped streams would bring
    assert feed(g, [100 * MiB, 130 * MiB, 130 * MiB]) == [8, 0, 0]
    assert g.streams == 16 and g.done


def test_the_stop_rule_is_half_the_capped_gain() -> None:
    """The boundary, both sides: a rise of 50% for doubled streams is enough, 45% is not."""
    assert feed(StreamGrowth(8, 32, cpus=2), [100 * MiB, 151 * MiB]) == [8, 16]
    g = StreamGrowth(8, 32, cpus=2)
    assert feed(g, [100 * MiB, 145 * MiB, 300 * MiB]) == [8, 0, 0] and g.done


def test_our_busy_cpu_adds_nothing_but_may_later() -> None:
    g = StreamGrowth(8, 32, cpus=2)
    assert feed(g, [500 * MiB, 500 * MiB], cpu_share=0.9) == [0, 0]
    assert g.streams == 8 and not g.done
    # the CPU-bound first second of a pacing server (nginx lets each connection burst), then
    # the pace: a batch that brought nothing while the CPU was busy is tried again later
    g = StreamGrowth(8, 32, cpus=2)
    assert feed(g, [160 * MiB], cpu_share=0.2) == [8]
    assert feed_more(g, [[170 * MiB, 0.9], [320 * MiB, 0.3]]) == [0, 16]


def feed_more(g: StreamGrowth, windows: list[list[float]]) -> list[int]:
    """Windows of (rate, CPU share) after those :func:`feed` gave (its clock state is kept)."""
    t, arrived, cpu, _ = g._since or (0.0, 0, 0.0, 0)
    out = []
    for rate, share in windows:
        if not g._settled:
            t, arrived = t + g.settle, arrived + 1
            g.more(t, arrived, cpu, 100)
        t += g.window
        arrived += int(rate * g.window)
        cpu += 2 * share * g.window
        out.append(g.more(t, arrived, cpu, 100))
    return out


def test_a_hash_falling_behind_adds_nothing() -> None:
    """The hash's lag grows by 20 MiB in a window (sha256's core is what runs out, on a machine
    busy with other work, while this process uses little of the cores): no batch, no verdict;
    once the hash keeps up, growth goes on."""
    g = StreamGrowth(8, 32, cpus=2)
    assert g.more(0.0, 0, 0.0, 100, lag=0) == 0
    assert g.more(g.settle, 1, 0.0, 100, lag=0) == 0
    t = g.settle + g.window
    assert g.more(t, 80 * MiB, 0.2, 100, lag=20 * MiB) == 0
    assert not g.done
    assert g.more(t + g.window, 160 * MiB, 0.4, 100, lag=21 * MiB) == 8


def test_a_far_server_settles_longer() -> None:
    g = StreamGrowth(8, 32)
    g.latency(0.4)  # the first answer took 400 ms (100 ms round trips)
    assert g.settle == pytest.approx(0.8)


def test_a_refusal_sets_the_hosts_limit() -> None:
    g = StreamGrowth(8, 32)
    assert g.throttled(12) == 11 and g.done
    assert g.throttled(11) == 10  # a second refusal at 11: lower still
    assert g.throttled(30) == 10  # never above a limit it set before
    assert StreamGrowth(8, 32).throttled(1) == 1  # one stream always stays


def test_the_cpu_clock_counts_forward() -> None:
    c0 = cpu_clock()
    sum(i * i for i in range(300_000))  # some work for the clock to see
    assert cpu_clock() > c0


def test_growth_takes_only_pieces_nobody_started() -> None:
    g = StreamGrowth(8, 32, cpus=2)
    assert feed(g, [160 * MiB], unclaimed=1) == [1]
    assert StreamGrowth(8, 8).done  # a fixed number of streams


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("growth-files")
    (root / "hub" / "acme" / "big").mkdir(parents=True)
    (root / "hub" / "acme" / "big" / "weights.bin").write_bytes(os.urandom(24 * MiB))
    return root


def _pull_through(srv: Nginx, hub_files: Path, write_catalog: Catalog, home: Path,
                  piece: int | None, most: int = 10, wide_start: int | None = None,
                  requests: int | None = None) -> int:
    mark = srv.log_size()  # this pull's requests only
    data = (hub_files / "hub" / "acme" / "big" / "weights.bin").read_bytes()
    cat = write_catalog([model_entry("grow", srv.hub_url("acme/big", "weights.bin"), len(data),
                                     hashlib.sha256(data).hexdigest())])
    # wide_start None: it starts with 2 and grows by measurement
    config = fast_config(connections=2, max_connections=most, piece_size=piece, min_part=MiB,
                         stall_window=30.0, wide_start=wide_start)
    r = pull(make_registry(home, cat, fetch_config=config), "grow")
    assert r.success, r.error
    assert r.unwrap().read_bytes() == data
    assert check_cache(home) == ["grow"]
    srv.wait_records(requests or 24 * MiB // (piece or MiB), site="cdn", status=206, since=mark)
    return srv.connections(site="cdn", since=mark)


@pytest.fixture
def capped_cdn(hub_files: Path, tmp_path: Path) -> Iterator[Nginx]:
    sites = [Site("origin", routes=()), Site("cdn", routes=())]
    with Nginx(hub_files, tmp_path / "nginx", sites=sites,
               hub=Hub(hub_files / "hub", rate="1m")) as srv:
        yield srv


@pytest.fixture
def shared_link(hub_files: Path, tmp_path: Path) -> Iterator[Nginx]:
    sites = [Site("origin", routes=()), Site("cdn", routes=(), total_rate="3m")]
    with Nginx(hub_files, tmp_path / "nginx", sites=sites, hub=Hub(hub_files / "hub")) as srv:
        yield srv


def test_a_cdn_that_caps_each_connection_gets_more_streams(capped_cdn: Nginx, hub_files: Path,
                                                           write_catalog: Catalog,
                                                           home: Path) -> None:
    """2 streams at 1 MiB/s each (nginx's cap is per request and lets about a second through
    at first, so the pieces are 4 MiB): the rate rises with the batch added."""
    conns = _pull_through(capped_cdn, hub_files, write_catalog, home, 4 * MiB)
    assert 2 < conns <= 10, conns


def test_a_large_file_starts_wide(capped_cdn: Nginx, hub_files: Path, write_catalog: Catalog,
                                  home: Path, tmp_path: Path) -> None:
    """One stream per ``wide_start`` bytes from the start (24 MiB at one per 4 MiB: 6 streams,
    each with a piece of its own), rather than 2 that grow by measurement: a short download is
    over before growing would reach its width. The same pull without it uses 2."""
    assert _pull_through(capped_cdn, hub_files, write_catalog, home, None, most=6,
                         wide_start=4 * MiB, requests=6) == 6
    narrow = tmp_path / "narrow"
    assert _pull_through(capped_cdn, hub_files, write_catalog, narrow, None, most=2,
                         requests=3) == 2


def test_a_shared_link_gets_one_batch_and_no_more(shared_link: Nginx, hub_files: Path,
                                                  write_catalog: Catalog, home: Path) -> None:
    """3 MiB/s for the whole site: the first batch (2 -> 4) brings nothing, so growth stops
    with pieces left for many more (24 of 1 MiB; without the stop rule it doubles to 16 and 24
    within the 8 s the download takes). On a starved machine one window can read low and make
    the next batch look worth it: the bound allows that one batch (8), no more."""
    conns = _pull_through(shared_link, hub_files, write_catalog, home, MiB, most=32)
    assert conns <= 8, conns


@pytest.mark.parametrize("wide_start", [None, 2 * MiB], ids=["grown", "wide"])
@pytest.mark.parametrize("status", [429, 503])
def test_a_hosts_limit_is_kept_after_it_refuses(hub_files: Path, tmp_path: Path,
                                                write_catalog: Catalog, home: Path,
                                                status: int, wide_start: int | None) -> None:
    """A CDN capping each connection (so growth wants more) that serves 2 requests at a time
    and refuses the rest: the first stream growth adds goes over the limit however late a busy
    machine lets it come (2 MiB pieces, each over a second: some are left to grow into; nginx
    sends the first second's worth of a request at once, so 1 MiB pieces would not be capped
    at all); the streams it refused stop and give their ranges back, so the refusals number at
    most the streams over its limit (growth opens up to 10; a client that kept retrying them is
    refused again and again, and gives up). The same when the 10 are opened at the start
    (``wide``: one per 2 MiB of the 24)."""
    sites = [Site("origin", routes=()),
             Site("cdn", routes=(), max_requests=2, refuse_status=status)]
    with Nginx(hub_files, tmp_path / "nginx", sites=sites,
               hub=Hub(hub_files / "hub", rate="1m")) as srv:
        _pull_through(srv, hub_files, write_catalog, home, 2 * MiB, wide_start=wide_start)
        refused = srv.records(site="cdn", status=status)
        assert 1 <= len(refused) <= 10 - 2, len(refused)
        last = max(r.time for r in refused)
        after = [r for r in srv.records(site="cdn", status=206) if r.time > last + 1.0]
        assert after, "the download went on after the last refusal"
