"""Old home of the process helpers, kept for files that still import from it: the names below are
`tests.harness`'s. ``run``/``spawn``/``stop`` are gone: use ``tests.harness.run(program, args, redis_url)``
and ``tests.harness.start(...)``, whose ``Proc`` writes its output to files."""

from __future__ import annotations

from tests.harness import ADDED_LINE, BIN, ITEM_LINE, cli, docker_available, env

__all__ = ["ADDED_LINE", "BIN", "ITEM_LINE", "cli", "docker_available", "env"]
