"""Lost attempts: a worker process died running a job. wait() fails at once for a job that will not run
again, and does not wait for the parent of the spans the dead process exported before it died."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from conftest import MakeSpan
from test_live_wait import publish, run

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._jobs.lost import LOSSES, WorkerLoss, parse_loss
from pytest_jobtrace._live.receiver import LOST_PATH, OTLPReceiver


@pytest.fixture(name="sink")
def _sink() -> CaptureSink:
    return CaptureSink("test_lost")


@pytest.fixture(name="capture")
def _capture(sink: CaptureSink) -> JobSpans:
    return JobSpans(sink)


@pytest.fixture(name="task_id")
def _task_id() -> str:
    return str(uuid.uuid4())  # the book of losses is the process's: ids never collide, as Celery's do not


def loss(task_id: str, *, redelivered: bool, why: str = "", attempt: int = 1) -> WorkerLoss:
    return WorkerLoss(
        job_id=task_id,
        job_name="shop.charge",
        attempt=attempt,
        worker="pid 4242",
        cause="WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.",
        redelivered=redelivered,
        why=why,
    )


def test_a_lost_job_not_redelivered_fails_wait_at_once_saying_so(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.charge", task_id)
    sink.add(sent)
    LOSSES.report(loss(task_id, redelivered=False, why="the task has no acks_late"))
    with pytest.raises(AssertionError) as failure:
        capture.wait(timeout=30)  # at once: waiting cannot bring it back
    assert str(failure.value) == (
        "job_spans.wait(): job(s) lost: their worker process died running them, and they were not redelivered; "
        "no span of theirs will come:\n"
        f"  job 'shop.charge' (id {task_id}): attempt 1 started on worker pid 4242, which died (WorkerLostError: "
        "Worker exited prematurely: signal 9 (SIGKILL) Job: 0.); not redelivered (the task has no acks_late)"
    )


def test_without_the_report_the_same_job_is_waited_for(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sink.add(publish(make_span, "shop.charge", task_id))
    with pytest.raises(AssertionError, match="never delivered: published at"):
        capture.wait(timeout=0.05)


def test_a_loss_of_an_earlier_attempt_does_not_end_a_job_that_went_on(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.charge", task_id)
    sink.add(sent)
    sink.add(run(make_span, sent, "shop.charge", task_id, "SUCCESS", retries=1), received=True)
    LOSSES.report(loss(task_id, redelivered=False))  # attempt 1 lost, yet attempt 2 ran (a retry sent before)
    capture.wait(timeout=0.05)


def test_a_redelivered_job_is_waited_for_and_its_lost_attempt_s_spans_need_no_parent(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.charge", task_id)
    sink.add(sent)
    dead = make_span("run/shop.charge (died)", sent)  # never arrives: its process was killed
    sink.add(make_span("charge card", dead), received=True)  # exported before the kill
    redelivered = run(make_span, sent, "shop.charge", task_id, "SUCCESS")
    sink.add(make_span("charge card", redelivered), received=True)
    sink.add(redelivered, received=True)
    with pytest.raises(AssertionError) as unreported:  # without the report, the orphan is waited for
        capture.wait(timeout=0.05)
    parent = dead.get_span_context()
    assert f"span 'charge card' arrived, but not its parent span {parent.span_id:016x}" in str(unreported.value)
    LOSSES.report(loss(task_id, redelivered=True, why="acks_late and task_reject_on_worker_lost"))
    capture.wait(timeout=0.05)
    assert capture.job("shop.charge").outcome == "succeeded"


def test_a_redelivered_job_whose_next_attempt_has_not_come_says_so_on_timeout(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sink.add(publish(make_span, "shop.charge", task_id))
    LOSSES.report(loss(task_id, redelivered=True, why="acks_late and task_reject_on_worker_lost"))
    with pytest.raises(AssertionError) as failure:
        capture.wait(timeout=0.05)
    assert str(failure.value).splitlines()[1] == (
        f"  job 'shop.charge' (id {task_id}): lost and redelivered: attempt 1 started on worker pid 4242, which "
        "died (WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.); redelivered (acks_late and "
        "task_reject_on_worker_lost); no attempt has arrived since"
    )


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_receiver_takes_a_worker_s_loss_report(receiver: OTLPReceiver, task_id: str) -> None:
    report = {
        "job_id": task_id,
        "job_name": "shop.charge",
        "attempt": 1,
        "worker": "pid 7",
        "cause": "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 0.",
        "redelivered": False,
        "why": "the task has no acks_late",
    }
    assert _post(receiver.endpoint + LOST_PATH, json.dumps(report).encode()) == (200, "{}")
    assert LOSSES.of(task_id) == [parse_loss(report)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "Expecting property name enclosed in double quotes"),
        (b"[]", "a worker-lost report is a JSON object, not list"),
        (b'{"job_id": "x"}', "a worker-lost report needs 'job_name' as str, got None"),
        (
            b'{"job_id": "x", "job_name": "t", "attempt": true, "worker": "w", "cause": "c", "redelivered": false}',
            "a worker-lost report needs 'attempt' as int, got True",
        ),
    ],
)
def test_a_bad_loss_report_gets_a_400_naming_the_problem(receiver: OTLPReceiver, body: bytes, reason: str) -> None:
    status, text = _post(receiver.endpoint + LOST_PATH, body)
    assert status == 400
    assert text.startswith(f"{LOST_PATH}: ")
    assert reason in text


def test_celery_s_decision_on_a_lost_worker_is_reported_as_celery_takes_it() -> None:
    pytest.importorskip("celery")
    from celery import Celery

    from pytest_jobtrace.celery._lost import _fate, lost_url

    app = Celery("lost", set_as_current=False)

    @app.task(name="plain", shared=False)  # a shared task would land on every app made later
    def plain() -> None: ...

    @app.task(name="late", acks_late=True, shared=False)
    def late() -> None: ...

    @app.task(name="requeued", acks_late=True, reject_on_worker_lost=True, max_retries=2, shared=False)
    def requeued() -> None: ...

    @app.task(name="retried", retry_on_worker_lost=True, max_retries=1, shared=False)
    def retried() -> None: ...

    assert _fate(plain, 0) == (
        False,
        "the task has no acks_late: its message was acknowledged when the worker took it",
    )
    assert _fate(late, 0) == (False, "acks_late without task_reject_on_worker_lost: the message was not requeued")
    assert _fate(requeued, 0) == (True, "acks_late and task_reject_on_worker_lost: the message was requeued")
    assert _fate(requeued, 2)[0] is False  # max_retries reached: Celery fails it instead
    assert _fate(retried, 0) == (True, "task_retry_on_worker_lost: retried")
    assert _fate(retried, 1)[0] is False
    assert lost_url("http://127.0.0.1:4318/v1/traces") == "http://127.0.0.1:4318" + LOST_PATH
