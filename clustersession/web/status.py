"""The cluster status page and JSON (our answer to Tomcat's JMX beans and manager app).

Served by the middleware at ``valves.status.path`` (HTML) and ``path + ".json"``,
when configured. Protected by ``valves.status.token``, or, without one, answered
only for clients on a loopback address.
"""

from __future__ import annotations

import dataclasses
import hmac
import html
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..channel import PeerTraffic
from ..config.sections import StatusValveConfig
from ..sessions.manager import ClusterView

_LOOPBACK = ("127.", "::1")
_FORBIDDEN = b"forbidden: see valves.status.token"


def snapshot(manager: Viewable, route: str | None) -> dict[str, Any]:
    """What the status page shows, as plain data."""
    view = manager.view()
    data: dict[str, Any] = {
        "route": route,
        "time": time.time(),
        "sessions": view.sessions,
        "rejected_sessions": view.rejected_sessions,
        "tombstones": view.tombstones,
        "distributable": view.distributable,
        "members": [],
    }
    if view.replication is None or view.channel is None or view.local is None:
        return data
    stats = view.channel
    data["local"] = view.local.as_dict()
    for member in view.members:
        traffic = stats.peers.get(member.id, PeerTraffic())
        data["members"].append(
            {
                **member.as_dict(),
                "state": "alive",
                "messages_sent": traffic.messages_sent,
                "messages_received": traffic.messages_received,
                "failed_sends": traffic.failed_sends,
                "mean_ack_ms": traffic.mean_ack_ms,
            }
        )
    replication = view.replication
    data["replication"] = {
        **dataclasses.asdict(replication.counters),
        "state_transferred": replication.state_transferred,
        "send_options": replication.send_options,
    }
    data["channel"] = stats.as_dict()
    if view.roles is not None:
        data["roles"] = dataclasses.asdict(view.roles)
    return data


class Viewable(Protocol):
    """What the status page reads: a manager, or a manager on its own thread (WSGI)."""

    def view(self) -> ClusterView:
        """The numbers and members to show."""


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """The status page's response, for any server interface to send."""

    status: int
    content_type: str
    body: bytes


class StatusPage:
    """The status page and its JSON, in front of the app (ASGI, or asked by the WSGI adapter)."""

    def __init__(self, config: StatusValveConfig, manager: Viewable, route: str | None) -> None:
        self.path = config.path
        self.token = config.token
        self.manager = manager
        self.route = route

    def matches(self, path: str) -> bool:
        """Whether a request path is the page or its JSON."""
        return bool(self.path) and path in (self.path, self.path + ".json")

    def allowed(self, client_host: str | None, query_string: str, authorization: str) -> bool:
        """The token, or, without one, a loopback client.

        The token comes as ``Authorization: Bearer <token>`` (the documented way: a
        header stays out of access logs); ``?token=`` is still read, for a browser,
        when no Bearer header is sent.
        """
        if self.token:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":  # schemes are case-insensitive (RFC 9110)
                offered = credentials.strip()
            else:
                offered = parse_qs(query_string).get("token", [""])[0]
            return hmac.compare_digest(offered.encode(), self.token.encode())
        return client_host is not None and client_host.startswith(_LOOPBACK)

    def answer(
        self, path: str, *, client_host: str | None, query_string: str, authorization: str
    ) -> StatusAnswer:
        """The page (HTML) or its JSON, or 403 for a client that may not see it."""
        if not self.allowed(client_host, query_string, authorization):
            return StatusAnswer(403, "text/plain; charset=utf-8", _FORBIDDEN)
        data = snapshot(self.manager, self.route)
        if path.endswith(".json"):
            body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            return StatusAnswer(200, "application/json", body.encode())
        page = render(data, json_path=self.path + ".json")
        return StatusAnswer(200, "text/html; charset=utf-8", page.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
        client = scope.get("client")
        answer = self.answer(
            scope["path"],
            client_host=None if client is None else str(client[0]),
            query_string=scope.get("query_string", b"").decode("latin-1"),
            authorization=authorization,
        )
        response = Response(answer.body, answer.status, media_type=answer.content_type)
        await response(scope, receive, send)


def render(data: dict[str, Any], *, json_path: str) -> str:
    """The HTML page: a picture of the members, then the numbers."""
    esc = html.escape
    members = data["members"]
    rows = (
        "".join(
            f"<tr><td>{esc(m['route'])}</td><td>{esc(m['host'])}:{m['port']}</td>"
            f"<td>{esc(m['state'])}</td><td>{m['alive_s']:.0f} s</td>"
            f"<td>{m['messages_sent']}</td><td>{m['messages_received']}</td>"
            f"<td>{m['failed_sends']}</td><td>{m['mean_ack_ms']:.2f}</td></tr>"
            for m in members
        )
        or '<tr><td colspan="8"><em>no other member</em></td></tr>'
    )
    counters = data.get("replication", {})
    numbers = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in counters.items()
    )
    roles = data.get("roles")
    if roles is not None:
        mode = (
            f"primary of {roles['primaries']}, backup of {roles['backups']}, "
            f"proxies for {roles['proxies']} (backup manager)"
        )
    elif data["distributable"]:
        mode = "replicated to every member"
    else:
        mode = "local (not distributable)"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="2">
<title>cluster status: {esc(data["route"])}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1rem auto; max-width: 60rem;
        padding: 0 1rem; }}
 table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
 td, th {{ border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }}
 svg {{ max-width: 100%; height: auto; }}
 .wide {{ overflow-x: auto; }}
</style></head><body>
<h1>Cluster status</h1>
<p>This node: <strong>{esc(data["route"])}</strong> &middot; {plural(data["sessions"], "session")},
{mode} &middot; <a href="{esc(json_path)}">JSON</a></p>
{diagram(data)}
<h2>Members</h2>
<div class="wide"><table>
<tr><th>route</th><th>address</th><th>state</th><th>age</th><th>msgs sent</th>
<th>msgs received</th><th>failed sends</th><th>ack ms</th></tr>
{rows}
</table></div>
<h2>Replication</h2>
<table>{numbers or "<tr><td><em>none: sessions are local</em></td></tr>"}</table>
</body></html>
"""


def plural(count: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def diagram(data: dict[str, Any]) -> str:
    """An inline SVG: this node in the middle, members around it, traffic on the edges."""
    width, height, radius = 520, 320, 120
    cx, cy = width / 2, height / 2
    members = data["members"]
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="cluster members">']
    for i, member in enumerate(members):
        angle = 2 * math.pi * i / max(len(members), 1) - math.pi / 2
        x, y = cx + radius * math.cos(angle) * 1.6, cy + radius * math.sin(angle)
        traffic = member["messages_sent"] + member["messages_received"]
        stroke = 1 + min(traffic, 10_000) ** 0.25
        parts.append(
            f'<line x1="{cx:.0f}" y1="{cy:.0f}" x2="{x:.0f}" y2="{y:.0f}" '
            f'stroke="#6a8" stroke-width="{stroke:.1f}"/>'
            f'<text x="{(cx + x) / 2:.0f}" y="{(cy + y) / 2 - 4:.0f}" font-size="11" '
            f'text-anchor="middle" fill="#375">&#8594;{member["messages_sent"]} '
            f"&#8592;{member['messages_received']}</text>"
        )
        parts.append(
            node_circle(x, y, member["route"], f"{member['host']}:{member['port']}", "#dfe")
        )
    local = data.get("local", {})
    address = f"{local.get('host') or '*'}:{local.get('port', '')}" if local else "one node"
    parts.append(node_circle(cx, cy, data["route"] + " (this)", address, "#cde"))
    parts.append("</svg>")
    return "".join(parts)


def node_circle(x: float, y: float, title: str, subtitle: str, fill: str) -> str:
    """One member in the diagram."""
    esc = html.escape
    return (
        f'<circle cx="{x:.0f}" cy="{y:.0f}" r="44" fill="{fill}" stroke="#357"/>'
        f'<text x="{x:.0f}" y="{y - 2:.0f}" font-size="13" text-anchor="middle">{esc(title)}</text>'
        f'<text x="{x:.0f}" y="{y + 14:.0f}" font-size="10" text-anchor="middle">'
        f"{esc(subtitle)}</text>"
    )
