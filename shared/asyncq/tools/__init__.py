"""Operator tools: snapshots, dead letters, dashboard, demo, a private redis-server."""
