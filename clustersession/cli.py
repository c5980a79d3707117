"""``clustersession``: one command for operators (also ``python -m clustersession``).

    clustersession members [--json]                  # = python -m clustersession.channel
    clustersession farm deploy PATH [--name NAME]
    clustersession farm undeploy NAME
    clustersession farm list [--json]

Each joins the cluster from ``--config FILE`` / ``--tomcat-xml FILE`` or the
``CLUSTERSESSION_*`` environment. The ``farm`` commands join as a *tool member*
(no sessions, no route, never asked for state) and leave when done; they exit
0 only when every node confirmed, else 1, naming the nodes that did not. A node
that leaves fails at once; one that says nothing (no answer, no progress) for
``--reply-timeout`` seconds fails then, so the command never waits its whole
``--timeout`` for a member without a farm deployer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from .channel import GroupChannel, Member
from .channel.__main__ import main as members_main
from .channel.__main__ import setup
from .config import ClusterConfig
from .deploy import BadName, Entry, FarmClient, Outcome, check_name
from .deploy.endpoint import REPLY_TIMEOUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clustersession", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("members", help="join and print the membership as it changes", add_help=False)
    farm = sub.add_parser("farm", help="deploy files to every node (FarmWarDeployer)")
    source = farm.add_mutually_exclusive_group()
    source.add_argument("--config", help="a cluster TOML file")
    source.add_argument("--tomcat-xml", help="a Tomcat server.xml (or bare <Cluster>)")
    farm.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for nodes")
    farm.add_argument(
        "--reply-timeout",
        type=float,
        default=REPLY_TIMEOUT,
        help="a node that says nothing (no answer, no progress) for this many seconds "
        f"fails (default {REPLY_TIMEOUT:g})",
    )
    farm.add_argument(
        "--min-members", type=int, default=1, help="wait until this many nodes are found"
    )
    farm.add_argument(
        "--wait", type=float, default=None, help="seconds to wait for nodes (default: 2 heartbeats)"
    )
    farm.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    action = farm.add_subparsers(dest="action", required=True)
    deploy = action.add_parser("deploy", help="deploy PATH to every node")
    deploy.add_argument("path", type=Path)
    deploy.add_argument("--name", help="the name on the nodes (default: the file's name)")
    undeploy = action.add_parser("undeploy", help="remove NAME from every node")
    undeploy.add_argument("name")
    listing = action.add_parser("list", help="what each node has deployed")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    return parser


def _report(outcome: Outcome, what: str, out: TextIO, err: TextIO) -> int:
    for member in outcome.confirmed:
        out.write(f"{member}: {outcome.details.get(member, 'ok')}\n")
    for member, why in outcome.failed.items():
        err.write(f"{member}: NOT {what}: {why}\n")
    if outcome.failed:
        err.write(f"{len(outcome.failed)} member(s) did not confirm\n")
        return 1
    return 0


async def _farm(args: argparse.Namespace, config: ClusterConfig, out: TextIO, err: TextIO) -> int:
    channel = GroupChannel(config, tool=True)
    client = FarmClient(channel, timeout=args.timeout, reply_timeout=args.reply_timeout)
    await channel.start()
    try:
        patience = args.wait
        if patience is None:
            patience = 2 * config.membership.frequency / 1000 + 1.0
        members = await client.wait_for_nodes(args.min_members, patience)
        if len(members) < args.min_members:
            err.write(
                f"found {len(members)} node(s), fewer than --min-members {args.min_members}\n"
            )
            refused = channel.stats().refused_heartbeats
            if refused:
                # The usual cause, said plainly: a member with another secret hears
                # the nodes' heartbeats but cannot verify them, so it finds nobody.
                err.write(
                    f"{refused} heartbeat(s) were refused (see the warnings above): "
                    "is this the cluster's secret (CLUSTERSESSION_SECRET, --config)?\n"
                )
            return 1
        if args.action == "deploy":
            name = args.name or args.path.name
            outcome = await client.deploy(args.path, name, members)
            return _report(outcome, "deployed", out, err)
        if args.action == "undeploy":
            outcome = await client.undeploy(args.name, members)
            return _report(outcome, "undeployed", out, err)
        listing = await client.list(members)
        _print_listing(listing.entries, args.json, out)
        for member, why in listing.failed.items():
            err.write(f"{member}: did not answer: {why}\n")
        return 1 if listing.failed else 0
    finally:
        await client.stop()
        await channel.stop()


def _print_listing(entries: dict[Member, list[Entry]], as_json: bool, out: TextIO) -> None:
    if as_json:
        doc = [
            {
                "member": member.as_dict(),
                "name": member.name,
                "artifacts": [
                    {
                        "name": e.name,
                        "size": e.size,
                        "sha256": e.digest,
                        "deployed_at": e.deployed_at,
                    }
                    for e in artifacts
                ],
            }
            for member, artifacts in entries.items()
        ]
        out.write(json.dumps(doc, indent=1) + "\n")
        return
    for member, artifacts in entries.items():
        out.write(f"{member}\n")
        for e in artifacts:
            out.write(f"  {e.name}  {e.size}  {e.digest}  {e.deployed_at:.3f}\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["members"]:
        return members_main(argv[1:])  # the channel's own CLI, unchanged
    parser = _parser()
    args = parser.parse_args(argv)
    config = setup(parser, args)
    if args.action == "deploy" and not args.path.is_file():
        parser.error(f"{args.path} is not a file")
    try:
        # Checked before joining: a hostile name costs no membership round.
        if args.action == "deploy":
            check_name(args.name or args.path.name)
        elif args.action == "undeploy":
            check_name(args.name)
        return asyncio.run(_farm(args, config, sys.stdout, sys.stderr))
    except BadName as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 2
    except (OSError, RuntimeError) as exc:
        sys.stderr.write(f"cannot run: {exc}\n")
        return 1
