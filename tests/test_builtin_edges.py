"""The built-in runtime where jobs misbehave: exceptions that are not Exceptions, coroutines, odd arguments."""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pytest_jobtrace.builtin import Job, JobArgumentError, JobChainError, JobRuntime, recognise_span


def process_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name.startswith("process ")]


# --- item: SystemExit, KeyboardInterrupt, GeneratorExit ----------------------------------------------------------

INTERRUPTS = [SystemExit, KeyboardInterrupt, GeneratorExit]


def interrupting(kind: type[BaseException]) -> type[Job]:
    class Interrupted(Job):
        retry_on = (Exception,)
        attempts = 3

        def perform(self) -> None:
            raise kind("stop now")

    return Interrupted


def assert_recorded_as_failed(span: ReadableSpan, kind: type[BaseException]) -> None:
    assert span.status.status_code is StatusCode.ERROR
    [exception] = [dict(e.attributes or {}) for e in span.events if e.name == "exception"]
    assert exception["exception.type"] == kind.__name__
    assert (span.attributes or {})["error.type"] == kind.__name__
    info = recognise_span(span)
    assert info is not None
    assert info.attempt_outcome == "failed"


@pytest.mark.parametrize("kind", INTERRUPTS)
def test_drain_records_an_interrupted_attempt_as_failed_and_lets_the_exception_through(
    provider: TracerProvider, spans: InMemorySpanExporter, kind: type[BaseException]
) -> None:
    job_class = interrupting(kind)
    with JobRuntime(tracer_provider=provider) as rt:
        job_class.perform_later()
        with pytest.raises(kind, match="stop now"):
            rt.drain()

    [span] = process_spans(spans)  # not retried: retry_on names Exceptions, and this is none
    assert_recorded_as_failed(span, kind)
    assert rt.pending == []
    [run] = rt.failed
    assert (run.outcome, run.attempts, type(run.exception)) == ("failed", 1, kind)
    assert rt.performed == [run]


@pytest.mark.parametrize("kind", INTERRUPTS)
def test_inline_mode_records_an_interrupted_attempt_as_failed(
    provider: TracerProvider, spans: InMemorySpanExporter, kind: type[BaseException]
) -> None:
    with JobRuntime(tracer_provider=provider, mode="inline") as rt, pytest.raises(kind):
        interrupting(kind).perform_later()

    assert_recorded_as_failed(process_spans(spans)[0], kind)
    assert [run.outcome for run in rt.failed] == ["failed"]


@pytest.mark.parametrize("kind", INTERRUPTS)
def test_perform_now_records_an_interrupted_attempt_as_failed(
    provider: TracerProvider, spans: InMemorySpanExporter, kind: type[BaseException]
) -> None:
    with JobRuntime(tracer_provider=provider), pytest.raises(kind):
        interrupting(kind).perform_now()

    assert_recorded_as_failed(process_spans(spans)[0], kind)


def test_an_interrupted_job_fails_a_job_assertion_that_expects_success(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_jobtrace import assert_span_tree, job
        from pytest_jobtrace.builtin import Job

        class Shutdown(Job):
            def perform(self):
                raise SystemExit(3)

        def test_interrupted(builtin_jobs):
            Shutdown.perform_later()
            with pytest.raises(SystemExit):
                builtin_jobs.drain()
            assert_span_tree(job("Shutdown", outcome="succeeded"))
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*job 'Shutdown': expected outcome 'succeeded', got 'failed' (attempt 1 failed)*"])


# --- item: async def perform ---------------------------------------------------------------------------------------


def test_an_async_perform_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError) as info:

        class Notify(Job):
            async def perform(self, user_id: int) -> None:
                pass

    assert str(info.value) == (
        "Notify.perform is defined with `async def`; the built-in runtime performs jobs synchronously, as a "
        "worker does, so its body would never run. Define it with `def` (calling asyncio.run(...) inside if "
        "the work is async)."
    )


def test_an_async_generator_perform_is_refused_too() -> None:
    with pytest.raises(TypeError, match=r"Stream\.perform is defined with `async def`"):

        class Stream(Job):
            async def perform(self) -> Any:
                yield 1


def test_a_sync_perform_that_runs_a_coroutine_is_fine(provider: TracerProvider) -> None:
    done: list[int] = []

    async def work(value: int) -> None:
        done.append(value)

    class Bridge(Job):
        def perform(self, value: int) -> None:
            asyncio.run(work(value))

    with JobRuntime(tracer_provider=provider) as rt:
        Bridge.perform_later(7)
        rt.drain()
    assert done == [7]


# --- item: circular and deeply nested arguments ------------------------------------------------------------------


class Store(Job):
    def perform(self, payload: Any) -> None:
        pass


def test_a_circular_argument_raises_job_argument_error_at_once(provider: TracerProvider) -> None:
    payload: dict[str, Any] = {"id": 1}
    payload["self"] = payload
    with JobRuntime(tracer_provider=provider), pytest.raises(JobArgumentError) as info:
        Store.perform_later({"outer": [payload]})

    assert str(info.value) == (
        "Store.perform_later(): argument 0 (payload) is not JSON-serialisable: dict object at ['outer'][0]['self'] "
        "(Circular reference detected). Jobs cross a serialisation boundary, as in a real queue: pass an id or "
        "a plain dict instead."
    )


def test_an_argument_nested_too_deeply_for_json_raises_job_argument_error(provider: TracerProvider) -> None:
    payload: list[Any] = []
    for _ in range(5000):
        payload = [payload]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # the default; a library loaded by the whole suite raises it
    try:
        with JobRuntime(tracer_provider=provider), pytest.raises(JobArgumentError) as info:
            Store.perform_later(payload=payload)
    finally:
        sys.setrecursionlimit(limit)

    assert str(info.value).startswith("Store.perform_later(): keyword argument 'payload' is not JSON-serialisable: ")
    assert "(nested too deeply)" in str(info.value)


# --- messages: a retried job is not a chain, a wait function that fails names its job ----------------------------


class Flaky(Exception):
    pass


class AlwaysFlaky(Job):
    retry_on = (Flaky,)
    attempts = 5000

    def perform(self) -> None:
        raise Flaky("again")


def test_a_job_retried_past_max_jobs_is_not_called_a_chain(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, max_jobs=1000) as rt:
        AlwaysFlaky.perform_later()
        with pytest.raises(JobChainError) as info:
            rt.drain()

    lines = str(info.value).splitlines()
    assert lines[0] == (
        "JobRuntime.drain() performed max_jobs=1000 attempts; AlwaysFlaky is being retried again and again "
        "(attempt 1001 of 5000 is next):"
    )
    assert "chain" not in lines[0]
    assert lines[2] == "Attempts performed: AlwaysFlaky x1000"


def test_independent_jobs_past_max_jobs_are_not_called_a_chain(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider, max_jobs=3) as rt:
        for _ in range(5):
            Store.perform_later(1)
        with pytest.raises(JobChainError) as info:
            rt.drain()

    lines = str(info.value).splitlines()
    assert lines[0] == (
        "JobRuntime.drain(): max_jobs=3 reached with 2 jobs still pending; call perform_one() to run one job at a time"
    )
    assert lines[1] == "  pending: Store(1), Store(1)"
    assert lines[2:] == [
        "Attempts performed: Store x3",
        "If more jobs are meant to run, raise the bound: JobRuntime.drain(max_jobs=N).",
    ]
    assert "chain" not in str(info.value)


def retrying_with(wait: Any) -> type[Job]:
    class Backoff(Job):
        retry_on = (Flaky,)
        attempts = 3

        def perform(self) -> None:
            raise Flaky("again")

    Backoff.wait = staticmethod(wait)  # type: ignore[assignment]
    return Backoff


def broken_wait(attempt: int) -> float:
    raise KeyError(attempt)


@pytest.mark.parametrize(
    ("wait", "message"),
    [
        (broken_wait, "Backoff.wait(1) raised KeyError: 1; it must return seconds >= 0"),
        (lambda attempt: float("nan"), "Backoff.wait(1) returned nan; a delay must be a finite number of seconds >= 0"),
        (lambda attempt: float("inf"), "Backoff.wait(1) returned inf; a delay must be a finite number of seconds >= 0"),
        (lambda attempt: -1, "Backoff.wait(1) returned -1; a delay must be a finite number of seconds >= 0"),
        (lambda attempt: "soon", "Backoff.wait(1) raised ValueError: could not convert string to float: 'soon'"),
    ],
)
def test_a_wait_function_that_fails_names_the_job_and_the_job_is_not_lost(
    provider: TracerProvider, wait: Any, message: str
) -> None:
    job_class = retrying_with(wait)
    with JobRuntime(tracer_provider=provider) as rt:
        job_class.perform_later()
        with pytest.raises(ValueError, match=re.escape(message)):
            rt.drain()

    assert [run.outcome for run in rt.failed] == ["failed"]
    assert rt.pending == []


# --- a copied context that outlives its test -------------------------------------------------------------------


def test_a_copied_context_enqueuing_after_its_test_raises(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import contextvars

        import pytest
        from pytest_jobtrace.builtin import Job

        carried = []

        class Notify(Job):
            def perform(self):
                pass

        class Starts(Job):
            def perform(self):
                carried.append(contextvars.copy_context())  # as an asyncio task created here would

        def test_first(builtin_jobs):
            Starts.perform_later()
            builtin_jobs.drain()

        def test_later(builtin_jobs):
            with pytest.raises(RuntimeError) as info:
                carried[0].run(Notify.perform_later)
            print(info.value)
            assert builtin_jobs.pending == []
        """
    )
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*Notify.perform_later(): called from work that job * started on a JobRuntime that has since been "
            "closed (its test has ended), through a copied context (an asyncio task, contextvars.copy_context().run, "
            "an executor); the job would never run. Wait for that work in the test that started it."
        ]
    )


class Spawner(Job):
    def perform(self) -> None:
        Store.perform_later("child")


def test_a_closed_runtime_can_still_be_drained(provider: TracerProvider) -> None:
    with JobRuntime(tracer_provider=provider) as rt:
        Spawner.perform_later()
    runs = rt.drain()  # after the with block: the jobs it performs still enqueue on it

    assert [run.job_class for run in runs] == [Spawner, Store]
