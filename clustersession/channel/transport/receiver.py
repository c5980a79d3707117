"""The TCP listener peers send to (Tomcat's NioReceiver), on asyncio.

One task per incoming connection reads frames in order and hands each to the
channel; a frame handler's awaiting (SYNC_ACK) therefore holds back later frames
of the same connection, which keeps per-sender order. A bad frame closes only
its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable

from ...config.sections import ReceiverConfig
from ..errors import FrameError
from ..member import Member
from ..options import SYNC_ACK, USE_ACK
from ..security import Keys
from ..tasks import STOP_TIMEOUT, cancel_and_wait
from .connection import Connection
from .frames import Envelope, MessageType

logger = logging.getLogger("clustersession.channel")

FrameHandler = Callable[[Connection, Envelope], Awaitable[None]]
HANDSHAKE_TIMEOUT = 5.0
DATA_BACKLOG = 1024  # DATA frames read but not yet handled, per connection


class Receiver:
    """Listens on ``address:port``, trying up to ``auto_bind`` ports from ``port``."""

    def __init__(
        self,
        config: ReceiverConfig,
        keys: Keys,
        *,
        local: Callable[[], Member],
        handler: FrameHandler,
        on_accepted: Callable[[Connection], None],
        on_refused: Callable[[str, FrameError], None],
    ) -> None:
        self.config = config
        self.keys = keys
        self.local = local
        self.handler = handler
        self.on_accepted = on_accepted
        self.on_refused = on_refused
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}  # per connection
        self._stopping = False

    @property
    def bind_host(self) -> str:
        """The address to listen on: the wildcard for ``auto``."""
        return "0.0.0.0" if self.config.address == "auto" else self.config.address

    async def start(self) -> int:
        """Bind the first free port of the range and return it."""
        self._stopping = False
        first, count = self.config.port, self.config.auto_bind
        last_error: OSError | None = None
        for port in range(first, first + count):
            try:
                server = await asyncio.start_server(
                    self._serve, self.bind_host, port, reuse_address=True
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                last_error = exc
                continue
            if not all(_listening(sock) for sock in server.sockets):
                # Two workers binding the same port at the same moment both bind (the
                # address is reusable until one listens); the second listen() fails,
                # and uvloop only logs that: the port is taken, try the next one.
                server.close()
                await server.wait_closed()
                last_error = OSError(errno.EADDRINUSE, f"port {port} bound but not listening")
                continue
            self._server = server
            self.port = port
            return port
        # With auto_bind = 1 the usual cause is a second worker process on the host.
        hint = "; several workers per host need receiver.auto_bind > 1" if count == 1 else ""
        raise OSError(
            errno.EADDRINUSE,
            f"no free receiver port in {first}..{first + count - 1} on {self.bind_host}{hint}",
        ) from last_error

    async def stop(self) -> None:
        """Stop listening and close every incoming connection, within :data:`STOP_TIMEOUT`.

        Bounded whatever the peers do: a connection whose callback runs after this
        began is closed at once, a task that lost its cancel is cancelled again, and
        a connection still open at the deadline is aborted (issue 12: a peer's
        connection that outlived its cancel held a node's stop until the peer left).
        """
        self._stopping = True
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT
        while self._tasks:  # a connection accepted meanwhile adds its task
            tasks = list(self._tasks)
            left = await cancel_and_wait(tasks, timeout=max(deadline - loop.time(), 0.0))
            for task in left:
                logger.warning("receiver: aborting a connection that did not end on stop")
                self._tasks.pop(task).transport.abort()
            for task in tasks:
                self._tasks.pop(task, None)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(deadline - loop.time(), 0.1)):
                    await self._server.wait_closed()
            self._server = None

    async def _work(self, conn: Connection, data: asyncio.Queue[Envelope]) -> None:
        try:
            while True:
                envelope = await data.get()
                await self.handler(conn, envelope)
        except FrameError as exc:
            peer = conn.peer
            self.on_refused(str(peer) if peer else "?", exc)
            conn.close()
        except (ConnectionError, OSError):
            conn.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:  # accepted as the listener closed: not served
            writer.close()
            return
        self._tasks[task] = writer
        peername = writer.get_extra_info("peername")
        source = f"{peername[0]}:{peername[1]}" if peername else "?"
        try:
            conn = await Connection.accept(
                reader,
                writer,
                keys=self.keys,
                local=self.local(),
                max_message_size=self.config.max_message_size,
                timeout=HANDSHAKE_TIMEOUT,
            )
            if self._stopping:  # the handshake ended as the stop began
                return
            self.on_accepted(conn)
            local_id = self.local().id
            # DATA is handled in order by a worker of its own, so that this loop goes
            # on reading and a PING is answered at once even while a listener works.
            data: asyncio.Queue[Envelope] = asyncio.Queue(maxsize=DATA_BACKLOG)
            worker = asyncio.get_running_loop().create_task(self._work(conn, data))
            try:
                while True:
                    envelope = await conn.read()
                    if envelope.type is MessageType.DATA:
                        if envelope.options & USE_ACK and not envelope.options & SYNC_ACK:
                            # USE_ACK means "read": acknowledged here, so the sender's
                            # next message overlaps with our processing of this one.
                            ack = Envelope(MessageType.ACK, local_id, envelope.message_id, 0, None)
                            conn.write(ack)
                        await data.put(envelope)
                    else:
                        await self.handler(conn, envelope)
            finally:
                worker.cancel()
        except FrameError as exc:
            self.on_refused(source, exc)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the peer went away: its sender reconnects if it needs to
        except asyncio.CancelledError:
            # stop() cancels us; asyncio's server callback must see a finished task.
            pass
        finally:
            self._tasks.pop(task, None)
            writer.close()


def _listening(sock: socket.socket) -> bool:
    """Whether ``sock`` accepts connections (``SO_ACCEPTCONN``)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0
