"""A real browser for the tests of ``asyncq web``: the system's headless Chromium driven by Playwright.

Playwright's own browser downloads are never used: ``CHROMIUM`` (``/usr/bin/chromium``, Debian's package, or
``ASYNCQ_TEST_CHROMIUM``) is launched by path. Playwright passes ``--no-sandbox`` itself unless asked for
the sandbox, which lets it run as root (CI) and as an unprivileged user alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.harness import Proc, start, wait_until

CHROMIUM = os.environ.get("ASYNCQ_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
_URL = re.compile(r"asyncq web: (http://\S+/)")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def start_web(redis_url: str, logdir: Path, *args: str, name: str = "web") -> tuple[Proc, str]:
    """``asyncq web`` on a free loopback port as a process; returns it and its base URL once it listens."""
    proc = start("asyncq", ["web", "--port", "0", *args], redis_url, logdir, name)
    wait_until(lambda: _URL.search(proc.stdout()) or not proc.alive(), 20, "asyncq web to listen")
    found = _URL.search(proc.stdout())
    assert found, proc.describe()
    return proc, found.group(1)
