"""The built-in job runtime: queue semantics, retries on a virtual clock, and the spans it records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace.adapters import JobSpanInfo
from pytest_jobtrace.builtin import (
    SEMCONV_VERSION,
    Job,
    JobArgumentError,
    JobChainError,
    JobFailedError,
    JobRuntime,
    recognise_span,
)

CALLS: list[Any] = []


class PaymentError(Exception):
    pass


class RecordGone(Exception):
    pass


class Alpha(Job):
    def perform(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append(("Alpha", args, kwargs))


class Beta(Job):
    def perform(self, *args: Any, **kwargs: Any) -> None:
        CALLS.append(("Beta", args, kwargs))


class ProcessOrderJob(Job):
    queue = "orders"
    retry_on = (PaymentError,)
    attempts = 3
    wait = "exponential"
    discard_on = (RecordGone,)

    def perform(self, order_id: int, declines: int = 0) -> None:
        CALLS.append((self.job_id, self.executions, self.queue))
        if self.executions <= declines:
            raise PaymentError(f"card declined for order {order_id}")


class Parent(Job):
    def perform(self) -> None:
        CALLS.append("parent")
        Alpha.perform_later("from parent")


class Ping(Job):
    def perform(self) -> None:
        Pong.perform_later()


class Pong(Job):
    def perform(self) -> None:
        Ping.perform_later()


@pytest.fixture(name="calls", autouse=True)
def _calls() -> Iterator[list[Any]]:
    CALLS.clear()
    yield CALLS
    CALLS.clear()


@pytest.fixture(name="rt")
def _rt(provider: TracerProvider) -> Iterator[JobRuntime]:
    with JobRuntime(tracer_provider=provider) as rt:
        yield rt


@pytest.fixture(name="tracer")
def _tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("tests")


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = named(spans, name)
    return span


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def linked(span: ReadableSpan) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def ids(span: ReadableSpan) -> tuple[int, int]:
    return (span.context.trace_id, span.context.span_id)


def event(span: ReadableSpan, name: str) -> dict[str, Any]:
    [found] = [dict(e.attributes or {}) for e in span.events if e.name == name]
    return found


# --- queue semantics ---------------------------------------------------------------------------------------------


def test_drain_performs_jobs_in_fifo_order_and_returns_their_runs(rt: JobRuntime, calls: list[Any]) -> None:
    first = Alpha.perform_later(1)
    second = Beta.perform_later(2, flag=True)
    third = Alpha.perform_later(3)

    runs = rt.drain()

    assert calls == [("Alpha", (1,), {}), ("Beta", (2,), {"flag": True}), ("Alpha", (3,), {})]
    assert [run.job_id for run in runs] == [first.job_id, second.job_id, third.job_id]
    assert [(run.job_class, run.outcome, run.attempts, run.exception) for run in runs] == [
        (Alpha, "succeeded", 1, None),
        (Beta, "succeeded", 1, None),
        (Alpha, "succeeded", 1, None),
    ]
    assert rt.pending == []
    assert rt.performed == runs


def test_perform_later_returns_a_handle_with_json_round_tripped_arguments(rt: JobRuntime, calls: list[Any]) -> None:
    handle = ProcessOrderJob.perform_later((1, 2), declines={3: "x"})

    assert (handle.job_class, handle.queue, handle.args, handle.kwargs) == (
        ProcessOrderJob,
        "orders",
        ([1, 2],),
        {"declines": {"3": "x"}},
    )
    assert len(handle.job_id) == 32
    assert int(handle.job_id, 16) >= 0
    [pending] = rt.pending
    assert (pending.job_id, pending.args, pending.due, pending.attempt, pending.enqueued_by) == (
        handle.job_id,
        ([1, 2],),
        0.0,
        1,
        None,
    )


def test_jobs_enqueued_by_a_job_run_in_the_same_drain_and_know_who_enqueued_them(
    rt: JobRuntime, calls: list[Any]
) -> None:
    parent = Parent.perform_later()

    runs = rt.drain()

    assert calls == ["parent", ("Alpha", ("from parent",), {})]
    assert [(run.job_class, run.enqueued_by) for run in runs] == [(Parent, None), (Alpha, parent.job_id)]


def test_a_retry_waiting_for_its_delay_runs_after_a_job_enqueued_later(rt: JobRuntime, calls: list[Any]) -> None:
    class Flaky(Job):
        retry_on = (PaymentError,)
        attempts = 2
        wait = 5

        def perform(self) -> None:
            calls.append(("Flaky", self.executions, rt.now))
            if self.executions == 1:
                Alpha.perform_later("enqueued after the failure")
                raise PaymentError("declined")

    Flaky.perform_later()
    rt.drain()

    assert calls == [("Flaky", 1, 0.0), ("Alpha", ("enqueued after the failure",), {}), ("Flaky", 2, 5.0)]
    assert rt.now == 5.0


def test_a_retry_without_wait_goes_behind_the_jobs_already_queued(rt: JobRuntime, calls: list[Any]) -> None:
    class Flaky(Job):
        retry_on = (PaymentError,)
        attempts = 2

        def perform(self) -> None:
            calls.append(("Flaky", self.executions))
            if self.executions == 1:
                raise PaymentError("declined")

    Flaky.perform_later()
    Alpha.perform_later()
    rt.drain()

    assert calls == [("Flaky", 1), ("Alpha", (), {}), ("Flaky", 2)]
    assert rt.now == 0.0


def test_pending_lists_jobs_in_the_order_they_would_run(rt: JobRuntime) -> None:
    class Flaky(Job):
        retry_on = (PaymentError,)
        attempts = 2
        wait = 7.5

        def perform(self) -> None:
            raise PaymentError("declined")

    flaky = Flaky.perform_later()
    alpha = Alpha.perform_later()
    with pytest.raises(JobChainError):
        rt.drain(max_jobs=1)

    assert [(p.job_id, p.due, p.attempt) for p in rt.pending] == [(alpha.job_id, 0.0, 1), (flaky.job_id, 7.5, 2)]


def test_exponential_wait_doubles_from_one_second_on_the_virtual_clock(
    rt: JobRuntime, spans: InMemorySpanExporter, calls: list[Any]
) -> None:
    ProcessOrderJob.perform_later(7, declines=2)

    [run] = rt.drain()

    assert [(executions, queue) for _, executions, queue in calls] == [(1, "orders"), (2, "orders"), (3, "orders")]
    assert (run.outcome, run.attempts) == ("succeeded", 3)
    delays = [event(span, "jobtrace.retry")["jobtrace.retry.delay"] for span in named(spans, "process orders")[:2]]
    assert delays == [1.0, 2.0]
    assert rt.now == 3.0


def test_exponential_wait_over_four_attempts_moves_the_clock_seven_seconds(rt: JobRuntime) -> None:
    class Hopeless(Job):
        retry_on = (PaymentError,)
        attempts = 4
        wait = "exponential"

        def perform(self) -> None:
            raise PaymentError("declined")

    Hopeless.perform_later()
    [run] = rt.drain(expect_failures=True)

    assert (run.outcome, run.attempts, rt.now) == ("failed", 4, 7.0)


def test_a_callable_wait_receives_the_failed_attempt(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    seen: list[int] = []

    def backoff(attempt: int) -> float:
        seen.append(attempt)
        return attempt * 10

    class Backoff(Job):
        retry_on = (PaymentError,)
        attempts = 3
        wait = backoff

        def perform(self) -> None:
            if self.executions < 3:
                raise PaymentError("declined")

    Backoff.perform_later()
    rt.drain()

    assert seen == [1, 2]
    assert rt.now == 30.0
    assert [event(s, "jobtrace.retry")["jobtrace.retry.delay"] for s in named(spans, "process default")[:2]] == [
        10.0,
        20.0,
    ]


def test_the_job_id_is_the_same_on_every_attempt_and_on_every_span(
    rt: JobRuntime, spans: InMemorySpanExporter, calls: list[Any]
) -> None:
    handle = ProcessOrderJob.perform_later(1, declines=2)
    rt.drain()

    assert [job_id for job_id, _, _ in calls] == [handle.job_id] * 3
    ids = [span.attributes["messaging.message.id"] for span in spans.get_finished_spans() if span.attributes]
    assert ids == [handle.job_id] * 4


# --- propagation ---------------------------------------------------------------------------------------------------


def enqueue_in_request_then_drain(rt: JobRuntime, tracer: trace.Tracer, job: type[Job]) -> None:
    with tracer.start_as_current_span("request"):
        job.perform_later()
    with tracer.start_as_current_span("drainer"):
        rt.drain()


def test_child_propagation_puts_the_process_span_under_the_send_span(
    rt: JobRuntime, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    enqueue_in_request_then_drain(rt, tracer, Alpha)

    request, drainer = only(spans, "request"), only(spans, "drainer")
    send, process = only(spans, "send default"), only(spans, "process default")
    assert parent_id(send) == request.context.span_id
    assert parent_id(process) == send.context.span_id
    assert process.context.trace_id == request.context.trace_id != drainer.context.trace_id
    assert process.links == ()


def test_link_propagation_starts_a_new_trace_linked_to_the_send_span(
    provider: TracerProvider, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with JobRuntime(tracer_provider=provider, propagation="link") as rt:
        enqueue_in_request_then_drain(rt, tracer, Alpha)

    send, process, drainer = only(spans, "send default"), only(spans, "process default"), only(spans, "drainer")
    assert process.parent is None
    assert process.context.trace_id not in (send.context.trace_id, drainer.context.trace_id)
    assert linked(process) == [ids(send)]


def test_none_propagation_starts_an_unrelated_trace(
    provider: TracerProvider, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    with JobRuntime(tracer_provider=provider, propagation="none") as rt:
        enqueue_in_request_then_drain(rt, tracer, Alpha)

    send, process, drainer = only(spans, "send default"), only(spans, "process default"), only(spans, "drainer")
    assert process.parent is None
    assert process.links == ()
    assert process.context.trace_id not in (send.context.trace_id, drainer.context.trace_id)


def test_a_job_class_propagation_overrides_the_runtime_default(
    rt: JobRuntime, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    class Linked(Job):
        propagation = "link"

        def perform(self) -> None:
            pass

    enqueue_in_request_then_drain(rt, tracer, Linked)

    send, process = only(spans, "send default"), only(spans, "process default")
    assert process.parent is None
    assert linked(process) == [ids(send)]


@pytest.mark.parametrize(("propagation", "expected"), [("child", "acme"), ("link", "acme"), ("none", None)])
def test_baggage_of_the_enqueuer_reaches_the_job_but_not_the_drainer_s(
    provider: TracerProvider, propagation: str, expected: str | None
) -> None:
    seen: list[object] = []

    class Tenanted(Job):
        def perform(self) -> None:
            seen.append((baggage.get_baggage("tenant"), baggage.get_baggage("drainer")))

    with JobRuntime(tracer_provider=provider, propagation=propagation) as rt:  # type: ignore[arg-type]
        token = context.attach(baggage.set_baggage("tenant", "acme"))
        Tenanted.perform_later()
        context.detach(token)
        token = context.attach(baggage.set_baggage("drainer", "yes"))
        rt.drain()
        context.detach(token)

    assert seen == [(expected, None)]


def test_spans_and_jobs_made_inside_perform_are_children_of_the_process_span(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    class Worker(Job):
        def perform(self) -> None:
            with provider.get_tracer("app").start_as_current_span("charge card"):
                pass
            Alpha.perform_later()

    with JobRuntime(tracer_provider=provider) as rt:
        Worker.perform_later()
        rt.drain()

    outer, inner = named(spans, "process default")
    assert parent_id(only(spans, "charge card")) == outer.context.span_id
    child_send = named(spans, "send default")[1]
    assert parent_id(child_send) == outer.context.span_id
    assert parent_id(inner) == child_send.context.span_id


# --- span names and attributes ---------------------------------------------------------------------------------------


def test_span_names_use_the_queue_by_default(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    ProcessOrderJob.perform_later(1)
    rt.drain()

    assert [(s.name, s.kind) for s in spans.get_finished_spans()] == [
        ("send orders", SpanKind.PRODUCER),
        ("process orders", SpanKind.CONSUMER),
    ]


def test_span_names_can_use_the_job_class_while_the_destination_stays_the_queue(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    with JobRuntime(tracer_provider=provider, span_naming="job_class") as rt:
        ProcessOrderJob.perform_later(1)
        rt.drain()

    send, process = spans.get_finished_spans()
    assert (send.name, process.name) == ("send ProcessOrderJob", "process ProcessOrderJob")
    destinations = [(s.attributes or {}).get("messaging.destination.name") for s in (send, process)]
    assert destinations == ["orders", "orders"]


def test_send_and_process_spans_carry_the_messaging_attributes(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    handle = ProcessOrderJob.perform_later(1)
    rt.drain()

    send, process = spans.get_finished_spans()
    common = {
        "messaging.system": "jobtrace",
        "messaging.destination.name": "orders",
        "messaging.message.id": handle.job_id,
        "jobtrace.job.class": f"{__name__}.ProcessOrderJob",
    }
    send_op = {"messaging.operation.type": "send", "messaging.operation.name": "send"}
    process_op = {"messaging.operation.type": "process", "messaging.operation.name": "process"}
    assert dict(send.attributes or {}) == {**common, **send_op}
    assert dict(process.attributes or {}) == {**common, **process_op, "jobtrace.job.attempt": 1}
    assert process.status.status_code is StatusCode.UNSET
    assert process.events == ()


def test_spans_come_from_the_adapter_s_tracer_with_the_semconv_schema(
    rt: JobRuntime, spans: InMemorySpanExporter
) -> None:
    Alpha.perform_later()
    rt.drain()

    scopes = {
        (s.instrumentation_scope.name, s.instrumentation_scope.schema_url)
        for s in spans.get_finished_spans()
        if s.instrumentation_scope
    }
    assert SEMCONV_VERSION == "1.44.0"
    assert scopes == {("pytest_jobtrace.builtin", "https://opentelemetry.io/schemas/1.44.0")}


def test_without_a_tracer_provider_the_global_one_is_looked_up_when_jobs_run(
    provider: TracerProvider, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    with JobRuntime() as rt:
        monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
        Alpha.perform_later()
        rt.drain()

    assert [s.name for s in spans.get_finished_spans()] == ["send default", "process default"]


# --- failures, retries, discards -------------------------------------------------------------------------------


def test_every_failing_attempt_records_the_exception_and_an_error_status(
    rt: JobRuntime, spans: InMemorySpanExporter
) -> None:
    ProcessOrderJob.perform_later(5, declines=5)
    [run] = rt.drain(expect_failures=True)

    attempts = named(spans, "process orders")
    assert [s.attributes["jobtrace.job.attempt"] for s in attempts if s.attributes] == [1, 2, 3]
    for span in attempts:
        assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "card declined for order 5")
        exception = event(span, "exception")
        assert exception["exception.type"] == f"{__name__}.PaymentError"
        assert exception["exception.message"] == "card declined for order 5"
        assert (span.attributes or {}).get("error.type") == f"{__name__}.PaymentError"
    assert isinstance(run.exception, PaymentError)


def test_retried_attempts_carry_a_retry_event_and_the_last_one_retries_exhausted(
    rt: JobRuntime, spans: InMemorySpanExporter
) -> None:
    ProcessOrderJob.perform_later(5, declines=5)
    [run] = rt.drain(expect_failures=True)

    first, second, third = named(spans, "process orders")
    qualified = f"{__name__}.PaymentError"
    assert event(first, "jobtrace.retry") == {
        "jobtrace.retry.attempt": 1,
        "jobtrace.retry.delay": 1.0,
        "exception.type": qualified,
    }
    assert event(second, "jobtrace.retry")["jobtrace.retry.attempt"] == 2
    assert [e.name for e in third.events] == ["exception", "jobtrace.retries_exhausted"]
    assert event(third, "jobtrace.retries_exhausted") == {"jobtrace.retry.attempts": 3, "exception.type": qualified}
    assert (run.outcome, run.attempts) == ("failed", 3)


def test_a_single_attempt_job_has_no_retries_to_exhaust(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    class Once(Job):
        retry_on = (PaymentError,)

        def perform(self) -> None:
            raise PaymentError("declined")

    Once.perform_later()
    [run] = rt.drain(expect_failures=True)

    assert (run.outcome, run.attempts) == ("failed", 1)
    assert [e.name for e in only(spans, "process default").events] == ["exception"]


def test_each_attempt_gets_freshly_decoded_arguments(rt: JobRuntime) -> None:
    seen: list[list[str]] = []

    class Mutating(Job):
        retry_on = (PaymentError,)
        attempts = 2

        def perform(self, items: list[str]) -> None:
            seen.append(list(items))
            items.append("changed by attempt")
            raise PaymentError("declined")

    handle = Mutating.perform_later(["a"])
    [run] = rt.drain(expect_failures=True)

    assert seen == [["a"], ["a"]]
    assert handle.args == run.args == (["a"],)


def test_builtin_exception_types_are_named_without_module(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    class Network(Job):
        retry_on = (ConnectionError,)
        attempts = 2

        def perform(self) -> None:
            raise ConnectionError("reset by peer")

    Network.perform_later()
    rt.drain(expect_failures=True)

    first, second = named(spans, "process default")
    assert event(first, "jobtrace.retry")["exception.type"] == "ConnectionError"
    assert event(second, "jobtrace.retries_exhausted")["exception.type"] == "ConnectionError"


def test_an_exception_in_discard_on_ends_the_job_without_retry_or_failure(
    rt: JobRuntime, spans: InMemorySpanExporter
) -> None:
    class Cleanup(Job):
        retry_on = (Exception,)
        attempts = 5
        discard_on = (RecordGone,)

        def perform(self) -> None:
            raise RecordGone("order 9 was deleted")

    [run] = (Cleanup.perform_later(), rt.drain())[1]

    assert (run.outcome, run.attempts, str(run.exception)) == ("discarded", 1, "order 9 was deleted")
    [span] = named(spans, "process default")
    assert [e.name for e in span.events] == ["exception", "jobtrace.discard"]
    assert event(span, "jobtrace.discard") == {"exception.type": f"{__name__}.RecordGone"}
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "order 9 was deleted")


def test_an_exception_outside_retry_on_fails_the_job_at_once(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    class Picky(Job):
        retry_on = (PaymentError,)
        attempts = 5

        def perform(self) -> None:
            raise KeyError("sku")

    Picky.perform_later()
    [run] = rt.drain(expect_failures=True)

    assert (run.outcome, run.attempts) == ("failed", 1)
    [span] = named(spans, "process default")
    assert [e.name for e in span.events] == ["exception"]


def test_job_failed_error_lists_every_failed_job(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    class Broken(Job):
        def perform(self, n: int) -> None:
            raise ValueError(f"bad input {n}")

    broken = Broken.perform_later(7)
    declined = ProcessOrderJob.perform_later(3, declines=3)
    Alpha.perform_later()

    with pytest.raises(JobFailedError) as info:
        rt.drain()

    lines = str(info.value).splitlines()
    assert lines[:3] == [
        "JobRuntime.drain(): 2 jobs failed:",
        f"  Broken(7) id={broken.job_id} failed after 1 attempt: ValueError: bad input 7",
        f"  ProcessOrderJob(3, declines=3) id={declined.job_id} failed after 3 attempts at +0s, +1s, +3s: "
        "PaymentError: card declined for order 3",
    ]
    assert lines[3:] == [
        "Their spans were recorded. To let jobs fail without raising, pass drain(expect_failures=True), or mark "
        "the test",
        "@pytest.mark.jobtrace(expect_failures=True).",
    ]
    assert isinstance(info.value, AssertionError)
    assert [run.job_id for run in info.value.runs] == [broken.job_id, declined.job_id]
    assert info.value.__cause__ is info.value.runs[0].exception
    assert len(named(spans, "process orders")) == 3
    assert [run.outcome for run in rt.performed] == ["failed", "succeeded", "failed"]


def test_expect_failures_returns_the_failed_runs_instead_of_raising(provider: TracerProvider) -> None:
    class Broken(Job):
        def perform(self) -> None:
            raise ValueError("bad")

    with JobRuntime(tracer_provider=provider, expect_failures=True) as rt:
        Broken.perform_later()
        assert [run.outcome for run in rt.drain()] == ["failed"]
        Broken.perform_later()
        with pytest.raises(JobFailedError, match="1 job failed"):
            rt.drain(expect_failures=False)


def test_a_job_chain_that_does_not_end_raises_job_chain_error(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    Ping.perform_later()

    with pytest.raises(JobChainError) as info:
        rt.drain(max_jobs=20)

    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == (
        "JobRuntime.drain() performed max_jobs=20 attempts; "
        "this chain of jobs does not end (each enqueued by the one before it):"
    )
    assert lines[1] == "  ... 11 earlier job(s) of the chain"
    assert [line[:10] for line in lines[2:12]] == ["  -> Pong(", "  -> Ping("] * 5
    [next_job] = rt.pending
    assert lines[11] == f"  -> Ping(id={next_job.job_id[:8]})  <- next to run"
    assert lines[12] == "Attempts performed: Ping x10, Pong x10"
    assert lines[13] == "If it does end, raise the bound: JobRuntime.drain(max_jobs=N)."
    assert len(named(spans, "process default")) == 20


def test_the_runtime_max_jobs_is_the_default_bound(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, max_jobs=5) as rt:
        Ping.perform_later()
        with pytest.raises(JobChainError, match="performed max_jobs=5 attempts"):
            rt.drain()


# --- arguments and class options -------------------------------------------------------------------------------


class Order:
    id = 3


def test_a_non_serialisable_positional_argument_is_named_with_its_parameter(
    rt: JobRuntime, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(JobArgumentError) as info:
        ProcessOrderJob.perform_later(Order())

    assert str(info.value) == (
        "ProcessOrderJob.perform_later(): argument 0 (order_id) is not JSON-serialisable: Order object "
        "(Object of type Order is not JSON serializable). Jobs cross a serialisation boundary, as in a real "
        "queue: pass an id or a plain dict instead."
    )
    assert isinstance(info.value, TypeError)
    assert rt.pending == []
    assert spans.get_finished_spans() == ()


def test_a_non_serialisable_keyword_or_nested_argument_is_named(rt: JobRuntime) -> None:
    with pytest.raises(JobArgumentError, match=r"keyword argument 'declines' is not JSON-serialisable: set object"):
        ProcessOrderJob.perform_later(1, declines={1, 2})
    with pytest.raises(
        JobArgumentError, match=r"argument 1 \(\*args\) is not JSON-serialisable: Order object at \['order'\] \(Object"
    ):
        Alpha.perform_later(1, {"order": Order()})
    with pytest.raises(
        JobArgumentError,
        match=r"keyword argument 'payload' is not JSON-serialisable: set object at \['a'\]\[1\] \(Object",
    ):
        Alpha.perform_later(payload={"a": [1, {2, 3}]})


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attempts": 0}, ValueError, "Bad.attempts must be an int >= 1 (attempts in total); got 0"),
        ({"attempts": "3"}, TypeError, "Bad.attempts must be an int >= 1 (attempts in total); got '3'"),
        ({"attempts": 2.0}, TypeError, "Bad.attempts must be an int >= 1"),
        (
            {"wait": "linear"},
            ValueError,
            "Bad.wait must be a number of seconds >= 0, 'exponential' or a callable(attempt) -> seconds; got 'linear'",
        ),
        ({"wait": -1}, ValueError, "Bad.wait must be a number of seconds >= 0"),
        ({"wait": [1]}, TypeError, "Bad.wait must be a number of seconds >= 0"),
        (
            {"propagation": "parent"},
            ValueError,
            "Bad.propagation must be one of 'child', 'link', 'none', None; got 'parent'",
        ),
        (
            {"retry_on": PaymentError},
            TypeError,
            "Bad.retry_on must be a tuple of exception classes, e.g. (ConnectionError,)",
        ),
        ({"discard_on": ("x",)}, TypeError, "Bad.discard_on must be a tuple of exception classes"),
        ({"queue": ""}, ValueError, "Bad.queue must be a non-empty str; got ''"),
    ],
)
def test_class_options_are_checked_when_the_class_is_defined(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        type("Bad", (Job,), options)

    assert str(info.value).startswith(message)


def test_valid_class_options_are_accepted() -> None:
    class Fine(Job):
        attempts = 2
        wait = 0.5
        propagation = "none"

    class AlsoFine(Fine):
        queue = "mail"

    assert (AlsoFine.attempts, AlsoFine.wait, AlsoFine.propagation, AlsoFine.queue) == (2, 0.5, "none", "mail")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "eager"}, "JobRuntime(): mode must be one of 'queue', 'inline'; got 'eager'"),
        ({"propagation": "parent"}, "JobRuntime(): propagation must be one of 'child', 'link', 'none'; got 'parent'"),
        ({"span_naming": "task"}, "JobRuntime(): span_naming must be one of 'queue', 'job_class'; got 'task'"),
        ({"max_jobs": 0}, "JobRuntime(): max_jobs must be a positive int; got 0"),
    ],
)
def test_runtime_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=r"^JobRuntime\(\): ") as info:
        JobRuntime(**options)

    assert str(info.value) == message


# --- inline mode ---------------------------------------------------------------------------------------------------


def test_inline_mode_performs_the_job_inside_perform_later(
    provider: TracerProvider, spans: InMemorySpanExporter, calls: list[Any]
) -> None:
    class Outer(Job):
        def perform(self) -> None:
            calls.append("outer starts")
            Alpha.perform_later("nested")
            calls.append("outer ends")

    with JobRuntime(tracer_provider=provider, mode="inline") as rt:
        outer = Outer.perform_later()
        calls.append("perform_later returned")

    assert calls == ["outer starts", ("Alpha", ("nested",), {}), "outer ends", "perform_later returned"]
    assert [(run.job_class, run.enqueued_by) for run in rt.performed] == [(Alpha, outer.job_id), (Outer, None)]
    assert rt.pending == []
    send_outer, send_alpha, process_alpha, process_outer = spans.get_finished_spans()
    assert [s.name for s in (send_outer, process_outer)] == ["send default", "process default"]
    assert parent_id(process_outer) == send_outer.context.span_id
    assert parent_id(send_alpha) == process_outer.context.span_id
    assert parent_id(process_alpha) == send_alpha.context.span_id


def test_inline_retries_run_at_once_advancing_the_virtual_clock(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    with JobRuntime(tracer_provider=provider, mode="inline") as rt:
        ProcessOrderJob.perform_later(1, declines=2)
        now = rt.now

    assert now == 3.0
    [run] = rt.performed
    assert (run.outcome, run.attempts) == ("succeeded", 3)
    assert len(named(spans, "process orders")) == 3
    assert len(named(spans, "send orders")) == 1


def test_an_inline_job_that_fails_raises_from_perform_later(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, mode="inline"), pytest.raises(JobFailedError) as info:
        ProcessOrderJob.perform_later(4, declines=3)

    run = info.value.runs[0]
    assert str(info.value).splitlines()[:2] == [
        "ProcessOrderJob.perform_later() in inline mode: 1 job failed:",
        f"  ProcessOrderJob(4, declines=3) id={run.job_id} failed after 3 attempts at +0s, +1s, +3s: "
        "PaymentError: card declined for order 4",
    ]
    assert isinstance(info.value.__cause__, PaymentError)


def test_an_inline_runtime_expecting_failures_does_not_raise(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, mode="inline", expect_failures=True) as rt:
        ProcessOrderJob.perform_later(4, declines=3)

    assert [run.outcome for run in rt.performed] == ["failed"]


def test_an_inline_chain_that_does_not_end_raises_job_chain_error(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, mode="inline") as rt, pytest.raises(JobChainError) as info:
        Ping.perform_later()

    lines = str(info.value).splitlines()
    assert lines[0].startswith("inline jobs are nested 65 deep (limit 64); this chain of jobs does not end")
    assert lines[-1].endswith("(the default; not @pytest.mark.jobtrace(mode='inline')) and drain().")
    assert rt.performed == []


# --- perform_now, activation ----------------------------------------------------------------------------------------


def test_perform_now_runs_one_attempt_under_the_current_span(
    rt: JobRuntime, tracer: trace.Tracer, spans: InMemorySpanExporter
) -> None:
    class Add(Job):
        def perform(self, a: int, b: int) -> int:
            return a + b

    with tracer.start_as_current_span("caller"):
        assert Add.perform_now(2, 3) == 5

    caller, process = only(spans, "caller"), only(spans, "process default")
    assert parent_id(process) == caller.context.span_id
    assert (process.attributes or {}).get("jobtrace.job.attempt") == 1
    assert named(spans, "send default") == []
    assert rt.pending == []
    assert rt.performed == []


def test_perform_now_lets_exceptions_reach_the_caller(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    with pytest.raises(PaymentError, match="card declined for order 2"):
        ProcessOrderJob.perform_now(2, declines=1)

    [span] = named(spans, "process orders")
    assert (span.status.status_code, span.status.description) == (StatusCode.ERROR, "card declined for order 2")
    assert [e.name for e in span.events] == ["exception"]


def test_perform_now_works_without_an_active_runtime(calls: list[Any]) -> None:
    Alpha.perform_now(1)

    assert calls == [("Alpha", (1,), {})]


def test_perform_later_without_an_active_runtime_says_how_to_get_one() -> None:
    with pytest.raises(RuntimeError) as info:
        Alpha.perform_later()

    assert str(info.value) == (
        "Alpha.perform_later(): no JobRuntime is active. Request the `builtin_jobs` fixture in your test, "
        "or run this code inside `with JobRuntime() as rt:` and call rt.drain()."
    )


def test_the_innermost_runtime_receives_jobs_and_leaving_it_restores_the_outer(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider) as outer:
        with JobRuntime(tracer_provider=provider) as inner:
            inner_handle = Alpha.perform_later()
        outer_handle = Alpha.perform_later()

    assert [p.job_id for p in inner.pending] == [inner_handle.job_id]
    assert [p.job_id for p in outer.pending] == [outer_handle.job_id]
    with pytest.raises(RuntimeError, match="no JobRuntime is active"):
        Alpha.perform_later()


def test_jobs_enqueued_by_a_job_go_to_the_runtime_performing_it(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider) as outer:
        Parent.perform_later()
        with JobRuntime(tracer_provider=provider) as inner:
            runs = outer.drain()

    assert [run.job_class for run in runs] == [Parent, Alpha]
    assert inner.pending == []


def test_close_is_idempotent_and_leaves_pending_jobs(provider: TracerProvider) -> None:
    rt = JobRuntime(tracer_provider=provider)
    with rt:
        Alpha.perform_later()
    rt.close()

    assert len(rt.pending) == 1
    assert rt.drain()[0].job_class is Alpha


# --- recognition -----------------------------------------------------------------------------------------------------


def test_recognise_span_describes_sends_and_each_attempt_outcome(rt: JobRuntime, spans: InMemorySpanExporter) -> None:
    class Gone(Job):
        discard_on = (RecordGone,)

        def perform(self) -> None:
            raise RecordGone("deleted")

    order = ProcessOrderJob.perform_later(1, declines=1)
    gone = Gone.perform_later()
    failed = ProcessOrderJob.perform_later(2, declines=3)
    rt.drain(expect_failures=True)

    infos = [recognise_span(span) for span in spans.get_finished_spans()]
    name = f"{__name__}.ProcessOrderJob"
    assert infos[0] == JobSpanInfo("jobtrace", "send", name, order.job_id, "orders")
    process = [(i.job_id, i.attempt, i.attempt_outcome, i.retry_reason) for i in infos if i and i.role == "process"]
    reason = f"{__name__}.PaymentError: card declined for order "
    assert process == [
        (order.job_id, 1, "retried", reason + "1"),
        (gone.job_id, 1, "discarded", None),
        (failed.job_id, 1, "retried", reason + "2"),
        (order.job_id, 2, "succeeded", None),
        (failed.job_id, 2, "retried", reason + "2"),
        (failed.job_id, 3, "failed", None),
    ]
    assert infos[1] is not None
    assert infos[1].job_name.endswith("Gone")


def test_recognise_span_ignores_spans_of_other_systems(tracer: trace.Tracer, spans: InMemorySpanExporter) -> None:
    with tracer.start_as_current_span("plain"):
        pass
    attributes = {"messaging.system": "kafka", "messaging.operation.type": "send", "jobtrace.job.class": "x.Job"}
    with tracer.start_as_current_span("send topic", attributes=attributes):
        pass

    assert [recognise_span(span) for span in spans.get_finished_spans()] == [None, None]
