"""A TCP proxy in a thread whose "cable" can be pulled out: ``cut()`` stops forwarding in both directions
without closing anything (no FIN, no RST, like a dead network link: the bytes wait, the peers see silence),
and new connections are accepted but not connected through; ``heal()`` forwards again, including what waited.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType
from typing import Self


class CutProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream_port`` until ``close()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._peer: dict[socket.socket, socket.socket] = {}
        self._pending: list[socket.socket] = []  # accepted during a cut, not yet connected upstream
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cut-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self._cut.set()

    def heal(self) -> None:
        self._cut.clear()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._peer[client] = upstream
        self._peer[upstream] = client

    def _drop(self, sock: socket.socket) -> None:
        other = self._peer.pop(sock, None)
        if other is not None:
            self._peer.pop(other, None)
            other.close()
        sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            cut = self._cut.is_set()
            if not cut and self._pending:
                pending, self._pending = self._pending, []
                for client in pending:
                    self._connect(client)
            watched = [self._listener] if cut else [self._listener, *self._peer]
            try:
                readable, _, _ = select.select(watched, [], [], 0.05)
            except (OSError, ValueError):
                continue
            for sock in readable:
                if sock is self._listener:
                    client, _ = self._listener.accept()
                    if self._cut.is_set():
                        self._pending.append(client)
                    else:
                        self._connect(client)
                    continue
                if self._cut.is_set() or sock not in self._peer:
                    continue
                try:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("closed")
                    self._peer[sock].sendall(data)
                except OSError:
                    self._drop(sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in [*self._peer, *self._pending, self._listener]:
            with contextlib.suppress(OSError):
                sock.close()
        self._peer.clear()
        self._pending.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
