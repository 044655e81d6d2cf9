"""Job time (issue 19): the timeline on the test's virtual clock, and how --jobtrace-show prints it."""

from __future__ import annotations

import datetime
import time

import pytest
from celery_scenarios import make_app
from helpers import assert_in_order, run_pytest
from opentelemetry.sdk.trace import TracerProvider

from pytest_jobtrace import TimelineEvent, VirtualClock
from pytest_jobtrace._core.errors import failures_message
from pytest_jobtrace._core.texttree import parse_text_tree
from pytest_jobtrace._jobs.runner import _exception_text
from pytest_jobtrace._report.jobtime import SHOWN_EVENTS, job_time_text
from pytest_jobtrace.builtin import Job, JobRuntime
from pytest_jobtrace.celery import CeleryJobs

ORIGIN = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp()


class Flaky(Job):
    retry_on = (ConnectionError,)
    attempts = 3
    wait = staticmethod(lambda attempt: 10.0 * attempt)

    def perform(self, order_id: int) -> None:
        raise ConnectionError("gateway timed out")


class Remind(Job):
    def perform(self, order_id: int) -> None:
        pass


def test_the_text_tells_every_moment_of_job_time() -> None:
    clock = VirtualClock(origin=ORIGIN)
    with JobRuntime(clock=clock, expect_failures=True) as runtime:
        Flaky.perform_later(7)
        runtime.drain()
        clock.advance(3600)
        Remind.perform_later(1)
        text = job_time_text(clock, runtime.pending)
    flaky, remind = clock.timeline[0].job_id[:8], clock.timeline[-1].job_id[:8]
    assert text.splitlines() == [
        "# job time on the virtual clock (+0s is 2026-01-01T00:00:00Z):",
        f"#   +0s       Flaky {flaky}  enqueued",
        f"#   +0s       Flaky {flaky}  attempt 1 retried: ConnectionError: gateway timed out",
        f"#   +0s       Flaky {flaky}  retry: attempt 2 due +10s (wait 10s)",
        f"#   +10s      Flaky {flaky}  attempt 2 retried: ConnectionError: gateway timed out",
        f"#   +10s      Flaky {flaky}  retry: attempt 3 due +30s (wait 20s)",
        f"#   +30s      Flaky {flaky}  attempt 3 failed: ConnectionError: gateway timed out",
        "#   +30s      clock advanced 1h (job_clock.advance)",
        f"#   +1h0m30s  Remind {remind}  enqueued",
        "# clock at the end: +1h0m30s",
        "# still pending:",
        "#   Remind(1)  due now",
    ]


def test_far_moments_read_as_dates_and_pending_jobs_say_when(provider: TracerProvider) -> None:
    clock = VirtualClock()
    app = make_app(provider.get_tracer("shop"))
    eta = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    with CeleryJobs(app, provider=provider, clock=clock) as jobs:
        # An eta is placed on the clock from the real time of its publish; virtual 0 is the real time the
        # clock was made. Made just now, as a test's clock is made a moment before the test publishes.
        clock.origin = time.time()
        app.tasks["shop.add"].apply_async((7, 0), eta=eta)
        app.tasks["shop.add"].apply_async((8, 0), countdown=90)
        text = job_time_text(clock, jobs.pending)
        (due,) = [event.due for event in clock.timeline if event.job_id == jobs.pending[1].job_id]
    assert due == pytest.approx(eta.timestamp() - clock.origin, abs=1)
    lines = text.splitlines()
    assert lines[1].endswith("  enqueued, due 2030-01-01T00:00:00Z")
    assert lines[2].endswith("  enqueued, due +1m30s")
    assert lines[-3:] == [
        "# still pending:",
        "#   shop.add(8, 0)  due +1m30s",
        "#   shop.add(7, 0)  due 2030-01-01T00:00:00Z",
    ]
    assert "e+" not in text


def test_the_block_is_comments_the_text_tree_parser_skips() -> None:
    clock = VirtualClock()
    with JobRuntime(clock=clock) as runtime:
        Remind.perform_later(1)
        runtime.drain()
    tree = "job Remind [attempts 1]\n\n" + job_time_text(clock)
    assert repr(parse_text_tree(tree)) == repr(parse_text_tree("job Remind [attempts 1]"))


def test_a_long_timeline_keeps_its_first_and_last_events() -> None:
    clock = VirtualClock()
    clock.timeline.extend(TimelineEvent(float(n), "enqueued", "j", f"id{n}", 1, float(n)) for n in range(500))
    lines = job_time_text(clock).splitlines()
    assert len(lines) == SHOWN_EVENTS + 3  # title, one "..." line, the clock
    assert lines[1].endswith("j id0  enqueued")
    assert lines[-2].endswith("j id499  enqueued")
    assert "#   " + " " * 6 + "  ..." in lines


def test_no_job_time_no_block() -> None:
    assert job_time_text(VirtualClock()) == ""


def test_control_characters_in_an_exception_stay_on_one_comment_line() -> None:
    class Hostile(Job):
        def perform(self) -> None:
            raise ValueError("line one\nline two\x1b[31m")

    clock = VirtualClock()
    with JobRuntime(clock=clock, expect_failures=True) as runtime:
        Hostile.perform_later()
        runtime.drain()
    lines = job_time_text(clock).splitlines()
    assert all(line.startswith("#") for line in lines)
    assert lines[2].endswith("attempt 1 failed: ValueError: line one\\x0aline two\\x1b[31m")


def test_events_are_plain_data() -> None:
    event = TimelineEvent(0.0, "attempt", "charge", "abc", 1, None, "failed", "ValueError: x", "celery_jobs")
    assert event.as_data() == {
        "moment": 0.0,
        "kind": "attempt",
        "job": "charge",
        "job_id": "abc",
        "attempt": 1,
        "due": None,
        "outcome": "failed",
        "detail": "ValueError: x",
        "runner": "celery_jobs",
    }


def test_advancing_the_clock_is_noted() -> None:
    clock = VirtualClock()
    clock.advance(90)
    clock.advance_to(100)  # the adapters' move to a due job: their attempt says it, not a line of its own
    assert clock.timeline == [TimelineEvent(0.0, "advanced", due=90.0, detail="1m30s")]


# -- the story a user sees: a failing Celery retry test with a countdown ---------------------------------

RETRY_PROJECT = """
import pytest
from celery import Celery

app = Celery("orders", broker="memory://", backend="cache+memory://", set_as_current=False)


@app.task(bind=True, max_retries=1, shared=False)
def charge(self, order_id):
    raise self.retry(countdown=3600, exc=ConnectionError("gateway timed out"))


def test_charge_is_retried_in_a_minute(job_spans, celery_jobs, job_clock):
    charge.delay(7)
    celery_jobs.drain(expect_failures=True)
    assert job_clock.now == 60
"""

RUNS = pytest.mark.parametrize("run", ["inprocess", "subprocess", "xdist"], ids=["in-process", "subprocess", "xdist"])


@RUNS
def test_a_failing_celery_retry_test_shows_its_job_time(pytester: pytest.Pytester, run: str) -> None:
    pytester.makepyfile(test_orders=RETRY_PROJECT)
    pytester.makeini("[pytest]\njobtrace_celery_app = test_orders:app\n")
    pytester.syspathinsert()
    args = ["--jobtrace-show=failed", "-p", "no:randomly"]
    xdist = ("-n", "2") if run == "xdist" else ()
    result = run_pytest(pytester, "inprocess" if run == "inprocess" else "subprocess", *args, *xdist)
    result.assert_outcomes(failed=1)
    assert_in_order(
        result,
        "assert job_clock.now == 60",
        "AssertionError",
        "jobtrace spans call",
        'job test_orders.charge [queue "celery", attempts 2, outcome "failed"]',
        "# job time on the virtual clock (+0s is ",
        "  enqueued\n",
        "  attempt 1 retried: ConnectionError: gateway timed out",
        "  retry: attempt 2 due +1h (wait 1h)",
        "#   +1h  charge ",
        "  attempt 2 failed: ConnectionError: gateway timed out",
        "# clock at the end: +1h",
    )
    assert "e+" not in result.stdout.str()


def test_the_section_pasted_whole_is_an_expectation_that_holds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_orders=RETRY_PROJECT)
    pytester.makeini("[pytest]\njobtrace_celery_app = test_orders:app\n")
    pytester.syspathinsert()
    lines = pytester.runpytest("--jobtrace-show=failed", "-p", "no:randomly").stdout.lines
    start = next(n for n, line in enumerate(lines) if "jobtrace spans call" in line) + 1
    end = next(n for n in range(start, len(lines)) if lines[n].startswith("# clock at the end"))
    section = "\n".join(lines[start : end + 1]).replace("test_orders.", "test_pasted.")
    assert "# job time" in section
    pytester.makepyfile(
        test_pasted=RETRY_PROJECT.replace("test_orders", "test_pasted").replace("assert job_clock.now == 60", "")
        + f"\n    from pytest_jobtrace import assert_span_tree\n    assert_span_tree({section!r})\n"
    )
    pytester.makeini("[pytest]\njobtrace_celery_app = test_pasted:app\n")
    pytester.runpytest("test_pasted.py").assert_outcomes(passed=1)


class _Failed:
    job_id = "a1"
    attempts = 8
    exception = ValueError("declined")

    def describe(self) -> str:
        return "charge(7)"


def test_a_failure_says_when_its_attempts_ran_where_the_clock_moved() -> None:
    def line(times: list[str]) -> str:
        return failures_message([_Failed()], "w()", "r", {"a1": times}).splitlines()[1]

    assert line(["+0s"] * 8) == "  charge(7) id=a1 failed after 8 attempts: ValueError: declined"
    assert line(["+0s", "+1h"]) == "  charge(7) id=a1 failed after 8 attempts at +0s, +1h: ValueError: declined"
    many = [f"+{n}m" for n in range(8)]
    assert line(many) == (
        "  charge(7) id=a1 failed after 8 attempts at +0m, +1m, +2m, ..., +6m, +7m: ValueError: declined"
    )


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_an_exception_that_cannot_be_shown_is_named() -> None:
    # The timeline must not add a failure of its own: it writes what Python's traceback writes for it.
    assert _exception_text(Unprintable()) == "Unprintable: <exception str() failed>"
    assert _exception_text(ValueError("x" * 400)) == "ValueError: " + "x" * 288 + "... (112 more characters)"
