"""The chaos runs' client: one process on the client host, writing to sessions throughout.

``python -m bench.chaos.client --nodes ADDR:PORT,... --out FILE`` (run inside the
client's namespace by :mod:`bench.chaos.cluster`). Each request goes to the next
node in turn, as a round-robin balancer would; a node that does not answer is
skipped for that request, which goes to the next one. Every ``--new-every``-th
request starts a session, the others write a counter that only grows (``n``) to
one of the sessions started so far, at random, so the last acknowledged ``n`` of a
session is the value every node must end with. A response that sets another session's cookie
(the node did not know the session, say across a partition, and started a new one)
is followed as a browser would: the write is in the new session, which the user
holds from then on (the line's ``was`` names the one it replaced).

One JSON line per attempt in ``FILE``: time, node, op (``create``/``write``),
session token, value, whether it was acknowledged (200), latency in ms. It stops
after ``--duration`` seconds or on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import time
from typing import Any

import httpx


def token_of(cookie: str) -> str:
    """A session id without its route suffix."""
    return cookie.split(".", 1)[0]


class Writer:
    """The request loop (see the module docstring)."""

    def __init__(self, nodes: list[str], out: Any, new_every: int, sessions: int) -> None:
        self.nodes = nodes
        self.clients = [httpx.Client(base_url=f"http://{n}", timeout=5.0) for n in nodes]
        self.out = out
        self.new_every = new_every
        self.max_sessions = sessions
        self.cookies: list[str] = []
        self.stopping = False
        self.count = 0
        self.rng = random.Random(0)

    def attempt(self, node: int, op: str, cookie: str | None, value: int) -> httpx.Response | None:
        """One request to ``node``; logged; the response when acknowledged."""
        start = time.perf_counter()
        headers = {"cookie": f"session={cookie}"} if cookie else {}
        client = self.clients[node]
        client.cookies.clear()  # only the cookie given here is sent
        try:
            response: httpx.Response | None = client.post(
                "/update", json={"n": value}, headers=headers
            )
        except httpx.HTTPError:
            response = None
        ms = (time.perf_counter() - start) * 1000
        ok = response is not None and response.status_code == 200
        token = token_of(cookie) if cookie else None
        was = None
        fresh = response.cookies.get("session") if ok and response is not None else None
        if fresh and token_of(fresh) != token:
            # A new session (the node did not know this one): the write is in it now.
            was, token = token, token_of(fresh)
        record = {"t": time.time(), "node": node, "op": op, "value": value, "ok": ok,
                  "ms": round(ms, 3), "token": token, "was": was}  # fmt: skip
        self.out.write(json.dumps(record) + "\n")
        return response if ok else None

    def step(self) -> None:
        """One logical request, tried on each node in turn until one acknowledges it."""
        value = self.count
        self.count += 1
        create = not self.cookies or (
            len(self.cookies) < self.max_sessions and value % self.new_every == 0
        )
        # A random session (seeded): the node turns round-robin, so that a session is
        # written on every node over time, whatever the count of sessions.
        slot = -1 if create else self.rng.randrange(len(self.cookies))
        cookie = None if create else self.cookies[slot]
        for offset in range(len(self.nodes)):
            node = (value + offset) % len(self.nodes)
            response = self.attempt(node, "create" if create else "write", cookie, value)
            if response is None:
                continue
            fresh = response.cookies.get("session")
            if create and fresh:
                self.cookies.append(fresh)
            elif fresh:
                # As a browser: the route moved (failover), or the node did not know the
                # session and started a new one, which this user holds from now on.
                self.cookies[slot] = fresh
            return

    def run(self, duration: float) -> None:
        """Write until ``duration`` passes or SIGTERM comes."""
        deadline = time.monotonic() + duration
        while not self.stopping and time.monotonic() < deadline:
            self.step()
        self.out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", required=True, help="ADDR:PORT,... in round-robin order")
    parser.add_argument("--out", required=True)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--new-every", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=300, help="at most this many")
    args = parser.parse_args()
    with open(args.out, "w", buffering=1) as out:
        writer = Writer(args.nodes.split(","), out, args.new_every, args.sessions)

        def stop(*_: object) -> None:
            writer.stopping = True

        signal.signal(signal.SIGTERM, stop)
        writer.run(args.duration)


if __name__ == "__main__":
    main()
