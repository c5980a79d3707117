"""A delaying TCP proxy: this kernel has no netem, so link delay is added in user space.

``python -m bench.chaos.delay_proxy --port 4100 --delay-ms 20`` runs inside a node's
namespace, where :func:`bench.chaos.faults.add_delay` redirects the node's outgoing
connections to peers' receivers (nftables ``redirect`` in the nat output hook) to
it. It reads each connection's original destination (``SO_ORIGINAL_DST``), opens
its own connection there (marked, so it is not redirected again) and holds every
chunk ``--delay-ms`` before passing it on, in both directions: each byte between
two nodes arrives that much later, and the receiver still sees the sender's address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import struct

SO_ORIGINAL_DST = 80
MARK = 0x5C
"""The mark on the proxy's own connections (the redirect rule skips them)."""


def original_destination(sock: socket.socket) -> tuple[str, int]:
    """Where a redirected connection was going (a ``sockaddr_in``)."""
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port


async def delayed_copy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump_in() -> None:
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + delay, data))
        finally:
            queue.put_nowait((loop.time() + delay, b""))

    feeder = asyncio.create_task(pump_in())
    try:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        feeder.cancel()
        writer.close()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """One redirected connection: connect to its destination, copy both ways, delayed."""
    try:
        address = original_destination(writer.get_extra_info("socket"))
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
        upstream.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(upstream, address), 5)
        up_reader, up_writer = await asyncio.open_connection(sock=upstream)
    except (OSError, TimeoutError):
        writer.close()
        return
    await asyncio.gather(
        delayed_copy(reader, up_writer, delay),
        delayed_copy(up_reader, writer, delay),
        return_exceptions=True,
    )


async def serve(port: int, delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, delay), "127.0.0.1", port, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
