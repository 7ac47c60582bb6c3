"""Every Lua script asyncq runs, behind one typed method each. Each script is atomic on the server.

The scripts themselves are the ``lua/*.lua`` files beside this module; each file's header gives its KEYS,
ARGV and reply. A method here is the only place that lists a script's KEYS (built from ``Keys``) and turns
typed arguments into ARGV, the way BullMQ's ``scripts.ts`` wraps its Lua. Times come from Redis's own clock
(``TIME``), so machines with skewed clocks agree on due times.

A file's ``-- flags:`` line becomes its Redis 7 shebang. Every script but PUT carries ``allow-oom``:
consuming is what frees memory, so it must keep working on a server that reached ``maxmemory``, while a PUT
there is refused whole with OOM. A ``-- uses:`` line names the functions of ``lua/lib.lua`` to copy in, and
every script gets the table ``F`` of counter names from ``asyncq.core.keys.TOTALS``, so those names are written
once for Lua and Python. A library function that calls another brings it along.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from asyncq.core.keys import TOTALS, Keys

_LIB_PART = re.compile(r"^--- (\w+)\n", re.MULTILINE)


def _read(name: str) -> str:
    return (resources.files("asyncq.core") / "lua" / f"{name}.lua").read_text()


@cache
def _library() -> dict[str, str]:
    parts = _LIB_PART.split(_read("lib"))
    return {name: body.strip() + "\n" for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def _header(text: str, field: str) -> list[str]:
    match = re.search(rf"^-- {field}: (.*)$", text, re.MULTILINE)
    return match.group(1).replace(",", " ").split() if match else []


@cache
def source(name: str) -> str:
    """The full text sent to Redis for script ``name``: shebang, counter names, library functions, body."""
    body = _read(name)
    flags = _header(body, "flags")
    shebang = "#!lua" + (f" flags={','.join(flags)}" if flags else "") + "\n"
    names = "local F = {" + ", ".join(f"{n} = '{n}'" for n in TOTALS) + "}\n"
    library = _library()
    used = "".join(library[part] for part in with_dependencies(_header(body, "uses")))
    return shebang + names + used + body


def _function(part: str) -> str:
    match = re.search(r"^local function (\w+)\(", _library()[part], re.MULTILINE)
    assert match, f"lib.lua part {part} defines no function"
    return match.group(1)


def with_dependencies(parts: list[str]) -> list[str]:
    """The library parts ``parts`` and those their functions call, each after the ones it calls."""
    library = _library()
    ordered: list[str] = []

    def add(part: str) -> None:
        if part in ordered:
            return
        for other in library:
            if other != part and re.search(rf"\b{_function(other)}\(", library[part]):
                add(other)
        ordered.append(part)

    for part in parts:
        add(part)
    return ordered


@dataclass(frozen=True)
class Fetched:
    """What one FETCH claimed, as (envelope, ref: its id in the processing hash, or b"" for the processing
    list), when the next scheduled retry falls due (seconds from now, or None), and how many items still
    wait."""

    items: list[tuple[bytes, bytes]]
    next_due: float | None
    left: int = 0


class ShutDownRefusal(RedisError):
    """PUT refused a batch: the queue is shut down (``asyncq.core.closing`` turns it into ``QueueShutDown``)."""


class Scripts:
    """The scripts of one queue (or one shard of it) on one client; each call is EVALSHA, loading the script
    after a restart. With ``notify`` (a sharded queue, or a priority queue), the scripts that add to the
    queue publish ``ready`` when it was empty: that is what its idle consumers wait on. ``kind`` (``fifo``,
    ``lifo``, ``priority``) chooses where waiting items are kept (``asyncq.core.keys``)."""

    def __init__(self, client: Redis, keys: Keys, *, notify: bool = False, kind: str = "fifo") -> None:
        self.client = client
        self.keys = keys
        self.kind = kind
        self.notify = notify
        self._ranked = kind == "priority"
        self._ready = (keys.events,) if notify else ()
        names = ["put", "fetch", "ack", "retry", "dead", "recover", "release", "requeue", "heartbeat", "lock"]
        names += ["shutdown", *(["fetch_ranked", "recover_ranked", "release_ranked", "requeue_ranked"] * self._ranked)]
        self._scripts = {name: client.register_script(source(name)) for name in names}

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=list(keys), args=list(args))

    def _put_keys(self, producer: str) -> tuple[str, ...]:
        k = self.keys
        return (
            k.waiting(self.kind), k.unfinished, k.full, k.totals, k.producer(producer), k.delayed,
            k.dedup, k.dedup_done, k.seq, k.shutdown, k.events,
        )  # fmt: skip

    def _put_args(self, seq: int, maxsize: int, options: bool, values: Sequence[bytes | str | int]) -> list[Any]:
        return [maxsize, seq, self.kind, int(self.notify), int(options), *values]

    @staticmethod
    def _put_reply(reply: Any) -> tuple[int, str]:
        if reply == -1:
            raise ShutDownRefusal("the queue is shut down")
        taken, flags = reply
        return int(taken), flags.decode() if isinstance(flags, bytes) else str(flags)

    async def put(self, producer: str, seq: int, raws: Sequence[bytes], maxsize: int) -> int:
        """Push what fits under ``maxsize``; returns how many. A resent ``seq`` is recognised, not pushed."""
        taken, _ = await self.put_items(producer, seq, raws, maxsize)
        return taken

    async def put_items(
        self, producer: str, seq: int, values: Sequence[bytes | str | int], maxsize: int, *, options: bool = False
    ) -> tuple[int, str]:
        """Add what fits under ``maxsize``: (how many were taken from the front, a flag per item with
        ``options``: '1' added, '0' refused as a duplicate key). ``values`` are the envelopes, or with
        ``options`` four values per item (envelope, delay ms, key, dedup ttl ms). A resent ``seq`` is
        recognised, not applied twice. Raises ``ShutDownRefusal`` once the queue is shut down."""
        reply = await self._call("put", self._put_keys(producer), self._put_args(seq, maxsize, options, values))
        return self._put_reply(reply)

    async def put_replicated(
        self,
        producer: str,
        seq: int,
        values: Sequence[bytes | str | int],
        maxsize: int,
        replicas: int,
        timeout: float,
        *,
        options: bool = False,
    ) -> tuple[int, str, int]:
        """PUT, then ``WAIT`` on the same connection in the same round trip: (taken, flags, replicas that
        confirmed within ``timeout`` seconds). A script Redis no longer has is loaded and the pair sent again
        (PUT recognises its seq, so nothing is added twice)."""
        keys = self._put_keys(producer)
        args = self._put_args(seq, maxsize, options, values)
        script = self._scripts["put"]
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", replicas, max(1, int(timeout * 1000)))
            pushed, confirmed = await pipe.execute(raise_on_error=False)
            if isinstance(pushed, NoScriptError):
                script.sha = await self.client.script_load(script.script)
                continue
            for reply in (pushed, confirmed):
                if isinstance(reply, Exception):
                    raise reply
            taken, flags = self._put_reply(pushed)
            return taken, flags, int(confirmed)
        raise NoScriptError("the PUT script could not be loaded")

    async def fetch(self, consumer: str, count: int) -> Fetched:
        """Claim up to ``count`` envelopes into ``consumer``'s processing hash (due retries first)."""
        k = self.keys
        held = k.held(consumer)
        if self._ranked:
            keys: tuple[str, ...] = (k.ranked, k.processing(consumer), k.delayed, k.full, k.events, k.seq, held)
            reply = await self._call("fetch_ranked", keys, (count,))
        else:
            keys = (k.queue, k.processing(consumer), k.delayed, k.full, k.events, held)
            reply = await self._call("fetch", keys, (count,))
        pairs, listed, next_due, now, left = reply
        items = list(zip(pairs[1::2], pairs[0::2], strict=True))
        items += [(raw, b"") for raw in listed]
        due = None if next_due is None else max(0.0, (float(next_due) - float(now)) / 1000.0)
        return Fetched(items, due, int(left))

    async def ack(self, consumer: str, handles: Sequence[bytes], *, keyed: bool = False) -> int:
        """Mark done the items (``Message.handle``) still in ``consumer``'s processing hash or list; returns how
        many were. ``keyed``: some were put with an idempotency key, to be forgotten."""
        k = self.keys
        keys: tuple[str, ...] = (k.processing(consumer), k.unfinished, k.totals, k.events, k.held(consumer))
        if keyed:
            keys += (k.dedup, k.dedup_done)
        return int(await self._call("ack", keys, handles))

    async def retry(self, consumer: str, handle: bytes, delay: float) -> bool:
        """Schedule the item ``handle`` for another attempt in ``delay`` seconds; False if recovery had taken
        it back."""
        k = self.keys
        keys = (k.processing(consumer), k.delayed, k.totals, k.unfinished, k.events, k.held(consumer))
        return bool(await self._call("retry", keys, (handle, max(0, int(delay * 1000)))))

    async def dead(
        self, consumer: str, handle: bytes, record: bytes, *, counted: bool, failed: bool, keyed: bool = False
    ) -> bool:
        """Move the item ``handle`` to the dead letters as ``record``; False if recovery had taken it back."""
        k = self.keys
        keys: tuple[str, ...] = (k.processing(consumer), k.dead, k.unfinished, k.totals, k.events, k.held(consumer))
        if keyed:
            keys += (k.dedup, k.dedup_done)
        return bool(await self._call("dead", keys, (handle, record, int(counted), int(failed))))

    async def recover(self, consumer: str, limit: int) -> int:
        """Give back up to ``limit`` items of a dead ``consumer``; -1 if its heartbeat is alive."""
        k = self.keys
        beat, processing, held = k.heartbeat(consumer), k.processing(consumer), k.held(consumer)
        if self._ranked:
            ranked = (beat, processing, k.ranked, k.consumers, k.totals, k.events, k.seq, held)
            return int(await self._call("recover_ranked", ranked, (consumer, limit)))
        keys = (beat, processing, k.queue, k.consumers, k.totals, held, *self._ready)
        return int(await self._call("recover", keys, (consumer, limit)))

    async def release(self, consumer: str, keep: Sequence[bytes]) -> int:
        """Give back every item of ``consumer``'s processing hash and list but the handles ``keep``; returns
        how many."""
        k = self.keys
        processing, held = k.processing(consumer), k.held(consumer)
        if self._ranked:
            return int(await self._call("release_ranked", (processing, k.ranked, k.events, k.seq, held), keep))
        keys = (processing, k.queue, held, *self._ready)
        return int(await self._call("release", keys, keep))

    async def requeue(self, record: bytes, envelope: bytes) -> bool:
        """Put a dead letter's ``envelope`` back at the end of the line; False if ``record`` is gone."""
        k = self.keys
        if self._ranked:
            ranked = (k.dead, k.ranked, k.unfinished, k.totals, k.events, k.seq)
            return bool(await self._call("requeue_ranked", ranked, (record, envelope)))
        keys = (k.dead, k.queue, k.unfinished, k.totals, *self._ready)
        return bool(await self._call("requeue", keys, (record, envelope)))

    async def shutdown(self, *, immediate: bool) -> int:
        """Shut this shard down (puts refused); with ``immediate``, drop what waits. Returns how many dropped."""
        k = self.keys
        keys = (k.shutdown, k.waiting(self.kind), k.delayed, k.unfinished, k.totals, k.events, k.dedup, k.dedup_done)
        return int(await self._call("shutdown", keys, ("immediate" if immediate else "drain", self.kind)))

    async def heartbeat(self, consumer: str, info: str, ttl_ms: int, *, first: bool) -> bool:
        """Set ``consumer``'s heartbeat; False if it had expired since the last one."""
        k = self.keys
        keys = (k.heartbeat(consumer), k.consumers)
        return bool(await self._call("heartbeat", keys, (info, ttl_ms, consumer, int(first))))

    async def lock(self, token: str, ttl_ms: int) -> bool:
        """Take the sweep lock for ``ttl_ms`` if it is free."""
        return bool(await self._call("lock", (self.keys.sweep_lock,), (token, ttl_ms)))
