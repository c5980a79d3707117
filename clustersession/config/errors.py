"""The one exception type of the configuration package."""

from __future__ import annotations

from typing import Final


class _NoValue:
    """Marker for errors that are about a key rather than a value."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE: Final = _NoValue()


class ConfigError(ValueError):
    """A setting is unknown or has a value that is not allowed.

    The message names the setting (a dotted key such as ``membership.port``, or
    the environment variable), where the value came from when that helps (the
    variable, the XML element/attribute or the file), the offending value and
    what is allowed, e.g. ``membership.port (from CLUSTERSESSION_MEMBERSHIP__PORT):
    'abc' is not an integer; allowed: an integer 1..65535``. The parts are also
    available as attributes for programs: ``key``, ``value``, ``problem``,
    ``allowed`` and ``source``.
    """

    def __init__(
        self,
        key: str,
        value: object,
        problem: str,
        allowed: str | None = None,
        *,
        source: str | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.problem = problem
        self.allowed = allowed
        self.source = source
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.key
        if self.source:
            where = f"{self.key} ({self.source})" if self.key else self.source
        text = f"{where}: "
        text += self.problem if self.value is NO_VALUE else f"{self.value!r} {self.problem}"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        return text

    def with_source(self, source: str | None) -> ConfigError:
        """Return a copy that also names where the value came from."""
        if source is None or self.source is not None:
            return self
        return ConfigError(self.key, self.value, self.problem, self.allowed, source=source)
