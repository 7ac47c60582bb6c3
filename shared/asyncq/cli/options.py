"""Options shared by the three CLIs: each reads its environment variable too, so compose can configure it."""

from __future__ import annotations

from typing import Annotated

import typer

from asyncq.cli.logs import LogFormat
from asyncq.core.connection import TLSOptions

RedisUrl = Annotated[
    str,
    typer.Option(
        "--redis-url",
        envvar="REDIS_URL",
        metavar="URL",
        help="Redis URL: redis://HOST:PORT/DB, with a password redis://:PASSWORD@HOST:PORT/DB "
        "(redis://USER:PASSWORD@... for an ACL user), rediss://... for TLS.",
        show_default=True,
    ),
]
QueueName = Annotated[str, typer.Option("--queue", envvar="ASYNCQ_QUEUE", metavar="NAME", help="Queue name.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", envvar="ASYNCQ_VERBOSE", metavar="", help="Print a line per item.")
]
LogFormatOpt = Annotated[
    LogFormat,
    typer.Option("--log-format", envvar="ASYNCQ_LOG_FORMAT", metavar="text|json", help="Log lines as text or JSON."),
]
TlsCa = Annotated[
    str | None, typer.Option("--tls-ca", envvar="ASYNCQ_TLS_CA", metavar="FILE", help="CA bundle for rediss:// URLs.")
]
TlsCert = Annotated[
    str | None,
    typer.Option("--tls-cert", envvar="ASYNCQ_TLS_CERT", metavar="FILE", help="Client certificate for rediss:// URLs."),
]
TlsKey = Annotated[
    str | None,
    typer.Option("--tls-key", envvar="ASYNCQ_TLS_KEY", metavar="FILE", help="Client key for rediss:// URLs."),
]
MaxItemBytes = Annotated[
    int,
    typer.Option(
        "--max-item-bytes",
        envvar="ASYNCQ_MAX_ITEM_BYTES",
        min=64,
        metavar="BYTES",
        help="Largest item accepted, in bytes of its JSON envelope.",
    ),
]

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_QUEUE = "asyncq"


def tls_options(ca: str | None, cert: str | None, key: str | None) -> TLSOptions:
    return TLSOptions(ca_file=ca, cert_file=cert, key_file=key)
