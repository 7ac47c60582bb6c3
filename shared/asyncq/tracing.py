"""OpenTelemetry tracing for asyncq (the ``asyncq[otel]`` extra): a trace crosses the queue.

``instrument()`` makes every ``put()`` record a ``NAME publish`` span (kind PRODUCER) and store its W3C trace
context in the envelope (``asyncq.core.envelope``, the optional ``trace`` field); the consumer then runs the
handler inside a ``NAME process`` span (kind CONSUMER) whose parent is that publish span, in the producer's
trace. A failure is recorded on the process span, a retry or a dead letter is a span event on it.

Nothing here imports OpenTelemetry until ``instrument()`` or ``setup_from_env()`` runs: without the extra, or
without the OTEL_* variables, asyncq pays one ``is None`` test per put and per item.

``setup_from_env()`` is what the CLIs call: it sets the SDK up from the standard variables
(``OTEL_TRACES_EXPORTER`` = ``otlp`` | ``console`` | ``none``, ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_SDK_DISABLED``). The console exporter writes one
JSON object per span on stderr, so that a CLI's stdout stays its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from asyncq.core import envelope

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from asyncq.core.envelope import Message

log = logging.getLogger(__name__)

SYSTEM = "asyncq"
_tracer: Tracer | None = None
_PROPAGATOR: Any = None  # W3C trace context only (what the envelope's field holds), whatever OTEL_PROPAGATORS says


class TracingUnavailable(RuntimeError):
    """Tracing was asked for (OTEL_* variables) but cannot be set up: the extra is missing, or a bad value."""


def enabled() -> bool:
    """Is tracing instrumented in this process?"""
    return _tracer is not None


def instrument(tracer_provider: Any = None) -> None:
    """Trace puts and handlers from now on, with ``tracer_provider`` (default: the global one)."""
    global _tracer, _PROPAGATOR
    from importlib.metadata import version

    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR = TraceContextTextMapPropagator()
    _tracer = trace.get_tracer("asyncq", version("asyncq"), tracer_provider=tracer_provider)
    envelope.trace_hook = _publish


def uninstrument() -> None:
    global _tracer
    _tracer = None
    envelope.trace_hook = None


def _attributes(queue: str, operation: str, kind: str, item_id: str) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.message.id": item_id,
    }


def _publish(queue: str, item_id: str) -> Mapping[str, str] | None:
    """The trace hook of ``encode()``: a publish span, child of the caller's current span, and its context.

    The span covers the encoding only: the put itself is batched with others (group commit), so its Redis
    round trip belongs to no single item. It is never made current (no context attach and detach per put):
    its context goes straight into the carrier.
    """
    tracer = _tracer
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind, set_span_in_context

    span = tracer.start_span(
        f"{queue} publish", kind=SpanKind.PRODUCER, attributes=_attributes(queue, "publish", "send", item_id)
    )
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    span.end()
    return carrier or None


@contextlib.contextmanager
def processing(queue: str, message: Message) -> Iterator[Span | None]:
    """Run the block inside a ``NAME process`` span, child of the item's publish span when it has one."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    parent = _PROPAGATOR.extract(dict(message.trace)) if message.trace else None
    attributes: dict[str, str | int] = {**_attributes(queue, "process", "process", message.id)}
    attributes["asyncq.delivery"] = message.delivery
    with tracer.start_as_current_span(
        f"{queue} process", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def failed(exc: BaseException, reason: str) -> None:
    """The handler failed: an exception event and an error status on the current process span."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, reason))


def event(name: str, attributes: Mapping[str, str | int | float]) -> None:
    """A span event (``asyncq.retry``, ``asyncq.dead_letter``) on the current process span."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().add_event(name, dict(attributes))


def setup_from_env(service: str) -> bool:
    """Set the SDK up from the OTEL_* variables and instrument; False when they ask for nothing.

    Tracing is on when ``OTEL_TRACES_EXPORTER`` or an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set (and
    ``OTEL_SDK_DISABLED`` is not ``true``). Raises ``TracingUnavailable`` when it cannot be.
    """
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not names and not endpoint:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise TracingUnavailable(
            "OTEL_* variables ask for tracing but OpenTelemetry is not installed: pip install 'asyncq[otel]'"
        ) from None
    resource = Resource.create({} if env.get("OTEL_SERVICE_NAME") else {"service.name": service})
    provider = TracerProvider(resource=resource)
    for name in names or ["otlp"]:
        processor = _processor(name)
        if processor is not None:
            provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    instrument(provider)
    log.debug("tracing on: exporters %s", ",".join(names or ["otlp"]))
    return True


def _processor(name: str) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    if name == "none":
        return None
    if name == "console":
        # One line per span, written when the span ends: readable by a test or `jq` while the process runs.
        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n")
        return SimpleSpanProcessor(exporter)
    if name == "otlp":
        protocol = (
            os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        try:
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            package = "opentelemetry-exporter-otlp-proto-" + ("grpc" if protocol == "grpc" else "http")
            raise TracingUnavailable(f"the OTLP exporter ({protocol}) is missing: pip install {package}") from None
        return BatchSpanProcessor(OTLPSpanExporter())
    raise TracingUnavailable(f"OTEL_TRACES_EXPORTER={name!r}: asyncq knows otlp, console and none")
