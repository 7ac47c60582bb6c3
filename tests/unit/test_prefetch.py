"""The adaptive prefetch rule (asyncq.consuming.prefetch): grow on a backlog that getters wait for, shrink dry."""

from __future__ import annotations

from asyncq.consuming.prefetch import Prefetch


def test_a_fixed_prefetch_never_moves() -> None:
    fixed = Prefetch(7, ceiling=500)
    for backlog, starved in [(100, True), (0, False), (0, True)]:
        fixed.claimed(backlog, starved=starved)
        assert fixed.value == 7


def test_it_doubles_while_a_backlog_waits_and_getters_starve_up_to_the_ceiling() -> None:
    auto = Prefetch(None, ceiling=500)
    assert auto.value == 0
    seen = []
    for _ in range(8):
        auto.claimed(10_000, starved=True)
        seen.append(auto.value)
    assert seen == [16, 32, 64, 128, 256, 500, 500, 500]


def test_busy_handlers_or_an_empty_queue_do_not_grow_it() -> None:
    auto = Prefetch(None, ceiling=500)
    auto.claimed(10_000, starved=False)  # handlers busy: they are the bottleneck, not the round trip
    assert auto.value == 0
    auto.claimed(10_000, starved=True)
    auto.claimed(10_000, starved=True)
    assert auto.value == 32
    auto.claimed(10_000, starved=False)
    assert auto.value == 32  # held while handlers keep up
    auto.claimed(0, starved=True)  # the queue ran dry
    assert auto.value == 16
    for _ in range(6):
        auto.claimed(0, starved=False)
    assert auto.value == 0
