"""The Batcher's group commit, driven through its own ``send`` parameter (a recording function, not Redis)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from asyncq.core.batcher import Batcher


class Sender:
    """A ``send`` that records (batch, seq), can be held at a gate, can fail its next calls, and takes
    ``take`` items (all when None) of each batch."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.failures: list[BaseException] = []
        self.take: list[int] = []

    async def __call__(self, batch: list[str], seq: int) -> int:
        self.calls.append((list(batch), seq))
        self.entered.set()
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        return self.take.pop(0) if self.take else len(batch)

    async def held(self) -> None:
        """Wait until a call is in flight at the closed gate."""
        await asyncio.wait_for(self.entered.wait(), 5)
        self.entered.clear()


async def test_one_call_sends_everything_gathered_and_the_next_gathers_meanwhile() -> None:
    send = Sender()
    send.gate.clear()
    batcher: Batcher[str] = Batcher("test", send)
    first = [batcher.submit(x) for x in "abc"]
    await send.held()
    later = [batcher.submit(x) for x in "de"]  # while the first round trip is in flight
    assert send.calls == [(["a", "b", "c"], 1)] and len(batcher) == 5
    send.gate.set()
    await asyncio.wait_for(asyncio.gather(*first, *later), 5)  # type: ignore[arg-type]
    assert send.calls == [(["a", "b", "c"], 1), (["d", "e"], 2)]
    assert len(batcher) == 0 and batcher.pending() == []


async def test_max_batch_splits_a_burst() -> None:
    send = Sender()
    batcher: Batcher[str] = Batcher("test", send, max_batch=2)
    futures = [batcher.submit(x) for x in "abcde"]
    await asyncio.wait_for(asyncio.gather(*futures), 5)  # type: ignore[arg-type]
    assert send.calls == [(["a", "b"], 1), (["c", "d"], 2), (["e"], 3)]


async def test_a_failed_batch_is_resent_exactly_as_it_was_with_the_same_seq(caplog: pytest.LogCaptureFixture) -> None:
    send = Sender()
    send.gate.clear()
    send.failures = [RedisConnectionError("reply lost"), RedisConnectionError("again")]
    batcher: Batcher[str] = Batcher("test", send)
    first = [batcher.submit(x) for x in "ab"]
    await send.held()
    later = [batcher.submit(x) for x in "cd"]  # gathered during the failing call: not part of its resend
    with caplog.at_level(logging.WARNING, logger="asyncq.core.batcher"):
        send.gate.set()
        await asyncio.wait_for(asyncio.gather(*first, *later), 10)  # type: ignore[arg-type]
    assert send.calls == [(["a", "b"], 1), (["a", "b"], 1), (["a", "b"], 1), (["c", "d"], 2)]
    outage = [r.getMessage() for r in caplog.records]
    assert len(outage) == 2 and "retrying with backoff" in outage[0] and "available again" in outage[1]
    assert not batcher.outage.down


async def test_a_refusal_fails_only_its_batch() -> None:
    send = Sender()
    send.failures = [ResponseError("NOPERM this user has no permissions")]
    batcher: Batcher[str] = Batcher("test", send)
    refused = [batcher.submit(x) for x in "ab"]
    results = await asyncio.wait_for(asyncio.gather(*refused, return_exceptions=True), 5)  # type: ignore[arg-type]
    assert all(isinstance(r, ResponseError) for r in results)
    ok = batcher.submit("c")
    await asyncio.wait_for(ok, 5)  # type: ignore[arg-type]
    assert send.calls == [(["a", "b"], 1), (["c"], 2)]


async def test_retry_all_retries_a_refusal_too() -> None:
    send = Sender()
    send.failures = [ResponseError("NOPERM")]
    batcher: Batcher[str] = Batcher("acks", send, retry_all=True)
    batcher.submit("a", wait=False)
    await asyncio.wait_for(batcher.flush(), 5)
    assert send.calls == [(["a"], 1), (["a"], 1)]


async def test_partial_takes_wait_for_room_and_offer_the_rest_again() -> None:
    send = Sender()
    send.take = [2, 0, 3]
    rooms = 0

    async def wait_room() -> None:
        nonlocal rooms
        rooms += 1

    batcher: Batcher[str] = Batcher("puts", send, wait_room=wait_room)
    futures = [batcher.submit(x) for x in "abcde"]
    await asyncio.wait_for(asyncio.gather(*futures), 5)  # type: ignore[arg-type]
    assert send.calls == [(["a", "b", "c", "d", "e"], 1), (["c", "d", "e"], 2), (["c", "d", "e"], 3)]
    assert rooms == 2


async def test_partial_take_resolves_the_taken_items_at_once() -> None:
    send = Sender()
    send.take = [1]
    room = asyncio.Event()
    batcher: Batcher[str] = Batcher("puts", send, wait_room=room.wait)
    a, b = batcher.submit("a"), batcher.submit("b")
    assert a is not None and b is not None
    await asyncio.wait_for(a, 5)
    assert not b.done() and batcher.pending() == ["b"]
    room.set()
    await asyncio.wait_for(b, 5)


async def test_an_item_cancelled_before_it_was_sent_is_never_sent() -> None:
    send = Sender()
    batcher: Batcher[str] = Batcher("test", send)
    gone = batcher.submit("gone")
    assert gone is not None
    gone.cancel()
    kept = batcher.submit("kept")
    await asyncio.wait_for(kept, 5)  # type: ignore[arg-type]
    assert send.calls == [(["kept"], 1)]


async def test_fail_all_gives_every_waiting_caller_the_error() -> None:
    send = Sender()
    send.gate.clear()
    batcher: Batcher[str] = Batcher("test", send)
    futures = [batcher.submit(x) for x in "abc"]
    await send.held()
    assert batcher.fail_all(RuntimeError("closing")) == 3
    for future in futures:
        assert future is not None
        with pytest.raises(RuntimeError, match="closing"):
            await future
    assert len(batcher) == 0
    send.gate.set()
    await asyncio.wait_for(batcher.flush(), 5)  # the call in flight returns into an empty batcher
    assert batcher.fail_all(RuntimeError("again")) == 0
