"""Real servers on loopback for tests: gunicorn and uvicorn nodes of one cluster.

Each server is a process group of its own (the master and its workers), so a
test kills a whole node with one signal and teardown leaves nothing behind.
HTTP goes over a new connection per request with an explicit ``Cookie`` header,
so the kernel picks a worker for every request and no cookie jar carries state
between them.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from .loopback import SECRET, random_mcast_port, random_receiver_port
from .polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
COOKIE = "session"


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Cluster:
    """What the nodes of one test cluster share: multicast group port and domain, secret.

    The domain is unique per cluster: members of other clusters on this machine
    (other test runs share lo) are ignored even if they picked the same group port.
    """

    mcast_port: int = field(default_factory=random_mcast_port)
    domain: str = field(default_factory=lambda: f"wsgi-{uuid.uuid4().hex[:12]}")

    def env(self, route: str, **settings: str) -> dict[str, str]:
        """The environment of one node: shared settings, its route, ``settings`` on top.

        ``settings`` are ``CLUSTERSESSION_*`` names without the prefix
        (``CHANNEL_SEND_OPTIONS="6"``).
        """
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("CLUSTERSESSION_")}  # fmt: skip
        env.update(
            {
                "CLUSTERSESSION_SECRET": SECRET,
                "CLUSTERSESSION_DISTRIBUTABLE": "true",
                "CLUSTERSESSION_JVM_ROUTE": route,
                "CLUSTERSESSION_MEMBERSHIP__BIND": HOST,  # multicast stays on lo
                "CLUSTERSESSION_MEMBERSHIP__ADDRESS": "228.0.0.4",
                "CLUSTERSESSION_MEMBERSHIP__PORT": str(self.mcast_port),
                "CLUSTERSESSION_MEMBERSHIP__DOMAIN": self.domain,
                # Fast heartbeats: a killed node is dropped within about a second.
                "CLUSTERSESSION_MEMBERSHIP__FREQUENCY": "100",
                "CLUSTERSESSION_MEMBERSHIP__DROP_TIME": "1000",
                "CLUSTERSESSION_RECEIVER__ADDRESS": HOST,
                # A random first port below the ephemeral range (client sockets take those);
                # every worker binds the next free one of the auto_bind range.
                "CLUSTERSESSION_RECEIVER__PORT": str(random_receiver_port()),
                "CLUSTERSESSION_RECEIVER__AUTO_BIND": "50",
            }
        )
        env.update({f"CLUSTERSESSION_{name}": value for name, value in settings.items()})
        return env


@dataclass(frozen=True)
class Reply:
    """One HTTP response: status, headers, body, and the session cookie it set."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode()

    @property
    def cookie(self) -> str | None:
        """The value the response's Set-Cookie gives the session cookie, if any."""
        for name, value in self.headers:
            if name.lower() == "set-cookie":
                parsed: SimpleCookie = SimpleCookie()
                parsed.load(value)
                if COOKIE in parsed:
                    return parsed[COOKIE].value
        return None


class Server:
    """One server (master and workers) serving HTTP on ``127.0.0.1:port``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.log: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.clean_statuses = {0}
        """Exit statuses of a graceful stop (uvicorn re-raises the SIGTERM it handled)."""
        self.shutdown_lines: tuple[str, int] | None = None
        """A line a graceful stop prints, and how many times (once per worker)."""

    @property
    def route(self) -> str:
        """The node's ``jvm_route``."""
        return self.env["CLUSTERSESSION_JVM_ROUTE"]

    def start(self, log: Path) -> Server:
        """Start the server in a process group of its own, output to ``log``; returns at once."""
        self.log = log
        with log.open("ab") as stream:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The master's pid (the process group's id)."""
        assert self.process is not None, "start() first"
        return self.process.pid

    def output(self) -> str:
        """What the server wrote so far (both streams)."""
        return "" if self.log is None else self.log.read_text(errors="replace")

    # -- HTTP ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        cookie: str | None = None,
        *,
        json_body: object = None,
        timeout: float = 30.0,
    ) -> Reply:
        """One request on a new connection, carrying ``cookie`` and nothing else."""
        headers = {"Connection": "close"}
        if cookie is not None:
            headers["Cookie"] = f"{COOKIE}={cookie}"
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, response.getheaders(), response.read())
        finally:
            connection.close()

    def listening(self) -> bool:
        """Whether the server accepts connections (its workers may still be booting)."""
        try:
            with socket.create_connection((HOST, self.port), timeout=1):
                return True
        except OSError:
            return False

    def health(self) -> dict[str, Any] | None:
        """``/health`` of whichever worker answers (its member starts), or None."""
        try:
            reply = self.request("GET", "/health", timeout=10)
        except OSError:
            return None
        return reply.json() if reply.status == 200 else None

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until ``/health`` answers; fail with the server's output if it does not."""
        self._check(wait_for(lambda: self.health() is not None, timeout, 0.1), "did not start")

    def wait_members(self, routes: Iterable[str], timeout: float = 20.0) -> None:
        """Wait until a ``/health`` answer lists exactly ``routes`` as the other members."""
        wanted = sorted(routes)
        last: list[dict[str, Any] | None] = [None]

        def seen() -> bool:
            last[0] = self.health()
            return last[0] is not None and last[0]["members"] == wanted

        self._check(wait_for(seen, timeout, 0.05), f"never saw members {wanted} (last: {last[0]})")

    def _check(self, ok: bool, problem: str) -> None:
        assert ok, f"{self.name} {problem}; its output:\n{self.output()}"

    # -- signals ---------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the whole node (master and workers): a crash, nobody leaves."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def terminate(self) -> bool:
        """SIGTERM the node: a graceful shutdown (workers stop, members leave).

        False if it was not running.
        """
        if self.process is None or self.process.poll() is not None:
            return False
        os.killpg(self.process.pid, signal.SIGTERM)
        return True

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the master to exit; SIGKILL the group if it does not in time."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(
                f"{self.name} did not exit in {timeout}s:\n{self.output()}"
            ) from None
        finally:
            # Workers the master left behind (it died first) go with their group.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


HOOKS = "python:tests.support.gunicorn_conf"
"""A gunicorn config with the optional :mod:`clustersession.gunicorn` hooks."""


def gunicorn(
    name: str,
    app: str,
    env: dict[str, str],
    *,
    workers: int = 1,
    worker_class: str = "sync",
    hooks: bool = False,
) -> Server:
    """``gunicorn -w workers app`` on a free port (not started); ``hooks``: with :data:`HOOKS`."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", app, "--bind", f"{HOST}:{port}",
            "--workers", str(workers), "--worker-class", worker_class,
            "--graceful-timeout", "10", "--log-level", "warning",
            # gunicorn >= 24 listens on ~/.gunicorn/gunicorn.ctl by default: one path
            # for every gunicorn of the machine, which parallel servers would fight over.
            "--no-control-socket"]  # fmt: skip
    if hooks:
        argv += ["--config", HOOKS]
    return Server(name, argv, env, port)


def uvicorn(name: str, env: dict[str, str], *, workers: int = 1) -> Server:
    """``uvicorn --workers workers tests.support.app:from_env`` on a free port (not started)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.support.app:from_env", "--factory",
            "--host", HOST, "--port", str(port), "--workers", str(workers),
            "--lifespan", "on", "--log-level", "info", "--no-access-log"]  # fmt: skip
    server = Server(name, argv, env, port)
    server.clean_statuses = {0, -signal.SIGTERM}
    # Lifespan shutdown is where the middleware's member leaves: every worker must reach it.
    server.shutdown_lines = ("Application shutdown complete.", workers)
    return server


def start_uvicorn_nodes(servers: Servers, envs: dict[str, dict[str, str]]) -> list[Server]:
    """A uvicorn node per ``envs`` item (server name: env); returned once each sees the others."""
    nodes = [servers.start(uvicorn(name, env)) for name, env in envs.items()]
    for node in nodes:
        node.wait_healthy()
    for node in nodes:
        node.wait_members(n.route for n in nodes if n is not node)
    return nodes


FLASK = "tests.support.wsgi_apps:flask_app()"
DJANGO = "tests.support.wsgi_apps:django_app()"


class Servers:
    """Servers a test (or a module) started: all are stopped at the end, even on failure.

    Their output goes to files in a directory of their own, removed at the end.
    """

    def __init__(self) -> None:
        self.started: list[Server] = []
        self.dir = Path(tempfile.mkdtemp(prefix="clustersession-servers-"))

    def start(self, server: Server) -> Server:
        """Start ``server`` and remember it for :meth:`stop_all`."""
        self.started.append(server)
        return server.start(self.dir / f"{server.name}.log")

    def stop_all(self) -> None:
        """SIGTERM every server still running at once, then check each left cleanly.

        Cleanly: the master exits 0 before the deadline (SIGKILL after it) and nothing
        printed a traceback: every worker's member stopped and left, nothing leaked.
        """
        stopping = [server for server in self.started if server.terminate()]
        problems = []
        for server in stopping:
            try:
                status = server.wait_exit()
            except AssertionError as exc:
                problems.append(str(exc))
                continue
            output = server.output()
            expected = server.shutdown_lines
            if (
                status not in server.clean_statuses
                or "Traceback" in output
                or (expected is not None and output.count(expected[0]) != expected[1])
            ):
                problems.append(f"{server.name} exited {status}:\n{output}")
        assert not problems, "\n".join(problems)

    def dump(self) -> None:
        """Print every server's output (pytest shows it with a failing test)."""
        for server in self.started:
            print(f"--- {server.name} ({' '.join(server.argv)}):\n{server.output()}")


@contextmanager
def running() -> Iterator[Servers]:
    """A :class:`Servers` whose servers are all stopped when the block ends."""
    servers = Servers()
    try:
        yield servers
    except BaseException:
        servers.dump()
        raise
    finally:
        try:
            servers.stop_all()
        finally:
            shutil.rmtree(servers.dir, ignore_errors=True)


def concurrently(calls: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` on threads at once (so several workers must serve); their results."""
    calls = list(calls)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))
