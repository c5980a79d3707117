"""``python -m clustersession.channel``: join a cluster and print its membership as it changes.

For people debugging their network: run it on two hosts with the same config
and watch them find each other (or not, and the log says why: wrong secret,
other domain, no route for multicast...). Ctrl-C leaves the group cleanly.

    python -m clustersession.channel --config cluster.toml
    python -m clustersession.channel --tomcat-xml server.xml --json

``CLUSTERSESSION_*`` variables apply on top of the file, as everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from typing import TextIO

from ..config import ClusterConfig, ConfigError
from .group import GroupChannel
from .member import Member


class _Printer:
    """Writes one line per membership event to ``out`` (a CLI's own output)."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def emit(self, event: str, member: Member | None = None, **extra: object) -> None:
        if self.as_json:
            record: dict[str, object] = {"event": event, "time": time.time(), **extra}
            if member is not None:
                record["member"] = member.as_dict(precision=3)
            self.out.write(json.dumps(record) + "\n")
        else:
            details = " ".join(f"{k}={v}" for k, v in extra.items())
            self.out.write(f"{time.strftime('%H:%M:%S')} {event:8} {member or ''} {details}\n")
        self.out.flush()

    def member_added(self, member: Member) -> None:
        self.emit("added", member)

    def member_disappeared(self, member: Member, reason: str) -> None:
        self.emit("removed", member, reason=reason)


async def _send_load(channel: GroupChannel, per_second: float) -> None:
    """Send test messages to every member (async option) at a steady rate."""
    payload = b"x" * 512  # about a small session delta
    period = 1 / per_second
    while True:
        with contextlib.suppress(Exception):  # failures are counted by the channel
            await channel.send(None, payload, 8)
        await asyncio.sleep(period)


def load_config(args: argparse.Namespace) -> ClusterConfig:
    """The config the arguments name (environment applied on top)."""
    if args.config:
        return ClusterConfig.load(args.config)
    if args.tomcat_xml:
        return ClusterConfig.from_tomcat_xml(args.tomcat_xml)
    return ClusterConfig.from_env()


def setup(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ClusterConfig:
    """Log to stderr at ``--log-level``, and load the config (a bad one ends the command)."""
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        return load_config(args)
    except (ConfigError, OSError) as exc:
        parser.error(str(exc))


async def run(
    config: ClusterConfig, printer: _Printer, duration: float | None, load: float = 0.0
) -> None:
    """Join, print events until stopped (signal or ``duration``), then leave."""
    channel = GroupChannel(config)
    channel.add_membership_listener(printer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await channel.start()
    printer.emit("ready", channel.local, membership=config.membership.kind)
    sender = loop.create_task(_send_load(channel, load)) if load > 0 else None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    if sender is not None:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    await channel.stop()
    printer.emit("stopped", channel.local, stats=channel.stats().as_dict())


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m clustersession.channel", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", help="a cluster TOML file")
    source.add_argument("--tomcat-xml", help="a Tomcat server.xml (or bare <Cluster>)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--duration", type=float, help="leave after this many seconds")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument(
        "--load", type=float, default=0.0, help="send this many test messages/s to all members"
    )
    args = parser.parse_args(argv)
    config = setup(parser, args)
    try:
        printer = _Printer(sys.stdout, as_json=args.json)
        asyncio.run(run(config, printer, args.duration, args.load))
    except (OSError, RuntimeError) as exc:
        logging.getLogger("clustersession.channel").error("cannot run the channel: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
