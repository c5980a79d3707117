"""HAProxy in front of the demo nodes: stickiness by the session id's route suffix."""

from __future__ import annotations

from collections.abc import Sequence

READINESS_PATH = "/readyz"
"""The nodes' ``valves.health.readiness_path``: 503 until a node holds the sessions."""


def haproxy_config(
    bind: str,
    servers: Sequence[tuple[str, str]],
    *,
    cookie: str = "session",
    namespace: str | None = None,
) -> str:
    """An haproxy.cfg: ``servers`` are ``(jvm_route, "host:port")`` pairs.

    A request whose session cookie ends in ``.<route>`` goes to that route's
    server while it is up; otherwise (no cookie, or that server is down) round
    robin, and a failed connection is retried on another server at once
    (``option redispatch 1``), so a dead node's users land on a live one.
    """
    lines = [
        "global",
        "    log stdout format raw local0 warning",
        "defaults",
        "    mode http",
        "    log global",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "    retries 1",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        "frontend www",
        f"    bind {bind}",
        "    default_backend nodes",
        "backend nodes",
        "    balance roundrobin",
        f"    option httpchk GET {READINESS_PATH}",
        "    default-server check inter 500ms fall 2 rise 2",
    ]
    for route, _ in servers:
        lines.append(f"    acl to_{route} req.cook({cookie}) -m end .{route}")
        lines.append(f"    use-server {route} if to_{route}")
    suffix = f" namespace {namespace}" if namespace else ""
    lines += [f"    server {route} {address}{suffix}" for route, address in servers]
    return "\n".join(lines) + "\n"
