"""The JSON envelope of asyncq before 0.2, still decoded so that a queue written by an older version drains.

Such an envelope is one JSON object whose text begins with the attempts field (the Lua scripts raise it by
editing the text)::

    {"attempts":0,"id":"5f0c1b2a9e3d-00000001","key":"order-42","enqueued_at":1732512345.123456,"payload":...,
     "trace":{"traceparent":"00-..."}}

``key`` and ``trace`` are optional. New items are written in the compact form of ``asyncq.core.envelope``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_from_json = json.JSONDecoder().decode
_FIELDS = frozenset(("attempts", "id", "enqueued_at", "payload"))
_BUMPABLE = re.compile(rb'\{"attempts":\d+,')  # what the Lua bump (lua/lib.lua) matches


class LegacyFields:
    """The decoded fields of a legacy envelope (``asyncq.core.envelope.decode`` makes the Message)."""

    __slots__ = ("attempts", "enqueued_at", "item_id", "key", "payload", "trace")

    def __init__(
        self, attempts: int, item_id: str, enqueued_at: float, payload: Any, trace: Any, key: str | None
    ) -> None:
        self.attempts = attempts
        self.item_id = item_id
        self.enqueued_at = enqueued_at
        self.payload = payload
        self.trace = trace
        self.key = key


def decode_legacy(raw: bytes) -> LegacyFields:
    """The fields of a legacy JSON envelope; ``ValueError`` (with the reason) for a value that is not one."""
    try:
        data = _from_json(raw.decode())  # envelopes are UTF-8
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(data, dict) or not data.keys() >= _FIELDS:
        raise ValueError("JSON without the envelope fields attempts, id, enqueued_at, payload")
    attempts, item_id, enqueued_at = data["attempts"], data["id"], data["enqueued_at"]
    # type() rather than isinstance(): True is an int to Python, not an attempt count.
    if type(attempts) is not int or attempts < 0:
        raise ValueError(f"envelope field attempts must be a count >= 0, not {attempts!r}")
    if type(item_id) is not str or not item_id:
        raise ValueError(f"envelope field id must be a non-empty string, not {item_id!r}")
    if type(enqueued_at) not in (int, float):
        raise ValueError(f"envelope field enqueued_at must be a number, not {enqueued_at!r}")
    if not _BUMPABLE.match(raw):
        # The Lua scripts raise attempts by editing this text: an envelope they could not edit (a space after
        # the colon, another field first) would never reach max_deliveries.
        raise ValueError('envelope must begin with {"attempts":N, (no spaces), as asyncq writes it')
    key = data.get("key")
    return LegacyFields(
        attempts, item_id, float(enqueued_at), data["payload"], data.get("trace"), key if type(key) is str else None
    )


def reset_legacy_attempts(raw: bytes, attempts: int) -> bytes:
    """The legacy envelope ``raw`` with its attempts (``attempts`` now) set back to 0."""
    return raw.replace(f'{{"attempts":{attempts},'.encode(), b'{"attempts":0,', 1)


def is_trace(value: Any) -> Mapping[str, str] | None:
    """A stored trace context, or None: a malformed one is dropped, never a reason to refuse the item."""
    if isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items()):
        return value
    return None
