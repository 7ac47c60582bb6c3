"""``asyncq demo`` as a process, piped at 80 (and 60) columns, with its own redis-server: the default story once
(a consumer SIGKILLed and its items recovered, a retry, a dead letter, join() in every producer, lost 0, no
WARNING line) and the quick run."""

from __future__ import annotations

import re
import subprocess

from tests.harness import cli, env


def demo(*args: str, columns: int, fit: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [cli("asyncq"), "demo", *args],
        env=env(COLUMNS=str(columns)),  # no REDIS_URL: the demo starts its own redis-server
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr
    if fit:  # (with -v the children's own log lines are as long as they are)
        assert all(len(line) <= columns for line in done.stdout.splitlines()), done.stdout
    return done


def figures(out: str) -> dict[str, int]:
    """The closing figures: ``items 450 · processed 449 · dead 1 · lost 0`` and ``recovered 3 · retried 3``."""
    found = {
        name: [int(n) for n in re.findall(rf"^(?:.* · )?{name} (\d+)(?: · .*)?$", out, re.MULTILINE)]
        for name in ("items", "processed", "dead", "lost", "recovered", "retried")
    }
    assert all(len(v) == 1 for v in found.values()), (found, out)
    return {name: v[0] for name, v in found.items()}


def consumer_rows(out: str) -> list[dict[str, str]]:
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("┃ consumer"))
    headers = [cell.strip() for cell in lines[head].strip("┃").split("┃")]
    return [
        dict(zip(headers, (cell.strip() for cell in line.strip("│").split("│")), strict=True))
        for line in lines[head + 1 :]
        if line.startswith("│")
    ]


def test_the_default_story() -> None:
    out = demo(columns=80).stdout
    got = figures(out)
    assert got["items"] == 450
    assert got["dead"] == 1  # the poison item
    assert got["processed"] == 449
    assert got["lost"] == 0
    assert got["recovered"] > 0
    assert got["retried"] >= 1
    killed = re.search(r"SIGKILL consumer \d \(pid (\d+)\) holding (\d+) unacknowledged items", out)
    assert killed, out
    assert int(killed[2]) > 0
    back = re.search(r"its (\d+) items are back after [\d.]+ s: its heartbeat expired", out)
    assert back, out
    assert int(back[1]) == got["recovered"]
    assert "item 3 done after its retry" in out
    assert re.search(r"item 4 dead-lettered: failed 3 times", out), out
    assert len(re.findall(r"join\(\) returned in producer \d \(pid \d+\): every item is done", out)) == 2
    assert "join() returned in 2 of 2 producer processes" in out
    rows = consumer_rows(out)
    assert [row["end"] for row in rows].count("SIGKILL") == 1, rows
    assert [row["pid"] for row in rows if row["end"] == "SIGKILL"] == [killed[1]]
    assert all(row["end"] == "exit 0" for row in rows if row["end"] != "SIGKILL"), rows
    # Times in the story never go backwards; it lasts as long as the producers' rate says (450 at 30/s).
    times = [float(t) for t in re.findall(r"^\s*(\d+\.\d) s  ", out, re.MULTILINE)]
    assert times == sorted(times)
    assert times[-1] > 10


def test_quick_run_shares_the_work_and_loses_nothing() -> None:
    out = demo("--quick", columns=60).stdout
    got = figures(out)
    assert got == {"items": 300, "processed": 300, "dead": 0, "lost": 0, "recovered": 0, "retried": 0}
    assert "SIGKILL" not in out
    rows = consumer_rows(out)
    assert len(rows) == 3
    assert sum(int(row["items"]) for row in rows) == 300
    assert all(int(row["items"]) > 0 for row in rows)  # the work is shared
    assert re.search(r"^total processed +300$", out, re.MULTILINE), out  # the dashboard's last frame, one column


def test_verbose_shows_the_processes_logs_and_a_normal_stop_is_no_warning() -> None:
    # Without -v the children's logs are kept back (shown if one fails); with -v they are on screen, so this is
    # where a consumer's SIGTERM line would show up as a WARNING.
    done = demo("--quick", "-v", "--count", "30", columns=80, fit=False)
    stops = [line for line in done.stderr.splitlines() if "SIGTERM received, shutting down gracefully" in line]
    assert len(stops) == 3, done.stderr
    assert all(" INFO " in line for line in stops), stops
    assert len(re.findall(r"^Consumer \S+ got element <", done.stdout, re.MULTILINE)) == 30, done.stdout
    assert figures(done.stdout)["lost"] == 0
