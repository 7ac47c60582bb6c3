"""Passwords in Redis URLs are never printed, whatever form the URL takes (issue 9, secrets).

``asyncq.core.connection.redact()`` is checked over every URL form redis-py (or, next, its sentinel and cluster
clients) accepts, with passwords holding URL delimiters; then the CLIs' success and error lines, as processes.
Every password here is made of two tokens (``PWa1x9`` and ``PWb2y8``) around the characters under test, so
that printing any part of it is caught, not only the whole.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from asyncq.core.connection import redact
from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import run

HEAD, TAIL = "PWa1x9", "PWb2y8"
SEPARATORS = {
    "plain": "",
    "slash": "/",
    "hash": "#",
    "question": "?",
    "at": "@",
    "colon": ":",
    "percent": "%",
    "all": "/#?@:%",
    "encoded": "%2F%23%3F%40%3A%25",
}
# (form, readable parts that must survive): {pw} is where the password goes
FORMS = {
    "netloc": ("redis://:{pw}@redis.example:6390/0", ["redis.example", "6390"]),
    "user": ("redis://alice:{pw}@redis.example:6390/0", ["redis.example", "6390"]),
    "query": ("redis://redis.example:6390/0?password={pw}", ["redis.example", "6390"]),
    "query-user": ("redis://redis.example:6390/0?username=alice&password={pw}", ["redis.example", "6390"]),
    "query-first": ("redis://redis.example:6390/0?password={pw}&socket_timeout=5", ["redis.example", "6390"]),
    "tls": ("rediss://:{pw}@redis.example:6390/0", ["redis.example", "6390"]),
    "tls-user": ("rediss://alice:{pw}@redis.example:6390/0?ssl_cert_reqs=required", ["redis.example", "6390"]),
    "unix-query": ("unix:///tmp/r.sock?password={pw}", ["/tmp/r.sock"]),
    "unix-netloc": ("unix://:{pw}@/tmp/r.sock?db=0", ["/tmp/r.sock"]),
    "sentinel": (
        "redis+sentinel://:{pw}@h1.example:26379,h2.example:26380/mymaster",
        ["h1.example", "26379", "h2.example", "26380"],
    ),
    "cluster": ("redis+cluster://alice:{pw}@h1.example:7000,h2.example:7001", ["h1.example", "7000", "h2.example"]),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("separator", list(SEPARATORS.values()), ids=list(SEPARATORS))
@pytest.mark.parametrize("form", list(FORMS.values()), ids=list(FORMS))
def test_redact_never_shows_the_password(form: tuple[str, list[str]], separator: str) -> None:
    template, readable = form
    url = template.format(pw=f"{HEAD}{separator}{TAIL}")
    shown = redact(url)
    assert HEAD not in shown and TAIL not in shown, f"{url!r} redacted as {shown!r}"
    for part in readable:
        assert part in shown, f"{part!r} no longer readable: {url!r} redacted as {shown!r}"


def test_redact_leaves_a_url_without_password_alone() -> None:
    assert redact("redis://redis.example:6390/0") == "redis://redis.example:6390/0"
    assert redact("redis://alice@redis.example:6390/0?socket_timeout=5").endswith(
        "redis.example:6390/0?socket_timeout=5"
    )


PASSWORD = f"{HEAD}-{secrets.token_hex(4)}-{TAIL}"
SPECIAL = f"{HEAD}/#?@:%{TAIL}"  # a password with every URL delimiter, given percent-encoded


@pytest.fixture(scope="module", params=[PASSWORD, SPECIAL], ids=["plain", "special"])
def server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(password=request.param) as srv:
        yield srv


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert HEAD not in text and TAIL not in text, f"a password appears in the output:\n{text}"


@pytest.mark.timeout(60)
def test_producer_success_line_hides_a_password_given_in_the_query(server: EmbeddedRedis, queue_name: str) -> None:
    assert server.password is not None
    urls = [
        f"redis://127.0.0.1:{server.port}/0?password={quote(server.password, safe='')}",
        f"redis://:{quote(server.password, safe='')}@127.0.0.1:{server.port}/0",
    ]
    for url in urls:
        produced = run("producer", ["--queue", queue_name, "--count", "3", "--no-wait"], url)
        assert produced.returncode == 0, produced
        assert "produced 3 items" in produced.stdout, produced
        assert f"127.0.0.1:{server.port}" in produced.stdout, produced
        _no_secret(produced.stdout, produced.stderr)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("program", ["producer", "consumer"])
def test_error_lines_hide_a_password_given_in_the_query(server: EmbeddedRedis, program: str, queue_name: str) -> None:
    wrong = quote(f"{HEAD}-wrong-{TAIL}", safe="")
    cases = {
        "wrong password": f"redis://127.0.0.1:{server.port}/0?password={wrong}",
        "wrong password and user": f"redis://127.0.0.1:{server.port}/0?username=default&password={wrong}",
        "unreachable": f"redis://127.0.0.1:{free_port()}/0?password={wrong}",
    }
    for case, url in cases.items():
        proc = run(program, ["--queue", queue_name], url, timeout=30)
        assert proc.returncode == 1, f"{case}: {proc}"
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {proc.stderr}"
        assert "127.0.0.1:" in lines[0], f"{case}: {lines[0]}"
        _no_secret(proc.stdout, proc.stderr)
