"""Received spans go to the test whose trace they continue, and to no other; late ones are reported."""

from __future__ import annotations

import pytest
from conftest import MakeSpan
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from pytest_jobtrace._core.capture import CaptureSink, SpanRouter
from pytest_jobtrace._core.hygiene import received_leak_message
from pytest_jobtrace._live.routing import LiveRouter


@pytest.fixture(name="captures")
def _captures() -> SpanRouter:
    return SpanRouter()


@pytest.fixture(name="live")
def _live(captures: SpanRouter) -> LiveRouter:
    live = LiveRouter(captures)
    captures.watchers.append(live)
    return live


def _names(sink: CaptureSink) -> list[str]:
    return [span.name for span in sink.spans]


def _leaks(captures: SpanRouter) -> list[tuple[str, str, str | None]]:
    return [(leak.name, leak.started_in, leak.ended_in) for leak in captures.take_leaks() if leak.received]


def test_two_tests_traces_never_mix_and_a_late_span_is_reported_not_given_to_the_next(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    a_publish, b_publish = (
        make_span("publish a", kind=SpanKind.PRODUCER),
        make_span("publish b", kind=SpanKind.PRODUCER),
    )
    a_run, a_late = make_span("run a", a_publish), make_span("late a", a_publish)
    b_run = make_span("run b", b_publish)

    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(a_publish)
    live.deliver([a_run])
    captures.test_label = "test_a"
    captures.close(test_a)

    test_b = CaptureSink("test_b")
    captures.open(test_b)
    captures.test_label = "test_b"
    test_b.add(b_publish)
    live.deliver([a_late, b_run])  # one request carrying both tests' spans
    captures.close(test_b)

    assert _names(test_a) == ["publish a", "run a"]
    assert _names(test_b) == ["publish b", "run b"]
    assert _leaks(captures) == [("late a", "test_a", "test_b")]


def test_a_span_for_a_finished_test_that_never_received_one_still_names_it(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    captures.close(test_a)
    live.deliver([make_span("run", publish)])
    assert _leaks(captures) == [("run", "test_a", None)]


def test_a_trace_linked_to_the_tests_span_is_the_tests_even_when_its_children_arrive_first(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    publish = make_span("apply_async/charge", kind=SpanKind.PRODUCER)
    run = make_span("run/charge", kind=SpanKind.CONSUMER, links=[publish])  # a new trace, linked
    child = make_span("charge card", run)
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    live.deliver([child])  # its trace is not known yet: held
    assert _names(test_a) == ["apply_async/charge"]
    assert [span.name for span in live.held()] == ["charge card"]
    live.deliver([run])  # the link makes the trace the test's: the held child follows
    captures.close(test_a)
    assert _names(test_a) == ["apply_async/charge", "run/charge", "charge card"]
    assert live.held() == []


def test_a_trace_open_in_the_test_owns_what_arrives_before_its_span_ends(
    captures: SpanRouter, live: LiveRouter, tracer: object, make_span: MakeSpan
) -> None:
    from opentelemetry.sdk.trace import Tracer

    assert isinstance(tracer, Tracer)
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    with tracer.start_as_current_span("request") as request:
        test_a.started(request)  # as the router does on start: open, not ended
        live.deliver([make_span("run", request)])
    captures.close(test_a)
    assert _names(test_a) == ["run"]


def test_spans_no_test_ever_owns_are_reported_at_the_end(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    stray: ReadableSpan = make_span("worker heartbeat")
    live.deliver([stray])
    assert _leaks(captures) == []
    live.finish()
    leaks = captures.take_leaks()
    assert [(leak.name, leak.started_in) for leak in leaks] == [("worker heartbeat", "")]
    assert received_leak_message(leaks[0]) == (
        "span 'worker heartbeat' was received over OTLP but belongs to no test: its trace was neither started "
        "in a test nor linked from one of its spans; it is in no test's capture."
    )


def test_the_late_span_warning_names_the_test_and_what_to_do(captures: SpanRouter) -> None:
    from pytest_jobtrace._core.capture import LeakedSpan

    message = received_leak_message(
        LeakedSpan("run/charge", "tests/test_a.py::test_a", "tests/test_a.py::test_b", True)
    )
    assert message == (
        "span 'run/charge' of tests/test_a.py::test_a was received over OTLP during tests/test_a.py::test_b, after "
        "that test had finished; it is in no test's capture. Call job_spans.wait() in the test so that it waits for "
        "its jobs' spans."
    )


def test_a_span_sent_twice_or_sent_back_is_kept_once(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    run = make_span("run", publish)
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    live.deliver([run, publish])  # the test process's own span, exported to the receiver too
    live.deliver([run])  # the exporter's retry of a request that had arrived
    captures.close(test_a)
    assert _names(test_a) == ["publish", "run"]
    assert test_a.duplicates == 2


def test_a_trace_two_tests_share_goes_to_the_one_running(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    # Both tests' spans hang under one session-wide span: the trace was test_a's, and is test_b's now.
    session = make_span("session server")
    a_publish, b_publish = make_span("publish a", session), make_span("publish b", session)
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(a_publish)
    captures.close(test_a)
    test_b = CaptureSink("test_b")
    captures.open(test_b)
    test_b.add(b_publish)
    live.deliver([make_span("run b", b_publish)])
    captures.close(test_b)
    assert _names(test_b) == ["publish b", "run b"]
    assert _leaks(captures) == []


def test_one_request_s_spans_reach_a_waiting_test_together(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waiter (job_spans.wait) is woken once per request, with every span of it there: never with half a
    job, which would cost it a reading of the capture for nothing."""
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    run = make_span("run", publish)
    spans = [run, make_span("charge card", run), make_span("send receipt", run)]
    sink = CaptureSink("test_a")
    captures.open(sink)
    sink.add(publish)
    seen: list[list[str]] = []
    monkeypatch.setattr(sink, "_waiting", 1)  # as if a test were in wait_for_change
    monkeypatch.setattr(sink._changed, "notify_all", lambda: seen.append([span.name for span in sink.spans]))
    live.deliver(spans)
    captures.close(sink)
    assert seen == [["publish", "run", "charge card", "send receipt"]]


def test_a_request_s_spans_for_a_capture_closed_meanwhile_are_reported_each(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    sink = CaptureSink("test_a")
    captures.open(sink)
    sink.add(publish)
    live.deliver([make_span("run", publish)])  # the trace is test_a's from now on
    sink.close()  # closing, not yet told to the router
    captures.test_label = "test_a"
    live.deliver([make_span("late 1", publish), make_span("late 2", publish)])
    captures.close(sink)
    assert _names(sink) == ["publish", "run"]
    assert _leaks(captures) == [("late 1", "test_a", "test_a"), ("late 2", "test_a", "test_a")]


def test_held_spans_a_request_makes_known_follow_in_the_order_they_arrived(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    first = make_span("run first", kind=SpanKind.CONSUMER, links=[publish])  # new traces, linked
    second = make_span("run second", kind=SpanKind.CONSUMER, links=[publish])
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    live.deliver([make_span("second's work", second)])  # held, each: their traces are not known yet
    live.deliver([make_span("stray")])
    live.deliver([make_span("first's work", first)])
    live.deliver([first, second])
    captures.close(test_a)
    assert _names(test_a) == ["publish", "run first", "run second", "second's work", "first's work"]
    assert [span.name for span in live.held()] == ["stray"]


def test_beyond_the_held_limit_the_oldest_trace_is_reported_and_the_others_still_follow(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_jobtrace._live import routing

    monkeypatch.setattr(routing, "HELD_LIMIT", 3)
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    run = make_span("run", kind=SpanKind.CONSUMER, links=[publish])
    oldest = make_span("oldest")
    live.deliver([oldest, make_span("oldest's child", oldest)])
    live.deliver([make_span("work", run)])
    assert _leaks(captures) == []
    live.deliver([make_span("newer")])  # a fourth: the oldest trace goes, both its spans
    assert [name for name, _, _ in _leaks(captures)] == ["oldest", "oldest's child"]
    assert [span.name for span in live.held()] == ["work", "newer"]
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    live.deliver([run])
    captures.close(test_a)
    assert _names(test_a) == ["publish", "run", "work"]
    live.finish()
    assert [name for name, _, _ in _leaks(captures)] == ["newer"]


def test_a_request_looks_again_only_at_the_held_spans_it_makes_known(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spans no test owns pile up when workers elsewhere run other jobs too; each request must not cost more
    for each of them (it did: every held span was placed again on every request)."""
    for n in range(200):
        live.deliver([make_span(f"stray {n}")])
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    run = make_span("run", kind=SpanKind.CONSUMER, links=[publish])
    test_a = CaptureSink("test_a")
    captures.open(test_a)
    test_a.add(publish)
    live.deliver([make_span("work", run)])
    placed: list[str] = []
    place = LiveRouter._place
    monkeypatch.setattr(
        LiveRouter, "_place", lambda self, span, late=True: placed.append(span.name) or place(self, span, late)
    )
    live.deliver([run])
    captures.close(test_a)
    assert _names(test_a) == ["publish", "run", "work"]
    assert placed == ["run", "work"]  # the one it brought, and the one held span it made known
    assert len(live.held()) == 200


def _publish_and_run(sink: CaptureSink, live: LiveRouter, make_span: MakeSpan, jobs: int) -> None:
    """``jobs`` jobs of the test: each published here, its run span received (a trace not seen before)."""
    for n in range(jobs):
        publish = make_span(f"publish {n}", kind=SpanKind.PRODUCER)
        sink.add(publish)
        live.deliver([make_span(f"run {n}", publish)])


def test_each_span_of_an_open_test_is_read_once_to_learn_its_traces(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test of many jobs gets a request for each job, each of a trace not seen yet: the router reads the
    test's new spans only (it read the whole capture on each request: quadratic in the number of jobs)."""
    read: list[int] = []
    for name in ("snapshot", "since"):
        original = getattr(CaptureSink, name, None)
        if original is None:
            continue

        def counted(self: CaptureSink, *args: object, _original: object = original) -> object:
            result = _original(self, *args)  # type: ignore[operator]
            read.append(len(result[1]))
            return result

        monkeypatch.setattr(CaptureSink, name, counted)
    sink = CaptureSink("test_a")
    captures.open(sink)
    _publish_and_run(sink, live, make_span, 50)
    assert len(sink.spans) == 100
    assert sum(read) <= 100
    captures.close(sink)


def test_a_job_published_after_the_test_cleared_its_capture_still_gets_its_spans(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan
) -> None:
    sink = CaptureSink("test_a")
    captures.open(sink)
    _publish_and_run(sink, live, make_span, 3)
    sink.clear()  # job_spans.clear(): fewer spans after it than the router had read before
    publish = make_span("publish again", kind=SpanKind.PRODUCER)
    sink.add(publish)
    live.deliver([make_span("run again", publish)])
    captures.close(sink)
    assert _names(sink) == ["publish again", "run again"]
    assert live.held() == []


def test_a_request_that_wakes_a_waiting_test_hands_it_the_interpreter_before_answering(
    captures: SpanRouter, live: LiveRouter, make_span: MakeSpan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The woken test thread needs the interpreter lock: the receiver's thread yields it (``time.sleep(0)``)
    once the router's lock is released, instead of keeping it until it answers the exporter."""
    import types

    from pytest_jobtrace._live import routing

    yields: list[tuple[float, bool]] = []
    monkeypatch.setattr(routing, "time", types.SimpleNamespace(sleep=lambda s: yields.append((s, live._lock.locked()))))
    publish = make_span("publish", kind=SpanKind.PRODUCER)
    sink = CaptureSink("test_a")
    captures.open(sink)
    sink.add(publish)
    live.deliver([make_span("run 1", publish)])  # nobody waits: nothing to hand over
    assert yields == []
    monkeypatch.setattr(sink, "_waiting", 1)  # as if the test were in wait_for_change
    live.deliver([make_span("run 2", publish)])
    assert yields == [(0, False)]  # once, the router's lock released
    live.deliver([publish])  # the test's own span sent back: kept by nobody, nobody woken, nothing handed over
    assert yields == [(0, False)]
    captures.close(sink)
    assert _names(sink) == ["publish", "run 1", "run 2"]
