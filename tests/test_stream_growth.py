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
    """Drive the policy one window per rate (bytes/s), with the machine's CPU ``cpu_share``
    busy; what it added after each window."""
    t, arrived, busy, total = 0.0, 0, 0.0, 0.0
    assert g.more(t, arrived, (busy, total), unclaimed) == 0  # the first look starts the clock
    t, arrived = t + 0.5, arrived + 1  # the warm-up: a trickle while connections open
    assert g.more(t, arrived, (busy, total), unclaimed) == 0
    out = []
    for r in rates:
        t += 1.0
        arrived += int(r)
        busy, total = busy + 200 * cpu_share, total + 200  # 2 cores, 100 ticks a second
        out.append(g.more(t, arrived, (busy, total), unclaimed))
    return out


def test_capped_streams_grow_to_the_limit() -> None:
    g = StreamGrowth(8, 16)
    # 8 x 20, then 12 x 20, then 16 x 20 MiB/s: each batch raised the rate
    assert feed(g, [160 * MiB, 240 * MiB, 320 * MiB]) == [4, 4, 0]
    assert g.streams == 16 and g.done


def test_a_shared_limit_stops_growth_after_one_try() -> None:
    g = StreamGrowth(8, 16)
    assert feed(g, [100 * MiB, 104 * MiB, 104 * MiB]) == [4, 0, 0]  # +4% is not worth streams
    assert g.streams == 12 and g.done


def test_a_busy_cpu_adds_nothing_but_may_later() -> None:
    g = StreamGrowth(8, 16)
    assert feed(g, [500 * MiB, 500 * MiB], cpu_share=0.9) == [0, 0]
    assert g.streams == 8 and not g.done


def test_the_cpu_clock_counts_forward() -> None:
    busy0, total0 = cpu_clock()
    sum(i * i for i in range(300_000))  # some work for the clock to see
    busy1, total1 = cpu_clock()
    assert 0 <= busy1 - busy0 <= total1 - total0 and total1 >= total0


def test_growth_takes_only_pieces_nobody_started() -> None:
    g = StreamGrowth(8, 16)
    assert feed(g, [160 * MiB], unclaimed=1) == [1]
    assert StreamGrowth(8, 8).done  # a fixed number of streams


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("growth-files")
    (root / "hub" / "acme" / "big").mkdir(parents=True)
    (root / "hub" / "acme" / "big" / "weights.bin").write_bytes(os.urandom(24 * MiB))
    return root


def _pull_through(srv: Nginx, hub_files: Path, write_catalog: Catalog, home: Path,
                  piece: int) -> int:
    data = (hub_files / "hub" / "acme" / "big" / "weights.bin").read_bytes()
    cat = write_catalog([model_entry("grow", srv.hub_url("acme/big", "weights.bin"), len(data),
                                     hashlib.sha256(data).hexdigest())])
    config = fast_config(connections=2, max_connections=10, piece_size=piece, min_part=MiB,
                         stall_window=30.0)
    r = pull(make_registry(home, cat, fetch_config=config), "grow")
    assert r.success, r.error
    assert r.unwrap().read_bytes() == data
    assert check_cache(home) == ["grow"]
    srv.wait_records(24 * MiB // piece, site="cdn", status=206)
    return srv.connections(site="cdn")


@pytest.fixture
def capped_cdn(hub_files: Path, tmp_path: Path) -> Iterator[Nginx]:
    sites = [Site("origin", routes=()), Site("cdn", routes=())]
    with Nginx(hub_files, tmp_path / "nginx", sites=sites,
               hub=Hub(hub_files / "hub", rate="1m")) as srv:
        yield srv


@pytest.fixture
def shared_link(hub_files: Path, tmp_path: Path) -> Iterator[Nginx]:
    sites = [Site("origin", routes=()), Site("cdn", routes=(), total_rate="6m")]
    with Nginx(hub_files, tmp_path / "nginx", sites=sites, hub=Hub(hub_files / "hub")) as srv:
        yield srv


def test_a_cdn_that_caps_each_connection_gets_more_streams(capped_cdn: Nginx, hub_files: Path,
                                                           write_catalog: Catalog,
                                                           home: Path) -> None:
    """2 streams at 1 MiB/s each (nginx's cap is per request and lets about a second through
    at first, so the pieces are 4 MiB): the rate rises with the batch added."""
    conns = _pull_through(capped_cdn, hub_files, write_catalog, home, 4 * MiB)
    assert 2 < conns <= 10, conns


def test_a_shared_link_gets_one_batch_and_no_more(shared_link: Nginx, hub_files: Path,
                                                  write_catalog: Catalog, home: Path) -> None:
    """6 MiB/s for the whole site: the first batch brings nothing, so growth stops at 6 streams
    with pieces left for more (24 of 1 MiB)."""
    conns = _pull_through(shared_link, hub_files, write_catalog, home, MiB)
    assert conns <= 6, conns
