"""asyncq web's request checks (``asyncq.web.guard``) and its history arithmetic (``asyncq.web.monitor``)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from asyncq.core.histogram import Histogram
from asyncq.tools.snapshot import ConsumerView, Snapshot
from asyncq.web.guard import COOKIE, CSRF_HEADER, Guard, Refused, is_loopback
from asyncq.web.monitor import QueueState


def request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": [(b"host", b"127.0.0.1:8080"), *raw]})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.com", False),
        ("[::1]", True),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_without_a_token_a_post_needs_the_csrf_token_and_our_origin() -> None:
    guard = Guard(None)
    guard.check_action(request(**{CSRF_HEADER: guard.csrf, "origin": "http://127.0.0.1:8080"}))
    guard.check_action(request(**{CSRF_HEADER: guard.csrf, "origin": "https://127.0.0.1:8080"}))  # a TLS proxy
    for headers, reason in (
        ({}, "CSRF"),
        ({CSRF_HEADER: "nope"}, "CSRF"),
        ({CSRF_HEADER: guard.csrf, "origin": "http://evil.example"}, "cross-site"),
        ({CSRF_HEADER: guard.csrf, "sec_fetch_site": "same-site"}, "cross-site"),
    ):
        with pytest.raises(Refused, match=reason) as refused:
            guard.check_action(request(**headers))
        assert refused.value.status == 403


def test_with_a_token_the_cookie_or_the_bearer_header() -> None:
    guard = Guard("the-token-123")
    with pytest.raises(Refused, match="token is required"):
        guard.check_action(request(**{CSRF_HEADER: guard.csrf}))
    guard.check_action(request(authorization="Bearer the-token-123"))  # a script: no CSRF token needed
    cookie = f"{COOKIE}={guard.session}"
    guard.check_action(request(cookie=cookie, **{CSRF_HEADER: guard.csrf}))
    with pytest.raises(Refused, match="CSRF"):
        guard.check_action(request(cookie=cookie))  # a cookie alone is what a forged form would carry
    assert guard.session != "the-token-123" and not Guard("the-token-123").authenticated(request(cookie=cookie))
    assert guard.login("the-token-123") and not guard.login("the-token-12")


def _snap(at: float, enqueued: int, processed: int, latencies: list[float]) -> Snapshot:
    histogram = Histogram()
    for value in latencies:
        histogram.record(value)
    consumer = ConsumerView("c", "h", 1, 1, 0, 0, processed, 0, 0.0, histogram)
    totals = {"enqueued": enqueued, "processed": processed}
    return Snapshot("q", at, 0, None, 0, 0, 0, 0, totals, [consumer])


def test_rates_and_latency_from_consecutive_snapshots() -> None:
    state = QueueState()
    state.add(_snap(100.0, 10, 0, []))
    state.add(_snap(102.0, 30, 8, [0.01] * 8))
    point = state.points[-1]
    assert (point.put_rate, point.done_rate) == (10.0, 4.0)
    assert point.p50_ms is not None and 9 < point.p50_ms < 11
    state.add(_snap(103.0, 30, 8, [0.01] * 8))
    assert state.points[-1].put_rate == 0.0 and state.points[-1].p50_ms is not None  # the last few samples
    assert len(state.points) == 2
