"""What both benchmarks share: the session they store, wrk's output, tools, ports."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from typing import Any, Final

HOST: Final = "127.0.0.1"  # loopback only, always


def realistic_session() -> dict[str, Any]:
    """What a logged-in shop user's session typically holds: ten small keys."""
    return {
        "user_id": 48213,
        "username": "a.lovelace",
        "display_name": "Ada Lovelace",
        "email": "ada@example.com",
        "roles": ["customer", "beta", "newsletter"],
        "cart": [
            {"sku": "BK-1843", "qty": 1, "price": "24.90"},
            {"sku": "PN-0007", "qty": 3, "price": "2.50"},
        ],
        "csrf_token": "q3Zt7wS9yV1Hc4kPp0mXn2bL6eRf8uJdA5gTi_oWzE",
        "locale": "en-GB",
        "login_at": 1_700_000_000.0,
        "counter": 0,
    }


_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99_RE = re.compile(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS_RE = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)
_UNIT_MS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(output: str) -> tuple[float, float, int]:
    """``(requests/s, p99 in ms, errors)`` from wrk's ``--latency`` output."""
    rps = _RPS_RE.search(output)
    p99 = _P99_RE.search(output)
    if rps is None or p99 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    errors = sum(int(n) for n in _NON_2XX_RE.findall(output))
    for match in _SOCKET_ERRORS_RE.finditer(output):
        errors += sum(int(n) for n in match.groups())
    return float(rps.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)], errors


def lua_string(value: str) -> str:
    """A Lua string literal (cookie values hold base64, dots, maybe quotes)."""
    escaped = "".join(c if c.isprintable() and c not in '\\"' else f"\\{ord(c):03d}" for c in value)
    return f'"{escaped}"'


def uvicorn_command(app: str, app_dir: str, port: int) -> list[str]:
    """How both benchmarks serve an app: one uvicorn worker, uvloop, httptools, quiet."""
    return [
        sys.executable, "-m", "uvicorn", app, "--factory", "--app-dir", app_dir,
        "--host", HOST, "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--http", "httptools",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def free_port() -> int:
    # The port could in theory be taken between close() and uvicorn's bind; the
    # caller's readiness check then fails loudly rather than measuring something else.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def check_tools() -> None:
    """Exit with the install command when wrk or uvicorn[standard] is missing."""
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk not found; install it with: sudo apt-get install -y wrk")
    missing = [m for m in ("uvicorn", "uvloop", "httptools") if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(
            f"bench: {', '.join(missing)} missing; install with: "
            f"{sys.executable} -m pip install 'uvicorn[standard]'"
        )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, then SIGKILL it if it lingers past 5 s."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
