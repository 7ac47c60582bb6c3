"""Who may change data through ``asyncq web`` (the token, cross-site requests, where it may listen), and how it
starts and stops."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from playwright.async_api import expect

from asyncq import RedisQueue
from asyncq.core.keys import Keys
from tests.browser import chromium, start_web
from tests.harness import run

TOKEN = "s3cret-token-for-tests"


async def _one_dead_letter(redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put({"data": "beef"})
        await q.dead_letter(await q.get_message(), "kept for the test")


@contextlib.contextmanager
def _other_site(target: str) -> Iterator[str]:
    """Another origin (its own port) serving a page whose form POSTs to ``target`` as soon as it loads."""
    page = (
        f'<html><body><form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
        '<script>document.getElementById("f").submit()</script></body></html>'
    ).encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_cross_site_post_is_refused(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await _one_dead_letter(redis_url, queue_name)
    _, base = start_web(redis_url, tmp_path, "--queue", queue_name)
    purge = f"{base}api/queues/{queue_name}/dead-letters/purge"
    async with chromium() as browser:
        page = await browser.new_page()
        with _other_site(purge) as evil:
            async with page.expect_response(purge) as answer:
                await page.goto(evil)
            assert (await answer.value).status == 403
        await expect(page.locator("body")).to_contain_text("cross-site request refused")
        # The page itself, without its CSRF token: refused too.
        await page.goto(f"{base}queues/{queue_name}")
        status = await page.evaluate(f"fetch({purge!r}, {{method: 'POST'}}).then(r => r.status)")
        assert status == 403
    async with httpx.AsyncClient() as http:
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}):
            assert (await http.post(purge, headers=headers)).status_code == 403, headers
        rebound = await http.get(f"{base}api/queues", headers={"Host": f"evil.example:{base.rsplit(':', 1)[1]}"})
        assert rebound.status_code == 400  # a DNS-rebinding page's Host is not ours
    assert await redis.llen(Keys(queue_name).dead) == 1


async def test_token_required_for_pages_and_actions(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    await _one_dead_letter(redis_url, queue_name)
    _, base = start_web(redis_url, tmp_path, "--queue", queue_name, "--token", TOKEN)
    purge = f"{base}api/queues/{queue_name}/dead-letters/purge"
    async with httpx.AsyncClient() as http:
        assert (await http.post(purge)).status_code == 403
        assert (await http.post(purge, headers={"Authorization": "Bearer wrong-token"})).status_code == 403
        assert (await http.get(f"{base}api/queues")).status_code == 401
        assert await redis.llen(Keys(queue_name).dead) == 1

        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"{base}queues/{queue_name}")
            await expect(page.locator("form#login")).to_be_visible()
            await page.fill("form#login input[name=token]", "not-the-token")
            await page.click("form#login button")
            await expect(page.locator("body")).to_contain_text("wrong token")
            await page.goto(f"{base}queues/{queue_name}")
            await page.fill("form#login input[name=token]", TOKEN)
            await page.click("form#login button")
            await expect(page.locator("#fig-dead .value")).to_have_text("1", timeout=15_000)
            page.once("dialog", lambda dialog: dialog.accept())
            await page.click("#purge")
            await expect(page.locator("#notice")).to_have_text("purged 1 dead letter(s)")
        assert await redis.llen(Keys(queue_name).dead) == 0

        await _one_dead_letter(redis_url, queue_name)
        scripted = await http.post(purge, headers={"Authorization": f"Bearer {TOKEN}"})
        assert scripted.status_code == 200 and scripted.json() == {"purged": 1}


def test_refuses_a_public_address_without_a_token(redis_url: str) -> None:
    done = run("asyncq", ["web", "--host", "0.0.0.0", "--port", "0"], redis_url, timeout=30)
    assert done.returncode == 2, done
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "error: --host 0.0.0.0 is not a loopback address: set --token" in done.stderr


async def test_password_never_printed(redis_url: str, tmp_path: Path) -> None:
    secret_url = redis_url.replace("redis://", "redis://:hunter2-secret@")
    web, base = start_web(secret_url, tmp_path)
    async with httpx.AsyncClient() as http:
        shown = (await http.get(base)).text + (await http.get(f"{base}api/queues")).text
    assert ":***@" in web.stdout() and ":***@" in shown
    assert "hunter2-secret" not in web.stdout() + web.stderr() + shown


def test_bad_start_is_one_line(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run("asyncq", ["web", "--port", port], redis_url, timeout=30)
    assert busy.returncode == 1 and busy.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), busy
    unreachable = run("asyncq", ["web", "--port", "0"], "redis://127.0.0.1:1/0", timeout=30)
    assert unreachable.returncode == 1 and unreachable.stderr.startswith("error: "), unreachable
    short = run("asyncq", ["web", "--token", "short"], redis_url, timeout=30)
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    for done in (busy, unreachable, short):
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_sigterm_stops_it_cleanly(redis_url: str, tmp_path: Path) -> None:
    web, base = start_web(redis_url, tmp_path)
    assert httpx.get(f"{base}api/queues").status_code == 200
    assert web.terminate(timeout=15) == 0, web.describe()
    assert "Traceback" not in web.stderr()
