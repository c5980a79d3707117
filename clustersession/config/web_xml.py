"""Read what a Tomcat web app's ``web.xml`` says about clustering into ``{dotted path: Raw}``.

Only two things matter here: ``<distributable/>`` (replicate sessions or not)
and ``<session-config><session-timeout>`` (minutes → ``manager.max_inactive_interval``).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Final

from .errors import ConfigError
from .safe_xml import local_name, namespace, read_xml
from .schema import Raw

# web.xml namespaces from J2EE 1.4 to Jakarta EE; "" for DTD-era files (2.3),
# whose DOCTYPE line must be removed since DOCTYPEs are refused.
WEB_APP_NAMESPACES: Final = frozenset(
    {
        "",
        "http://java.sun.com/xml/ns/j2ee",
        "http://java.sun.com/xml/ns/javaee",
        "http://xmlns.jcp.org/xml/ns/javaee",
        "https://jakarta.ee/xml/ns/jakartaee",
    }
)


def web_xml_values(source: str | bytes | os.PathLike[str]) -> dict[str, Raw]:
    """``distributable`` (always) and the session timeout (if set) of a web.xml.

    ``source`` is a path, or the XML itself (bytes, or a str starting with ``<``).
    """
    root, name = read_xml(source, "web.xml")
    ns = namespace(root.tag)
    if local_name(root.tag) != "web-app" or ns not in WEB_APP_NAMESPACES:
        raise ConfigError(
            name,
            root.tag,
            "is not a web.xml root element",
            "<web-app> in no namespace or a Java EE / Jakarta EE namespace",
        )

    def tag(local: str) -> str:
        # A <distributable> of a foreign namespace is not the servlet element.
        return f"{{{ns}}}{local}" if ns else local

    out: dict[str, Raw] = {
        "distributable": Raw(
            root.find(tag("distributable")) is not None, f"from <distributable/> in {name}"
        )
    }
    timeout = root.find(f"{tag('session-config')}/{tag('session-timeout')}")
    if timeout is not None:
        out["manager.max_inactive_interval"] = _session_timeout(timeout, name)
    return out


def _session_timeout(elem: ET.Element, name: str) -> Raw:
    text = (elem.text or "").strip()
    source = f"from <session-timeout> (minutes) in {name}"
    try:
        minutes = int(text)
    except ValueError:
        raise ConfigError(
            "manager.max_inactive_interval",
            text,
            "is not an integer",
            "an integer number of minutes (<= 0: never expires)",
            source=source,
        ) from None
    # Servlet spec: <= 0 never times out; keep it <= 0 rather than scaling it.
    return Raw(minutes * 60 if minutes > 0 else minutes, source)
