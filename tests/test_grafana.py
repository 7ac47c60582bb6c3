"""docs/grafana-dashboard.json: every query names metrics a real consumer exports, and the board is whole."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from asyncq import RedisQueue
from asyncq.tools.embedded import free_port
from tests.harness import ROOT, start, wait_until

BOARD = ROOT / "docs" / "grafana-dashboard.json"
_METRIC = re.compile(r"\basyncq_[a-z_]+")
_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", re.MULTILINE)


def _queries(board: dict[str, Any]) -> list[str]:
    found = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    found += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return found


def test_the_board_is_well_formed() -> None:
    board = json.loads(BOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    assert all(panel["targets"] and panel["datasource"]["uid"] == "${datasource}" for panel in board["panels"])
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "queue"}
    assert all('queue=~"$queue"' in target["expr"] for p in board["panels"] for target in p["targets"])


async def test_every_query_names_an_exported_metric(redis_url: str, queue_name: str, tmp_path: Path) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many(range(3))
    port = free_port()
    args = ["--queue", queue_name, "--work", "0", "--metrics-port", str(port)]
    consumer = start("consumer", args, redis_url, tmp_path)
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> str | None:
        try:
            text = httpx.get(url, timeout=2).text
        except httpx.HTTPError:
            return None
        return text if re.search(r"^asyncq_processed_total\{.*\} 3\.0$", text, re.MULTILINE) else None

    wait_until(lambda: scraped() or not consumer.alive(), 20, "a scrape after three items")
    text = scraped()
    assert text, consumer.describe()
    exported = set(_SERIES.findall(text))
    board = json.loads(BOARD.read_text())
    named = {name for query in _queries(board) for name in _METRIC.findall(query)}
    assert named, "no asyncq metric in the board's queries"
    missing = sorted(named - exported)
    assert not missing, f"the board queries metrics no consumer exports: {missing}"
    # The board covers what docs/metrics.md lists (the _bucket/_sum/_count of the histograms count).
    documented = set(re.findall(r"^\| `(asyncq_[a-z_]+)`", (ROOT / "docs" / "metrics.md").read_text(), re.MULTILINE))
    covered = {re.sub(r"_(bucket|sum|count)$", "", name) for name in named}
    assert documented <= covered, sorted(documented - covered)
