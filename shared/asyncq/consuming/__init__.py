"""The consuming machinery of one process: fetcher, held items, heartbeat and recovery, counters."""
