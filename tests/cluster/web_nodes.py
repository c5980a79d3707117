"""uvicorn nodes in namespace hosts, reached over Unix sockets (nothing from the root netns)."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from ..support.loopback import SECRET
from ..support.polling import wait_for
from .network import Host, Network


class WebNode:
    """``uvicorn tests.support.app:from_env`` on one host; HTTP over a Unix socket.

    With ``tcp_port`` it also listens on the host's address (``tests.cluster.dual_serve``,
    one worker), for clients running in other hosts of the network.
    """

    def __init__(
        self,
        network: Network,
        host: Host,
        *,
        workers: int = 1,
        tcp_port: int | None = None,
        **env: str,
    ) -> None:
        self.network = network
        self.host = host
        self.workers = workers
        self.tcp_port = tcp_port
        self.env = {
            "CLUSTERSESSION_SECRET": SECRET,
            "CLUSTERSESSION_DISTRIBUTABLE": "true",
            "CLUSTERSESSION_JVM_ROUTE": host.name,
            **env,
        }
        self.dir = Path(tempfile.mkdtemp(prefix=f"cs-{host.name}-"))
        self.socket = self.dir / "http.sock"
        self.log = self.dir / "uvicorn.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url=f"http://{host.name}",
            timeout=10,
        )

    def start(self, *, wait: bool = True) -> WebNode:
        """Start uvicorn; with ``wait``, return once it answers (after state transfer)."""
        self.socket.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "uvicorn", "tests.support.app:from_env", "--factory",
                "--uds", str(self.socket), "--lifespan", "on",
                "--workers", str(self.workers), "--log-level", "warning"]  # fmt: skip
        if self.tcp_port is not None:
            argv = [sys.executable, "-m", "tests.cluster.dual_serve", "--uds", str(self.socket),
                    "--host", self.host.address, "--port", str(self.tcp_port)]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = self.network.run(self.host, argv, env=self.env, stdout=log, stderr=log)
        if wait:
            assert self.wait_ready(30), f"{self.host.name} did not start: {self.log.read_text()}"
        return self

    def wait_ready(self, timeout: float) -> bool:
        """Whether it answers ``/health`` before the deadline."""

        def ready() -> bool:
            try:
                return self.client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        return wait_for(ready, timeout, interval=0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal every process of the host (and wait for a killed or stopped one to end).

        A graceful stop (SIGTERM) that outlives its wait fails with where the node
        spends its time: SIGUSR2 makes it dump its threads and asyncio tasks into
        its log (:mod:`tests.support.stackdump`).
        """
        self.network.kill_host(self.host, sig)
        if self.process is None or sig not in (signal.SIGKILL, signal.SIGTERM):
            return
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            if sig != signal.SIGTERM:
                raise
            self.network.kill_host(self.host, signal.SIGUSR2)
            wait_for(lambda: "end of stack dump" in self.log.read_text(errors="replace"), 5)
            raise AssertionError(
                f"{self.host.name} did not stop within 15 s of SIGTERM; its log "
                f"({self.log}) ends:\n{self.log.read_text(errors='replace')[-20000:]}"
            ) from None

    def request(
        self, method: str, path: str, cookie: str | None = None, **kw: Any
    ) -> httpx.Response:
        """One request carrying ``cookie`` (and nothing else from earlier requests)."""
        self.client.cookies.clear()
        headers = {"cookie": f"session={cookie}"} if cookie else {}
        return self.client.request(method, path, headers=headers, **kw)

    def fresh(self, path: str, cookie: str | None = None) -> httpx.Response:
        """A GET on a new connection, so that any worker may take it (not the last one)."""
        headers = {"connection": "close"}
        if cookie:
            headers["cookie"] = f"session={cookie}"
        self.client.cookies.clear()
        return self.client.get(path, headers=headers)

    def state(self) -> dict[str, Any]:
        """The node's session fingerprint and listener log."""
        result: dict[str, Any] = self.client.get("/state").json()
        return result

    def log_tail(self, lines: int, containing: str = "") -> str:
        """The last ``lines`` lines of the node's log that contain ``containing``
        (for a failure's message)."""
        found = [line for line in self.log.read_text(errors="replace").splitlines()
                 if containing in line]  # fmt: skip
        return "\n".join(found[-lines:])

    def close(self) -> None:
        """Close the client (the network's teardown ends the process)."""
        self.client.close()


def cookie_of(response: httpx.Response) -> str:
    """The session cookie a response sets."""
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]
