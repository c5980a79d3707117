"""The channel floor: a group communication channel (Tomcat's tribes) on asyncio.

It knows nothing of sessions or HTTP; :class:`~.group.GroupChannel` moves opaque
payloads between members and tells who the members are.
"""

from .errors import ChannelError
from .group import GroupChannel, MembershipListener
from .interceptors.base import ChannelMessage
from .member import Member

__all__ = ["ChannelError", "ChannelMessage", "GroupChannel", "Member", "MembershipListener"]
