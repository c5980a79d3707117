"""What a node stores for one session, and what one request changed in it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ids import join_id


class _Undecoded:
    """What a request's session holds for a stored value no one has asked for yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecoded>"


UNDECODED: object = _Undecoded()
"""The placeholder of :attr:`SessionRecord.undecoded` (see :class:`.session.Session`)."""


@dataclass(slots=True)
class SessionRecord:
    """A stored session. Values are kept encoded (see :mod:`.codec`).

    ``token`` is the id without its route suffix, ``route`` the ``jvm_route`` of the
    node that serves it: the route is a hint for the load balancer, so it can change
    (failover) while the token, the session's identity, stays. ``max_inactive_interval`` is in
    seconds; zero or less means the session never expires (Tomcat's rule).
    """

    token: str
    route: str | None
    created_at: float
    last_accessed_at: float
    max_inactive_interval: int
    attributes: dict[str, bytes] = field(default_factory=dict)
    # Never changed in place once stored: merge() replaces the dict (copy-on-write),
    # so a request reads its session's values as they were when it began, uncopied.
    # Replication metadata (see .change): the stamp of each attribute's value, of
    # each removed attribute (a tombstone, so a late write cannot bring it back),
    # and of the route and interval. Zero means "never stamped".
    stamps: dict[str, int] = field(default_factory=dict, repr=False)
    removed: dict[str, int] = field(default_factory=dict, repr=False)
    route_stamp: int = 0
    interval_stamp: int = 0
    digest: int = field(default=0, repr=False, compare=False)  # see .digest
    # Attributes that session_attribute_name_filter keeps on this node: never
    # replicated, stamped or digested (None, not {}: most sessions have none).
    local: dict[str, bytes] | None = field(default=None, repr=False)
    bucket: int = field(default=0, repr=False, compare=False)  # the store's, set by put()
    # What a request's session starts from: (attributes, {key: UNDECODED, or the value
    # decoded when immutable}, whether that dict is this record's own) for the
    # attributes dict it was built for (see session._placeholders, and change.merge,
    # which carries an owned one over); None until a request reads.
    undecoded: tuple[dict[str, bytes], dict[str, object], bool] | None = field(
        default=None, repr=False, compare=False
    )

    def is_expired(self, now: float) -> bool:
        """Whether the session has been idle longer than its interval."""
        interval = self.max_inactive_interval
        return interval > 0 and now - self.last_accessed_at >= interval

    @property
    def session_id(self) -> str:
        """The id as the client sees it: ``token.route``."""
        return join_id(self.token, self.route)


# Not frozen: built on every write, and a frozen dataclass costs ~2x to build.
@dataclass(slots=True)
class SessionDelta:
    """The changes one request made to one session: the unit of replication.

    A request that only read an existing session yields a delta with nothing but
    ``accessed_at``. ``created`` carries the creation time of a new session;
    ``renamed_from`` the token it had before ``regenerate_id()``.
    """

    token: str
    route: str | None
    accessed_at: float
    created_at: float | None = None
    set: dict[str, bytes] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    max_inactive_interval: int | None = None
    invalidated: bool = False
    renamed_from: str | None = None

    @property
    def is_access_only(self) -> bool:
        """True when the request read the session and changed nothing."""
        return not (
            self.created_at is not None
            or self.set
            or self.removed
            or self.max_inactive_interval is not None
            or self.invalidated
            or self.renamed_from is not None
        )
