"""Lost attempts: a worker process died running a job. wait() fails at once for a job that will not run
again, and does not wait for the parent of the spans the dead process exported before it died. Verdicts: a
job its worker discarded unrun is not waited for; after an attempt rejected with requeue, the next one is."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from conftest import SECOND, T0, MakeSpan
from test_live_wait import publish, run

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._jobs.lost import LOSSES, VERDICTS, JobVerdict, WorkerLoss, parse_loss, parse_verdict
from pytest_jobtrace._live.receiver import LOST_PATH, VERDICT_PATH, OTLPReceiver


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


def discarded(task_id: str, reason: str = "revoked") -> JobVerdict:
    return JobVerdict(task_id, "shop.import_file", "discarded", reason)


def requeued(task_id: str, reason: str = "Reject(requeue=True): storage not ready") -> JobVerdict:
    return JobVerdict(task_id, "shop.import_file", "requeued", reason)


def test_a_job_its_worker_discarded_unrun_is_not_waited_for(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sink.add(publish(make_span, "shop.import_file", task_id))
    with pytest.raises(AssertionError, match="never delivered: published at"):  # without the verdict
        capture.wait(timeout=0.05)
    VERDICTS.report(discarded(task_id, "expired"))
    capture.wait(timeout=0.05)
    assert capture.job("shop.import_file").outcome == "pending"  # the trace says no more, in both modes


def test_a_discarded_verdict_ends_only_its_own_job(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    other = str(uuid.uuid4())
    sink.add(publish(make_span, "shop.import_file", task_id))
    sink.add(publish(make_span, "shop.import_file", other))
    VERDICTS.report(discarded(task_id))
    with pytest.raises(AssertionError) as failure:
        capture.wait(timeout=0.05)
    lines = str(failure.value).splitlines()
    assert "1 of 2 job(s) have not finished" in lines[0]
    assert lines[1].startswith(f"  job 'shop.import_file' (id {other}): never delivered")


def test_a_discard_taken_before_a_job_was_published_under_its_id_is_not_that_job_s(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    """An id used again (an explicit RQ job_id, a Celery task_id): the discard was about the job published
    before it, not the one published after, which is waited for; a discard taken after it ends it."""
    VERDICTS.report(JobVerdict(task_id, "shop.import_file", "discarded", "expired", received_ns=T0 - SECOND))
    sink.add(publish(make_span, "shop.import_file", task_id))  # published at T0, after that discard
    with pytest.raises(AssertionError, match=f"id {task_id}\\): never delivered"):
        capture.wait(timeout=0.05)
    VERDICTS.report(JobVerdict(task_id, "shop.import_file", "discarded", "expired", received_ns=T0 + SECOND))
    capture.wait(timeout=0.05)


def test_a_terminated_attempt_s_spans_need_no_parent(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.import_file", task_id)
    sink.add(sent)
    killed = make_span("run/shop.import_file (killed)", sent)  # never arrives: revoke(terminate=True)
    sink.add(make_span("read file", killed), received=True)  # exported before the kill
    with pytest.raises(AssertionError, match="still running: 'read file' arrived, from attempt 1, whose span has not"):
        capture.wait(timeout=0.05)
    VERDICTS.report(discarded(task_id, "revoked with terminate=True (SIGTERM)"))
    capture.wait(timeout=0.05)


def test_after_an_attempt_rejected_with_requeue_the_redelivered_one_is_waited_for(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.import_file", task_id)
    sink.add(sent)
    VERDICTS.report(requeued(task_id))  # reported before the rejected attempt's span is sent
    rejected = run(make_span, sent, "shop.import_file", task_id, "REJECTED")
    sink.add(rejected, received=True)
    with pytest.raises(AssertionError) as failure:
        capture.wait(timeout=0.05)
    assert str(failure.value).splitlines()[1] == (
        f"  job 'shop.import_file' (id {task_id}): rejected and requeued (Reject(requeue=True): storage not "
        "ready); the redelivered attempt has not arrived"
    )
    sink.add(run(make_span, sent, "shop.import_file", task_id, "SUCCESS"), received=True)
    capture.wait(timeout=0.05)
    job = capture.job("shop.import_file")
    assert (job.outcome, len(job.attempts)) == ("succeeded", 2)


def test_each_requeue_asks_for_one_more_attempt_and_a_discard_after_it_ends_the_job(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.import_file", task_id)
    sink.add(sent)
    for _ in range(2):
        VERDICTS.report(requeued(task_id))
        sink.add(run(make_span, sent, "shop.import_file", task_id, "REJECTED"), received=True)
    with pytest.raises(AssertionError, match="the redelivered attempt has not arrived"):
        capture.wait(timeout=0.05)  # two rejections: a third attempt comes
    VERDICTS.report(discarded(task_id, "expired"))  # the redelivered message expired instead
    capture.wait(timeout=0.05)


def test_without_a_requeue_verdict_a_rejected_attempt_ends_its_job(
    sink: CaptureSink, capture: JobSpans, make_span: MakeSpan, task_id: str
) -> None:
    sent = publish(make_span, "shop.import_file", task_id)
    sink.add(sent)
    sink.add(run(make_span, sent, "shop.import_file", task_id, "REJECTED"), received=True)
    capture.wait(timeout=0.05)  # Reject() without requeue: discarded for good
    assert capture.job("shop.import_file").outcome == "discarded"


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


def test_the_receiver_takes_a_worker_s_verdict(receiver: OTLPReceiver, task_id: str) -> None:
    report = {"job_id": task_id, "job_name": "shop.add", "verdict": "discarded", "reason": "expired"}
    assert _post(receiver.endpoint + VERDICT_PATH, json.dumps(report).encode()) == (200, "{}")
    assert VERDICTS.of(task_id) == [parse_verdict(report)] == [JobVerdict(task_id, "shop.add", "discarded", "expired")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "a job verdict is a JSON object, not list"),
        (b'{"job_id": "x", "job_name": "t", "verdict": "discarded"}', "needs 'reason' as a non-empty string, got None"),
        (b'{"job_id": " ", "job_name": "t", "verdict": "discarded", "reason": "r"}', "needs 'job_id' as a non-empty"),
        (
            b'{"job_id": "x", "job_name": "t", "verdict": "lost", "reason": "r"}',
            "a job verdict is 'discarded' or 'requeued', not 'lost'",
        ),
    ],
)
def test_a_bad_verdict_gets_a_400_naming_the_problem(receiver: OTLPReceiver, body: bytes, reason: str) -> None:
    status, text = _post(receiver.endpoint + VERDICT_PATH, body)
    assert status == 400
    assert text.startswith(f"{VERDICT_PATH}: ")
    assert reason in text


def test_celery_s_revokes_and_requeues_are_reported_in_its_words() -> None:
    pytest.importorskip("celery")
    from celery import Celery
    from celery.app.task import Context
    from celery.exceptions import Reject

    from pytest_jobtrace.celery._lost import requeue_verdict, revoked_verdict

    app = Celery("verdicts", set_as_current=False)

    @app.task(name="shop.import_file", shared=False)
    def import_file() -> None: ...

    request = Context({"id": "t-1", "task": "shop.import_file"})
    assert revoked_verdict(request, terminated=False, signum=None, expired=False)["reason"] == "revoked"
    assert revoked_verdict(request, terminated=False, signum=None, expired=True)["reason"] == "expired"
    assert revoked_verdict(request, terminated=True, signum=15, expired=False) == {
        "job_id": "t-1",
        "job_name": "shop.import_file",
        "verdict": "discarded",
        "reason": "revoked with terminate=True (SIGTERM)",
    }
    assert revoked_verdict(request, terminated=True, signum="odd", expired=False)["reason"].endswith("(odd)")
    assert requeue_verdict("t-1", import_file, Reject("storage not ready", requeue=True), "REJECTED") == {
        "job_id": "t-1",
        "job_name": "shop.import_file",
        "verdict": "requeued",
        "reason": "Reject(requeue=True): storage not ready",
    }
    assert requeue_verdict("t-1", import_file, Reject(requeue=True), "REJECTED")["reason"] == "Reject(requeue=True)"  # type: ignore[index]
    assert requeue_verdict("t-1", import_file, Reject("no", requeue=False), "REJECTED") is None
    assert requeue_verdict("t-1", import_file, 3, "SUCCESS") is None


def test_celery_s_decision_on_a_lost_worker_is_reported_as_celery_takes_it() -> None:
    pytest.importorskip("celery")
    from celery import Celery

    from pytest_jobtrace._live.tracing import report_url
    from pytest_jobtrace.celery._lost import _fate

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
    assert report_url("http://127.0.0.1:4318/v1/traces", LOST_PATH) == "http://127.0.0.1:4318" + LOST_PATH
    assert report_url("http://collector:4318/v1/traces/", VERDICT_PATH) == "http://collector:4318" + VERDICT_PATH
