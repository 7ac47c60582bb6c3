"""Passwords in Redis URLs are never printed by the CLIs, whatever form the URL takes (issue 9, secrets): their
success and error lines, as processes. ``redact()`` itself is checked over every URL form in
tests/unit/test_redact.py.

Every password here is made of two tokens (``PWa1x9`` and ``PWb2y8``) around the characters under test, so
that printing any part of it is caught, not only the whole.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from asyncq.tools.embedded import EmbeddedRedis, free_port
from tests.harness import run

HEAD, TAIL = "PWa1x9", "PWb2y8"
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
