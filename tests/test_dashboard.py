"""The dashboard: rendered to fixed-size virtual terminals (120, 80, 60 columns), live through a Redis restart,
``asyncq watch`` as a process (a pipe at 80 columns, and a real terminal under tmux), ``asyncq stats`` with no
consumer and ``asyncq dead-letters list`` at 80 columns. The demo has its own tests (test_demo.py)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from rich.console import Console, RenderableType

from asyncq import RedisQueue
from asyncq.core.histogram import Histogram
from asyncq.tools import snapshot
from asyncq.tools.dashboard import watch
from asyncq.tools.embedded import EmbeddedRedis
from asyncq.tools.layout import abbreviate
from asyncq.tools.render import CONSUMER_COLUMNS, History, render_snapshot, sparkline
from asyncq.tools.snapshot import ConsumerView, Snapshot
from tests.harness import Proc, async_wait_until, cli, env, run, start, wait_until

RULE = "─" * 120
HEADERS = [c.header for c in CONSUMER_COLUMNS]


def screen(renderable: RenderableType, width: int = 120, height: int = 40) -> str:
    """What a ``width`` x ``height`` terminal shows of ``renderable`` (plain text)."""
    console = Console(file=io.StringIO(), width=width, height=height, force_terminal=False, color_system=None)
    console.print(renderable)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def figure(text: str, label: str) -> str:
    """The value printed right after ``label`` (the last such line: the newest frame)."""
    found = re.findall(rf"{re.escape(label)}\s+(\S+(?: / \S+)?)", text)
    assert found, f"{label!r} is not on the screen:\n{text}"
    return str(found[-1])


def table_rows(text: str, first: str) -> list[dict[str, str]]:
    """The rows of the boxed table whose first header is ``first``, as {header: cell}."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith(f"┃ {first}"))
    headers = [cell.strip() for cell in lines[head].strip("┃").split("┃")]
    rows = []
    for line in lines[head + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append(dict(zip(headers, (cell.strip() for cell in line.strip("│").split("│")), strict=True)))
    return rows


def consumer_rows(text: str) -> list[dict[str, str]]:
    """The rows of the (last) consumers table."""
    last = text.rindex("live consumer(s)")
    return table_rows(text[last:], "host")


def shown_headers(text: str, first: str = "host") -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"┃ {first}"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


# -- rendering ------------------------------------------------------------------------------------------


async def test_render_shows_the_figures_of_a_real_queue(redis: aioredis.Redis, redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url, heartbeat_interval=0.1) as q:
        await q.put_many([{"n": n} for n in range(12)])
        got = [await q.get_message() for _ in range(4)]
        q.ack(got[0])
        q.ack(got[1])
        await q.dead_letter(got[2], "bad item")
        await q.flush()

        async def one_in_progress() -> bool:
            views = (await snapshot.take(redis, queue_name)).consumers
            return [(v.in_progress, v.processed) for v in views] == [(1, 2)]

        # the next heartbeat carries this process's figures: 1 item in progress, 2 processed
        await async_wait_until(one_in_progress, 10, "a heartbeat with 1 item in progress and 2 processed")
        snap = await snapshot.take(redis, queue_name)
        text = screen(render_snapshot(snap))
    assert f"queue '{queue_name}'" in text
    assert figure(text, "waiting (depth)") == "8"
    assert figure(text, "claimed / in progress") == "1 / 1"
    assert figure(text, "dead letters") == "1"
    assert figure(text, "unfinished (join)") == "9"
    assert figure(text, "scheduled") == "0"
    assert figure(text, "total enqueued") == "12"
    assert figure(text, "total processed") == "2"
    assert figure(text, "total failed") == "1"
    assert figure(text, "total dead") == "1"
    assert "1 live consumer" in text
    [row] = consumer_rows(text)
    wanted = {"pid": str(os.getpid()), "in prog": "1", "claimed": "1", "processed": "2", "failed": "1"}
    assert {k: row[k] for k in wanted} == wanted
    assert row["host"] == abbreviate(snap.consumers[0].host, 20)
    assert len(text.splitlines()) <= 40
    assert all(len(line) <= 120 for line in text.splitlines())


def _snap(at: float, enqueued: int, processed: int, latency: Histogram) -> Snapshot:
    view = ConsumerView("c1", "box", 42, 10, 3, 3, processed, 0, 0.5, latency)
    totals = {"enqueued": enqueued, "processed": processed, "failed": 0, "retried": 0, "dead": 0, "recovered": 0}
    return Snapshot("q", at, enqueued - processed, 1.5, 3, 0, 0, enqueued - processed, totals, [view])


def test_history_gives_throughput_and_the_recent_latency() -> None:
    slow = Histogram()
    for _ in range(100):
        slow.record(2.0)  # before the window: must not count
    fast = Histogram.merged([slow])
    for _ in range(50):
        fast.record(0.004)
    history = History(window=60)
    history.add(_snap(1000.0, 0, 0, slow))
    history.add(_snap(1001.0, 50, 40, slow))
    history.add(_snap(1003.0, 250, 160, fast))
    assert history.rates() == ([50.0, 100.0], [40.0, 60.0])
    recent = history.latency()
    assert recent.count == 50
    assert recent.quantile(0.99) == pytest.approx(0.004, rel=0.06)

    text = screen(render_snapshot(_snap(1003.0, 250, 160, fast), history))
    assert figure(text, "items in") == "100.0/s"
    assert figure(text, "items out") == "60.0/s"
    assert "peak 100/s" in text
    assert re.search(r"latency p50 [34]\.\d\d ms · p99 [34]\.\d\d ms \(enqueue to start; 50 items, last 60 s", text), (
        text
    )
    in_line = next(line for line in text.splitlines() if line.startswith("items in"))
    assert "▄█" in in_line  # 50/s then 100/s, scaled to the peak

    # A sample past the window drops the oldest; a counter reset counts as nothing, not as negative.
    history.add(_snap(1060.0, 450, 400, fast))
    history.add(_snap(1070.0, 10, 5, fast))
    assert len(history) == 3  # 1003 (the window's start, 1010, lies after it), 1060, 1070
    assert history.rates() == ([200 / 57, 0.0], [240 / 57, 0.0])


def _busy_snapshot(at: float, processed: int) -> Snapshot:
    """Three consumers with 7-digit pids, a long host name and large counts: what breaks narrow layouts."""
    latency = Histogram()
    for n in range(1, 200):
        latency.record(n / 1000)
    views = [
        ConsumerView(
            f"c{n}", "build-runner-eu-west-1-0042", 2950000 + n, 50, 48, 96, 1_234_567 + n, 8_765, 0.25, latency
        )
        for n in range(3)
    ]
    totals = {"enqueued": 9_999_999, "processed": processed, "failed": 251, "retried": 244, "dead": 7, "recovered": 3}
    return Snapshot("orders", at, 123_456, 3.2, 144, 11, 7, 123_999, totals, views, orphaned=12)


@pytest.mark.parametrize("width", [120, 80, 60])
def test_every_figure_readable_at_the_width(width: int) -> None:
    history = History()
    for t in range(30):
        history.add(_busy_snapshot(1000.0 + t, 5_000_000 + 150 * t))
    text = screen(render_snapshot(_busy_snapshot(1030.0, 5_004_500), history, source="redis://10.0.0.7:6379/0"), width)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), text
    # Figures whole: no number cut short.
    assert figure(text, "waiting (depth)") == "123,456"
    assert figure(text, "total enqueued") == "9,999,999"
    assert figure(text, "orphaned (awaiting recovery)") == "12"
    assert figure(text, "items in") == "0.0/s"
    assert figure(text, "items out") == "150.0/s"
    assert "peak 150/s" in text
    # The consumers table: whole columns are left out, least important first (latencies, then conc, failed).
    shown = shown_headers(text)
    by_rank = [c.header for c in sorted(CONSUMER_COLUMNS, key=lambda c: c.rank)]
    assert shown == [h for h in HEADERS if h in by_rank[: len(shown)]], shown
    assert len(shown) == {120: 10, 80: 6, 60: 4}[width], shown
    rows = consumer_rows(text)
    assert [row["pid"] for row in rows] == ["2950000", "2950001", "2950002"]
    assert [row["processed"] for row in rows if "processed" in row] in ([], ["1,234,567", "1,234,568", "1,234,569"])
    assert all(row["host"] == "build-runner-eu-wes…" for row in rows)  # a name may be abbreviated, numbers never
    assert text.count("…") == 3, text


def test_no_latency_without_measurements_is_a_dash() -> None:
    totals = dict.fromkeys(snapshot.TOTALS, 0)
    empty = Snapshot("q", 1000.0, 5, 1.0, 0, 0, 0, 5, totals, [])
    text = screen(render_snapshot(empty), 80)
    assert "latency - " in text
    assert "0.00 ms" not in text
    text = screen(render_snapshot(empty, History()), 80)
    assert "latency - " in text and "0.00 ms" not in text


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8]) == "▁▁▂▃▄▅▆▇█"
    assert sparkline([5.0] * 10) == "█" * 10
    assert sparkline([1.0, 2.0] * 60) == "█" * 60  # 120 values in 60 columns: pairs averaged
    rising = sparkline(list(range(121)))  # groups of 3: 40 columns, the newest complete, on the right
    assert len(rising) == 40 and rising.startswith("▁") and rising.endswith("█")


# -- watch: in process through a restart, and as a process --------------------------------------------


async def test_watch_keeps_going_through_a_redis_restart(private_redis: EmbeddedRedis, queue_name: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, height=40, force_terminal=False, color_system=None)

    def frames() -> list[str]:
        return out.getvalue().split(RULE)[:-1]  # complete frames, oldest first

    async with RedisQueue(queue_name, url=private_redis.url) as q:
        await q.put_many(list(range(7)))
    task = asyncio.create_task(watch(private_redis.url, queue_name, 0.1, console))
    try:
        await async_wait_until(lambda: bool(frames()) and figure(frames()[-1], "waiting (depth)") == "7", 10, "depth 7")

        await asyncio.to_thread(private_redis.stop)
        await async_wait_until(lambda: "Redis unreachable since" in frames()[-1], 10, "the outage on screen")
        outage = frames()[-1]
        assert figure(outage, "waiting (depth)") == "7"  # the last figures stay, under the banner
        assert "retrying every 0.1 s" in outage
        shown = len(frames())
        # watch keeps redrawing through the outage: three more frames, each still under the banner
        await async_wait_until(lambda: len(frames()) >= shown + 3, 10, "three more frames during the outage")
        assert all("Redis unreachable since" in frame for frame in frames()[shown - 1 :])
        assert not task.done()

        await asyncio.to_thread(private_redis.start)
        async with RedisQueue(queue_name, url=private_redis.url) as q:
            await q.put_many(list(range(5)))
        await async_wait_until(
            lambda: figure(frames()[-1], "waiting (depth)") == "12", 15, "depth 12 after the restart"
        )
        assert "unreachable" not in frames()[-1]
        assert figure(frames()[-1], "total enqueued") == "12"
    finally:
        task.cancel()
        await task  # watch returns quietly when cancelled (Ctrl-C)
    assert "Traceback" not in out.getvalue()


@pytest.fixture
def workload(redis_url: str, queue_name: str, tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    """A consumer process holding 2 items of 9 in progress (long work): a queue whose figures stay put."""
    args = ["--queue", queue_name, "--work", "60", "--concurrency", "2", "--prefetch", "0", "--grace", "0"]
    proc = start("consumer", [*args, "--heartbeat", "0.2"], redis_url, tmp_path, "workload")
    try:
        put = run("producer", ["--queue", queue_name, "--count", "9", "--no-wait"], redis_url=redis_url, timeout=30)
        assert put.returncode == 0, put.stderr
        yield proc, 9
    finally:
        proc.terminate(timeout=30)


def test_watch_process_on_a_pipe_exits_cleanly_on_sigint(
    workload: tuple[Proc, int], redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    consumer, _ = workload
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [cli("asyncq"), "watch", "--queue", queue_name, "--interval", "0.2"],
            env=env(REDIS_URL=redis_url, COLUMNS="80"),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: "in progress  2 / 2" in out_path.read_text(), 30, "2 / 2 in progress on the pipe")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    text = out_path.read_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    last = text.split("─" * 80)[-2]
    assert figure(last, "waiting (depth)") == "7"
    assert figure(last, "unfinished (join)") == "9"
    [row] = consumer_rows(last)
    assert (row["pid"], row["in prog"], row["claimed"]) == (str(consumer.pid), "2", "2")
    assert "…" not in last.replace(row["host"], "")  # nothing but a long host name is abbreviated


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_watch_in_a_terminal_under_tmux(workload: tuple[Proc, int], redis_url: str, queue_name: str) -> None:
    consumer, _ = workload
    socket_name = f"asyncq-test-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", socket_name, "-f", "/dev/null"]
    command = (
        f"env REDIS_URL={redis_url} {cli('asyncq')} watch --queue {queue_name} --interval 0.2; echo EXIT=$?; sleep 60"
    )
    # tmux runs the command with $SHELL, else the passwd shell (nologin for `nobody`); bash, unlike dash, outlives
    # the Ctrl-C its child handles and exits from cleanly
    session = [*tmux, "new-session", "-d", "-x", "80", "-y", "40", command]
    subprocess.run(session, check=True, env=env(SHELL="/bin/bash"))

    def capture() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True, check=True, timeout=10
        ).stdout

    try:
        wait_until(lambda: "in progress  2 / 2" in capture(), 30, "2 / 2 in progress in the terminal")
        text = capture()
        assert figure(text, "waiting (depth)") == "7"
        assert figure(text, "total enqueued") == "9"
        assert any(row["pid"] == str(consumer.pid) for row in consumer_rows(text)), text
        assert text.count("waiting (depth)") == 1  # refreshed in place, not scrolled
        assert all(len(line) <= 80 for line in text.splitlines())
        subprocess.run([*tmux, "send-keys", "C-c"], check=True)
        wait_until(lambda: "EXIT=" in capture(), 15, "watch to exit on Ctrl-C")
        text = capture()
        assert "EXIT=0" in text
        assert "Traceback" not in text
        assert figure(text, "waiting (depth)") == "7"  # the last frame stays
    finally:
        subprocess.run([*tmux, "kill-server"], check=False, capture_output=True)


# -- stats and dead letters as processes, 80 columns on a pipe ----------------------------------------


def test_stats_with_no_consumer_at_80_columns(redis_url: str, queue_name: str) -> None:
    put = run("producer", ["--queue", queue_name, "--count", "5", "--no-wait"], redis_url=redis_url, timeout=30)
    assert put.returncode == 0, put.stderr
    done = run("asyncq", ["stats", "--queue", queue_name], redis_url=redis_url, COLUMNS="80")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert figure(text, "waiting (depth)") == "5"
    [latency] = [line for line in text.splitlines() if line.startswith("latency")]
    assert latency.startswith("latency - ") and "ms" not in latency, latency  # a dash, not p50 0.00 ms
    assert "0 live consumer(s)" in text


async def test_dead_letters_list_shows_the_payload_at_80_columns(redis_url: str, queue_name: str) -> None:
    async with RedisQueue(queue_name, url=redis_url) as q:
        await q.put({"user": 42, "action": "resize", "path": "/photos/2024/summer/beach-sunset-0001.jpg"})
        await q.put({"user": 7, "action": "crop"})
        for reason in ("ValueError: no such image", "failed 5 times; last: TimeoutError"):
            message = await q.get_message()
            await q.dead_letter(message, reason)
        await q.flush()
    for width in (80, 60):
        done = await asyncio.to_thread(
            run, "asyncq", ["dead-letters", "list", "--queue", queue_name], redis_url=redis_url, COLUMNS=str(width)
        )
        assert done.returncode == 0, done.stderr
        text = done.stdout
        assert all(len(line) <= width for line in text.splitlines()), text
        ids = re.findall(r"^([A-Za-z0-9_-]{9,})  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", text, re.MULTILINE)
        assert len(ids) == 2, text  # each id whole, on a line of its own with the time
        assert "reason    ValueError: no such image" in text
        assert 'payload   {"user": 7, "action": "crop"}' in text
        flat = " ".join(line.strip() for line in text.splitlines())  # a long payload wraps under its label
        assert '{"user": 42, "action": "resize", "path": "/photos/2024/summer/beach-sunset-0001.jpg"}' in flat
        assert "~0|" not in text and "|||" not in text  # the payload, not the envelope
