"""``asyncq web`` in a real browser (headless Chromium): what an operator sees and does on the page.

Every test runs ``asyncq web`` as a process (tests.harness) on a real Redis, with real producer and consumer
processes where items must move.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.browser import chromium, start_web
from tests.harness import ROOT, async_wait_until, start

BASELINE_Y = 142.0  # the zero line of the charts (app.js: H - bottom)
_LAST_POINT = re.compile(r"([\d.]+),([\d.]+)$")


async def _last_y(page: Page, series: str) -> float | None:
    d = await page.get_attribute(f'#chart-flow path[data-series="{series}"]', "d")
    found = _LAST_POINT.search(d or "")
    return float(found.group(2)) if found else None


def _keep_screenshot(shot: Path) -> None:
    """ASYNCQ_WEB_SCREENSHOT=docs/web.png keeps the test's screenshot (how the README's picture is made)."""
    wanted = os.environ.get("ASYNCQ_WEB_SCREENSHOT")
    if wanted:
        shutil.copyfile(shot, ROOT / wanted)


async def test_page_shows_depth_then_moving_charts(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many({"data": f"{n:04x}"} for n in range(137))
    _, base = start_web(redis_url, tmp_path, "--queue", queue_name)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1040})
        await page.goto(base)
        await expect(page.locator(f'tr[data-queue="{queue_name}"] td.depth')).to_have_text("137", timeout=15_000)
        await page.click(f"text={queue_name}")
        await expect(page.locator("#fig-depth .value")).to_have_text("137", timeout=15_000)
        assert await _last_y(page, "put") == BASELINE_Y  # nothing put since the page opened

        async with RedisQueue(queue_name, url=redis_url) as q:
            await q.put({"mode": "reject", "data": "dead"})  # the consumer below turns it into a dead letter
        start("consumer", ["--queue", queue_name, "--handler", "tests.handlers:traced", "-c", "4"], redis_url, tmp_path)
        start("producer", ["--queue", queue_name, "-n", "100000", "--rate", "40", "--no-wait"], redis_url, tmp_path)

        rising = "() => parseFloat(document.querySelector('#fig-put-rate .value').textContent) > 0"
        await page.wait_for_function(rising, timeout=20_000)
        moved = "y => { const d = document.querySelector('#chart-flow path[data-series=\"done\"]').getAttribute('d');"
        moved += " return parseFloat(d.split(',').pop()) < y; }"
        await page.wait_for_function(moved, arg=BASELINE_Y, timeout=20_000)
        first = await page.get_attribute('#chart-flow path[data-series="put"]', "d")
        await page.wait_for_function(
            "d => document.querySelector('#chart-flow path[data-series=\"put\"]').getAttribute('d') !== d",
            arg=first,
            timeout=10_000,
        )
        y = await _last_y(page, "put")
        assert y is not None and y < BASELINE_Y, "the items-in line is still at zero while the producer runs"
        await expect(page.locator("#consumers tbody tr")).to_have_count(1)
        await expect(page.locator("#dead-letters td.reason")).to_have_text("rejected: never", timeout=15_000)
        await page.wait_for_function("() => document.querySelectorAll('#chart-latency path').length === 2")
        # For the README's picture (ASYNCQ_WEB_SCREENSHOT), a longer stretch of chart.
        await page.wait_for_timeout(40_000 if os.environ.get("ASYNCQ_WEB_SCREENSHOT") else 1_000)
        shot = tmp_path / "web.png"
        await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    _keep_screenshot(shot)


async def test_dead_letter_requeued_from_the_page_is_processed(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put_many([{"data": "dead01"}, {"data": "dead02"}])
    failing = start(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.handlers:always_fail", "--max-deliveries", "1"],
        redis_url,
        tmp_path,
        "failing",
    )
    dead = Keys(queue_name).dead

    async def two_dead() -> bool:
        return int(await redis.llen(dead)) == 2

    await async_wait_until(two_dead, 20, "two dead letters")
    assert failing.terminate() == 0
    worker = start("consumer", ["--queue", queue_name, "--work", "0", "-v"], redis_url, tmp_path, "worker")

    _, base = start_web(redis_url, tmp_path, "--queue", queue_name)
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{base}queues/{queue_name}")
        await expect(page.locator("#fig-dead .value")).to_have_text("2", timeout=15_000)
        row = page.locator("#dead-letters tr", has_text="dead01")
        await expect(row.locator("td.reason")).to_contain_text("always fails")
        await row.locator("button.requeue").click()
        await expect(page.locator("#notice")).to_have_text("requeued 1 item(s)")
        await async_wait_until(lambda: "dead01" in worker.items(), 20, "the consumer to process the requeued item")
        await expect(page.locator("#fig-dead .value")).to_have_text("1", timeout=10_000)

        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("#purge")
        await expect(page.locator("#notice")).to_have_text("purged 1 dead letter(s)")
        await expect(page.locator("#dead-letters")).to_contain_text("no dead letters", timeout=10_000)
    assert await redis.llen(dead) == 0
    assert worker.items() == ["dead01"], worker.describe()


async def test_page_shows_a_redis_outage_and_recovers(
    private_redis: EmbeddedRedis, queue_name: str, tmp_path: Path
) -> None:
    url = private_redis.url
    async with RedisQueue(queue_name, url=url) as q:
        await q.put_many(range(5))
    _, base = start_web(url, tmp_path, "--queue", queue_name)
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{base}queues/{queue_name}")
        await expect(page.locator("#fig-depth .value")).to_have_text("5", timeout=15_000)
        private_redis.stop()
        await expect(page.locator("#banner")).to_contain_text("Redis unreachable since", timeout=20_000)
        await expect(page.locator("#fig-depth .value")).to_have_text("5")  # the last figures stay
        private_redis.start()
        async with RedisQueue(queue_name, url=url) as q:
            await q.put_many(range(2))
        await expect(page.locator("#banner")).to_be_hidden(timeout=20_000)
        await expect(page.locator("#fig-depth .value")).to_have_text("7", timeout=15_000)
