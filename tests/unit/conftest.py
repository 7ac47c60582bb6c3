"""The unit tier (`make test-fast`): no Redis, no processes, a few seconds in all.

Every test under tests/unit is marked ``unit``; one that asks for a fixture starting Redis is refused at
collection, so the tier stays runnable where no redis-server or Docker engine is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent
NEEDS_REDIS = {"redis_backend", "redis_url", "redis", "client", "private_redis"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: needs no Redis and starts no process (tests/unit, make test-fast)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.unit)
        wanted = NEEDS_REDIS.intersection(getattr(item, "fixturenames", ()))
        if wanted:
            raise pytest.UsageError(f"{item.nodeid}: a unit test may not use {sorted(wanted)} (it starts Redis)")
