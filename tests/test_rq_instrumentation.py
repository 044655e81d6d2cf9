"""The RQ instrumentation on its own, as production code uses it: RQ's SimpleWorker on fakeredis."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points
from typing import Any

import pytest

pytest.importorskip("rq")
fakeredis = pytest.importorskip("fakeredis")

import rq_tasks  # noqa: E402
from opentelemetry import baggage, context, propagate, trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from rq import Callback, Queue, Retry, SimpleWorker  # noqa: E402
from rq.job import JobStatus  # noqa: E402

from pytest_jobtrace import JobSpans, SpanTreeMismatch, assert_span_tree, job, render, span  # noqa: E402
from pytest_jobtrace.rq import _names as names  # noqa: E402
from pytest_jobtrace.rq.instrumentation import RQInstrumentor  # noqa: E402


class Traced:
    """RQ instrumented with the global provider; ``job_spans`` captures every span the test makes."""

    def __init__(self, job_spans: JobSpans) -> None:
        self.exporter = job_spans
        self.tracer = trace.get_tracer("tests")
        self.connection = fakeredis.FakeStrictRedis()
        self.queue = Queue(connection=self.connection)

    def work(self) -> None:
        SimpleWorker([self.queue], connection=self.connection).work(burst=True)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = self.exporter.spans
        return [s for s in spans if name is None or s.name == name]

    def jobs(self) -> Any:
        return self.exporter.jobs()


def _attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


def _instrumented(job_spans: JobSpans, **options: Any) -> Iterator[Traced]:
    instrumentor = RQInstrumentor()
    instrumentor.instrument(**options)
    rq_tasks.CALLS.clear()
    rq_tasks.SEEN.clear()
    try:
        yield Traced(job_spans)
    finally:
        instrumentor.uninstrument()


@pytest.fixture(name="traced")
def _traced(job_spans: JobSpans) -> Iterator[Traced]:
    yield from _instrumented(job_spans)


@pytest.fixture(name="linked")
def _linked(job_spans: JobSpans) -> Iterator[Traced]:
    yield from _instrumented(job_spans, use_span_links=True)


def test_a_job_makes_a_send_span_and_a_process_span_below_it(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("POST /hello"):
        enqueued = traced.queue.enqueue(rq_tasks.hello, 1)
    traced.work()

    assert_span_tree(
        "POST /hello\n  send default [producer]\n    process default [consumer]\n      hello.work", traced.exporter
    )
    (send,) = traced.spans("send default")
    (process,) = traced.spans("process default")
    assert send.kind is SpanKind.PRODUCER
    assert process.kind is SpanKind.CONSUMER
    expected = {
        "messaging.system": "rq",
        "messaging.destination.name": "default",
        "messaging.message.id": enqueued.id,
        "rq.job.func_name": "rq_tasks.hello",
    }
    assert dict(send.attributes or {}).items() >= {**expected, "messaging.operation.type": "send"}.items()
    assert (
        dict(process.attributes or {}).items()
        >= {
            **expected,
            "messaging.operation.type": "process",
            "rq.job.attempt": 1,
            "rq.job.status": "finished",
        }.items()
    )
    assert send.instrumentation_scope is not None
    assert send.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.44.0"


def test_the_trace_context_travels_in_job_meta_before_the_job_is_saved(traced: Traced) -> None:
    enqueued = traced.queue.enqueue(rq_tasks.hello)
    stored = Queue(connection=traced.connection).fetch_job(enqueued.id)
    assert stored is not None
    (send,) = traced.spans("send default")
    assert f"{send.context.span_id:016x}" in stored.meta[names.META_KEY]["traceparent"]


def test_a_wrong_tree_fails_with_the_rq_spans_shown(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("POST /hello"):
        traced.queue.enqueue(rq_tasks.hello, 1)
    traced.work()

    with pytest.raises(SpanTreeMismatch) as caught:
        assert_span_tree(span("POST /hello", children=[job("hello", children=["bye.work"])]), traced.exporter)
    assert "bye.work" in str(caught.value)
    assert "process default [consumer]" in str(caught.value)


def test_baggage_reaches_the_job_and_links_mode_starts_a_new_trace(linked: Traced) -> None:
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with linked.tracer.start_as_current_span("POST /hello"):
            linked.queue.enqueue(rq_tasks.read_baggage)
    finally:
        context.detach(token)
    linked.work()

    assert rq_tasks.SEEN == ["acme"]
    (send,) = linked.spans("send default")
    (process,) = linked.spans("process default")
    assert process.parent is None
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    (found,) = linked.jobs()
    assert found.attempts == [process]


def test_a_failing_job_records_the_exception_and_error_status(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.boom)
    traced.work()

    (process,) = traced.spans("process default")
    assert process.status.status_code is StatusCode.ERROR
    assert process.status.description == "boom"
    attributes = dict(process.attributes or {})
    assert attributes["error.type"] == "rq_tasks.PaymentError"
    assert attributes["rq.job.status"] == "failed"
    assert [event.name for event in process.events] == ["exception"]
    (found,) = traced.jobs()
    assert (found.outcome, len(found.attempts)) == ("failed", 1)


def test_retries_then_success_are_attempts_of_one_job(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("POST /pay"):
        traced.queue.enqueue(rq_tasks.flaky, "pay", 2, retry=Retry(max=3))
    traced.work()

    (found,) = traced.jobs()
    assert [info.attempt_outcome for info in found.attempt_infos] == ["retried", "retried", "succeeded"]
    assert [info.attempt for info in found.attempt_infos] == [1, 2, 3]
    assert found.retry_reasons == ["rq_tasks.PaymentError: card declined 1", "rq_tasks.PaymentError: card declined 2"]
    assert found.outcome == "succeeded"
    retried = found.attempts[0]
    event = next(e for e in retried.events if e.name == names.RETRY_EVENT)
    assert dict(event.attributes or {}) == {
        "rq.retry.attempt": 1,
        "rq.retry.delay": 0.0,
        "exception.type": "rq_tasks.PaymentError",
    }
    reasons = [dict(s.attributes or {})["rq.enqueue.reason"] for s in traced.spans("send default")]
    assert reasons == ["enqueue", "retry", "retry"]
    assert_span_tree(span("POST /pay", children=[job("flaky", attempts=3, outcome="succeeded")]), traced.exporter)


def test_a_retry_names_its_due_time_and_wait_reports_it(traced: Traced) -> None:
    from rq.registry import ScheduledJobRegistry

    queued = traced.queue.enqueue(rq_tasks.flaky, "pay", 9, retry=Retry(max=1, interval=30))
    traced.work()  # no scheduler: the retry stays on the schedule

    (found,) = traced.jobs()
    (info,) = found.attempt_infos
    assert info.attempt_outcome == "retried"
    scheduled = ScheduledJobRegistry(queue=traced.queue).get_scheduled_time(queued)
    assert info.retry_due is not None
    assert abs(info.retry_due / 1e9 - scheduled.timestamp()) < 1.0  # RQ stores whole seconds
    with pytest.raises(AssertionError) as failure:
        traced.exporter.wait(timeout=0.05)
    assert re.search(
        r"job 'rq_tasks.flaky' \(id [0-9a-f-]+\): retry pending: attempt 1 was retried \(rq_tasks.PaymentError: "
        r"card declined 1\), attempt 2 due at \d\d:\d\d:\d\d\.\d{3} UTC \(in (29|30)\.\ds\)",
        str(failure.value),
    ), str(failure.value)


def test_a_wrong_attempt_count_fails_with_the_attempts_listed(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("POST /pay"):
        traced.queue.enqueue(rq_tasks.flaky, "pay", 1, retry=Retry(max=3))
    traced.work()

    with pytest.raises(SpanTreeMismatch) as caught:
        assert_span_tree(span("POST /pay", children=[job("flaky", attempts=3)]), traced.exporter)
    assert "job 'flaky': expected 3 attempts, found 2 (attempt 1 retried, attempt 2 succeeded)" in str(caught.value)


def test_exhausted_retries_are_recorded_and_the_job_failed(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.flaky, "pay", 9, retry=Retry(max=1))
    traced.work()

    (found,) = traced.jobs()
    assert [info.attempt_outcome for info in found.attempt_infos] == ["retried", "failed"]
    last = found.attempts[-1]
    assert [e.name for e in last.events] == ["exception", names.EXHAUSTED_EVENT]
    assert dict(last.events[1].attributes or {}) == {"rq.retry.attempts": 2}
    assert dict(last.attributes or {})["rq.job.retries_left"] == 0


def test_a_job_returning_retry_is_retried_then_exhausted(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.returns_retry, "ret", 1)
    traced.queue.enqueue(rq_tasks.returns_retry, "forever", 99)
    traced.work()

    once, forever = traced.jobs()
    assert [i.attempt_outcome for i in once.attempt_infos] == ["retried", "succeeded"]
    assert once.retry_reasons == ["returned Retry"]
    assert [i.attempt_outcome for i in forever.attempt_infos] == ["retried", "retried", "failed"]
    last = forever.attempts[-1]
    assert last.status.description == "returned Retry with no retries left (2 of 2 used)"
    assert names.EXHAUSTED_EVENT in [e.name for e in last.events]


def test_user_meta_written_in_an_attempt_survives_the_retry(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.note_meta_then_fail, "meta", retry=Retry(max=1))
    traced.work()

    (meta,) = rq_tasks.SEEN
    assert meta["progress"] == "half"
    assert meta[names.META_ATTEMPT] == 2


def test_enqueue_in_and_enqueue_at_make_schedule_send_spans(traced: Traced) -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    traced.queue.enqueue_at(at, rq_tasks.hello, 1)
    traced.queue.enqueue_in(timedelta(seconds=30), rq_tasks.hello, 2)

    first, second = traced.spans("send default")
    assert dict(first.attributes or {})["rq.enqueue.reason"] == "schedule"
    assert dict(first.attributes or {})["rq.job.scheduled_for"] == "2030-01-02T03:04:05+00:00"
    assert dict(second.attributes or {})["rq.enqueue.reason"] == "schedule"
    assert len(traced.queue.scheduled_job_registry) == 2


def test_enqueue_many_makes_one_send_span_per_job(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("batch"):
        made = traced.queue.enqueue_many([Queue.prepare_data(rq_tasks.hello, (n,)) for n in range(3)])
    traced.work()

    sends = traced.spans("send default")
    assert sorted(dict(s.attributes or {})["messaging.message.id"] for s in sends) == sorted(j.id for j in made)
    assert_span_tree(span("batch", children=[job("hello", outcome="succeeded", count=3)]), traced.exporter)


def test_enqueue_many_links_a_dependent_to_its_dependency(traced: Traced) -> None:
    first = traced.queue.enqueue(rq_tasks.hello, 1)
    (second,) = traced.queue.enqueue_many([Queue.prepare_data(rq_tasks.hello, (2,), depends_on=first)])
    traced.work()

    sends = {(_attr(s, "messaging.message.id"), _attr(s, "rq.enqueue.reason")): s for s in traced.spans("send default")}
    dependent = sends[second.id, "enqueue"]
    assert [link.context.span_id for link in dependent.links] == [sends[first.id, "enqueue"].context.span_id]
    assert _attr(dependent, "rq.job.depends_on") == (first.id,)
    assert (second.id, "dependency") in sends


def test_depends_on_links_the_dependent_to_its_dependency_and_releases_it(traced: Traced) -> None:
    with traced.tracer.start_as_current_span("POST /chain"):
        first = traced.queue.enqueue(rq_tasks.hello, 1)
        second = traced.queue.enqueue(rq_tasks.hello, 2, depends_on=first)
    traced.work()

    sends = {(_attr(s, "messaging.message.id"), _attr(s, "rq.enqueue.reason")): s for s in traced.spans("send default")}
    original, release = sends[second.id, "enqueue"], sends[second.id, "dependency"]
    assert [link.context.span_id for link in original.links] == [sends[first.id, "enqueue"].context.span_id]
    assert _attr(original, "rq.job.depends_on") == (first.id,)
    assert release.parent is not None
    assert release.parent.span_id == original.context.span_id
    assert_span_tree(
        span("POST /chain", children=[job("hello", outcome="succeeded", count=2, linked=False)]), traced.exporter
    )


def test_a_job_enqueuing_children_inside_a_custom_span(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.parent_enqueues_children, 2)
    traced.work()

    assert_span_tree(
        job("parent_enqueues_children", children=[span("fan_out", children=[job("hello", count=2)])]),
        traced.exporter,
    )


def test_callbacks_run_inside_the_process_span(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.hello, 5, on_success=Callback(rq_tasks.on_success))
    traced.queue.enqueue(rq_tasks.boom, on_failure=Callback(rq_tasks.on_failure))
    traced.work()

    assert rq_tasks.SEEN == [("success", 5), ("failure", "boom")]
    assert_span_tree(
        [job("hello", children=["hello.work", "on_success"]), job("boom", outcome="failed", children=["on_failure"])],
        traced.exporter,
    )


def test_enqueue_and_perform_survive_a_failing_tracer(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("exporter on fire")

    monkeypatch.setattr("opentelemetry.propagate.inject", broken)
    monkeypatch.setattr("opentelemetry.propagate.extract", broken)
    enqueued = traced.queue.enqueue(rq_tasks.hello, 7)
    traced.work()

    assert enqueued.get_status(refresh=True) == JobStatus.FINISHED
    assert enqueued.return_value() == 7


def test_enqueue_and_perform_survive_a_tracer_that_cannot_start_spans(
    traced: Traced, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import Tracer

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no spans today")

    monkeypatch.setattr(Tracer, "start_span", broken)
    enqueued = traced.queue.enqueue(rq_tasks.flaky, "down", 1, retry=Retry(max=1))
    traced.work()

    assert enqueued.get_status(refresh=True) == JobStatus.FINISHED
    assert rq_tasks.CALLS["down"] == 2
    assert "RQ instrumentation: no send span for job" in caplog.text
    assert "RQ instrumentation: no process span for job" in caplog.text


def test_a_failing_enqueue_is_recorded_and_still_raises(traced: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(Queue, "push_job_id", refuse)
    with pytest.raises(ConnectionError, match="redis is down"):
        traced.queue.enqueue(rq_tasks.hello)
    (send,) = traced.spans("send default")
    assert send.status.status_code is StatusCode.ERROR
    assert [e.name for e in send.events] == ["exception"]


def test_uninstrument_restores_rq(traced: Traced) -> None:
    RQInstrumentor().uninstrument()
    traced.queue.enqueue(rq_tasks.hello)
    traced.work()
    assert [s.name for s in traced.spans()] == ["hello.work"]
    RQInstrumentor().instrument()  # the fixture uninstruments again


def test_opentelemetry_instrument_finds_the_instrumentor() -> None:
    (entry,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.value.startswith("pytest_jobtrace")]
    assert (entry.name, entry.load()) == ("rq", RQInstrumentor)


def test_the_folded_rendering_names_rq_jobs(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.flaky, "pay", 1, retry=Retry(max=1))
    traced.work()
    assert 'job rq_tasks.flaky [queue "default", attempts 2, outcome "succeeded"]' in render(traced.exporter, "jobs")


def test_only_one_instrumentation_when_the_third_party_one_is_active(
    job_spans: JobSpans, caplog: pytest.LogCaptureFixture
) -> None:
    third_party = pytest.importorskip(
        "opentelemetry_instrumentation_rq", reason="opentelemetry-instrumentation-rq is not installed (rq 2.x CI only)"
    )
    theirs = third_party.RQInstrumentor()
    theirs.instrument()
    try:
        ours = RQInstrumentor()
        ours.instrument()
        traced = Traced(job_spans)
        traced.queue.enqueue(rq_tasks.hello, 1)
        traced.work()
        ours.uninstrument()
    finally:
        theirs.uninstrument()

    assert "already instrumented by opentelemetry-instrumentation-rq" in caplog.text
    assert job_spans.spans, "the third-party instrumentation made no span"
    assert not [s for s in job_spans.spans if "rq.job.func_name" in (s.attributes or {})]


FORKING_WORKER = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from rq import Queue, Worker as RQWorker

from pytest_jobtrace.rq._connection import open_connection
from pytest_jobtrace.rq.instrumentation import RQInstrumentor


class Worker(RQWorker):
    # No command channel: with rq 3.0 and redis-py 8 its pubsub thread can miss the wake-up RQ's teardown
    # counts on and sleep out its 60 s while the worker joins it (the run then outlived this test's
    # timeout). The forked horse, not the channel, is what this script checks.
    def subscribe(self):
        pass


class FileExporter(SpanExporter):
    def export(self, spans):
        with open(sys.argv[2], "a") as out:
            out.writelines(f"{span.name}\\n" for span in spans)
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(FileExporter(), schedule_delay_millis=60_000))
trace.set_tracer_provider(provider)
RQInstrumentor().instrument()
lease = open_connection(sys.argv[1])
try:
    queue = Queue(connection=lease.connection)
    queue.enqueue("builtins.len", "abc")
    Worker([queue], connection=lease.connection).work(burst=True)
finally:
    lease.close()
    provider.shutdown()
"""


def test_a_forking_worker_flushes_the_horse_s_spans(tmp_path: Any) -> None:
    """RQ's default Worker runs each job in a forked horse that leaves with os._exit: nothing would export."""
    import subprocess
    import sys

    import rq_fidelity

    url = rq_fidelity.require_redis()
    script, exported = tmp_path / "forking.py", tmp_path / "spans.txt"
    script.write_text(FORKING_WORKER)
    done = subprocess.run([sys.executable, str(script), url, str(exported)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(exported.read_text().split("\n")[:-1]) == ["process default", "send default"]


def test_production_import_loads_no_test_machinery() -> None:
    # Production code imports only the instrumentation: neither pytest nor the assertion core comes with it.
    code = (
        "import sys, pytest_jobtrace.rq.instrumentation\n"
        "loaded = [m for m in ('pytest', 'pytest_jobtrace._core.check', 'rq') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("propagator", ["b3", "b3multi", "jaeger"])
def test_enqueue_many_ends_every_send_span_under_any_propagator(traced: Traced, propagator: str) -> None:
    """B3 and Jaeger carriers hold no ``traceparent``: the spans were told apart by it, all but one left open."""
    from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
    from opentelemetry.propagators.jaeger import JaegerPropagator

    formats = {"b3": B3SingleFormat, "b3multi": B3MultiFormat, "jaeger": JaegerPropagator}
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(formats[propagator]())
    try:
        made = traced.queue.enqueue_many([Queue.prepare_data(rq_tasks.hello, (n,)) for n in range(3)])
        traced.work()
    finally:
        propagate.set_global_textmap(previous)

    sends = traced.spans("send default")
    assert sorted(_attr(s, "messaging.message.id") for s in sends) == sorted(j.id for j in made)
    for process in traced.spans("process default"):
        (parent,) = [s for s in sends if process.parent is not None and s.context.span_id == process.parent.span_id]
        assert _attr(parent, "messaging.message.id") == _attr(process, "messaging.message.id")


def test_attempts_count_on_when_the_job_replaces_its_meta(traced: Traced) -> None:
    traced.queue.enqueue(rq_tasks.replace_meta_then_fail, "replaced", 2, retry=Retry(max=2))
    traced.work()

    processes = traced.spans("process default")
    assert [_attr(s, "rq.job.attempt") for s in processes] == [1, 2, 3]
    assert [_attr(s, "rq.job.status") for s in processes][-1] == "finished"


def test_a_retry_writes_unreadable_meta_back_unchanged(traced: Traced) -> None:
    """RQ keeps meta it cannot deserialize in a placeholder and writes the bytes back: only while untouched."""
    job = traced.queue.enqueue(rq_tasks.flaky, "unreadable", 1, retry=Retry(max=1))
    if not hasattr(job, "_unreadable_meta"):
        pytest.skip("this RQ (2.x) writes its placeholder over unreadable meta itself: no bytes to keep")
    traced.connection.hset(job.key, "meta", b"\x00not a pickle")
    traced.work()

    assert traced.connection.hget(job.key, "meta") == b"\x00not a pickle"
    first, second = traced.spans("process default")
    assert [_attr(s, "rq.job.status") for s in (first, second)] == ["queued", "finished"]
    # the documented cost (docs/rq-instrumentation.md): no count or context could be written into that meta
    assert [_attr(s, "rq.job.attempt") for s in (first, second)] == [1, 1]
    assert second.parent is None


def test_enqueue_many_finds_its_spans_by_context_when_rq_copies_the_meta(
    traced: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should RQ copy the meta it is given, the carrier is no longer the same dict: its span context decides."""
    import copy

    original = Queue.create_job

    def copying(queue: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["meta"] = copy.deepcopy(kwargs.get("meta"))
        return original(queue, *args, **kwargs)

    monkeypatch.setattr(Queue, "create_job", copying)
    made = traced.queue.enqueue_many([Queue.prepare_data(rq_tasks.hello, (n,)) for n in range(3)])

    sends = traced.spans("send default")
    assert sorted(_attr(s, "messaging.message.id") for s in sends) == sorted(j.id for j in made)
    for made_job in made:
        (send,) = [s for s in sends if _attr(s, "messaging.message.id") == made_job.id]
        assert made_job.meta["otel"]["traceparent"].split("-")[2] == format(send.context.span_id, "016x")
