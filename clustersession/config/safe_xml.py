"""Parse XML with expat into an ElementTree, refusing DTDs and entity declarations.

server.xml and web.xml are small, trusted-ish files, but a DOCTYPE could still
declare entities that expand exponentially ("billion laughs") or point at
external files. Tomcat configs need neither, so any DOCTYPE is refused before
expat could expand anything.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any, Final
from xml.parsers import expat

from .errors import NO_VALUE, ConfigError

MAX_XML_BYTES: Final = 10 * 1024 * 1024


class _Refused(Exception):
    """Raised from inside expat callbacks; turned into ConfigError."""


def is_inline(source: str | bytes | os.PathLike[str]) -> bool:
    """Whether ``source`` is the XML itself (bytes, or a str starting with ``<``), not a path."""
    return isinstance(source, bytes) or (
        isinstance(source, str) and source.lstrip().startswith("<")
    )


def read_xml(source: str | bytes | os.PathLike[str], what: str) -> tuple[ET.Element, str]:
    """Parse a path, bytes, or a str starting with ``<``; return (root, name for messages)."""
    if isinstance(source, bytes):
        return parse_xml(source, what), what
    if isinstance(source, str) and is_inline(source):
        return parse_xml(source.encode("utf-8"), what), what
    name = os.fspath(source)
    try:
        with open(name, "rb") as fh:
            data = fh.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            name, NO_VALUE, f"cannot be read ({exc.strerror})", f"a readable {what}"
        ) from None
    return parse_xml(data, name), name


def parse_xml(data: bytes, name: str) -> ET.Element:
    if len(data) > MAX_XML_BYTES:
        raise ConfigError(name, NO_VALUE, "is too large", f"at most {MAX_XML_BYTES} bytes")
    # Namespaced names come back as "uri local"; turned into ElementTree's "{uri}local".
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    builder = ET.TreeBuilder()

    def refuse(*_args: object) -> Any:
        raise _Refused("DOCTYPE and entity declarations are not allowed")

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(_name(tag), {_name(k): v for k, v in attrs.items()})

    def end(tag: str) -> None:
        builder.end(_name(tag))

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise ConfigError(
            name, NO_VALUE, f"is refused: {exc}", "plain XML without a DOCTYPE"
        ) from None
    except expat.ExpatError as exc:
        raise ConfigError(
            name, NO_VALUE, f"is not well-formed XML ({exc})", "well-formed XML"
        ) from None
    except (LookupError, UnicodeError) as exc:  # the declaration names an unknown encoding
        raise ConfigError(
            name, NO_VALUE, f"cannot be decoded ({exc})", "XML in UTF-8 or a known encoding"
        ) from None
    return builder.close()


def _name(raw: str) -> str:
    uri, sep, local = raw.rpartition(" ")
    return f"{{{uri}}}{local}" if sep else raw


def local_name(tag: str) -> str:
    """``{uri}distributable`` → ``distributable``."""
    return tag.rpartition("}")[2]


def namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""
