"""Log records about a member carry it as a structured field (``extra=``), for JSON handlers."""

from __future__ import annotations

import logging

import pytest

from ..support.polling import eventually
from .conftest import ChannelFactory

pytestmark = [pytest.mark.anyio, pytest.mark.network]


async def test_a_member_joining_and_leaving_is_logged_with_a_member_field(
    make_channel: ChannelFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clustersession")
    a, _ = await make_channel(drop_time=30000)
    b, _ = await make_channel(drop_time=30000)
    assert await eventually(lambda: len(a.members) == 1 and len(b.members) == 1)
    await b.stop()
    assert await eventually(lambda: not a.members)

    about_b = [r for r in caplog.records if getattr(r, "member", None) == str(b.local)]
    messages = [r.getMessage() for r in about_b]
    assert f"member added: {b.local}" in messages, messages
    assert any(m.startswith(f"member removed: {b.local}") for m in messages), messages
    for record in about_b:  # the message still names it, as before
        assert str(b.local) in record.getMessage()
