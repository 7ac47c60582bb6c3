"""asyncq web: the dashboard in a browser (``asyncq[web]``): every queue of the server, one page each."""

from __future__ import annotations

from typing import Annotated

import typer

from asyncq.cli.connection import Connection, connection_options
from asyncq.cli.logs import report
from asyncq.cli.runner import fail, run

Host = Annotated[
    str,
    typer.Option(
        "--host",
        envvar="ASYNCQ_WEB_HOST",
        metavar="ADDRESS",
        help="Address to listen on. Off loopback a --token is required.",
    ),
]
Port = Annotated[
    int, typer.Option("--port", envvar="ASYNCQ_WEB_PORT", min=0, max=65535, metavar="PORT", help="Port (0: any free).")
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="ASYNCQ_WEB_TOKEN",
        metavar="TOKEN",
        show_default=False,
        help="Required to see the pages and to requeue or purge (a login form, or Authorization: Bearer).",
    ),
]


@connection_options()
def web(conn: Connection, host: Host = "127.0.0.1", port: Port = 8080, token: Token = None) -> None:
    """Serve a live dashboard: the queues, depth and ages, rates and latency charts, consumers, dead letters
    (requeue, purge). --queue is listed even before it has items. Redis must answer at start; after that an
    outage is shown on the page and waited out."""
    try:
        from asyncq.web.app import build
        from asyncq.web.guard import Guard, is_loopback
        from asyncq.web.monitor import Monitor
        from asyncq.web.server import CannotListen, bind, serve
    except ImportError as exc:
        raise fail(f"asyncq web needs the web extra ({exc.name} is missing): pip install 'asyncq[web]'") from None
    loopback = is_loopback(host)
    if not loopback and not token:
        raise fail(f"--host {host} is not a loopback address: set --token (or ASYNCQ_WEB_TOKEN) too", code=2)
    if token is not None and len(token) < 8:
        raise fail("--token must be at least 8 characters", code=2)
    try:
        sock = bind(host, port)
    except CannotListen as exc:
        raise fail(str(exc)) from None

    async def go() -> None:
        try:
            client = await conn.client(socket_timeout=5.0, name="asyncq-web")
        except BaseException:
            sock.close()
            raise
        monitor = Monitor(client, always=conn.queue)
        app = build(monitor, Guard(token), source=conn.shown, loopback=loopback)
        bound = sock.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        report(f"asyncq web: http://{shown}:{bound[1]}/ (Redis at {conn.shown})", url=f"http://{shown}:{bound[1]}/")
        await serve(app, sock)

    run(go(), url=conn.url)
