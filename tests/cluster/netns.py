"""Several "hosts" on one machine: Linux network namespaces joined by a bridge.

Layout of one cluster (``P`` is a per-run prefix, ``S`` the subnet, e.g. ``10.77.0``)::

    P-sw      switch: bridge br0 (multicast snooping off), ports p-lb, p-node1..N
    P-lb      eth0 S.10/24                                    (optional load balancer)
    P-nodeK   eth0 S.(10+K)/24, lo up, route 224.0.0.0/4 dev eth0

The bridge lives in its own namespace, so the root namespace's firewall (Docker's
FORWARD DROP, br_netfilter) cannot touch it and parallel runs may reuse the subnet.
Nothing is created in the root namespace except names under ``/run/netns`` and
``/etc/netns/<ns>/hosts`` (which ``ip netns exec`` bind-mounts over ``/etc/hosts``).

Safety: a packet to a test address sent from the root namespace would follow the
default route and leave the machine. So this module only ever contacts test
addresses from inside the namespaces (every helper goes through ``ip netns exec``),
and before creating anything it adds ``unreachable S.0/24`` in the root namespace,
so a mistake fails at once with "No route to host". That route is left in place on
teardown: it is idempotent, harmless, and concurrent runs rely on it too.

Cleanup: ``down()`` (context exit, pytest finalizer) kills every process in the
namespaces (tracked ones by process group as well), deletes the namespaces and their
``/etc/netns`` directories, also when the body raised. ``up()`` first reaps leftovers
of the same prefix and of earlier runs whose process is gone (crashed or SIGKILLed).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

logger = logging.getLogger("clustersession.tests.netns")

NETNS_RUN = Path("/run/netns")
NETNS_ETC = Path("/etc/netns")

#: Automatic prefixes are ``cst<pid>-<seq>``: the pid tells stale from live runs.
_AUTO_PREFIX = re.compile(r"^cst(?P<pid>\d+)-\d+-(?:sw|lb|node\d+)$")
_sequence = itertools.count(1)

StdStream = IO[Any] | int | None
TcpOutcome = Literal["open", "refused", "timeout", "unreachable"]


class NetnsError(RuntimeError):
    """A namespace command failed."""


@dataclass(frozen=True)
class Host:
    """One host: a network namespace with one address on the cluster's bridge."""

    name: str
    """Short host name, also resolvable inside every host: ``node1``, ``lb``."""
    netns: str
    """Name of its network namespace (``ip netns exec <netns> ...``)."""
    address: str
    """Its IPv4 address on ``eth0``."""


# -- availability ------------------------------------------------------------------


@functools.cache
def netns_available() -> str | None:
    """``None`` if network namespaces can be used here, else why not (a skip reason)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the 'ip' command is missing: apt-get install iproute2"
    probe = f"cstprobe{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"'ip netns add' failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


# -- small process helpers -----------------------------------------------------------


def _ip(*args: str) -> None:
    """Run ``ip ARGS``; raise :class:`NetnsError` with its message on failure."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _netns_names() -> list[str]:
    """Names of all named network namespaces (``ip netns list`` without the ids)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(netns: str) -> list[int]:
    """Live processes inside ``netns`` (zombies are not listed)."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_delete(names: Sequence[str], grace: float = 2.0) -> None:
    """Stop every process in ``names`` (TERM, then KILL), then delete the namespaces."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for netns in names:
            for pid in _netns_pids(netns):
                _signal_pid(pid, sig)
                if sig == signal.SIGKILL:
                    # A stopped process only acts on SIGKILL; SIGCONT is harmless otherwise.
                    _signal_pid(pid, signal.SIGCONT)
        limit = grace if sig == signal.SIGTERM else 5.0
        if not wait_until(lambda: not any(_netns_pids(n) for n in names), limit):
            if sig == signal.SIGKILL:
                logger.warning("processes still alive in %s after SIGKILL", names)
    for netns in names:
        result = subprocess.run(["ip", "netns", "del", netns], capture_output=True, text=True)
        if result.returncode != 0 and (NETNS_RUN / netns).exists():
            logger.warning("ip netns del %s: %s", netns, result.stderr.strip())
        shutil.rmtree(NETNS_ETC / netns, ignore_errors=True)


def reap_stale(prefix: str | None = None) -> list[str]:
    """Delete leftovers: namespaces of ``prefix`` and of automatic-prefix runs whose
    process is gone. Live concurrent runs are never touched. Returns what was removed."""
    names = set(_netns_names())
    # /etc/netns directories can outlive their namespace if a run was killed mid-teardown.
    if NETNS_ETC.is_dir():
        names |= {p.name for p in NETNS_ETC.iterdir()}
    own = re.compile(rf"^{re.escape(prefix or '')}-(?:sw|lb|node\d+)$")
    stale = []
    for name in sorted(names):
        if prefix is not None and own.match(name):
            stale.append(name)
            continue
        match = _AUTO_PREFIX.match(name)
        if match and not _pid_alive(int(match["pid"])):
            stale.append(name)
    if stale:
        logger.info("reaping stale namespaces: %s", stale)
        _kill_and_delete(stale)
    return stale


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (``True``) or ``timeout`` seconds pass (``False``)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class OutputLines:
    """Collects a process's text stdout line by line, so tests can wait for a line
    (e.g. ``ready``) with a deadline instead of blocking on ``readline()``.

    A daemon thread owns ``proc.stdout`` from here on: read it via :attr:`lines`.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        if proc.stdout is None:
            raise ValueError("the process needs stdout=subprocess.PIPE")
        self._stream = proc.stdout
        self._lines: list[str] = []
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for line in self._stream:
                with self._changed:
                    self._lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        except ValueError:  # the stream was closed under us (teardown)
            pass
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        """Every line read so far, without newlines."""
        with self._changed:
            return list(self._lines)

    def wait_for(self, match: str | Callable[[str], bool], timeout: float) -> str:
        """The first line equal to ``match`` (or satisfying it); ``TimeoutError`` if no
        such line arrives within ``timeout`` seconds or the output ends first."""
        test = match if callable(match) else (lambda line: line == match)
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = 0
            while True:
                for line in self._lines[seen:]:
                    if test(line):
                        return line
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    state = "output ended" if self._closed else f"{timeout} s passed"
                    raise TimeoutError(f"no line matching {match!r} ({state}): {self._lines}")
                self._changed.wait(remaining)

    def wait_closed(self, timeout: float) -> list[str]:
        """Wait until the output ends; return every line. ``TimeoutError`` otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._closed, timeout):
                raise TimeoutError(f"output still open after {timeout} s: {self._lines}")
            return list(self._lines)


# Runs inside a host: connect with a deadline and report how it went. Reachability is
# decided here, inside the namespace, never from the root namespace.
_TCP_PROBE = """
import errno, socket, sys, time
address, port, timeout, until_open = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
deadline = time.monotonic() + timeout
while True:
    remaining = deadline - time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(max(0.05, min(remaining, 0.5 if until_open == "1" else remaining)))
    try:
        s.connect((address, port))
        outcome = "open"
    except ConnectionRefusedError:
        outcome = "refused"
    except (socket.timeout, TimeoutError):
        outcome = "timeout"
    except OSError as exc:
        outcome = "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "timeout"
    finally:
        s.close()
    if outcome == "open" or until_open != "1" or time.monotonic() >= deadline:
        print(outcome)
        break
    time.sleep(0.05)
"""


# -- the cluster ---------------------------------------------------------------------


class NetnsCluster:
    """N hosts and an optional load-balancer host on one bridge, in network namespaces.

    ``with NetnsCluster(3) as cluster:`` builds it; leaving the block removes every
    namespace and process, also on error. Hosts are ``node1..N`` at ``<subnet>.11..``
    and ``lb`` at ``<subnet>.10``. Inside every host, the names ``node1..N``, ``lb``
    resolve to their addresses and ``cluster`` resolves to all node addresses.
    """

    def __init__(
        self,
        hosts: int = 3,
        *,
        subnet: str = "10.77.0",
        prefix: str | None = None,
        lb: bool = False,
    ) -> None:
        if not 1 <= hosts <= 200:
            raise ValueError("hosts must be between 1 and 200")
        if not re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}", subnet):
            raise ValueError(f"subnet must be the first three octets, e.g. 10.77.0: {subnet!r}")
        self.prefix = prefix or f"cst{os.getpid()}-{next(_sequence)}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.prefix):
            raise ValueError(f"bad prefix {self.prefix!r}")
        self.subnet = subnet
        self.switch = f"{self.prefix}-sw"
        self.hosts: list[Host] = [
            Host(f"node{i}", f"{self.prefix}-node{i}", f"{subnet}.{10 + i}")
            for i in range(1, hosts + 1)
        ]
        self.lb: Host | None = Host("lb", f"{self.prefix}-lb", f"{subnet}.10") if lb else None
        self._processes: list[tuple[Host, subprocess.Popen[str]]] = []
        self._up = False

    # -- lifecycle -------------------------------------------------------------------

    @property
    def all_hosts(self) -> list[Host]:
        """Every host, the load balancer (if any) included."""
        return [*self.hosts, *([self.lb] if self.lb is not None else [])]

    def host(self, name: str) -> Host:
        """The host called ``name`` (``node2``, ``lb``)."""
        for host in self.all_hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def __enter__(self) -> NetnsCluster:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def up(self) -> None:
        """Create the switch and the hosts. On failure, whatever was built is removed."""
        reason = netns_available()
        if reason is not None:
            raise NetnsError(reason)
        reap_stale(self.prefix)
        # Safety net first: from the root namespace, test addresses must go nowhere.
        _ip("route", "replace", "unreachable", f"{self.subnet}.0/24")
        self._up = True  # from here on down() has something to undo
        started = time.monotonic()
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        logger.info(
            "cluster %s up: %s (%.2f s)",
            self.prefix,
            ", ".join(f"{h.name}={h.address}" for h in self.all_hosts),
            time.monotonic() - started,
        )

    def _build(self) -> None:
        sw = self.switch
        _ip("netns", "add", sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        # No IGMP querier on this segment: with snooping off the bridge floods multicast.
        _ip("-n", sw, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0",
            "stp_state", "0", "forward_delay", "0")  # fmt: skip
        _ip("-n", sw, "link", "set", "br0", "up")
        hosts_file = "127.0.0.1 localhost\n"
        hosts_file += "".join(f"{h.address} {h.name}\n" for h in self.all_hosts)
        # One line per node: getaddrinfo("cluster") returns every node (DNS-style membership).
        hosts_file += "".join(f"{h.address} cluster\n" for h in self.hosts)
        for host in self.all_hosts:
            ns, port = host.netns, f"p-{host.name}"
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            # Both ends are created in place: no interface ever exists in the root namespace.
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
                "netns", sw)  # fmt: skip
            _ip("-n", sw, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            # Multicast without IP_MULTICAST_IF needs a route (there is no default route).
            _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
            etc = NETNS_ETC / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file)

    def down(self) -> None:
        """Kill every process in the hosts, delete the namespaces and their files.

        Idempotent; safe to call after a partial ``up()``.
        """
        if not self._up:
            return
        self._up = False
        # Whole process groups first: catches children that might leave the namespace.
        for _, proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        _kill_and_delete([h.netns for h in self.all_hosts] + [self.switch])
        for _, proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("process %d did not exit", proc.pid)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        logger.info("cluster %s down", self.prefix)

    # -- running things --------------------------------------------------------------

    def _argv(self, host: Host, argv: Sequence[str], hostname: str | None) -> list[str]:
        if not argv:
            raise ValueError("empty argv")
        command = ["ip", "netns", "exec", host.netns]
        if hostname is not None:
            # Own UTS namespace so socket.gethostname() differs per host; exec keeps the pid.
            command += ["unshare", "--uts", "--", "sh", "-c",
                        'hostname "$1" && shift && exec "$@"', "sh", hostname]  # fmt: skip
        return [*command, *argv]

    def run(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: StdStream = subprocess.DEVNULL,
        stdout: StdStream = None,
        stderr: StdStream = None,
        hostname: str | None = None,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` inside ``host`` and return at once (text mode).

        ``env`` is added to the current environment. The process gets its own process
        group and is killed on teardown. ``hostname`` gives it its own UTS namespace
        with that host name. ``ip netns exec`` execs, so ``proc.pid`` is the program.
        """
        proc = subprocess.Popen(
            self._argv(host, argv, hostname),
            env={**os.environ, **env} if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._processes.append((host, proc))
        logger.debug("started pid %d in %s: %s", proc.pid, host.name, list(argv))
        return proc

    def exec(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        check: bool = True,
        hostname: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` to completion, capturing stdout and stderr.

        On timeout the whole process group is killed and ``TimeoutExpired`` raised;
        with ``check`` a non-zero exit raises ``CalledProcessError``.
        """
        proc = self.run(
            host, argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, hostname=hostname,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        self._processes.remove((host, proc))  # finished and reaped: nothing to clean up
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, list(argv), out, err)
        return result

    def python(self, host: Host, code: str, *args: str, timeout: float = 30.0) -> str:
        """Run a Python snippet (this interpreter) inside ``host``; return its stdout."""
        return self.exec(host, [sys.executable, "-c", code, *args], timeout=timeout).stdout

    # -- reachability ----------------------------------------------------------------

    def probe_tcp(self, from_host: Host, address: str, port: int, timeout: float) -> TcpOutcome:
        """One TCP connect from inside ``from_host``: ``open``, ``refused`` (host up, port
        closed), ``timeout`` (silent: cut or paused) or ``unreachable``."""
        out = self.python(
            from_host, _TCP_PROBE, address, str(port), str(timeout), "0", timeout=timeout + 15
        )
        return _outcome(out)

    def wait_tcp(self, from_host: Host, address: str, port: int, timeout: float) -> bool:
        """Poll from inside ``from_host`` until ``address:port`` accepts a connection
        (``True``) or ``timeout`` seconds pass (``False``)."""
        out = self.python(
            from_host, _TCP_PROBE, address, str(port), str(timeout), "1", timeout=timeout + 15
        )
        return _outcome(out) == "open"

    # -- faults ----------------------------------------------------------------------

    def link_down(self, host: Host) -> None:
        """Pull the host's cable (its switch port): nothing gets in or out, no FIN or RST
        reaches anyone; peers just see silence."""
        _ip("-n", self.switch, "link", "set", f"p-{host.name}", "down")

    def link_up(self, host: Host, *, flush: bool = True) -> None:
        """Plug the cable back in; by default also :meth:`flush_neighbours`."""
        _ip("-n", self.switch, "link", "set", f"p-{host.name}", "up")
        if flush:
            self.flush_neighbours()

    def flush_neighbours(self) -> None:
        """Forget ARP entries everywhere: after healing, peers otherwise keep a FAILED
        entry for about a second and connects fail during it."""
        for host in self.all_hosts:
            _ip("-n", host.netns, "neigh", "flush", "all")

    def host_pids(self, host: Host) -> list[int]:
        """Processes currently running inside ``host``."""
        return _netns_pids(host.netns)

    def kill_host_processes(
        self, host: Host, sig: int = signal.SIGKILL, *, timeout: float = 5.0
    ) -> None:
        """Send ``sig`` to every process in ``host``. For SIGKILL/SIGTERM, wait until
        they are gone, so nothing half-dead still accepts connections afterwards."""
        for pid in _netns_pids(host.netns):
            _signal_pid(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            if not wait_until(lambda: not _netns_pids(host.netns), timeout):
                raise NetnsError(f"processes left in {host.name}: {_netns_pids(host.netns)}")
            for owner, proc in self._processes:
                if owner == host:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=timeout)  # reap: no zombies, returncode set

    def pause(self, host: Host) -> None:
        """Freeze every process in ``host`` (SIGSTOP): a hung host, sockets stay open."""
        for pid in _netns_pids(host.netns):
            _signal_pid(pid, signal.SIGSTOP)

    def resume(self, host: Host) -> None:
        """Continue the processes frozen by :meth:`pause`."""
        for pid in _netns_pids(host.netns):
            _signal_pid(pid, signal.SIGCONT)

    @property
    def processes(self) -> list[subprocess.Popen[str]]:
        """Every process started through :meth:`run`/:meth:`exec`."""
        return [proc for _, proc in self._processes]


def _outcome(out: str) -> TcpOutcome:
    value = out.strip()
    if value == "open":
        return "open"
    if value == "refused":
        return "refused"
    if value == "unreachable":
        return "unreachable"
    if value == "timeout":
        return "timeout"
    raise NetnsError(f"unexpected probe output: {out!r}")
