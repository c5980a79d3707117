"""The channel floor: a group communication channel (Tomcat's tribes) on asyncio.

It knows nothing of sessions or HTTP; :class:`~.group.GroupChannel` moves opaque
payloads between members and tells who the members are.
"""

from .api import Channel, ChannelStats, MembershipListener, MessageListener, PeerTraffic
from .errors import ChannelError
from .group import GroupChannel
from .interceptors.base import ChannelMessage
from .member import Member, member_fields

__all__ = [
    "Channel",
    "ChannelError",
    "ChannelMessage",
    "ChannelStats",
    "GroupChannel",
    "Member",
    "MembershipListener",
    "MessageListener",
    "PeerTraffic",
    "member_fields",
]
