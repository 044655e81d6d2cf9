"""Where ``celery_jobs`` once differed from a real worker in silence (issue 17): each now behaves as the worker
does, or refuses with an error naming the setting and the fix."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult
from celery.utils.nodenames import default_nodename
from celery_scenarios import make_app
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pytest_jobtrace import JobFailedError
from pytest_jobtrace.celery import CeleryJobs


@pytest.fixture(name="app")
def _app(provider: TracerProvider) -> Celery:
    return make_app(provider.get_tracer("shop"))


def open_jobs(app: Celery, provider: TracerProvider) -> CeleryJobs:
    return CeleryJobs(app, provider=provider)


@pytest.fixture(name="jobs")
def _jobs(app: Celery, provider: TracerProvider) -> Iterator[CeleryJobs]:
    with open_jobs(app, provider) as jobs:
        yield jobs


def task(app: Celery, name: str) -> Any:
    return app.tasks[name]


def span_names(spans: InMemorySpanExporter) -> list[str]:
    return [span.name for span in spans.get_finished_spans()]


# Item 1: no publish leaves the test.


def test_a_publish_through_another_app_is_refused_naming_both_apps(jobs: CeleryJobs) -> None:
    other = Celery("billing", broker="memory://", set_as_current=False)

    @other.task(name="billing.invoice", shared=False)
    def invoice() -> None:
        pass

    with pytest.raises(RuntimeError) as raised:
        invoice.delay()
    assert str(raised.value) == (
        "a task was published through the Celery app 'billing' (broker 'memory://'), but celery_jobs runs the"
        " app 'shop': the message would leave the test for that broker. Give celery_jobs the app your code"
        " publishes through: a `celery_app` fixture that returns it, or the ini key"
        " jobtrace_celery_app = package.module:app."
    )


def test_a_second_app_of_the_same_name_is_refused_saying_the_app_was_made_twice(jobs: CeleryJobs) -> None:
    again = Celery("shop", broker="memory://", set_as_current=False)  # as a factory called a second time makes it

    @again.task(name="shop.add", shared=False)
    def add() -> None:
        pass

    with pytest.raises(RuntimeError) as raised:
        add.delay()
    assert str(raised.value) == (
        "a task was published through the Celery app 'shop' (broker 'memory://'), but celery_jobs runs another app"
        " of that name (two Celery('shop') objects: the app was made twice, by a factory called again or a module"
        " imported under two names): the message would leave the test for that broker. Give celery_jobs the app"
        " your code publishes through: a `celery_app` fixture that returns it, or the ini key"
        " jobtrace_celery_app = package.module:app."
    )


def test_another_app_publishes_normally_again_after_the_test(app: Celery, provider: TracerProvider) -> None:
    other = Celery("billing", broker="memory://", set_as_current=False)
    with open_jobs(app, provider):
        pass
    with other.producer_or_acquire() as producer:  # no refusal left behind
        assert producer is not None


def test_a_send_task_set_on_the_app_before_the_test_is_put_back_after_it(app: Celery, provider: TracerProvider) -> None:
    sent: list[str] = []
    send_task = app.send_task

    def recording_send_task(name: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(name)
        return send_task(name, *args, **kwargs)

    app.send_task = recording_send_task  # type: ignore[method-assign]
    try:
        with open_jobs(app, provider) as jobs:
            task(app, "shop.add").delay(1, 2)
            jobs.drain()
        assert vars(app)["send_task"] is recording_send_task
        assert sent == ["shop.add"]
    finally:
        vars(app).pop("send_task", None)


def test_a_send_task_and_now_their_owner_took_back_during_the_test_stay_gone_after_it(
    app: Celery, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixture wraps send_task and now before celery_jobs starts and puts the originals back before celery_jobs
    # ends (a fixture torn down first; the upstream suites' adaptation layers do this). Its wrappers must not
    # come back: they would wrap every later publish of the app, in later tests too.
    original_send_task, original_now = app.send_task, app.now
    calls: list[str] = []

    def wrapped_send_task(*args: Any, **kwargs: Any) -> Any:
        calls.append("send_task")
        return original_send_task(*args, **kwargs)

    def wrapped_now() -> Any:
        calls.append("now")
        return original_now()

    monkeypatch.setattr(app, "send_task", wrapped_send_task)
    monkeypatch.setattr(app, "now", wrapped_now)
    with open_jobs(app, provider) as jobs:
        task(app, "shop.add").apply_async((1, 2), countdown=5)
        jobs.drain()
        monkeypatch.undo()  # the wrappers' owner is done before celery_jobs is
    during = list(calls)
    assert {"send_task", "now"} <= set(during)
    assert app.send_task.__func__ is Celery.send_task  # type: ignore[attr-defined]
    assert app.now.__func__ is Celery.now  # type: ignore[attr-defined]
    app.send_task("shop.add", args=(3, 4), countdown=5)  # no celery_jobs now: to the memory broker, no wrapper
    assert calls == during


def test_a_publish_with_its_own_connection_is_refused(app: Celery, jobs: CeleryJobs) -> None:
    with pytest.raises(RuntimeError, match=r"its own producer= or connection=: the message would go to the broker"):
        task(app, "shop.add").apply_async((1, 2), connection=app.connection_for_write())
    assert jobs.pending == []


# Item 2: task_always_eager is turned off for the test.


def test_eager_mode_is_off_under_celery_jobs_and_restored_after(app: Celery, provider: TracerProvider) -> None:
    app.conf.task_always_eager = True
    with open_jobs(app, provider) as jobs:
        task(app, "shop.add").delay(1, 2)
        assert [p.describe() for p in jobs.pending] == ["shop.add(1, 2)"]
        task(app, "shop.charge").delay(7)
        with pytest.raises(JobFailedError, match=r"card declined for order 7"):
            jobs.drain()
    assert app.conf.task_always_eager is True


def test_under_eager_mode_a_retried_task_makes_a_workers_tree(
    app: Celery, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    app.conf.task_always_eager = True
    with open_jobs(app, provider) as jobs:
        task(app, "shop.process_order").delay(42)
        jobs.drain()
    names = span_names(spans)
    assert names.count("apply_async/shop.process_order") == 3
    assert names.count("run/shop.process_order") == 3


# Item 5: protocol 1 is refused, naming the setting.


def test_task_protocol_1_is_refused_when_celery_jobs_starts(app: Celery, provider: TracerProvider) -> None:
    app.conf.task_protocol = 1
    with pytest.raises(ValueError, match=r"task_protocol=1") as raised:
        open_jobs(app, provider).open()
    assert str(raised.value) == (
        "the Celery app sets task_protocol=1: celery_jobs performs Celery's message protocol 2 (the default since"
        " Celery 4.0) only. Remove task_protocol=1 from the app's configuration in the test"
        " (app.conf.task_protocol = 2)."
    )
    assert "producer_or_acquire" not in vars(app)  # nothing left half-applied


def test_task_protocol_1_set_during_the_test_is_refused_at_publish(app: Celery, jobs: CeleryJobs) -> None:
    app.conf.task_protocol = 1
    with pytest.raises(ValueError, match=r"sets task_protocol=1"):
        task(app, "shop.add").delay(1, 2)


# Item 6: result.get() inside a task raises at once, as on a worker.


def test_result_get_inside_a_task_raises_at_once(app: Celery, jobs: CeleryJobs) -> None:
    @app.task(name="shop.waits", shared=False)
    def waits() -> int:
        result: int = task(app, "shop.add").delay(1, 2).get(timeout=5)
        return result

    waits.delay()
    (run,) = [run for run in jobs.drain(expect_failures=True) if run.name == "shop.waits"]
    assert run.verdict == "failed"
    assert isinstance(run.exception, RuntimeError)
    assert str(run.exception).startswith("Never call result.get() within a task!")
    assert task(app, "shop.add").delay(2, 2) is not None
    jobs.drain()
    result = AsyncResult(jobs.runs[-1].task_id, app=app)
    assert result.get(timeout=1) == 4  # the test itself may wait on results


# Item 14: a requeued message comes back flagged as redelivered (kombu's Redis transport, RabbitMQ).


def test_a_requeued_message_is_redelivered_flagged(app: Celery, jobs: CeleryJobs) -> None:
    from celery.exceptions import Reject

    seen: list[bool] = []

    @app.task(bind=True, name="shop.once_redelivered", acks_late=True, shared=False)
    def once_redelivered(self: Any) -> str:
        seen.append(bool(self.request.delivery_info.get("redelivered")))
        if not self.request.delivery_info.get("redelivered"):
            raise Reject("not yet", requeue=True)
        return "done"

    once_redelivered.delay()
    (run,) = jobs.drain(max_jobs=5)
    assert (run.verdict, run.attempts, seen) == ("succeeded", 2, [False, True])


# Item 4: expires and revoke judged on the virtual clock; revoke's broadcast stays in the test.


def test_a_message_that_expires_before_it_is_due_is_discarded(
    app: Celery, jobs: CeleryJobs, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celery.worker.request")
    result = task(app, "shop.add").apply_async((1, 2), countdown=60, expires=10)
    (run,) = jobs.drain()
    assert run.verdict == "revoked"
    assert result.state == "REVOKED"
    assert span_names(spans) == ["apply_async/shop.add"]  # the instrumentation records no run span
    assert f"Discarding revoked task: shop.add[{result.id}]" in caplog.messages


def test_a_message_due_before_it_expires_runs(app: Celery, jobs: CeleryJobs) -> None:
    result = task(app, "shop.add").apply_async((1, 2), countdown=5, expires=10)
    (run,) = jobs.drain()
    assert run.verdict == "succeeded"
    assert result.get(timeout=1) == 3


def test_a_retry_keeps_the_first_publishs_expiry(app: Celery, jobs: CeleryJobs) -> None:
    @app.task(bind=True, name="shop.slow_retry", shared=False)
    def slow_retry(self: Any) -> None:
        raise self.retry(countdown=6, max_retries=5)

    slow_retry.apply_async(expires=10)
    (run,) = jobs.drain()
    assert (run.verdict, run.attempts) == ("revoked", 3)  # at 0 and 6; due at 12, after the expiry at 10
    assert jobs.clock.now == 12


def test_retries_due_before_the_expiry_run(app: Celery, jobs: CeleryJobs) -> None:
    @app.task(bind=True, name="shop.quick_retry", shared=False)
    def quick_retry(self: Any) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=4.99)
        return self.request.retries

    result = quick_retry.apply_async(expires=10)
    (run,) = jobs.drain()
    assert (run.verdict, run.attempts, jobs.clock.now) == ("succeeded", 3, pytest.approx(9.98))
    assert result.get(timeout=1) == 2


def test_the_real_time_an_attempt_takes_does_not_bring_the_expiry_closer(app: Celery, jobs: CeleryJobs) -> None:
    # Attempts take no time on the virtual clock: a retry's expires (carried from its attempt) maps back to
    # the same virtual moment, however long the attempt took in real time (this failed under load before).
    @app.task(bind=True, name="shop.slow_retry", shared=False)
    def slow_retry(self: Any) -> int:
        time.sleep(0.05)
        if self.request.retries < 2:
            raise self.retry(countdown=4.99)
        return self.request.retries

    slow_retry.apply_async(expires=10)
    (run,) = jobs.drain()
    assert (run.verdict, run.attempts, jobs.clock.now) == ("succeeded", 3, pytest.approx(9.98))


def test_a_revoked_task_is_discarded_and_the_revoke_stays_in_the_test(
    app: Celery, jobs: CeleryJobs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celery.worker.request")
    app.conf.broker_url = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens: a broadcast would fail
    result = task(app, "shop.add").apply_async((1, 2), countdown=5)
    result.revoke()
    (run,) = jobs.drain()
    assert run.verdict == "revoked"
    assert result.state == "REVOKED"
    assert f"Discarding revoked task: shop.add[{result.id}]" in caplog.messages


def test_revoke_with_reply_answers_as_a_worker(app: Celery, jobs: CeleryJobs) -> None:
    result = task(app, "shop.add").apply_async((1, 2), countdown=5)
    replies = app.control.revoke(result.id, reply=True)
    assert replies == [{default_nodename(None): {"ok": f"tasks {{'{result.id}'}} flagged as revoked"}}]


def test_terminating_the_running_task_is_refused_and_a_pending_one_is_revoked(app: Celery, jobs: CeleryJobs) -> None:
    @app.task(bind=True, name="shop.stop_myself", shared=False)
    def stop_myself(self: Any) -> None:
        self.app.control.revoke(self.request.id, terminate=True)

    stop_myself.delay()
    (run,) = jobs.drain(expect_failures=True)
    assert run.verdict == "failed"
    assert str(run.exception) == (
        "revoke(terminate=True) of a task that is running: celery_jobs runs it on the test's thread and"
        " cannot terminate it as a worker would. Revoke it before it runs, or without terminate=True."
    )
    pending = task(app, "shop.add").apply_async((1, 2), countdown=5)
    pending.revoke(terminate=True)
    (run,) = jobs.drain()
    assert run.verdict == "revoked"


def test_other_broadcasts_are_refused_naming_the_command(app: Celery, jobs: CeleryJobs) -> None:
    with pytest.raises(RuntimeError, match=r"app.control broadcast 'ping': celery_jobs runs no worker"):
        app.control.ping()


# Item 17: the worker's node name and log lines.


def test_tasks_see_the_workers_node_name_and_the_worker_logs(
    app: Celery, jobs: CeleryJobs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    seen: list[str] = []

    @app.task(bind=True, name="shop.where", shared=False)
    def where(self: Any) -> None:
        seen.append(self.request.hostname)

    result = where.delay()
    jobs.drain()
    assert seen == [default_nodename(None)]
    assert seen[0].startswith("celery@")
    by_logger = {(record.name, record.getMessage().split(" in ")[0]) for record in caplog.records}
    assert ("celery.worker.strategy", f"Task shop.where[{result.id}] received") in by_logger
    assert ("celery.app.trace", f"Task shop.where[{result.id}] succeeded") in by_logger


# Items 1 and 2 as users meet them: a conftest's eager app, a test that asks only for celery_jobs.

CONFTEST = """
import pytest
from celery import Celery


@pytest.fixture
def celery_app():
    app = Celery("orders", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_always_eager = True  # a common test setting

    @app.task(bind=True, name="orders.process_order", shared=False)
    def process_order(self, order_id):
        if self.request.retries < 2:
            raise self.retry(countdown=60, exc=ConnectionError("gateway timeout"))
        return order_id

    @app.task(name="orders.charge", shared=False)
    def charge(order_id):
        raise ValueError(f"card declined for order {order_id}")

    return app
"""

TESTS = """
import pytest
from pytest_jobtrace import JobFailedError, assert_span_tree, job


def test_retried_like_on_a_worker(celery_jobs):
    celery_jobs.app.tasks["orders.process_order"].delay(42)
    celery_jobs.drain()
    assert celery_jobs.clock.now == 120
    assert_span_tree([job("process_order", attempts=3, outcome="succeeded")])


def test_wrong_attempts_fail(celery_jobs):
    celery_jobs.app.tasks["orders.process_order"].delay(42)
    celery_jobs.drain()
    assert_span_tree([job("process_order", attempts=1, outcome="succeeded")])


def test_a_failure_fails_the_drain(celery_jobs):
    celery_jobs.app.tasks["orders.charge"].delay(7)
    with pytest.raises(JobFailedError, match="card declined for order 7"):
        celery_jobs.drain()


def test_the_app_is_the_fixtures(celery_jobs, request):
    assert celery_jobs.app is request.getfixturevalue("celery_app")
    assert celery_jobs.app.conf.task_always_eager is False
"""


def test_an_eager_celery_app_fixture_not_requested_runs_as_on_a_worker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_orders=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*job 'process_order': expected 1 attempt, found 3"
            " (attempt 1 retried, attempt 2 retried, attempt 3 succeeded)*"
        ]
    )
