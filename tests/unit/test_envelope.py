"""The envelope's encoding and its validation, both forms (the Lua side: tests/test_envelope_lua.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from asyncq.core.envelope import (
    BadEnvelope,
    DeadLetter,
    ItemTooLarge,
    dead_letter_record,
    decode,
    encode,
    key_text,
    new_id,
    reset_attempts,
)

PAYLOADS: list[Any] = [
    [],
    {},
    None,
    0,
    -1.5,
    "text",
    "ünïcode ✓",
    [1, "a", None],
    {"nested": {"x": [True, 1.5]}},
    {"attempts": 7, "payload": '{"attempts":3,'},  # the envelope's own field names inside the payload
    ['{"attempts":1,"id":"x"}'],
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
def test_encode_then_decode_gives_the_payload_back(payload: Any) -> None:
    raw = encode(payload, attempts=2)
    message = decode(raw)
    assert message.payload == payload
    assert message.attempts == 2 and message.delivery == 3
    assert message.raw == raw
    assert raw.startswith(b"~2|" + message.id.encode() + b"|")
    assert abs(message.enqueued_at - time.time()) < 5


def test_ids_are_unique_and_envelopes_compact() -> None:
    assert len({new_id() for _ in range(1000)}) == 1000
    raw = encode({"a": [1, 2]})
    assert b" " not in raw  # no separators' spaces
    # A 30-byte payload (a 28-character string) in a 59-byte envelope: the memory target of a waiting item.
    assert len(encode("x" * 28)) <= 60


def test_the_time_is_kept_to_the_microsecond() -> None:
    before = time.time()
    message = decode(encode(1))
    assert before - 1e-6 <= message.enqueued_at <= time.time() + 1e-6


def test_a_key_with_the_separator_round_trips() -> None:
    raw = encode("p", key='a|b"c\\d')
    assert raw.count(b"|") == 5
    message = decode(raw)
    assert (message.key, message.payload) == ('a|b"c\\d', "p")
    assert key_text('a|b') == "a\\u007cb"


@pytest.mark.parametrize(
    "old",
    [
        b'{"attempts":1,"id":"5f0c1b2a9e3d-00000001","enqueued_at":1732512345.123456,"payload":[1,"a"]}',
        b'{"attempts":0,"id":"abc-1","key":"order-42","enqueued_at":1.5,"payload":"p"}',
    ],
)
def test_an_envelope_of_the_previous_version_decodes(old: bytes) -> None:
    message = decode(old)
    assert message.id == json.loads(old)["id"] and message.payload == json.loads(old)["payload"]
    assert message.key == json.loads(old).get("key")
    assert decode(reset_attempts(old)).attempts == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [(object(), TypeError), (float("nan"), TypeError), (float("inf"), TypeError), ({1j: 1}, TypeError)],
    ids=["object", "nan", "inf", "complex-key"],
)
def test_what_json_cannot_encode_is_a_type_error(payload: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="JSON-serialisable"):
        encode(payload)


def test_deep_nesting_is_a_type_error_not_a_recursion_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(TypeError, match="nested too deeply"):
        encode(deep)


def test_the_size_limit_counts_the_whole_envelope() -> None:
    raw = encode("x" * 100)
    assert encode("x" * 100, max_bytes=len(raw) + 10)  # ids and times are of fixed width
    with pytest.raises(ItemTooLarge, match="exceeds the limit of 50 bytes") as caught:
        encode("x" * 100, max_bytes=50)
    assert caught.value.limit == 50 and caught.value.size > 100


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe binary", "not JSON"),
        (b"~0|a|1|||", "not an envelope"),
        (b"~0|a|1||", "six"),
        (b"~x|a|1|||1", "attempts must be a count"),
        (b"~-1|a|1|||1", "attempts must be a count"),
        (b"~0||1|||1", "id must be"),
        (b"~0|a b|1|||1", "id must be"),
        (b"~0|a|now!|||1", "not an envelope"),
        (b"~0|a|1|||[" + b"[" * 100_000, "nested too deeply"),
        (b"[1, 2]", "without the envelope fields"),
        (b'{"json": "but no envelope"}', "without the envelope fields"),
        (b'{"attempts":true,"id":"a","enqueued_at":1,"payload":0}', "attempts must be a count"),
        (b'{"attempts":-1,"id":"a","enqueued_at":1,"payload":0}', "attempts must be a count"),
        (b'{"attempts":1.0,"id":"a","enqueued_at":1,"payload":0}', "attempts must be a count"),
        (b'{"attempts":0,"id":"","enqueued_at":1,"payload":0}', "id must be a non-empty string"),
        (b'{"attempts":0,"id":7,"enqueued_at":1,"payload":0}', "id must be a non-empty string"),
        (b'{"attempts":0,"id":"a","enqueued_at":"now","payload":0}', "enqueued_at must be a number"),
        (b'{"id":"a","attempts":0,"enqueued_at":1,"payload":0}', "must begin with"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_what_is_not_an_envelope_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(BadEnvelope, match=reason):
        decode(raw)


def test_an_envelope_over_any_limit_still_decodes() -> None:
    assert decode(encode("x" * 5_000_000, max_bytes=10_000_000)).payload == "x" * 5_000_000


@pytest.mark.parametrize("attempts", [0, 1, 9, 10, 12345])
def test_reset_attempts_changes_only_the_count(attempts: int) -> None:
    raw = encode({"attempts": attempts, "data": "x"}, attempts=attempts)
    reset = reset_attempts(raw)
    assert decode(reset).attempts == 0
    assert reset.split(b"|", 1)[1] == raw.split(b"|", 1)[1]


def test_dead_letter_records_read_back() -> None:
    raw = b"\xff not utf-8"
    record = DeadLetter.parse(dead_letter_record(raw, "not JSON", "c-1", item_id="abc"))
    assert (record.id, record.reason, record.consumer) == ("abc", "not JSON", "c-1")
    assert record.envelope == raw.decode("utf-8", errors="replace") and record.failed_at > 0
    assert DeadLetter.parse(dead_letter_record(encode(1), "r", "c")).id  # an id of its own when none is given
    for bad in (b"nope", b"{}", b'{"id": "a"}', b"[]"):
        with pytest.raises(BadEnvelope, match="not a dead-letter record"):
            DeadLetter.parse(bad)


@pytest.mark.parametrize("payload", [2**70, -(2**64), {"big": [2**100]}], ids=repr)
def test_what_the_fast_decoder_refuses_still_decodes(payload: Any) -> None:
    assert decode(encode(payload)).payload == payload  # integers past 64 bits: the standard library reads them
