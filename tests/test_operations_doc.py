"""docs/operations.md's JSON logging recipe works as written, with the library's fields."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

from clustersession.channel.member import Member, member_fields
from clustersession.sessions.ids import session_fields

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def recipe() -> str:
    section = DOC.read_text(encoding="utf-8").split("### JSON logs with the standard library")[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_json_logging_recipe_puts_the_fields_in_the_json() -> None:
    namespace: dict[str, object] = {}
    logger = logging.getLogger("clustersession")
    before = list(logger.handlers), logger.level
    try:
        exec(compile(recipe(), str(DOC), "exec"), namespace)
        handler = logger.handlers[-1]
        assert isinstance(handler, logging.StreamHandler)
        stream = io.StringIO()
        handler.setStream(stream)
        member = Member(b"\x01" * 16, "10.0.0.2", 4000, "n2")
        logger.info("member added: %s", member, extra=member_fields(member))
        logger.warning("session %s: x", "abc", extra=session_fields("abcdefghijklmnop.n1"))
        first, second = (json.loads(line) for line in stream.getvalue().splitlines())
        assert first["member"] == str(member) and first["level"] == "INFO"
        assert first["message"] == f"member added: {member}"
        assert second["session_id"] == "abcdefgh…"
        assert "abcdefghijklmnop" not in stream.getvalue()
    finally:
        logger.handlers[:] = before[0]
        logger.setLevel(before[1])
