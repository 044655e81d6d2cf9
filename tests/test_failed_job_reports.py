"""JobFailedError in a test's report (issue 19): the job's own exception with the user's frames, once.

The jobs live in their own module, as in a real project: pytest cuts a traceback at the test file, so jobs
written in the test file would hide the job system's frames whatever the plugin does.
"""

from __future__ import annotations

import pytest
from helpers import run_pytest

TASKS = """
from celery import Celery

app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)


def check_card(order):
    raise ValueError(f"card declined for order {order}")


@app.task(shared=False)
def charge(order):
    check_card(order)


@app.task(bind=True, max_retries=1, shared=False)
def charge_later(self, order):
    try:
        check_card(order)
    except ValueError as exc:
        raise self.retry(countdown=3600, exc=exc)


def rq_charge(order):
    check_card(order)
"""

TESTS = """
import pytest
from pytest_jobtrace import JobFailedError
from shop_tasks import charge, charge_later, rq_charge


def test_celery(celery_jobs):
    charge.delay(7)
    celery_jobs.drain()


def test_celery_retry(celery_jobs):
    charge_later.delay(7)
    celery_jobs.drain()


def test_rq(rq_jobs):
    rq_jobs.queue().enqueue(rq_charge, 7)
    rq_jobs.drain()


def test_the_test_itself_sees_everything(celery_jobs, caplog):
    charge.delay(7)
    with pytest.raises(JobFailedError) as excinfo:
        celery_jobs.drain()
    frames = []
    tb = excinfo.value.__cause__.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals["__name__"])
        tb = tb.tb_next
    assert frames == ["celery.app.trace", "shop_tasks", "shop_tasks"]
    assert "raised unexpected" in caplog.text  # caplog keeps every record
"""

WORKER_FRAMES = ("celery/app/trace.py", "def trace_task", "rq/worker/base.py", "rq/job.py", "def perform_job")
WORKER_LOGS = ("raised unexpected: ValueError", "exception raised while executing", "Captured log call")


@pytest.fixture(name="shop")
def _shop(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(shop_tasks=TASKS, test_shop=TESTS)
    pytester.makeini("[pytest]\njobtrace_celery_app = shop_tasks:app\n")
    pytester.syspathinsert()
    return pytester


def failure_of(result: pytest.RunResult, test: str) -> str:
    """The report of one failed test: from its header to the next test's (or the summary)."""
    lines = result.outlines
    start = next(n for n, line in enumerate(lines) if line.strip("_ ") == test)
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n].startswith(("____", "====="))),
        len(lines),
    )
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("run", ["inprocess", "subprocess"])
@pytest.mark.parametrize("test", ["test_celery", "test_rq", "test_celery_retry"])
def test_the_report_shows_the_users_frames_only(shop: pytest.Pytester, run: str, test: str) -> None:
    result = run_pytest(shop, run, "-p", "no:randomly", f"test_shop.py::{test}")
    result.assert_outcomes(failed=1)
    report = failure_of(result, test)
    assert "def check_card(order):" in report
    assert "shop_tasks.py:7: ValueError" in report
    assert "failed after" in report
    for text in WORKER_FRAMES + WORKER_LOGS:
        assert text not in report, text
    assert report.count("E       ValueError: card declined for order 7") == 1  # the job's exception, once


def test_a_retried_task_says_when_its_attempts_ran(shop: pytest.Pytester) -> None:
    result = shop.runpytest("-p", "no:randomly", "test_shop.py::test_celery_retry")
    report = failure_of(result, "test_celery_retry")
    assert "failed after 2 attempts at +0s, +1h: ValueError: card declined for order 7" in report
    assert "raise self.retry(countdown=3600, exc=exc)" in report  # the user's line, not Celery's below it


@pytest.mark.parametrize("how", [("--jobtrace-tb=full",), ("-o", "jobtrace_tb=full")], ids=["flag", "ini"])
def test_full_brings_the_worker_back(shop: pytest.Pytester, how: tuple[str, ...]) -> None:
    result = shop.runpytest("-p", "no:randomly", *how, "test_shop.py::test_celery", "test_shop.py::test_rq")
    result.assert_outcomes(failed=2)
    celery, rq = failure_of(result, "test_celery"), failure_of(result, "test_rq")
    assert "def trace_task" in celery
    assert "raised unexpected: ValueError('card declined for order 7')" in celery
    assert "def perform_job" in rq
    assert "exception raised while executing (shop_tasks.rq_charge)" in rq


def test_under_xdist(shop: pytest.Pytester) -> None:
    result = shop.runpytest_subprocess("-n", "2", "test_shop.py::test_celery", "test_shop.py::test_rq")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("shop_tasks.py:7: ValueError") == 2
    for text in WORKER_FRAMES + WORKER_LOGS:
        assert text not in output, text


def test_the_test_sees_the_whole_traceback_and_caplog_every_record(shop: pytest.Pytester) -> None:
    shop.runpytest("test_shop.py::test_the_test_itself_sees_everything").assert_outcomes(passed=1)


def test_a_wrong_value_is_a_usage_error(shop: pytest.Pytester) -> None:
    result = shop.runpytest("-o", "jobtrace_tb=long")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*jobtrace_tb = 'long': use one of short, full*"])


def test_logs_outside_an_attempt_stay(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import logging

        def test_logs(celery_jobs):
            try:
                raise ValueError("not a job's")
            except ValueError:
                logging.getLogger("celery.app.trace").exception("the test's own record")
            assert False
        """
    )
    pytester.makepyfile(shop_tasks=TASKS)
    pytester.makeini("[pytest]\njobtrace_celery_app = shop_tasks:app\n")
    pytester.syspathinsert()
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert "the test's own record" in result.stdout.str()
