"""A Kubernetes rolling update of deploy/kubernetes/ (maxSurge 1, maxUnavailable 0), acted out.

Each namespace host is a pod with the Deployment's environment (the harness's name
``cluster`` resolving to every host plays the headless Service). For each old pod
in turn, as the Deployment controller and the kubelet would: start a new pod on a
free host, wait for its readiness probe, take the old pod out of the user Service,
then SIGTERM it (what follows preStop). A client goes on using its sessions
through the Service the whole time.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx
import pytest

from ..support.kubernetes import app_container, pod_environment
from ..support.loopback import SECRET
from ..support.polling import wait_for
from .network import Host, Network
from .web_nodes import WebNode, cookie_of

pytestmark = pytest.mark.hosts

SESSIONS = 20


def pod(network: Network, host: Host, name: str) -> WebNode:
    """A pod of the Deployment named ``name`` on ``host``."""
    env = pod_environment(name, secrets={("clustersession", "secret"): SECRET})
    env["CLUSTERSESSION_MEMBERSHIP__DNS_NAME"] = "cluster"  # the harness's headless Service
    return WebNode(network, host, **env)


def ready(node: WebNode) -> bool:
    """The Deployment's readiness probe, answered."""
    path = app_container()["readinessProbe"]["httpGet"]["path"]
    try:
        return node.fresh(path).status_code == 200
    except httpx.TransportError:
        return False


class Client:
    """A user of every session, through the Service (the Ready pods, in turn)."""

    def __init__(self, service: list[WebNode], cookies: list[str]) -> None:
        self.service = service
        self.cookies = cookies
        self.lock = threading.Lock()  # held while the Service's endpoints change
        self.acknowledged: dict[str, int] = {}
        self.problems: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            cookie = self.cookies[i % len(self.cookies)]
            with self.lock:
                node = self.service[i % len(self.service)]
                try:
                    if i % 2:
                        self._write(node, cookie, i)
                    else:
                        self._read(node, cookie)
                except httpx.TransportError as exc:
                    self.problems.append(f"{node.host.name}: {exc!r}")
            self.requests += 1
            i += 1

    def _write(self, node: WebNode, cookie: str, i: int) -> None:
        response = node.request("POST", "/update", cookie, json={"n": i})
        if response.status_code == 200:
            self.acknowledged[cookie] = i
        else:
            self.problems.append(f"{node.host.name}: write {response.status_code}")

    def _read(self, node: WebNode, cookie: str) -> None:
        data: dict[str, Any] = node.request("GET", "/", cookie).json()
        if "n" not in data:
            self.problems.append(f"{node.host.name}: session {cookie[:8]} lost")


def test_a_rolling_update_loses_no_session(network4: Network) -> None:
    *hosts, free = network4.hosts
    pods = [pod(network4, host, f"web-old-{host.name}") for host in hosts]
    for node in pods:
        node.start(wait=False)
    for node in pods:
        assert wait_for(lambda n=node: ready(n), 60), node.log.read_text()
    cookies = [
        cookie_of(pods[0].request("POST", "/update", json={"n": -1})) for _ in range(SESSIONS)
    ]
    service = list(pods)
    with Client(service, cookies) as client:
        for old in pods:
            new = pod(network4, free, f"web-new-{free.name}")
            new.start(wait=False)
            assert wait_for(lambda n=new: ready(n), 60), new.log.read_text()
            with client.lock:  # the endpoints controller: new in, old out
                service.append(new)
                service.remove(old)
            old.kill(signal.SIGTERM)  # the kubelet, once preStop is over
            free = old.host
        served = client.requests
        assert wait_for(lambda: client.requests > served + 10, 10)  # on the new pods alone
    assert client.problems == []
    assert wait_for(lambda: len({n.state()["fingerprint"] for n in service}) == 1, 15)
    for node in service:
        assert node.state()["sessions"] == SESSIONS
        for cookie in cookies:
            assert node.request("GET", "/", cookie).json()["n"] == client.acknowledged.get(
                cookie, -1
            )
