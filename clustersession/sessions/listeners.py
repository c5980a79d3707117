"""Session lifecycle callbacks, after the Servlet API's session listeners."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

DestroyReason = Literal["invalidated", "expired"]


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A session was created or destroyed.

    ``remote`` is True when the change came from another node of the cluster.
    ``reason`` says why a session was destroyed (``None`` otherwise);
    ``previous_id`` is the old id when the id changed.
    """

    session_id: str
    remote: bool
    reason: DestroyReason | None = None
    previous_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttributeEvent:
    """An attribute was added, replaced or removed.

    ``value`` is the new value (``None`` on removal), ``old_value`` the previous one
    (``None`` on addition). Values are decoded copies: changing them changes nothing.
    """

    session_id: str
    name: str
    value: Any
    old_value: Any
    remote: bool


class SessionListener:
    """Subclass and override what you need; pass instances as ``listeners=[...]``.

    Methods are called on the event loop when a request's changes are committed
    (after the app produced its response), so keep them short; an exception in a
    listener is logged and does not affect the request or other listeners.
    """

    def session_created(self, event: SessionEvent) -> None:
        """A session was created."""

    def session_destroyed(self, event: SessionEvent) -> None:
        """A session was invalidated or expired."""

    def session_id_changed(self, event: SessionEvent) -> None:
        """The session got a new id (``regenerate_id()``); ``event.previous_id`` is the old one."""

    def attribute_added(self, event: AttributeEvent) -> None:
        """A new key was set."""

    def attribute_replaced(self, event: AttributeEvent) -> None:
        """An existing key got a different value."""

    def attribute_removed(self, event: AttributeEvent) -> None:
        """A key was removed."""
