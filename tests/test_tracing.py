"""OpenTelemetry across the queue: the consumer's process span is a child of the producer's publish span,
in the producer's trace, across processes; retries and dead letters are events of the process span.

The consumer (and in one test the producer) is a real process with ``OTEL_TRACES_EXPORTER=console``: its
spans arrive as JSON lines on its stderr. In the other test the producing side is this process, traced with
the SDK's in-memory exporter under a parent span of its own (a web request, say).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from asyncq import RedisQueue, tracing
from asyncq.core.keys import Keys
from tests.harness import Proc, async_wait_until, run, start

CONSOLE = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "asyncq-test"}


def spans(proc: Proc | str) -> list[dict[str, Any]]:
    """The spans a process wrote on stderr with the console exporter (whole lines only: a process still
    running may be half-way through writing the last one)."""
    text = proc if isinstance(proc, str) else proc.stderr()
    found = []
    for line in text.split("\n")[:-1]:
        if line.startswith("{"):
            record = json.loads(line)
            if "context" in record:
                found.append(record)
    return found


def _hex(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


def exporter_provider_tracer(_: InMemorySpanExporter) -> Tracer:
    """A tracer of the provider the fixture instrumented asyncq with: this test's own parent span."""
    return trace.get_tracer("tests", tracer_provider=_PROVIDER[0])


_PROVIDER: list[TracerProvider] = []


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracing.instrument(provider)
    _PROVIDER[:] = [provider]
    yield memory
    tracing.uninstrument()
    provider.shutdown()


async def test_process_span_is_a_child_of_the_publish_span(
    exporter: InMemorySpanExporter, redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    tracer = exporter_provider_tracer(exporter)
    async with RedisQueue(queue_name, url=redis_url) as q:
        with tracer.start_as_current_span("handle request"):
            await q.put({"data": "ok"})
            await q.put({"mode": "once", "data": "retried"})
            await q.put({"mode": "reject", "data": "refused"})
    published: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        if span.name == f"{queue_name} publish":
            published[str(span.attributes["messaging.message.id"])] = span  # type: ignore[index]
    request = next(s for s in exporter.get_finished_spans() if s.name == "handle request")
    assert len(published) == 3
    assert all(s.parent is not None and s.parent.span_id == request.context.span_id for s in published.values())

    consumer = start(
        "consumer",
        ["--queue", queue_name, "--handler", "tests.handlers:traced", "--retry-base", "0.05"],
        redis_url,
        tmp_path,
        **CONSOLE,
    )
    # ok once, retried twice (a failure, then a success), refused once: four deliveries.
    await async_wait_until(lambda: len(spans(consumer)) >= 4, 30, "four process spans")
    processed = spans(consumer)
    assert len(processed) == 4, consumer.describe()
    for span in processed:
        item_id = span["attributes"]["messaging.message.id"]
        parent = published[item_id]
        assert span["name"] == f"{queue_name} process"
        assert span["kind"] == "SpanKind.CONSUMER"
        assert span["context"]["trace_id"] == _hex(request.context.trace_id, 32)
        assert span["parent_id"] == _hex(parent.context.span_id, 16)
        assert span["attributes"]["messaging.system"] == "asyncq"
        assert span["attributes"]["messaging.destination.name"] == queue_name
        assert span["attributes"]["messaging.operation.name"] == "process"
    by_delivery = {(s["attributes"]["messaging.message.id"], s["attributes"]["asyncq.delivery"]): s for s in processed}
    events = {name: [e["name"] for e in s["events"]] for name, s in by_delivery.items()}
    statuses = sorted(s["status"]["status_code"] for s in processed)
    assert statuses == ["ERROR", "ERROR", "UNSET", "UNSET"], statuses
    assert sorted(name for names in events.values() for name in names) == [
        "asyncq.dead_letter",
        "asyncq.retry",
        "exception",
        "exception",
    ]
    assert any(delivery == 2 for _, delivery in by_delivery)  # the retried item's second delivery is traced too
    assert await redis.llen(Keys(queue_name).dead) == 1


async def test_cli_producer_and_consumer_share_the_trace(
    redis: aioredis.Redis, redis_url: str, queue_name: str, tmp_path: Path
) -> None:
    consumer = start("consumer", ["--queue", queue_name, "--work", "0"], redis_url, tmp_path, **CONSOLE)
    done = run("producer", ["--queue", queue_name, "-n", "5"], redis_url, **CONSOLE)
    assert done.returncode == 0, done.stderr
    published = {s["attributes"]["messaging.message.id"]: s for s in spans(done.stderr)}
    assert len(published) == 5 and all(s["name"] == f"{queue_name} publish" for s in published.values())
    assert all(s["kind"] == "SpanKind.PRODUCER" for s in published.values())
    await async_wait_until(lambda: len(spans(consumer)) >= 5, 20, "five process spans")
    for span in spans(consumer):
        parent = published[span["attributes"]["messaging.message.id"]]
        assert span["context"]["trace_id"] == parent["context"]["trace_id"]
        assert span["parent_id"] == parent["context"]["span_id"]
        assert span["resource"]["attributes"]["service.name"] == "asyncq-test"


def test_tracing_off_unless_asked(redis_url: str, queue_name: str) -> None:
    """Without OTEL_* variables the CLIs' setup instruments nothing and items carry no trace field."""
    script = (
        "from asyncq.cli.runner import start_tracing; start_tracing('x');"
        "from asyncq import tracing; from asyncq.core import envelope;"
        "assert not tracing.enabled() and envelope.trace_hook is None;"
        "assert b'trace' not in envelope.encode(1)"
    )
    done = run("python", ["-c", script], redis_url)
    assert done.returncode == 0, done.stderr


def test_bad_exporter_is_one_line(redis_url: str, queue_name: str) -> None:
    done = run("producer", ["--queue", queue_name, "-n", "1"], redis_url, OTEL_TRACES_EXPORTER="zipkin-ish")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: OTEL_TRACES_EXPORTER='zipkin-ish': asyncq knows otlp, console and none"
