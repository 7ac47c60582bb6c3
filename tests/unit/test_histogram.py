"""The latency histogram consumers publish with their heartbeat: quantiles, merge, minus, JSON, cumulative."""

from __future__ import annotations

import json
import random

import pytest

from asyncq.core.histogram import Histogram


def _of(values: list[float]) -> Histogram:
    h = Histogram()
    for v in values:
        h.record(v)
    return h


VALUES = [random.Random(7).lognormvariate(-5, 1.5) for _ in range(20_000)]  # 7 ms median, long tail


@pytest.mark.parametrize("q", [0.5, 0.9, 0.99, 0.999])
def test_quantiles_are_within_ten_percent(q: float) -> None:
    exact = sorted(VALUES)[int(q * len(VALUES)) - 1]
    assert _of(VALUES).quantile(q) == pytest.approx(exact, rel=0.10)


def test_empty_tiny_and_maximum() -> None:
    assert Histogram().quantile(0.5) == 0.0
    tiny = _of([0.0, 1e-9, 1e-6])
    assert tiny.count == 3 and set(tiny.buckets) == {0}
    h = _of([0.001, 0.002, 3.0])
    assert h.maximum == 3.0 and h.quantile(1.0) == 3.0  # never above the largest value seen


def test_merge_is_recording_both() -> None:
    a, b = VALUES[:5000], VALUES[5000:]
    merged = Histogram.merged([_of(a), _of(b)])
    assert merged == _of(VALUES)
    one = _of(a)
    one.merge(_of(b))
    assert one == merged


def test_minus_gives_what_was_recorded_since() -> None:
    h = _of(VALUES[:1000])
    earlier = Histogram.from_json(h.to_json())
    for v in VALUES[1000:3000]:
        h.record(v)
    since = h.minus(earlier)
    assert since.buckets == _of(VALUES[1000:3000]).buckets and since.count == 2000
    assert h.minus(h).count == 0 and h.minus(h).maximum == 0.0


def test_json_round_trip_and_bad_input() -> None:
    h = _of(VALUES[:500])
    assert Histogram.from_json(json.loads(json.dumps(h.to_json()))) == h
    assert len(json.dumps(h.to_json())) < 2000  # small enough for every heartbeat
    assert Histogram.from_json({}) == Histogram()
    assert Histogram.from_json({"b": "junk", "n": "x", "max": None}) == Histogram()


def test_cumulative_is_the_shape_of_a_prometheus_histogram() -> None:
    h = _of(VALUES)
    bounds = [0.001, 0.005, 0.01, 0.05, 0.1, 1.0, float("inf")]
    counts, total = h.cumulative(bounds)
    assert counts == sorted(counts) and counts[-1] == len(VALUES)
    for bound, n in zip(bounds[:-1], counts, strict=False):
        exact = sum(1 for v in VALUES if v <= bound)
        assert n == pytest.approx(exact, rel=0.05, abs=20), bound
    assert total == pytest.approx(sum(VALUES), rel=0.05)
