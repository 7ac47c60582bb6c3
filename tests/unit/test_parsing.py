"""What the CLIs parse and print without Redis: --work, queue names, the item label, producers' shares."""

from __future__ import annotations

from typing import Any

import pytest

from asyncq.consumer.handlers import Work
from asyncq.consumer.worker import label
from asyncq.core.keys import Keys, check_name
from asyncq.producer.run import make_item, shares
from asyncq.tools.demo_work import parse_work


@pytest.mark.parametrize(("text", "span"), [("0", (0, 0)), ("0.5", (0.5, 0.5)), ("0-1.5", (0, 1.5)), ("2-2", (2, 2))])
def test_work_parses_seconds_or_a_range(text: str, span: tuple[float, float]) -> None:
    assert Work.parse(text) == Work(*span)
    assert parse_work(text) == span  # the demo's --work reads the same


@pytest.mark.parametrize(
    ("text", "error"),
    [("fast", "SECONDS or MIN-MAX"), ("1-", "SECONDS or MIN-MAX"), ("", "SECONDS or MIN-MAX"), ("1-0", "MIN <= MAX")],
)
def test_bad_work_says_what_is_expected(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Work.parse(text)
    with pytest.raises(ValueError, match=error):
        parse_work(text)


@pytest.mark.parametrize("name", ["asyncq", "a", "jobs.v2", "A_b-c", "x" * 100])
def test_queue_names_that_work(name: str) -> None:
    assert check_name(name) == name
    assert Keys(name).prefix == f"asyncq:{{{name}}}:"


@pytest.mark.parametrize("name", ["", "no spaces", "glob*", "q?", "a[b]", "{tag}", "x" * 101, "ünï"])
def test_queue_names_that_would_break_keys_or_scans(name: str) -> None:
    with pytest.raises(ValueError, match="invalid queue name"):
        check_name(name)


@pytest.mark.parametrize(
    ("payload", "shown"),
    [({"data": "ab12"}, "ab12"), ({"n": 1}, "{'n': 1}"), (["first", 2], "first"), ([], "[]"), (7, "7"), ("s", "s")],
)
def test_label_shows_the_seeds_hex_string_when_there_is_one(payload: Any, shown: str) -> None:
    assert label(payload) == shown


@pytest.mark.parametrize(("count", "producers"), [(0, 3), (1, 3), (10, 3), (10, 10), (7, 1), (1000, 7)])
def test_shares_split_evenly(count: int, producers: int) -> None:
    parts = shares(count, producers)
    assert len(parts) == producers and sum(parts) == count
    assert max(parts) - min(parts) <= 1 and parts == sorted(parts, reverse=True)


@pytest.mark.parametrize("size", [1, 2, 31, 32])
def test_items_are_hex_of_the_asked_size(size: int) -> None:
    item = make_item(3, size)
    assert item["producer"] == 3
    data = item["data"]
    assert isinstance(data, str) and len(data) == size and int(data, 16) >= 0
