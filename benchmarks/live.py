"""Live mode: how soon ``job_spans.wait()`` returns after the last span of a job arrives over OTLP.

    python benchmarks/live.py [--quick]     (also run by benchmarks/run.py)

Each round: a test's capture holds a Celery-shaped publish span; a thread calls ``job_spans.wait()``; the
"worker" posts the job's run span to the receiver over OTLP/HTTP (protobuf, one keep-alive connection).
The figure is the median, over the rounds, of the time from the request being sent to ``wait()`` returning
(decode, routing, waking the waiter: all of it). Target: at most 50 ms. For information, the HTTP round trip
of the same request (sent -> response read) is printed beside it: the part of the figure that is transport.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

from pytest_jobtrace._core.capture import CaptureSink, SpanRouter
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._live.receiver import OTLPReceiver
from pytest_jobtrace._live.routing import LiveRouter

Report = Callable[[str, float, float, str], None]


def _round(
    captures: SpanRouter, connection: http.client.HTTPConnection, background: list[ReadableSpan]
) -> tuple[float, float]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # not attached to the capture router: these spans go where the round says
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    task, task_id = "shop.charge", uuid.uuid4().hex
    common = {"celery.task_name": task, "messaging.message.id": task_id}
    with tracer.start_as_current_span(
        f"apply_async/{task}", kind=SpanKind.PRODUCER, attributes={**common, "celery.action": "apply_async"}
    ) as publish:
        pass
    attributes = {**common, "celery.action": "run", "celery.state": "SUCCESS"}
    with tracer.start_as_current_span(f"run/{task}", set_span_in_context(publish), SpanKind.CONSUMER, attributes):
        pass
    run_span = exporter.get_finished_spans()[-1]
    body = encode_spans([run_span]).SerializeToString()

    sink = CaptureSink("bench")
    captures.open(sink)
    for span in background:
        sink.add(span)
    sink.add(publish)  # type: ignore[arg-type]
    returned: list[float] = []
    waiter = threading.Thread(target=lambda: (JobSpans(sink).wait(timeout=10), returned.append(time.perf_counter())))
    waiter.start()
    while not sink._waiting:  # until the waiter is asleep in wait()
        time.sleep(0.001)
    sent = time.perf_counter()
    connection.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    response = connection.getresponse()
    response.read()
    answered = time.perf_counter()
    waiter.join(10)
    captures.close(sink)
    provider.shutdown()
    if response.status != 200 or not returned:
        raise RuntimeError(f"round failed: HTTP {response.status}, wait() returned: {bool(returned)}")
    return returned[0] - sent, answered - sent


def _background(count: int) -> list[ReadableSpan]:
    """Spans the test captured before (its own work): wait() reads the whole capture on each wake."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    for _ in range(count // 10):
        with tracer.start_as_current_span("request"):
            for _ in range(9):
                with tracer.start_as_current_span("query"):
                    pass
    return list(exporter.get_finished_spans())


def run(repeats: int, report: Report) -> None:
    rounds = 40 * repeats
    for count in (0, 2000):
        background = _background(count)
        captures = SpanRouter()
        with OTLPReceiver(router=LiveRouter(captures)) as receiver:
            host, port = receiver.endpoint.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            results = [_round(captures, connection, background) for _ in range(rounds)]
            connection.close()
        latency = statistics.median(r[0] for r in results) * 1000
        trip = statistics.median(r[1] for r in results) * 1000
        report(f"live: wait() returns after the last span is sent, {count} other spans (median)", latency, 50, "ms")
        print(f"    (for information: that request's HTTP round trip, median {trip:.3f} ms, {rounds} rounds)")


def _print_report(name: str, value: float, limit: float, unit: str) -> None:
    verdict = "ok" if value <= limit else "MISSED"
    print(f"{name:<68} {value:10.3f}{unit:<3} (target <= {limit}{unit})  {verdict}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    missed: list[str] = []

    def _report(name: str, value: float, limit: float, unit: str) -> None:
        _print_report(name, value, limit, unit)
        if value > limit:
            missed.append(name)

    run(3 if parser.parse_args().quick else 5, _report)
    sys.exit(1 if missed else 0)
