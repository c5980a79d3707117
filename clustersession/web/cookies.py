"""The session cookie: reading it from a request, writing it into a response.

Set-Cookie values are byte-for-byte those of Starlette's ``SessionMiddleware``
(same attribute order and spelling), so clients and tests that inspect them see
no difference.
"""

from __future__ import annotations

from typing import Literal

SameSite = Literal["lax", "strict", "none"]

_CLEARED = "expires=Thu, 01 Jan 1970 00:00:00 GMT"


class SessionCookie:
    """The cookie's name and attributes, as Starlette's middleware takes them.

    ``httponly=False`` and ``same_site=None`` (no SameSite attribute) are not
    Starlette's: they let frameworks whose settings allow them (Flask's
    ``SESSION_COOKIE_HTTPONLY``/``SAMESITE``) write their own cookie here.
    """

    def __init__(
        self,
        name: str = "session",
        *,
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: SameSite | None = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        httponly: bool = True,
    ) -> None:
        self.name = name
        self.max_age = max_age
        self.path = path
        # Starlette's order: httponly; samesite; secure; domain; partitioned.
        flags: list[str] = []
        if httponly:
            flags.append("httponly")
        if same_site is not None:
            flags.append("samesite=" + same_site)
        if https_only:  # browsers only send a Secure cookie over HTTPS
            flags.append("secure")
        if domain is not None:
            flags.append(f"domain={domain}")
        if partitioned:
            flags.append("partitioned")
        self._flags = "".join("; " + flag for flag in flags)
        self._name_bytes = name.encode("latin-1")
        self._prefix = self._name_bytes + b"="
        # A name holding "=" or ";" (or blank) does not split as the prefix says: no shortcut.
        self._plain = bool(name.strip()) and name == name.strip() and not set(name) & set("=;")

    def read(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """The cookie's value from the raw ASGI request headers, if sent.

        A direct scan of the ``Cookie`` headers: this runs on every request, and
        parsing every cookie into a dict costs more than finding ours.
        """
        name = self._name_bytes
        # A plain loop: a list comprehension is a function call of its own (3.11), and
        # find() rather than "in", which for bytes first tries the name as an int and
        # raises (and clears) a TypeError on every request.
        for key, value in headers:
            if key != b"cookie" or value.find(name) < 0:
                continue
            if value.startswith(self._prefix) and self._plain:
                # Ours is the first cookie (the first chunk is "name=..."): what the
                # loop below would return, without splitting the whole header.
                end = value.find(b";")
                val = value[len(self._prefix) : end] if end >= 0 else value[len(self._prefix) :]
                return val.strip().strip(b'"').decode("latin-1")
            for chunk in value.split(b";"):
                key_part, sep, val = chunk.partition(b"=")
                if sep and key_part.strip() == name:
                    return val.strip().strip(b'"').decode("latin-1")
        return None

    def set_header(self, value: str) -> str:
        """A ``Set-Cookie`` value that stores ``value``."""
        max_age = f"; Max-Age={self.max_age}" if self.max_age is not None else ""
        return f"{self.name}={value}; path={self.path}{max_age}{self._flags}"

    def clear_header(self) -> str:
        """A ``Set-Cookie`` value that deletes the cookie."""
        return f"{self.name}=null; path={self.path}; {_CLEARED}{self._flags}"
