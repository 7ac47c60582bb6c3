"""rediss:// with a CA: producer and consumer work over TLS; an unverified server is one clear line."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import run


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A redis-server speaking only TLS on a free port, with a throwaway CA: (rediss URL, CA file)."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=asyncq test CA",
        cwd=tmp_path,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=tmp_path,
    )
    (tmp_path / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
        cwd=tmp_path,
    )
    port = free_port()
    server = EmbeddedRedis(
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(tmp_path / "server.crt"),
        "--tls-key-file",
        str(tmp_path / "server.key"),
        "--tls-ca-cert-file",
        str(tmp_path / "ca.crt"),
        "--tls-auth-clients",
        "no",
        port=port,
    )
    server.start(probe=False)
    yield f"rediss://127.0.0.1:{port}/0", tmp_path / "ca.crt"
    server.cleanup()


@pytest.mark.timeout(60)
def test_producer_and_consumer_over_tls(tls_redis: tuple[str, Path]) -> None:
    url, ca = tls_redis
    put = run("producer", ["--count", "50", "--no-wait", "--tls-ca", str(ca)], redis_url=url)
    assert put.returncode == 0, put.stderr
    got = run("consumer", ["--drain", "--work", "0", "--tls-ca", str(ca)], redis_url=url, timeout=30)
    assert got.returncode == 0, got.stderr
    assert "processed 50 items" in got.stdout


def test_unverified_tls_server_is_one_line(tls_redis: tuple[str, Path]) -> None:
    url, _ = tls_redis
    result = run("producer", ["--count", "1"], redis_url=url)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "certificate verify failed" in result.stderr
