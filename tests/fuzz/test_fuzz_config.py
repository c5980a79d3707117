"""Fuzzing the configuration loaders: Tomcat's server.xml (and web.xml) and TOML files.

Property: a bad file is a ``ConfigError`` naming the setting, never another exception.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clustersession.config import ClusterConfig, ConfigError
from clustersession.config.schema import settings

from .strategies import mutated

SERVER_XML = (Path(__file__).resolve().parents[1] / "fixtures" / "server.xml").read_bytes()
WEB_XML = b'<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee"><distributable/></web-app>'
ATTRIBUTE = re.compile(rb'(\w+)="([^"]*)"')
ATTRIBUTES = ATTRIBUTE.findall(SERVER_XML)


def _escape(text: str) -> bytes:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;").encode("utf-8")


@st.composite
def _server_xml(draw: st.DrawFn) -> bytes:
    """The fixture with some attribute values replaced: reaches every attribute's checks."""
    data = SERVER_XML
    for _ in range(draw(st.integers(1, 4))):
        name, old = draw(st.sampled_from(ATTRIBUTES))
        new = draw(
            st.text(max_size=20)
            | st.integers(-(2**70), 2**70).map(str)
            | st.sampled_from(["", "true", "-1", "0", "1e9", "NaN", "auto", "a.b.C"])
        )
        data = data.replace(name + b'="' + old + b'"', name + b'="' + _escape(new) + b'"', 1)
    return data


def _load_xml(server_xml: bytes, web_xml: bytes | None) -> None:
    try:
        ClusterConfig.from_tomcat_xml(server_xml, web_xml, environ={})
    except ConfigError:
        return


@given(
    _server_xml() | mutated(st.just(SERVER_XML)) | st.binary(max_size=200),
    st.none() | mutated(st.just(WEB_XML)),
)
def test_tomcat_xml(server_xml: bytes, web_xml: bytes | None) -> None:
    _load_xml(server_xml, web_xml)


def test_xml_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Server port="&b;"/>'
    )
    try:
        ClusterConfig.from_tomcat_xml(bomb, environ={})
    except ConfigError as exc:
        assert "DOCTYPE" in str(exc)
    else:
        raise AssertionError("an entity declaration was accepted")


@pytest.mark.parametrize(
    "declaration",
    [
        b'<?xml version="1.0" encoding="TTF-8"?>',  # found by the fuzzer: a LookupError escaped
        b'<?xml version="1.0" encoding="ascii"?>',
        b'<?xml version="1.0" encoding="utf-16"?>',
    ],
)
def test_an_xml_declaration_naming_a_bad_encoding_is_a_config_error(declaration: bytes) -> None:
    with pytest.raises(ConfigError, match=r"server\.xml"):
        ClusterConfig.from_tomcat_xml(declaration + b'<Server a="\xff\xfe"/>', environ={})


PATHS = sorted(settings())
toml_values = st.recursive(
    st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.text(max_size=20)
    | st.sampled_from(["1 MiB", "5 s", "auto", "async,ack", "228.0.0.4", ""]),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


@st.composite
def _toml_files(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(PATHS) | st.text(max_size=10), max_size=5, unique=True))
    lines = [f"{json.dumps(k) if '.' not in k else k} = {_toml(draw(toml_values))}" for k in keys]
    return "\n".join(lines)


def _load_toml(text: str) -> None:
    handle, name = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)
        ClusterConfig.load(name, environ={})
    except ConfigError:
        return
    finally:
        os.unlink(name)


@given(_toml_files() | st.text(max_size=200))
def test_toml_files(text: str) -> None:
    _load_toml(text)
