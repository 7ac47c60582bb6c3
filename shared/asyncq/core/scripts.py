"""Every Lua script asyncq runs, behind one typed method each. Each script is atomic on the server.

The scripts themselves are the ``lua/*.lua`` files beside this module; each file's header gives its KEYS,
ARGV and reply. A method here is the only place that lists a script's KEYS (built from ``Keys``) and turns
typed arguments into ARGV, the way BullMQ's ``scripts.ts`` wraps its Lua. Times come from Redis's own clock
(``TIME``), so machines with skewed clocks agree on due times.

A file's ``-- flags:`` line becomes its Redis 7 shebang. Every script but PUT carries ``allow-oom``:
consuming is what frees memory, so it must keep working on a server that reached ``maxmemory``, while a PUT
there is refused whole with OOM. A ``-- uses:`` line names the functions of ``lua/lib.lua`` to copy in, and
every script gets the table ``F`` of counter names from ``asyncq.core.keys.TOTALS``, so those names are written
once for Lua and Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

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
    used = "".join(library[fn] for fn in _header(body, "uses"))
    return shebang + names + used + body


@dataclass(frozen=True)
class Fetched:
    """What one FETCH claimed, and when the next scheduled retry falls due (seconds from now, or None)."""

    raws: list[bytes]
    next_due: float | None


class Scripts:
    """The scripts of one queue (or one shard of it) on one client; each call is EVALSHA, loading the script
    after a restart. With ``notify`` (a sharded queue), the scripts that add to the queue publish ``ready``
    when it was empty: that is what its idle consumers wait on."""

    def __init__(self, client: Redis, keys: Keys, *, notify: bool = False) -> None:
        self.client = client
        self.keys = keys
        self._ready = (keys.events,) if notify else ()
        self._scripts = {
            name: client.register_script(source(name))
            for name in (
                "put",
                "fetch",
                "ack",
                "retry",
                "dead",
                "recover",
                "release",
                "requeue",
                "heartbeat",
                "lock",
            )
        }

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=list(keys), args=list(args))

    async def put(self, producer: str, seq: int, raws: Sequence[bytes], maxsize: int) -> int:
        """Push what fits under ``maxsize``; returns how many. A resent ``seq`` is recognised, not pushed."""
        k = self.keys
        keys = (k.queue, k.unfinished, k.full, k.totals, k.producer(producer), *self._ready)
        return int(await self._call("put", keys, (maxsize, seq, *raws)))

    async def put_replicated(
        self, producer: str, seq: int, raws: Sequence[bytes], maxsize: int, replicas: int, timeout: float
    ) -> tuple[int, int]:
        """PUT, then ``WAIT`` on the same connection in the same round trip: (pushed, replicas that confirmed
        within ``timeout`` seconds). A script Redis no longer has is loaded and the pair sent again (PUT
        recognises its seq, so nothing is pushed twice)."""
        k = self.keys
        keys = (k.queue, k.unfinished, k.full, k.totals, k.producer(producer), *self._ready)
        script = self._scripts["put"]
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, maxsize, seq, *raws)
            pipe.execute_command("WAIT", replicas, max(1, int(timeout * 1000)))
            pushed, confirmed = await pipe.execute(raise_on_error=False)
            if isinstance(pushed, NoScriptError):
                script.sha = await self.client.script_load(script.script)
                continue
            for reply in (pushed, confirmed):
                if isinstance(reply, Exception):
                    raise reply
            return int(pushed), int(confirmed)
        raise NoScriptError("the PUT script could not be loaded")

    async def fetch(self, consumer: str, count: int) -> Fetched:
        """Claim up to ``count`` envelopes into ``consumer``'s processing list (due retries first)."""
        k = self.keys
        reply = await self._call("fetch", (k.queue, k.processing(consumer), k.delayed, k.full, k.events), (count,))
        raws, next_due, now = reply
        due = None if next_due is None else max(0.0, (float(next_due) - float(now)) / 1000.0)
        return Fetched(list(raws), due)

    async def ack(self, consumer: str, raws: Sequence[bytes]) -> int:
        """Mark done the envelopes still in ``consumer``'s processing list; returns how many were."""
        k = self.keys
        return int(await self._call("ack", (k.processing(consumer), k.unfinished, k.totals, k.events), raws))

    async def retry(self, consumer: str, raw: bytes, delay: float) -> bool:
        """Schedule ``raw`` for another attempt in ``delay`` seconds; False if recovery had taken it back."""
        k = self.keys
        keys = (k.processing(consumer), k.delayed, k.totals, k.unfinished, k.events)
        return bool(await self._call("retry", keys, (raw, max(0, int(delay * 1000)))))

    async def dead(self, consumer: str, raw: bytes, record: bytes, *, counted: bool, failed: bool) -> bool:
        """Move ``raw`` to the dead letters as ``record``; False if recovery had taken it back."""
        k = self.keys
        keys = (k.processing(consumer), k.dead, k.unfinished, k.totals, k.events)
        return bool(await self._call("dead", keys, (raw, record, int(counted), int(failed))))

    async def recover(self, consumer: str, limit: int) -> int:
        """Give back up to ``limit`` items of a dead ``consumer``; -1 if its heartbeat is alive."""
        k = self.keys
        keys = (k.heartbeat(consumer), k.processing(consumer), k.queue, k.consumers, k.totals, *self._ready)
        return int(await self._call("recover", keys, (consumer, limit)))

    async def release(self, consumer: str, keep: Sequence[bytes]) -> int:
        """Give back every envelope of ``consumer``'s processing list but ``keep``; returns how many."""
        keys = (self.keys.processing(consumer), self.keys.queue, *self._ready)
        return int(await self._call("release", keys, keep))

    async def requeue(self, record: bytes, envelope: bytes) -> bool:
        """Put a dead letter's ``envelope`` back at the end of the line; False if ``record`` is gone."""
        k = self.keys
        keys = (k.dead, k.queue, k.unfinished, k.totals, *self._ready)
        return bool(await self._call("requeue", keys, (record, envelope)))

    async def heartbeat(self, consumer: str, info: str, ttl_ms: int, *, first: bool) -> bool:
        """Set ``consumer``'s heartbeat; False if it had expired since the last one."""
        k = self.keys
        keys = (k.heartbeat(consumer), k.consumers)
        return bool(await self._call("heartbeat", keys, (info, ttl_ms, consumer, int(first))))

    async def lock(self, token: str, ttl_ms: int) -> bool:
        """Take the sweep lock for ``ttl_ms`` if it is free."""
        return bool(await self._call("lock", (self.keys.sweep_lock,), (token, ttl_ms)))
