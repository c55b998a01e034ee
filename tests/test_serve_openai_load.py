"""8 clients stream chat completions from one model at once on ``serve``'s OpenAI route for 3
rounds, one of them leaving mid-stream each round: every stream complete, well formed and its
own, every leaver's generation cancelled, no slot lost, the resident set flat (the checks and
the memory bound: ``support/openai_load.py``). The 30-s version: ``python -m bench.openai_load``
(``make bench``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.openai_load import CLIENTS, RSS_SLACK, chain_server, run_load


@pytest.mark.timeout(900)  # a few seconds on an idle machine; minutes at a load of 20
def test_eight_streaming_clients_on_one_model_for_three_rounds(tmp_path: Path) -> None:
    with chain_server(tmp_path) as served:
        load = run_load(served, rounds=3)
    assert load.rounds == 3 and load.streams == 3 * (CLIENTS - 1)
    assert len(load.rss) == load.streams + 1
    assert load.growth <= RSS_SLACK, (
        f"RSS grew {load.growth / 2**20:.1f} MiB over {RSS_SLACK // 2**20} MiB"
        f" (samples in MiB: {[s // 2**20 for s in load.rss]})")
