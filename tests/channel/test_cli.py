"""``python -m clustersession.channel``: what it prints when it leaves."""

from __future__ import annotations

import io
import json

import pytest

from clustersession.channel.__main__ import _Printer, run

from ..support.loopback import loopback_config, random_mcast_port

pytestmark = [pytest.mark.anyio, pytest.mark.network]


async def test_json_output_ends_with_the_channel_counters() -> None:
    out = io.StringIO()
    await run(loopback_config(random_mcast_port()), _Printer(out, as_json=True), duration=0.2)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["ready", "stopped"]
    stats = events[-1]["stats"]
    assert stats["members"] == 0 and stats["messages_received"] == 0
    assert "queue_length" in stats  # the dispatch layer's counters are there too
