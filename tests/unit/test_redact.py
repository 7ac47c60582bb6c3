"""``asyncq.core.urls.redact()`` never shows a password, over every URL form redis-py (or, next, its
sentinel and cluster clients) accepts, with passwords holding URL delimiters (issue 9, secrets). The CLIs'
lines, as processes, are in tests/test_secret_urls.py.

Every password here is made of two tokens (``PWa1x9`` and ``PWb2y8``) around the characters under test, so
that printing any part of it is caught, not only the whole.
"""

from __future__ import annotations

import pytest

from asyncq.core.urls import redact

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
