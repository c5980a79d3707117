"""docs/configuration.md covers every setting and the seed file; send-option parsing.

Also: the channel's send options come from the config's one definition of the bits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from clustersession.channel import options
from clustersession.config import ClusterConfig, ConfigError, send_options
from clustersession.config.schema import settings
from clustersession.config.send_options import describe, parse_send_options

ROOT = Path(__file__).parents[2]
DOCS = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
SEED = ROOT / "tests" / "fixtures" / "server.xml"


@pytest.mark.parametrize("path", list(settings()))
def test_every_setting_is_documented(path: str) -> None:
    info = settings()[path]
    assert f"`{info.env_name}`" in DOCS
    assert f"`{path.rpartition('.')[2]}`" in DOCS


def test_every_element_and_attribute_of_the_seed_is_in_the_mapping_table() -> None:
    table = DOCS.split("### The seed `server.xml`, element by element")[1].split("###")[0]
    for elem in ET.parse(SEED).getroot().iter():
        assert f"<{elem.tag}" in table, elem.tag
        for attr in elem.attrib:
            if attr != "className":
                assert f"{attr}" in table, f"{elem.tag} {attr}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8, 8),
        ("8", 8),
        ("async", 8),
        ("asynchronous", 8),
        ("ack", 2),
        ("use_ack", 2),
        ("ack,sync", 6),
        ("use_ack, synchronized_ack", 6),
        ("ACK|SYNC", 6),
        (["async", "ack"], 10),
        ("async,ack,sync", 14),
        ("8,2", 10),
        (14, 14),
    ],
)
def test_send_options_accepted(value: object, expected: int) -> None:
    assert parse_send_options("channel_send_options", value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1, "byte_message"),
        ("byte_message,async", "byte_message"),
        (16, ">= 16"),
        ("secure", ">= 16"),
        ("multicast,ack", ">= 16"),
        (4, "without ack"),
        ("async,sync", "without ack"),
        (0, "<= 0"),
        (-8, "<= 0"),
        ("bogus", "unknown send option 'bogus'"),
        ("", "unknown send option ''"),
        (True, "not a send option"),
        (2.0, "not a send option"),
    ],
)
def test_send_options_refused(value: object, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_send_options("channel_send_options", value)
    message = str(info.value)
    assert message.startswith("channel_send_options: ")
    assert reason in message
    assert repr(value) in message
    assert "8 (async)" in message


def test_describe() -> None:
    assert describe(8) == "async"
    assert describe(14) == "async,ack,sync"


def test_channel_takes_its_bits_from_config() -> None:
    assert (options.USE_ACK, options.SYNC_ACK, options.ASYNCHRONOUS) == (
        send_options.ACK,
        send_options.SYNC,
        send_options.ASYNC,
    )
    assert ClusterConfig().channel_send_options == options.DEFAULT


def _accepts(check: Callable[[int], object], value: int) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("value", range(-2, 130))
def test_channel_and_setting_agree_except_on_zero(value: int) -> None:
    # 0 is Channel.send's plain synchronous send; Tomcat ignores it as channelSendOptions.
    channel = _accepts(options.check, value)
    setting = _accepts(lambda v: parse_send_options("channel_send_options", v), value)
    assert channel == (value in (0, *send_options.VALID))
    assert setting == (value in send_options.VALID)
