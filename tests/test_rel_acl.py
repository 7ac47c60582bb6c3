"""Issue 9, permissions: least-privilege ACL users, and what a process does when a permission is missing.

The users are created on a private ``redis-server`` from the ``ACL SETUSER`` block of docs/deployment.md
(parsed here, so the documentation and the test cannot drift apart); every CLI then runs as a real process
with its user. A missing permission is a configuration error, not an outage: the process exits 1 within
seconds with one line naming the permission problem (``NOPERM`` or "permission"), no traceback, instead of
logging "Redis unavailable ... retrying" forever.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis
from tests.fault_support import ROOT, counts, run, start, state, traceback_free, wait_until

QUEUE = "jobs"  # the queue the documented rules are written for
KEYS = Keys(QUEUE)
DOC = ROOT / "docs" / "deployment.md"
PASSWORDS = {"producer": "p-secret-1", "consumer": "c-secret-2", "operator": "o-secret-3"}
REFUSED = re.compile(r"NOPERM|permission", re.IGNORECASE)
TOLERATED = {"config|get"}  # asked once at connect for the eviction warning; the code skips the check


def documented_rules() -> dict[str, list[str]]:
    """role -> ACL SETUSER arguments, from the code block of the ACL section of docs/deployment.md."""
    text = DOC.read_text()
    section = text.split("### Least-privilege Redis users (ACL)", 1)[1]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    rules: dict[str, list[str]] = {}
    for command in block.replace("\\\n", " ").splitlines():
        words = shlex.split(command)
        if not words:
            continue
        assert [w.upper() for w in words[:2]] == ["ACL", "SETUSER"], command
        user = words[2]
        role = user.removeprefix("asyncq-")
        rules[role] = [f">{PASSWORDS[role]}" if w.startswith(">") else w for w in words[3:]]
    assert set(rules) == set(PASSWORDS), f"the doc should define users {sorted(PASSWORDS)}: {sorted(rules)}"
    return rules


@pytest.fixture
def admin(own_redis: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(own_redis.url)
    yield client
    client.close()


def _url(own_redis: EmbeddedRedis, role: str) -> str:
    return f"redis://asyncq-{role}:{PASSWORDS[role]}@127.0.0.1:{own_redis.port}/0"


def _setuser(admin: redis.Redis, role: str, rules: list[str]) -> None:
    admin.execute_command("ACL", "SETUSER", f"asyncq-{role}", "reset", *rules)


def _refusals(admin: redis.Redis) -> list[tuple[str, str, str]]:
    """(user, reason, object) of every ACL LOG entry."""
    out = []
    for entry in admin.acl_log(200):
        out.append((str(entry.get("username")), str(entry.get("reason")), str(entry.get("object"))))
    return out


def _record_env(own_redis: EmbeddedRedis) -> dict[str, str]:
    # The recording handler writes outside the queue's keys: through the default user, in database 1.
    return {"FAULT_RECORD_URL": f"redis://127.0.0.1:{own_redis.port}/1", "FAULT_RECORD_KEY": QUEUE}


def _ok(result: subprocess.CompletedProcess[str], what: str) -> str:
    assert result.returncode == 0, f"{what}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert traceback_free(result.stderr), f"{what}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.timeout(120)
def test_documented_least_privilege_users_run_every_cli(
    own_redis: EmbeddedRedis, admin: redis.Redis, tmp_path: Path
) -> None:
    rules = documented_rules()
    for role, rule in rules.items():
        _setuser(admin, role, rule)
    admin.execute_command("ACL", "LOG", "RESET")
    producer, consumer, operator = (_url(own_redis, r) for r in ("producer", "consumer", "operator"))
    record = redis.Redis.from_url(f"redis://127.0.0.1:{own_redis.port}/1")

    # Producer, then a consumer that drains (successes, one retry, one rejection to the dead letters).
    produced = run("producer", ["--queue", QUEUE, "--count", "20", "--size", "16", "--no-wait", "-v"], producer)
    out = _ok(produced, "producer")
    assert out.count("added <") == 20, out
    put_items = run(
        "python",
        [
            "-c",
            "import asyncio\nfrom asyncq import RedisQueue\nasync def m():\n"
            f"    async with RedisQueue({QUEUE!r}, url={producer!r}) as q:\n"
            "        await q.put({'data': 'doomed', 'mode': 'reject'})\n"
            "        await q.put({'data': 'flaky', 'mode': 'flaky', 'fails': 1})\n"
            "        await q.flush()\nasyncio.run(m())",
        ],
        producer,
    )
    _ok(put_items, "RedisQueue.put as the producer user")
    drain = run(
        "consumer",
        ["--queue", QUEUE, "--drain", "--handler", "tests.fault_handlers:behave", "--retry-base", "0.1"],
        consumer,
        timeout=60,
        **_record_env(own_redis),
    )
    _ok(drain, "consumer --drain")
    assert len(counts(record, QUEUE)) == 21, counts(record, QUEUE)  # 20 + the flaky one; the doomed one is dead

    # The operator: stats, health (with a live consumer of this host), dead letters.
    stats = _ok(run("asyncq", ["stats", "--json", "--queue", QUEUE], operator), "asyncq stats")
    assert '"dead": 1' in stats or '"dead":1' in stats, stats
    live = start("consumer", ["--queue", QUEUE, "--work", "0"], consumer, tmp_path, "live")
    wait_until(lambda: run("asyncq", ["health", "--queue", QUEUE], operator).returncode == 0, 20, "asyncq health ok")
    listed = _ok(run("asyncq", ["dead-letters", "list", "--queue", QUEUE], operator), "dead-letters list")
    assert "rejected" in listed, listed
    _ok(run("asyncq", ["dead-letters", "requeue", "--all", "--queue", QUEUE], operator), "dead-letters requeue")
    wait_until(lambda: admin.get(KEYS.unfinished) == b"0", 20, "the requeued item done by the live consumer")
    assert admin.llen(KEYS.dead) == 0
    assert live.terminate() == 0, live.describe()
    admin.lpush(KEYS.dead, "a record to purge")
    _ok(run("asyncq", ["dead-letters", "purge", "--yes", "--queue", QUEUE], operator), "dead-letters purge")
    assert admin.llen(KEYS.dead) == 0

    # Recovery: a consumer SIGKILLed while it holds items; another one's sweep gives them back.
    _ok(run("producer", ["--queue", QUEUE, "--count", "4", "--no-wait"], producer), "producer")
    hb = ["--heartbeat", "0.3"]
    victim = start("consumer", ["--queue", QUEUE, "--work", "60", "-c", "4", *hb], consumer, tmp_path, "victim")
    wait_until(lambda: admin.get(KEYS.unfinished) == b"4" and admin.llen(KEYS.queue) == 0, 20, "4 items claimed")
    victim.kill()
    rescuer = start("consumer", ["--queue", QUEUE, "--work", "0", *hb], consumer, tmp_path, "rescuer")
    wait_until(lambda: admin.get(KEYS.unfinished) == b"0", 30, "the victim's items recovered and done")
    assert admin.hget(KEYS.totals, "recovered") == b"4", state(admin, KEYS)
    assert rescuer.terminate() == 0, rescuer.describe()

    # Producer --wait (join through the events channel) with --maxsize (waiting for room), a consumer alongside.
    waiting = start(
        "producer", ["--queue", QUEUE, "--count", "30", "--maxsize", "5", "--wait"], producer, tmp_path, "waiting"
    )
    drainer = start("consumer", ["--queue", QUEUE, "--work", "0"], consumer, tmp_path, "drainer")
    assert waiting.wait(60) == 0, waiting.describe() + drainer.describe()
    assert drainer.terminate() == 0, drainer.describe()
    assert traceback_free(waiting.stderr() + drainer.stderr() + live.stderr())

    refused = [r for r in _refusals(admin) if r[2] not in TOLERATED]
    assert not refused, f"the documented rules are not enough: ACL LOG {refused}\nstate {state(admin, KEYS)}"
    record.close()


@pytest.mark.timeout(60)
def test_producer_user_cannot_consume(own_redis: EmbeddedRedis, admin: redis.Redis) -> None:
    _setuser(admin, "producer", documented_rules()["producer"])
    producer = _url(own_redis, "producer")
    _ok(run("producer", ["--queue", QUEUE, "--count", "3", "--no-wait"], producer), "producer")
    admin.execute_command("ACL", "LOG", "RESET")
    try:
        result = run("consumer", ["--queue", QUEUE, "--work", "0"], producer, timeout=20)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"a consumer with the producer's user kept running (retrying?) for 20 s: {exc.stderr!r}")
    refused = [r for r in _refusals(admin) if r[0] == "asyncq-producer" and r[2] not in TOLERATED]
    assert refused, "Redis refused nothing: the producer's user could consume"
    assert admin.llen(KEYS.queue) == 3, "the producer's user took items"
    _assert_refused_line(result)


def _assert_refused_line(result: subprocess.CompletedProcess[str]) -> None:
    err = result.stderr
    assert result.returncode == 1, f"exit {result.returncode}\n{err[-2000:]}"
    assert traceback_free(err), err[-3000:]
    assert "retrying" not in err, f"a refusal treated as an outage:\n{err[-2000:]}"
    lines = [line for line in err.splitlines() if REFUSED.search(line)]
    assert lines, f"no line names the permission problem (NOPERM / permission):\n{err[-2000:]}"


# (role, commands taken away from the documented rules): a top-level refusal and one inside a script.
MISSING = [
    pytest.param("consumer", ["-evalsha", "-eval"], id="consumer-no-evalsha"),
    pytest.param("consumer", ["-rpop"], id="consumer-no-rpop-in-script"),
    pytest.param("consumer", ["-blmove"], id="consumer-no-blmove"),
    pytest.param("producer", ["-lpush"], id="producer-no-lpush-in-script"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("role", "minus"), MISSING)
def test_missing_permission_exits_1_with_one_line(
    own_redis: EmbeddedRedis, admin: redis.Redis, role: str, minus: list[str]
) -> None:
    _setuser(admin, role, [*documented_rules()[role], *minus])
    url = _url(own_redis, role)
    if role == "consumer":
        admin.lpush(KEYS.queue, '{"attempts":0,"id":"x-1","enqueued_at":1,"payload":1}')
        admin.incr(KEYS.unfinished)
        args = ["--queue", QUEUE, "--work", "0"]
    else:
        args = ["--queue", QUEUE, "--count", "3", "--no-wait"]
    try:
        result = run(role, args, url, timeout=20)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{role} without {minus} still running after 20 s instead of exiting 1:\n{exc.stderr!r}")
    _assert_refused_line(result)
