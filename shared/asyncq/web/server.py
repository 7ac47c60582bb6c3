"""Run the web application with uvicorn on a socket bound here, so that a bad address is one line.

SIGTERM and SIGINT stop it the way they stop the other CLIs (``asyncq.cli.lifecycle``): an asyncio event,
then uvicorn's graceful exit, and exit status 0. uvicorn's own signal capture is left out: it re-raises the
signal once done, which would end the process with 143 (killed by SIGTERM) after a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from asyncq.cli.lifecycle import stop_on_signals

log = logging.getLogger(__name__)


class CannotListen(OSError):
    """The address cannot be listened on (in use, not ours, not an address)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); ``CannotListen`` says why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals are ours: see serve()


async def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT (a second one exits at once)."""
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="on", server_header=False
    )
    server = _Server(config)
    stop = asyncio.Event()
    stop_on_signals(stop, what="asyncq web")

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stopper(), name="asyncq-web-stop")
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        sock.close()
