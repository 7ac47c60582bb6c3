"""Moving a claimed value to the dead letters: a handler's last failure, or a value no consumer can use."""

from __future__ import annotations

import logging

from asyncq.consuming.stats import ConsumerStats
from asyncq.core.backoff import retrying
from asyncq.core.envelope import dead_letter_record
from asyncq.core.scripts import Scripts

log = logging.getLogger(__name__)


async def bury(
    scripts: Scripts,
    consumer_id: str,
    stats: ConsumerStats,
    raw: bytes,
    reason: str,
    *,
    handle: bytes,
    counted: bool,
    failed: bool,
    item_id: str | None = None,
    keyed: bool = False,
) -> bool:
    """Dead-letter ``raw`` (held by ``consumer_id`` as ``handle``: see ``Message.handle``) with ``reason``;
    False if recovery had taken it back. ``counted``: it was put through the queue, so it is done for
    ``join()``; ``keyed``: put with an idempotency key, to be forgotten."""
    # The whole value, however large: the dead letter is the only copy, and requeue needs all of it.
    record = dead_letter_record(raw, reason, consumer_id, item_id)
    stats.dead_lettered += 1
    if failed:
        stats.failed += 1
    log.warning("dead letter (%s): %s", item_id or "not an envelope", reason)
    done = await retrying(
        "dead-letter",
        lambda: scripts.dead(consumer_id, handle, record, counted=counted, failed=failed, keyed=keyed),
        log,
    )
    return bool(done)
