"""A TCP proxy between Redis clients and one redis-server that can lose replies, for the fault tests.

It forwards both ways unchanged and reads the clients' RESP requests to know which command each connection
is waiting on. Once armed (``lose_replies``), the reply to a watched command (EVALSHA / EVAL by default) that
is not an error is dropped and both sides of that connection are closed: the server ran the command, the
client sees a lost connection and cannot tell whether it ran. Error replies (``NOSCRIPT``...) go through
and do not count. The proxy runs its own event loop in a thread, so it serves the test's in-process clients
and CLI processes alike.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Self

# The commands a put may be sent as: a script, a function, or a transaction.
WATCHED = frozenset((b"EVALSHA", b"EVAL", b"EVALSHA_RO", b"EVAL_RO", b"FCALL", b"EXEC"))


def parse_command(buf: bytearray) -> tuple[bytes, int] | None:
    """(upper-cased name, length) of the complete RESP request at the start of ``buf``; None if incomplete."""
    if not buf:
        return None
    if buf[0] != ord("*"):  # an inline command (redis-py never sends one): up to the end of the line
        end = buf.find(b"\r\n")
        return None if end < 0 else (bytes(buf[:end]).split(b" ", 1)[0].upper(), end + 2)
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    count, pos, name = int(buf[1:end]), end + 2, b""
    for index in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        if buf[pos] != ord("$"):
            raise ValueError(f"unexpected RESP request byte {buf[pos : pos + 1]!r}")
        length = int(buf[pos + 1 : end])
        pos = end + 2
        if len(buf) < pos + length + 2:
            return None
        if index == 0:
            name = bytes(buf[pos : pos + length]).upper()
        pos += length + 2
    return name, pos


class Proxy:
    """``with Proxy(port) as proxy:`` listens on a free loopback port (``proxy.url``) and forwards to ``port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._lock = threading.Lock()
        self._to_lose: int | None = 0  # replies still to lose; None: every one until disarmed
        self._watched = WATCHED
        self._lost = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="redis-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def lost(self) -> int:
        """Replies dropped so far (each with its connection closed)."""
        with self._lock:
            return self._lost

    def lose_replies(self, count: int | None, commands: frozenset[bytes] = WATCHED) -> None:
        """Lose the next ``count`` successful replies to ``commands`` (``None``: all of them until disarmed)."""
        with self._lock:
            self._to_lose = count
            self._watched = commands

    def disarm(self) -> None:
        self.lose_replies(0)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    def _reserve(self, name: bytes) -> bool:
        """Should the reply to command ``name`` be lost? Takes one from the armed count if so."""
        with self._lock:
            if name not in self._watched or self._to_lose == 0:
                return False
            if self._to_lose is not None:
                self._to_lose -= 1
            return True

    def _give_back(self) -> None:
        with self._lock:
            if self._to_lose is not None:
                self._to_lose += 1

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        lose_next = asyncio.Event()  # the reply now awaited by the client is to be lost

        def cut() -> None:
            client_w.transport.abort()
            server_w.transport.abort()

        async def requests() -> None:
            pending = bytearray()
            while data := await client_r.read(65536):
                pending += data
                while (parsed := parse_command(pending)) is not None:
                    name, length = parsed
                    del pending[:length]
                    if self._reserve(name):
                        lose_next.set()
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def replies() -> None:
            while data := await server_r.read(65536):
                if lose_next.is_set():
                    lose_next.clear()
                    if not data.startswith(b"-"):
                        with self._lock:
                            self._lost += 1
                        cut()
                        return
                    self._give_back()
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        tasks = [asyncio.create_task(requests()), asyncio.create_task(replies())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            cut()
            self._writers.difference_update((client_w, server_w))
