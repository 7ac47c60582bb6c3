"""The routes of ``asyncq web``.

=======================================================  =====================================================
``GET /``, ``GET /queues/NAME``                           the pages (one HTML shell; ``static/app.js`` draws)
``GET /api/queues``                                       every queue: depth, ages, rates; Redis up or not
``GET /api/queues/NAME``                                  one queue: figures, history, consumers, dead letters
``POST /api/queues/NAME/dead-letters/requeue``            JSON ``{"ids": [...]}`` or ``{"all": true}``
``POST /api/queues/NAME/dead-letters/purge``              delete every dead letter of the queue
``POST /login``                                           form field ``token``: sets the session cookie
=======================================================  =====================================================

The pages poll the API once a second. Who may do what: ``asyncq.web.guard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from asyncq.core.envelope import BadEnvelope, DeadLetter, decode
from asyncq.core.failures import describe
from asyncq.core.keys import check_name
from asyncq.tools import deadletters
from asyncq.web.guard import COOKIE, LOOPBACK_NAMES, Guard, Refused
from asyncq.web.monitor import Monitor

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
DEAD_SHOWN = 100  # newest dead letters on the page
_PREVIEW = 300  # characters of a payload shown


@functools.cache
def _template() -> str:
    return (STATIC / "page.html").read_text()


def _shell(page: str, queue: str, guard: Guard, source: str) -> str:
    template = _template()
    fields = {"page": page, "queue": queue, "csrf": guard.csrf, "source": source}
    for name, value in fields.items():
        template = template.replace("{{" + name + "}}", html.escape(value, quote=True))
    return template


def _letter(letter: DeadLetter | bytes) -> dict[str, Any]:
    if not isinstance(letter, DeadLetter):
        raw = letter.decode("utf-8", "replace")[:_PREVIEW]
        return {"id": None, "reason": "not a dead-letter record", "payload": raw}
    try:
        message = decode(letter.envelope.encode())
        payload = json.dumps(message.payload, ensure_ascii=False)
        attempts: int | None = message.attempts
    except BadEnvelope:
        payload, attempts = letter.envelope, None
    return {
        "id": letter.id,
        "reason": letter.reason,
        "failed_at": letter.failed_at,
        "consumer": letter.consumer,
        "attempts": attempts,
        "payload": payload[:_PREVIEW] + ("…" if len(payload) > _PREVIEW else ""),
    }


def _refused(exc: Refused) -> JSONResponse:
    return JSONResponse({"error": exc.reason}, status_code=exc.status)


def _queue(request: Request) -> str:
    name = str(request.path_params["name"])
    try:
        return check_name(name)
    except ValueError as exc:
        raise Refused(404, str(exc)) from None


def build(monitor: Monitor, guard: Guard, *, source: str, loopback: bool) -> Starlette:
    """The application over ``monitor``'s Redis; ``source`` is the redacted URL the pages name."""

    def _page(request: Request, kind: str, queue: str) -> Response:
        if not guard.authenticated(request):
            return HTMLResponse(_shell("login", queue, guard, source), status_code=401)
        return HTMLResponse(_shell(kind, queue, guard, source))

    async def home(request: Request) -> Response:
        return _page(request, "queues", "")

    async def queue_page(request: Request) -> Response:
        try:
            return _page(request, "queue", _queue(request))
        except Refused as exc:
            return HTMLResponse(html.escape(exc.reason), status_code=exc.status)

    async def queues(request: Request) -> Response:
        if not guard.authenticated(request):
            return _refused(Refused(401, "a token is required"))
        rows = [row for name in sorted(monitor.queues) if (row := monitor.summary(name)) is not None]
        return JSONResponse({"redis": monitor.redis_json(), "source": source, "queues": rows})

    async def queue(request: Request) -> Response:
        if not guard.authenticated(request):
            return _refused(Refused(401, "a token is required"))
        try:
            name = _queue(request)
        except Refused as exc:
            return _refused(exc)
        detail = monitor.detail(name)
        if detail is None:
            return JSONResponse({"redis": monitor.redis_json(), "error": f"no queue {name} (yet)"}, status_code=404)
        letters: list[dict[str, Any]] | None = None
        if monitor.outage is None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(5.0):
                    letters = [_letter(x) for x in await deadletters.read(monitor.client, name, DEAD_SHOWN)]
        return JSONResponse({"redis": monitor.redis_json(), "source": source, **detail, "dead_letters": letters})

    async def requeue(request: Request) -> Response:
        try:
            guard.check_action(request)
            name = _queue(request)
            body = json.loads(await request.body() or b"{}")
            ids = None if body.get("all") is True else body.get("ids")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
                raise Refused(400, 'send {"ids": ["ID", ...]} or {"all": true}')
            result = await deadletters.requeue(monitor.client, name, ids)
        except Refused as exc:
            return _refused(exc)
        except (ValueError, AttributeError):
            return _refused(Refused(400, 'send {"ids": ["ID", ...]} or {"all": true} as JSON'))
        except (RedisError, OSError) as exc:
            return _refused(Refused(503, f"Redis failed: {describe(exc)}"))
        log.info("requeued %d dead letter(s) of %s", len(result.requeued), name)
        return JSONResponse(
            {"requeued": result.requeued, "not_found": result.not_found, "not_envelopes": result.not_envelopes}
        )

    async def purge(request: Request) -> Response:
        try:
            guard.check_action(request)
            name = _queue(request)
            count = await deadletters.purge(monitor.client, name)
        except Refused as exc:
            return _refused(exc)
        except (RedisError, OSError) as exc:
            return _refused(Refused(503, f"Redis failed: {describe(exc)}"))
        log.info("purged %d dead letter(s) of %s", count, name)
        return JSONResponse({"purged": count})

    async def login(request: Request) -> Response:
        try:
            guard.same_origin(request)
        except Refused as exc:
            return _refused(exc)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        back = form.get("next", ["/"])[0]
        back = back if back.startswith("/") and not back.startswith("//") else "/"
        if not guard.login(form.get("token", [""])[0]):
            return _refused(Refused(403, "wrong token"))
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            COOKIE, guard.session, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        sampler = asyncio.create_task(monitor.run(), name="asyncq-web-monitor")
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await monitor.close()

    routes = [
        Route("/", home),
        Route("/queues/{name}", queue_page),
        Route("/api/queues", queues),
        Route("/api/queues/{name}", queue),
        Route("/api/queues/{name}/dead-letters/requeue", requeue, methods=["POST"]),
        Route("/api/queues/{name}/dead-letters/purge", purge, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    hosts = [*LOOPBACK_NAMES, "[::1]"] if loopback else ["*"]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
