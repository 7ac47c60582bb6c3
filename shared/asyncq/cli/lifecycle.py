"""Signals become an asyncio.Event, registered once the loop runs. A second signal exits at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event, *, what: str = "consumer") -> None:
    """SIGTERM/SIGINT set ``stop``; the second one ends the process immediately (recovery handles the rest)."""
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        if stop.is_set():
            log.warning("%s: second %s, exiting now", what, signal.Signals(signum).name)
            os._exit(128 + signum)
        # The normal way to stop a consumer: not a warning (the second signal, which loses the grace, is one).
        log.info("%s: %s received, shutting down gracefully", what, signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)
