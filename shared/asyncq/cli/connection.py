"""The connection options every command that talks to Redis takes, declared once.

``@connection_options()`` adds ``--queue``, ``--redis-url`` and the ``--tls-*`` options to a Typer command
and hands it one ``Connection`` instead: the three CLIs and every ``asyncq`` command take the same options,
with the same environment variables and checks.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_type_hints

import redis.asyncio as aioredis
import typer

from asyncq.cli.options import DEFAULT_QUEUE, RedisUrl, TlsCa, TlsCert, TlsKey
from asyncq.core.connection import RedisUnavailable, TLSOptions, check_reachable, connect
from asyncq.core.keys import Keys, check_name
from asyncq.core.queue import RedisQueue
from asyncq.core.urls import DEFAULT_URL, redact

F = TypeVar("F", bound=Callable[..., Any])


def _queue_name(value: str) -> str:
    try:
        return check_name(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


QueueName = Annotated[
    str, typer.Option("--queue", envvar="ASYNCQ_QUEUE", callback=_queue_name, metavar="NAME", help="Queue name.")
]


@dataclass(frozen=True)
class Connection:
    """Where a command's queue lives: its name, the Redis URL and TLS files."""

    queue: str
    url: str
    tls: TLSOptions
    shards: int = 1

    @property
    def shown(self) -> str:
        """The URL with its password hidden."""
        return redact(self.url)

    async def client(self, **options: Any) -> aioredis.Redis:
        """A client whose Redis answered (else ``RedisUnavailable``); the caller closes it."""
        client = connect(self.url, key=Keys(self.queue).queue, tls=self.tls, **options)
        try:
            await check_reachable(client, self.url)
        except RedisUnavailable:
            await client.aclose()
            raise
        return client

    @contextlib.asynccontextmanager
    async def opened(self, **options: Any) -> AsyncIterator[RedisQueue]:
        """The queue, once its Redis answered (else ``RedisUnavailable``); closed on exit."""
        queue = RedisQueue(self.queue, url=self.url, tls=self.tls, shards=self.shards, **options)
        try:
            await check_reachable(queue.redis, self.url)
            await queue.shards.check_layout(record=False)  # a wrong --shards fails here, in one line (QueueLayoutError)
            yield queue
        finally:
            await queue.close()


Shards = Annotated[
    int,
    typer.Option(
        "--shards",
        envvar="ASYNCQ_SHARDS",
        min=1,
        metavar="N",
        help="Spread the queue over N shards (hash slots: on a cluster, over its masters). Every process of "
        "a queue uses the same N; it is recorded in Redis on first use.",
    ),
]


def connection_options(default_queue: str = DEFAULT_QUEUE, *, shards: bool = False) -> Callable[[F], F]:
    """Give a Typer command the connection options; it receives them as ``conn: Connection``. With
    ``shards``, ``--shards`` too (the producer and consumer; the operator's commands read the count from
    Redis)."""

    def decorate(command: F) -> F:
        hints = get_type_hints(command, include_extras=True)
        own = [p for p in inspect.signature(command).parameters.values() if p.name != "conn"]
        added: dict[str, tuple[Any, Any]] = {
            "queue": (QueueName, default_queue),
            "redis_url": (RedisUrl, DEFAULT_URL),
            "tls_ca": (TlsCa, None),
            "tls_cert": (TlsCert, None),
            "tls_key": (TlsKey, None),
        }
        if shards:
            added["shards"] = (Shards, 1)
        params = [p.replace(annotation=hints[p.name]) for p in own] + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in added.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            conn = Connection(
                kwargs.pop("queue"),
                kwargs.pop("redis_url"),
                TLSOptions(kwargs.pop("tls_ca"), kwargs.pop("tls_cert"), kwargs.pop("tls_key")),
                kwargs.pop("shards", 1),
            )
            return command(*args, conn=conn, **kwargs)

        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper  # type: ignore[return-value]

    return decorate
