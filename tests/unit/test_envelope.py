"""The envelope's encoding, its validation, and the Lua BUMP staying in step with what encode() writes."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from asyncq.core.envelope import (
    BadEnvelope,
    DeadLetter,
    ItemTooLarge,
    dead_letter_record,
    decode,
    encode,
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
    assert raw.startswith(b'{"attempts":2,"id":"')
    assert json.loads(raw)["id"] == message.id


def test_ids_are_unique_and_envelopes_compact() -> None:
    assert len({new_id() for _ in range(1000)}) == 1000
    raw = encode({"a": [1, 2]})
    assert b" " not in raw.replace(b'"enqueued_at"', b"")  # no separators' spaces


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
    assert reset.split(b",", 1)[1] == raw.split(b",", 1)[1]


def test_dead_letter_records_read_back() -> None:
    raw = b"\xff not utf-8"
    record = DeadLetter.parse(dead_letter_record(raw, "not JSON", "c-1", item_id="abc"))
    assert (record.id, record.reason, record.consumer) == ("abc", "not JSON", "c-1")
    assert record.envelope == raw.decode("utf-8", errors="replace") and record.failed_at > 0
    assert DeadLetter.parse(dead_letter_record(encode(1), "r", "c")).id  # an id of its own when none is given
    for bad in (b"nope", b"{}", b'{"id": "a"}', b"[]"):
        with pytest.raises(BadEnvelope, match="not a dead-letter record"):
            DeadLetter.parse(bad)


# -- the Lua BUMP, applied as the server would, to what encode() writes -----------------------------------


def _lua_bump() -> tuple[re.Pattern[bytes], bytes, bytes]:
    """The pattern and replacement of ``bump`` in lua/lib.lua, as a Python regex and the text around the
    raised count (read from the file, so a change there is tested here)."""
    lib = (resources.files("asyncq.core") / "lua" / "lib.lua").read_text()
    body = lib.split("--- bump\n", 1)[1].split("\n---", 1)[0]
    pattern = re.search(r"string\.gsub\(env, '([^']*)'", body)
    replacement = re.search(r"return '([^']*)' \.\. \(tonumber\(a\) \+ 1\) \.\. '([^']*)'", body)
    assert pattern and replacement, f"bump changed shape, update this test:\n{body}"
    assert ", 1)" in body, "bump must replace only the first match"
    regex = ""
    text = pattern.group(1)
    i = 0
    while i < len(text):  # Lua pattern -> Python regex, for the few items bump uses
        c = text[i]
        if c == "%":
            regex += {"d": "[0-9]"}.get(text[i + 1], re.escape(text[i + 1]))
            i += 2
            continue
        regex += c if c in "^()+" else re.escape(c)
        i += 1
    return re.compile(regex.encode()), replacement.group(1).encode(), replacement.group(2).encode()


def _bump(raw: bytes) -> bytes:
    pattern, before, after = _lua_bump()
    bumped, n = pattern.subn(lambda m: before + str(int(m.group(1)) + 1).encode() + after, raw, count=1)
    assert n == 1, f"the Lua bump does not match {raw[:60]!r}"
    return bumped


@pytest.mark.parametrize("attempts", [0, 1, 8, 9, 99, 12345])
@pytest.mark.parametrize("payload", PAYLOADS, ids=repr)
def test_lua_bump_raises_attempts_by_one_and_leaves_the_rest_byte_identical(payload: Any, attempts: int) -> None:
    raw = encode(payload, attempts=attempts)
    bumped = _bump(raw)
    old_head, new_head = f'{{"attempts":{attempts},'.encode(), f'{{"attempts":{attempts + 1},'.encode()
    assert raw.startswith(old_head) and bumped.startswith(new_head)
    assert bumped[len(new_head) :] == raw[len(old_head) :]
    before, after = decode(raw), decode(bumped)
    assert (after.attempts, after.id, after.enqueued_at, after.payload) == (
        attempts + 1,
        before.id,
        before.enqueued_at,
        before.payload,
    )
    assert decode(reset_attempts(bumped)).attempts == 0


def test_lua_bump_matches_only_the_head() -> None:
    pattern, _, _ = _lua_bump()
    assert pattern.match(b'{"attempts":3,"id":"a"}')
    assert not pattern.match(b' {"attempts":3,')
    assert not pattern.match(b'{"id":"a","attempts":3,')


def test_an_envelope_the_lua_bump_cannot_raise_is_refused() -> None:
    # json.dumps' default separators put a space after the colon: the Lua bump would leave attempts at 0 for
    # ever, so such a value is not accepted as an envelope (it goes to the dead letters, saying why).
    written_elsewhere = json.dumps({"attempts": 0, "id": "a", "enqueued_at": 1.0, "payload": [1]}).encode()
    with pytest.raises(BadEnvelope, match="must begin with"):
        decode(written_elsewhere)
    pattern, _, _ = _lua_bump()
    assert pattern.match(written_elsewhere) is None  # indeed: the bump would not touch it
