"""RetryPolicy: how many deliveries an item gets and how long a failed one waits; the one backoff formula."""

from __future__ import annotations

import pytest

from asyncq.core.backoff import exponential
from asyncq.core.retries import RetryPolicy


def test_exhausted_after_max_deliveries() -> None:
    policy = RetryPolicy(max_deliveries=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert RetryPolicy(max_deliveries=1).exhausted(1)


@pytest.mark.parametrize("delivery", [1, 2, 3, 5, 8, 20])
def test_delay_doubles_within_jitter_and_stops_at_the_cap(delivery: int) -> None:
    policy = RetryPolicy(base=0.5, cap=10.0)
    nominal = min(10.0, 0.5 * 2 ** (delivery - 1))
    delays = [policy.delay(delivery) for _ in range(500)]
    assert all(0.75 * nominal <= d <= 1.25 * nominal for d in delays)
    assert max(delays) - min(delays) > 0.2 * nominal  # jittered: items failing together come back apart


def test_zero_base_retries_at_once() -> None:
    assert RetryPolicy(base=0).delay(3) == 0


@pytest.mark.parametrize(("kwargs"), [{"max_deliveries": 0}, {"base": -1}, {"cap": -0.1}])
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="max_deliveries must be >= 1"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_exponential_counts_from_zero_and_ignores_negative_n() -> None:
    assert exponential(0, 0.1, 5, jitter=(1, 1)) == 0.1
    assert exponential(-3, 0.1, 5, jitter=(1, 1)) == 0.1
    assert exponential(10, 0.1, 5, jitter=(1, 1)) == 5
