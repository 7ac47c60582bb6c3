"""Logging for the CLIs (the library only logs; it never configures).

Per-item lines (the seed's "Consumer 0 got element <...>") go to stdout through the ``asyncq.items`` logger;
everything else to stderr. ``json`` writes one JSON object per line with the record's extra fields (item
id, consumer id, latency), ready for a log shipper.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from enum import Enum
from typing import Any

ITEMS = "asyncq.items"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class LogFormat(str, Enum):
    text = "text"
    json = "json"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _Below(logging.Filter):
    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(self._name)


_format = LogFormat.text


def report(line: str, *, err: bool = False, level: int = logging.INFO, **fields: Any) -> None:
    """A CLI's own line (a summary, an error) as is, or as one JSON record with ``fields`` in json format."""
    stream = sys.stderr if err else sys.stdout
    if _format is LogFormat.json:
        record = logging.LogRecord("asyncq.cli", level, "", 0, line, None, None)
        record.__dict__.update(fields)
        line = JsonFormatter().format(record)
    stream.write(line + "\n")
    stream.flush()


def current_format() -> LogFormat:
    return _format


def configure(*, verbose: bool, fmt: LogFormat = LogFormat.text) -> None:
    """Per-item lines to stdout when ``verbose``; warnings and errors (info too when verbose) to stderr."""
    global _format
    _format = fmt
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)

    out = logging.StreamHandler(sys.stdout)
    err = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.json:
        out.setFormatter(JsonFormatter())
        err.setFormatter(JsonFormatter())
    else:
        out.setFormatter(logging.Formatter("%(message)s"))
        err.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    err.addFilter(_Below(ITEMS))
    items = logging.getLogger(ITEMS)
    items.propagate = False
    items.handlers = [out]
    items.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(err)
