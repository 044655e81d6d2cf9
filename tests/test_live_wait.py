"""job_spans.wait(): returns when every job published in the test has ended; on timeout says what is missing."""

from __future__ import annotations

import re
import threading
import time
import types
from collections.abc import Iterator

import pytest
from conftest import MakeSpan
from opentelemetry.sdk.trace import ReadableSpan, Tracer
from opentelemetry.trace import Span, SpanKind

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._jobs.jobspans import JobSpans


def publish(make_span: MakeSpan, task: str, task_id: str, parent: Span | None = None, at: int = 0) -> Span:
    attributes = {"celery.action": "apply_async", "celery.task_name": task, "messaging.message.id": task_id}
    return make_span(f"apply_async/{task}", parent, at=at, kind=SpanKind.PRODUCER, attributes=attributes)


def run(make_span: MakeSpan, parent: Span, task: str, task_id: str, state: str, retries: int = 0, **more: str) -> Span:
    attributes: dict[str, object] = {
        "celery.action": "run",
        "celery.task_name": task,
        "messaging.message.id": task_id,
        "celery.state": state,
        **more,
    }
    if retries:
        attributes["celery.retries"] = retries
    return make_span(f"run/{task}", parent, at=1 + retries, kind=SpanKind.CONSUMER, attributes=attributes)


@pytest.fixture(name="sink")
def _sink() -> CaptureSink:
    return CaptureSink("test_wait")


@pytest.fixture(name="capture")
def _capture(sink: CaptureSink) -> JobSpans:
    return JobSpans(sink)


def test_nothing_published_returns_at_once(capture: JobSpans) -> None:
    capture.wait(timeout=0.001)  # would raise if it had to wait at all


def test_finished_jobs_need_no_wait(sink: CaptureSink, capture: JobSpans, make_span: MakeSpan) -> None:
    sent = publish(make_span, "shop.charge", "t1")
    sink.add(sent)
    sink.add(run(make_span, sent, "shop.charge", "t1", "FAILURE"), received=True)  # failed for good: final
    capture.wait(timeout=0.001)


@pytest.fixture(name="later")
def _later() -> Iterator[list[threading.Timer]]:
    timers: list[threading.Timer] = []
    yield timers
    for timer in timers:
        timer.cancel()
        timer.join()


def test_it_returns_once_the_worker_span_arrives(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, later: list[threading.Timer]
) -> None:
    sent = publish(make_span, "shop.charge", "t1")
    sink.add(sent)
    attempt = run(make_span, sent, "shop.charge", "t1", "SUCCESS")
    later.append(threading.Timer(0.2, lambda: sink.add(attempt, received=True)))
    later[-1].start()
    capture.wait(timeout=30)
    assert capture.job("shop.charge").outcome == "succeeded"


def test_it_waits_through_a_retry_for_the_final_attempt(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, later: list[threading.Timer]
) -> None:
    sent = publish(make_span, "shop.charge", "t1")
    sink.add(sent)
    retried = run(make_span, sent, "shop.charge", "t1", "RETRY", **{"celery.retry.reason": "Retry in 1s: boom"})
    sink.add(retried, received=True)
    again = publish(make_span, "shop.charge", "t1", retried, at=1)
    final = run(make_span, again, "shop.charge", "t1", "SUCCESS", retries=1)
    for delay, span in ((0.05, again), (0.15, final)):
        later.append(threading.Timer(delay, lambda span=span: sink.add(span, received=True)))
        later[-1].start()
    capture.wait(timeout=30)
    assert capture.job("shop.charge").describe_attempts() == "attempt 1 retried, attempt 2 succeeded"


class _Readings:
    """Each reading of the capture made to take ``cost`` seconds (a big capture), and the wait's sleeps kept."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cost: float) -> None:
        from pytest_jobtrace._jobs import waiting

        self.sleeps: list[float] = []
        forest = JobSpans.forest

        def slow_forest(capture: JobSpans) -> object:
            read = forest(capture)
            until = time.perf_counter() + cost
            while time.perf_counter() < until:  # busy, as a reading is: not a sleep the wait could see
                pass
            return read

        clock = types.SimpleNamespace(monotonic=time.monotonic, sleep=self._sleep)
        monkeypatch.setattr(JobSpans, "forest", slow_forest)
        monkeypatch.setattr(waiting, "time", clock)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


def _when_waiting(sink: CaptureSink, *steps: tuple[float, ReadableSpan]) -> threading.Thread:
    """Adds each span ``delay`` seconds after the one before, starting once the wait is asleep."""

    def feed() -> None:
        while not sink._waiting:
            time.sleep(0.001)
        for delay, span in steps:
            time.sleep(delay)
            sink.add(span, received=True)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def test_an_expensive_reading_does_not_hold_back_the_span_the_test_waits_for(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big capture and one job: the job's span is read as soon as it arrives, no gathering first."""
    readings = _Readings(monkeypatch, cost=0.05)
    sent = publish(make_span, "shop.charge", "t1")
    sink.add(sent)
    feeder = _when_waiting(sink, (0.0, run(make_span, sent, "shop.charge", "t1", "SUCCESS")))
    capture.wait(timeout=30)
    feeder.join(5)
    assert readings.sleeps == []
    assert capture.job("shop.charge").outcome == "succeeded"


def test_spans_arriving_back_to_back_gather_while_readings_are_expensive(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first wake, the next reading starts no sooner than a reading takes after the last one ended
    (reading takes at most half the time), and it still sees every span."""
    readings = _Readings(monkeypatch, cost=0.05)
    sent = publish(make_span, "shop.charge", "t1")
    sink.add(sent)
    retried = run(make_span, sent, "shop.charge", "t1", "RETRY", **{"celery.retry.reason": "Retry in 1s: boom"})
    again = publish(make_span, "shop.charge", "t1", retried, at=1)
    final = run(make_span, again, "shop.charge", "t1", "SUCCESS", retries=1)
    # the retry wakes the wait; the next two arrive while it reads, so its next wake comes at once
    feeder = _when_waiting(sink, (0.0, retried), (0.01, again), (0.0, final))
    capture.wait(timeout=30)
    feeder.join(5)
    assert len(readings.sleeps) == 1
    assert 0 < readings.sleeps[0] <= 0.1  # what is left of a reading's time since the last ended
    assert capture.job("shop.charge").describe_attempts() == "attempt 1 retried, attempt 2 succeeded"


def test_a_span_whose_parent_has_not_arrived_is_still_open(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, later: list[threading.Timer]
) -> None:
    sent = publish(make_span, "shop.charge", "t1")
    attempt = run(make_span, sent, "shop.charge", "t1", "SUCCESS")
    child = make_span("charge card", attempt)
    sink.add(sent)
    sink.add(child, received=True)
    with pytest.raises(
        AssertionError, match="still running: 'charge card' arrived, from attempt 1, whose span has not"
    ):
        capture.wait(timeout=0.05)
    later.append(threading.Timer(0.1, lambda: sink.add(attempt, received=True)))
    later[-1].start()
    capture.wait(timeout=30)


def test_the_timeout_message_says_job_by_job_what_is_missing(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, tracer: Tracer
) -> None:
    never = publish(make_span, "shop.email", "e1")
    retrying = publish(make_span, "shop.charge", "c1")
    retried = run(
        make_span, retrying, "shop.charge", "c1", "RETRY", **{"celery.retry.reason": "Retry in 5s: ValueError('boom')"}
    )
    running = publish(make_span, "shop.ship", "s1")
    running_attempt = run(make_span, running, "shop.ship", "s1", "SUCCESS")
    lost_parent = make_span("lost parent")
    for span in (never, retrying, running):
        sink.add(span)
    for span in (retried, make_span("label", running_attempt), make_span("orphan", lost_parent)):
        sink.add(span, received=True)
    thread_span = tracer.start_span("background thread")
    sink.started(thread_span)  # type: ignore[arg-type]
    with tracer.start_as_current_span("the test's own") as own:
        sink.started(own)  # type: ignore[arg-type]  # the caller is inside it: not waited for
        with pytest.raises(AssertionError) as failure:
            capture.wait(timeout=0.1)
    thread_span.end()
    lines = str(failure.value).splitlines()
    assert re.fullmatch(
        r"job_spans.wait\(timeout=0.1\) gave up after 0\.1\ds: 3 of 3 job\(s\) have not finished; missing:", lines[0]
    )
    assert re.fullmatch(
        r"  job 'shop.email' \(id e1\): never delivered: published at \d\d:\d\d:\d\d\.\d{3} UTC \(\d+\.\ds ago\), "
        r"no attempt has arrived",
        lines[1],
    )
    assert re.fullmatch(
        r"  job 'shop.charge' \(id c1\): retry pending: attempt 1 was retried \(Retry in 5s: ValueError\('boom'\)\), "
        r"attempt 2 due at \d\d:\d\d:\d\d\.\d{3} UTC \(\d+\.\ds ago\)",
        lines[2],
    )
    assert lines[3] == "  job 'shop.ship' (id s1): still running: 'label' arrived, from attempt 1, whose span has not"
    parent = lost_parent.get_span_context()
    assert lines[4] == (
        f"  span 'orphan' arrived, but not its parent span {parent.span_id:016x} (trace {parent.trace_id:032x})"
    )
    assert lines[5] == "  span(s) started in this test and still open: 'background thread'"
    assert len(lines) == 6


def test_a_job_queued_in_an_in_process_fixture_fails_at_once_naming_its_drain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_jobtrace.builtin import Job

        class Charge(Job):
            def perform(self):
                pass

        def test_wait(builtin_jobs, job_spans):
            Charge.perform_later()
            job_spans.wait(timeout=30)
        """
    )
    result = pytester.runpytest("-W", "ignore::pytest_jobtrace.JobtraceWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *AssertionError: job_spans.wait(): job '*Charge' (id *) is queued in builtin_jobs, which runs jobs in"
            " this process: wait() waits for workers in other processes; call builtin_jobs.drain() to run it"
        ]
    )
    result.stdout.no_fnmatch_line("*gave up after*")  # failed at once: it did not wait out its 30 s


def test_a_timeout_that_is_not_positive_is_refused(capture: JobSpans) -> None:
    with pytest.raises(ValueError, match=r"wait\(timeout=0\): the timeout must be a positive number of seconds"):
        capture.wait(timeout=0)


def test_ended_spans_drop_out_of_what_is_open(sink: CaptureSink, capture: JobSpans, tracer: Tracer) -> None:
    span = tracer.start_span("work")
    sink.started(span)  # type: ignore[arg-type]
    timer = threading.Timer(0.1, lambda: (span.end(), sink.add(span)))  # type: ignore[func-returns-value]
    timer.start()
    capture.wait(timeout=30)
    timer.join()
    assert [s.name for s in capture.spans] == ["work"]


_: type[ReadableSpan] = ReadableSpan
