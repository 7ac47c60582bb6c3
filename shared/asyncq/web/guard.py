"""Who may look and who may act: the token, the session cookie, and the checks against cross-site requests.

- With a token (``--token`` / ``ASYNCQ_WEB_TOKEN``; required off loopback), every page and API call needs it:
  ``Authorization: Bearer TOKEN`` (scripts), or the session cookie the login form sets (browsers). The cookie
  holds an HMAC of the token, not the token; it is HttpOnly and SameSite=Strict.
- A POST (requeue, purge, login) is refused (403) when the browser says it comes from another site: an
  ``Origin`` that is not this server's, or ``Sec-Fetch-Site`` other than ``same-origin``/``none``.
- A POST authenticated by the cookie (or with no token at all) must also carry the page's CSRF token in the
  ``X-CSRF-Token`` header: another site can make a browser send a form, never a custom header.
- Listening on loopback, only loopback host names are accepted in ``Host`` (``app`` adds Starlette's
  TrustedHostMiddleware), so that a DNS-rebinding page cannot pass for this origin.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass, field

from starlette.requests import Request

COOKIE = "asyncq_session"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Is ``host`` (a --host value) reachable from this machine only?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


class Refused(Exception):
    """A request the guard refuses: the status and the one-line reason to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Guard:
    token: str | None
    secret: bytes = field(default_factory=lambda: os.urandom(32))  # per run: a restart logs everyone out

    def _mac(self, what: str) -> str:
        return hmac.new(self.secret, what.encode(), hashlib.sha256).hexdigest()

    @property
    def csrf(self) -> str:
        return self._mac("csrf")

    @property
    def session(self) -> str:
        return self._mac(f"session:{self.token}")

    def bearer(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return (
            self.token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), self.token.encode())
        )

    def authenticated(self, request: Request) -> bool:
        if self.token is None or self.bearer(request):
            return True
        return hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self.session.encode())

    def login(self, offered: str) -> bool:
        return self.token is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    @staticmethod
    def same_origin(request: Request) -> None:
        """Refuse a request a browser marks as coming from another site (non-browsers send neither header)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        # Host and port only: behind a TLS proxy the browser's Origin says https while this server sees http.
        if origin is not None and origin.partition("://")[2] != request.headers.get("host", ""):
            raise Refused(403, "cross-site request refused (Origin is not this server)")

    def check_action(self, request: Request) -> None:
        """May this POST change data? Raises ``Refused`` (403) if not."""
        self.same_origin(request)
        if self.bearer(request):
            return  # a script's header: no browser sends it on its own, so no CSRF token is needed
        if not self.authenticated(request):
            raise Refused(403, "a token is required (Authorization: Bearer TOKEN, or log in)")
        offered = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(offered.encode(), self.csrf.encode()):
            raise Refused(403, "missing or wrong CSRF token (X-CSRF-Token)")
