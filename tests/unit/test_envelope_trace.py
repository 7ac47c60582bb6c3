"""The optional trace field of the envelope (the fifth); old envelopes with or without one still decode."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from asyncq.core import envelope
from asyncq.core.envelope import decode, encode, reset_attempts

CONTEXT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}


@pytest.fixture
def hook() -> Iterator[list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []

    def trace(queue: str, item_id: str) -> dict[str, str]:
        calls.append((queue, item_id))
        return CONTEXT

    envelope.trace_hook = trace
    yield calls
    envelope.trace_hook = None


def test_the_context_is_stored_last_and_read_back(hook: list[tuple[str, str]]) -> None:
    raw = encode({"x": 1}, queue="orders")
    assert raw.startswith(b"~0|")  # what the Lua bump edits
    message = decode(raw)
    assert message.trace == CONTEXT and message.payload == {"x": 1}
    assert hook == [("orders", message.id)]
    assert json.loads(raw.split(b"|", 5)[4]) == CONTEXT
    assert decode(reset_attempts(b"~3" + raw[2:])).trace == CONTEXT


def test_a_context_with_the_separator_round_trips(hook: list[tuple[str, str]]) -> None:
    envelope.trace_hook = lambda queue, item_id: {"traceparent": "00-1", "tracestate": "a=b|c"}
    raw = encode(1)
    assert raw.count(b"|") == 5 and decode(raw).trace == {"traceparent": "00-1", "tracestate": "a=b|c"}


def test_without_the_hook_nothing_is_stored() -> None:
    raw = encode([1, 2])
    assert raw.split(b"|", 5)[4] == b"" and decode(raw).trace is None


def test_an_old_envelope_and_a_malformed_context_decode() -> None:
    old = b'{"attempts":1,"id":"abc-1","enqueued_at":1.5,"payload":"p"}'
    assert decode(old).trace is None and decode(old).attempts == 1
    odd = b'{"attempts":0,"id":"abc-2","enqueued_at":1.5,"payload":"p","trace":{"traceparent":7}}'
    assert decode(odd).trace is None and decode(odd).payload == "p"


def test_a_hook_that_stores_nothing(hook: list[tuple[str, str]]) -> None:
    envelope.trace_hook = lambda queue, item_id: None
    assert encode("x").split(b"|", 5)[4] == b""
