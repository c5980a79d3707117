"""The test app under uvicorn on a Unix socket (the harness's way in) and on TCP (clients
on other hosts): ``python -m tests.cluster.dual_serve --uds PATH --host ADDR --port N``.

uvicorn's command line binds one of the two; its ``Server`` serves a list of sockets.
"""

from __future__ import annotations

import argparse
import os
import socket

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uds", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.uds):
        os.unlink(args.uds)
    local.bind(args.uds)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.host, args.port))
    config = uvicorn.Config(
        "tests.support.app:from_env", factory=True, lifespan="on", log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[local, tcp])


if __name__ == "__main__":
    main()
