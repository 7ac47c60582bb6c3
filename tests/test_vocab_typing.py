"""``RedisQueue`` is generic in its item type for type checkers (issue 15): mypy sees what get() returns."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from dataclasses import dataclass
from asyncq import RedisLifoQueue, RedisPriorityQueue, RedisQueue

@dataclass
class Order:
    id: int

async def f() -> None:
    q = RedisQueue[Order]("x")
    reveal_type(await q.get())
    await q.put("not an order")
    p = RedisPriorityQueue[Order]("y")
    reveal_type(await p.get())
    reveal_type(RedisLifoQueue[int]("z").get_nowait())
"""


def test_mypy_sees_the_item_type(tmp_path: Path) -> None:
    path = tmp_path / "typed_use.py"
    path.write_text(SNIPPET)
    out, _, _ = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)])
    assert 'Revealed type is "typed_use.Order"' in out, out
    assert 'incompatible type "str"; expected "Order"' in out, out
    assert 'Revealed type is "tuple[float, typed_use.Order]"' in out, out
    assert 'Revealed type is "int"' in out, out
