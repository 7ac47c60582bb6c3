"""The Docker engine probe that decides whether engine tests run or skip: it must never leak a socket.

With ``filterwarnings = ["error"]`` a socket left for the garbage collector is a ResourceWarning that fails
whichever test happens to run next (issue 10, item 1): on a machine with no engine, two unrelated tests
errored at set-up on every ``make test``.
"""

from __future__ import annotations

import gc
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import docker_available


def _probe_leaks(monkeypatch: pytest.MonkeyPatch, host: str) -> tuple[tuple[bool, str], list[str]]:
    """docker_available() with DOCKER_HOST=host, and the ResourceWarnings a full collection turns up after."""
    monkeypatch.setenv("DOCKER_HOST", host)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = docker_available()
        gc.collect()
    return result, [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_no_engine_skips_with_the_reason_and_leaks_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (ok, reason), leaks = _probe_leaks(monkeypatch, f"unix://{tmp_path}/nothing-here.sock")
    assert leaks == []
    assert not ok
    assert reason.startswith(f"no Docker engine answers at unix://{tmp_path}/nothing-here.sock")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A Unix socket that answers each connection with the next canned reply (not an engine)."""
    path = str(tmp_path / "engine.sock")
    replies: list[bytes] = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(replies.pop(0) if replies else b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"unix://{path}", replies
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=10)


def test_an_answering_engine_is_found(monkeypatch: pytest.MonkeyPatch, listener: tuple[str, list[bytes]]) -> None:
    host, replies = listener
    replies.append(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    (ok, reason), leaks = _probe_leaks(monkeypatch, host)
    assert (ok, reason) == (True, "")
    assert leaks == []


def test_something_else_on_the_socket_is_no_engine(
    monkeypatch: pytest.MonkeyPatch, listener: tuple[str, list[bytes]]
) -> None:
    host, replies = listener
    replies.append(b"-ERR unknown command\r\n")
    (ok, reason), leaks = _probe_leaks(monkeypatch, host)
    assert not ok and "answers" in reason
    assert leaks == []
