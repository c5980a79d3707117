"""Session ids: random, optionally signed, with Tomcat's ``.<jvm_route>`` suffix.

An id is ``<token>.<route>``. The token is 22 URL-safe characters holding 128 random
bits from :mod:`secrets`; with a secret it is followed by 22 more characters, an
HMAC-SHA256 tag of the random part (truncated to 128 bits), so a forged or guessed
id is refused by arithmetic, before any store lookup. The token never contains a
dot, so load balancers that take the route after the first or after the last dot
(mod_jk, mod_proxy_balancer, HAProxy's ``field(2,.)``) all find it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_RANDOM_BYTES = 16
_TAG_BYTES = 16
_PART_CHARS = 22  # len(base64url(16 bytes)) without padding
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
# A key of its own, so the cookie tag cannot be confused with other uses of the secret.
_KEY_LABEL = b"clustersession/v1/session-id"
_VERIFIED_CACHE = 65536


def loggable_id(value: str | None) -> str:
    """The first 8 characters of a session id or cookie value, for logs.

    A whole id is a usable credential (whoever reads the log can replay it), so
    no log line carries one; 8 characters still tell sessions apart when reading.
    """
    if value is None:
        return "<none>"
    return value[:8] + "…"


def session_fields(value: str | None) -> dict[str, str]:
    """The structured log fields of a record about one session (``extra=``).

    ``session_id`` is cut as :func:`loggable_id` cuts it: never a whole id.
    """
    return {"session_id": loggable_id(value)}


def join_id(token: str, route: str | None) -> str:
    """The id as the client sees it: ``token.route``, or the bare token without a route."""
    return f"{token}.{route}" if route else token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _key_of(secret: str | bytes) -> bytes:
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()


class SessionIds:
    """Makes and checks session ids for one node.

    ``secret``: when set, tokens carry an HMAC tag and unsigned or forged ones are
    refused (``bytes`` as well as ``str``: Flask's ``secret_key`` may be either).
    ``route``: this node's ``jvm_route``, appended as ``.<route>``.
    ``previous``: secrets being rotated; ids they signed are still accepted, new
    ids are signed with ``secret`` only (``previous`` is ignored without a secret).
    """

    def __init__(
        self,
        secret: str | bytes | None,
        route: str | None,
        previous: tuple[str | bytes, ...] = (),
    ) -> None:
        self.route = route or None
        keys = [_key_of(s) for s in (secret, *previous) if s] if secret else []
        self._key = keys[0] if keys else None
        self._previous_keys = tuple(keys[1:])
        self._token_chars = _PART_CHARS * (2 if self._key else 1)
        # Cookie values that parsed (and whose tag verified): a returning client
        # skips the checks and the HMAC. Only good values enter, so a hit is as
        # good as a check.
        self._verified: dict[str, tuple[str, str | None]] = {}

    def _tag(self, random_part: str, key: bytes | None = None) -> str:
        key = key or self._key
        assert key is not None
        digest = hmac.digest(key, random_part.encode("ascii"), "sha256")
        return _b64(digest[:_TAG_BYTES])

    def new_token(self) -> str:
        """A fresh token (the id without its route)."""
        random_part = _b64(secrets.token_bytes(_RANDOM_BYTES))
        if self._key is None:
            return random_part
        return random_part + self._tag(random_part)

    def full_id(self, token: str) -> str:
        """The id as the client sees it: ``token.route`` (or the bare token)."""
        return join_id(token, self.route)

    def parse(self, value: str) -> tuple[str, str | None] | None:
        """Split a cookie value into ``(token, route)``; ``None`` if malformed or forged."""
        parsed = self._verified.get(value)
        if parsed is not None:
            return parsed
        token, _, route = value.partition(".")
        if len(token) != self._token_chars or not _TOKEN_RE.fullmatch(token):
            return None
        if route and not _TOKEN_RE.fullmatch(route):
            return None
        if self._key is not None:
            random_part, tag = token[:_PART_CHARS], token[_PART_CHARS:]
            if not hmac.compare_digest(tag, self._tag(random_part)) and not any(
                hmac.compare_digest(tag, self._tag(random_part, key)) for key in self._previous_keys
            ):
                return None
        if len(self._verified) >= _VERIFIED_CACHE:
            self._verified.clear()
        parsed = self._verified[value] = (token, route or None)
        return parsed
