"""Send options of ``GroupChannel.send``: Tomcat's ``Channel.SEND_OPTIONS_*`` bits.

The bits and the rules about which combinations are supported are defined once,
in :mod:`clustersession.config.send_options` (config is the bottom layer; the
channel takes them from there). The channel accepts one value the
``channel_send_options`` setting refuses: 0, which for ``Channel.send`` in Tomcat
is a plain synchronous send without acknowledgement (``send`` returns once the
message is written; nothing is awaited from the peer). The setting is Tomcat's
``<Cluster channelSendOptions>``, where Tomcat ignores 0, so a config cannot ask
for it; a caller of ``send`` can.
"""

from __future__ import annotations

from typing import Final

from ..config.send_options import ACK, ASYNC, SYNC, unsupported

USE_ACK: Final = ACK
"""The receiver acknowledges when it has read the message."""

SYNC_ACK: Final = SYNC
"""With USE_ACK: the receiver acknowledges after its listeners processed the message."""

ASYNCHRONOUS: Final = ASYNC
"""``send`` returns at once; the dispatch queue sends the message."""

DEFAULT: Final = ASYNCHRONOUS


def check(options: int) -> int:
    """``options`` if the channel can send with them (0, 2, 6, 8, 10, 14), else ``ValueError``.

    0 is accepted: a synchronous send without acknowledgement (see the module docstring).
    """
    problem = unsupported(options)
    if problem is not None:
        raise ValueError(
            f"send options {options} {problem}; allowed: 0 (no ack), USE_ACK (2), "
            "USE_ACK|SYNC_ACK (6), each optionally with ASYNCHRONOUS (8)"
        )
    return options
