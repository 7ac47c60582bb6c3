"""Test fixtures: one real Redis per session, a clean database per test, helpers to run the CLIs as processes.

The session's Redis is, in order: ``ASYNCQ_TEST_REDIS_URL`` if set (it is flushed: never point it at data you
keep), a testcontainers ``RedisContainer`` when a Docker engine answers, else a private ``redis-server`` on a
free loopback port. The machine's shared Redis on 6379 is never used.
"""

from __future__ import annotations

import os

# testcontainers reads these at import. No reaper (Ryuk) container: its image cannot be pulled on machines that
# reach no registry (scripts/provision-docker.sh builds the only images the tests use). Containers are reached
# on loopback through published ports: inside a container (/.dockerenv) testcontainers would otherwise use the
# bridge gateway.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TC_HOST", "127.0.0.1")

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis import Redis as SyncRedis

from asyncq.tools.embedded import EmbeddedRedis
from tests.harness import docker_available, reap

REDIS_IMAGE = os.environ.get("ASYNCQ_TEST_REDIS_IMAGE", "redis:7-bookworm")


@contextlib.contextmanager
def _container() -> Iterator[str]:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers before the community namespace
        from testcontainers.redis import RedisContainer

    container = RedisContainer(REDIS_IMAGE)
    container.ports["6379"] = ("127.0.0.1", None)  # publish on loopback only, on a free port
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(6379)
        yield f"redis://{host}:{port}/0"


@pytest.fixture(scope="session")
def redis_backend() -> Iterator[tuple[str, str]]:
    """(url, kind) of the session's Redis server."""
    url = os.environ.get("ASYNCQ_TEST_REDIS_URL")
    if url:
        yield url, "given"
        return
    ok, _ = docker_available()
    if ok:
        with _container() as url:
            yield url, "container"
        return
    with EmbeddedRedis() as server:
        yield server.url, "redis-server"


@pytest.fixture
def redis_url(redis_backend: tuple[str, str]) -> str:
    return redis_backend[0]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def queue_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A plain redis-server of this test's own (counted commands, ACL users: nothing else shares it)."""
    server = EmbeddedRedis()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, for tests that restart or reconfigure it."""
    server = EmbeddedRedis("--appendonly", "yes", "--appendfsync", "always")
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def client(redis_url: str) -> Iterator[SyncRedis]:
    """A synchronous client on the session's Redis (for tests that poll while processes work)."""
    c = SyncRedis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Kill any process a test started through tests.harness.start and left running."""
    yield
    reap()
