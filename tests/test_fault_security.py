"""Security: AUTH and ACL users work, bad credentials fail with one clear line, and no password is ever shown.

The server has ``requirepass`` and an ACL user limited to the queue's keys and channels (``~asyncq:*
&asyncq:*``, no dangerous commands), as an operator would set one up.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from asyncq.core.keys import Keys
from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import run

PASSWORD = f"Pw-{secrets.token_hex(6)}"
USER, USER_PASSWORD = "alice", f"AlicePw-{secrets.token_hex(6)}"
WRONG = f"WrongPw-{secrets.token_hex(6)}"
SECRETS = (PASSWORD, USER_PASSWORD, WRONG)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(password=PASSWORD) as srv:
        admin = redis.Redis(host="127.0.0.1", port=srv.port, password=PASSWORD)
        admin.execute_command(
            "ACL", "SETUSER", USER, "reset", "on", f">{USER_PASSWORD}", "~asyncq:*", "&asyncq:*", "+@all", "-@dangerous"
        )
        admin.close()
        yield srv


@pytest.fixture
def admin(server: EmbeddedRedis) -> Iterator[redis.Redis]:
    c = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD)
    yield c
    c.close()


def _url(server: EmbeddedRedis, user: str = "", password: str | None = None) -> str:
    auth = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
    return f"redis://{auth}127.0.0.1:{server.port}/0"


def _no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a password appears in the output:\n{text}"


def _one_line_failure(proc_out: str, proc_err: str, rc: int) -> str:
    lines = proc_err.strip().splitlines()
    assert rc == 1, f"exit {rc}\nstdout: {proc_out}\nstderr: {proc_err}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc_err}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in proc_out + proc_err
    assert proc_out == "", proc_out
    return lines[0]


def test_right_credentials_work_for_producer_and_consumer(
    server: EmbeddedRedis, admin: redis.Redis, queue_name: str
) -> None:
    default_url = _url(server, "", PASSWORD)
    user_url = _url(server, USER, USER_PASSWORD)
    outputs: list[str] = []
    # Items put as one user are consumed as the other, each URL given once by option and once by environment.
    for put_url, get_url in ((default_url, user_url), (user_url, default_url)):
        produced = run(
            "producer",
            ["--queue", queue_name, "--count", "30", "--no-wait", "-v", "--redis-url", put_url],
            redis_url="redis://127.0.0.1:1/0",
        )
        consumed = run(
            "consumer", ["--queue", queue_name, "--work", "0", "--drain", "-v"], redis_url=get_url, timeout=60
        )
        outputs += [produced.stdout, produced.stderr, consumed.stdout, consumed.stderr]
        assert produced.returncode == 0, produced.stderr
        assert consumed.returncode == 0, consumed.stderr
        assert "processed 30 items" in consumed.stdout, consumed.stdout
        assert f"at redis://{'alice' if put_url == user_url else ''}:***@127.0.0.1:{server.port}/0" in (produced.stdout)
    _no_secrets(*outputs)
    assert int(admin.get(Keys(queue_name).unfinished) or 0) == 0


@pytest.mark.parametrize("program", ["producer", "consumer"])
def test_bad_credentials_give_one_clear_line(server: EmbeddedRedis, program: str, queue_name: str) -> None:
    cases = {
        "wrong password": _url(server, "", WRONG),
        "wrong password of the ACL user": _url(server, USER, WRONG),
        "unknown user": _url(server, "mallory", USER_PASSWORD),
        "no password": _url(server),
    }
    for case, url in cases.items():
        args = ["--queue", queue_name, "--count", "5"] if program == "producer" else ["--queue", queue_name]
        proc = run(program, args, redis_url=url, timeout=30)
        line = _one_line_failure(proc.stdout, proc.stderr, proc.returncode)
        assert "authentication" in line.lower() or "auth" in line.lower(), f"{case}: {line}"
        assert f"127.0.0.1:{server.port}" in line, f"{case}: {line}"
        _no_secrets(proc.stdout, proc.stderr)


@pytest.mark.parametrize("program", ["producer", "consumer"])
def test_unreachable_redis_gives_one_clear_line(program: str, queue_name: str) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    proc = run(program, ["--queue", queue_name], redis_url=url, timeout=30)
    line = _one_line_failure(proc.stdout, proc.stderr, proc.returncode)
    assert line.startswith(f"error: cannot use Redis at redis://:***@127.0.0.1:{port}/0"), line
    _no_secrets(proc.stdout, proc.stderr)


def test_oversized_item_fails_before_reaching_redis(server: EmbeddedRedis, admin: redis.Redis, queue_name: str) -> None:
    proc = run(
        "producer",
        ["--queue", queue_name, "--count", "1", "--size", "2000000", "--no-wait"],
        redis_url=_url(server, USER, USER_PASSWORD),
    )
    line = _one_line_failure(proc.stdout, proc.stderr, proc.returncode)
    assert "exceeds the limit of 1048576 bytes" in line, line
    assert list(admin.scan_iter(match=Keys(queue_name).prefix + "*")) == []
    _no_secrets(proc.stdout, proc.stderr)
