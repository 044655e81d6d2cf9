"""A forked work horse that dies mid-job: RQ's parent fails (or retries) the job, and the instrumentation
writes the attempt's span from the parent, since the horse's own span died with it.

The job kills its own horse (SIGKILL, or os._exit), so nothing depends on timing; a real forking
``Worker`` on a real Redis (a leased database) runs it, in a subprocess that writes its spans as OTLP JSON.
A job stopped on request has its horse killed by the parent, through RQ's own command handler
(``handle_stop_job_command``, called by the worker once the horse says it started).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rq")

import rq_fidelity

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._jobs.jobspans import JobSpans
from pytest_jobtrace._live.decode import decode_request

DOOMED = """
import os
import signal
import time

from opentelemetry import trace


def die(how):
    with trace.get_tracer("doomed").start_as_current_span("charge card"):
        pass
    trace.get_tracer_provider().force_flush()  # this span leaves before the horse dies; its parent will not
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "stop":
        with open("started", "w") as marker:
            marker.write(str(os.getpid()))
        time.sleep(60)  # stopped in here
    os._exit(3)
"""

WORKER = """
import json
import os
import sys
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from rq import Queue, Retry, Worker as RQWorker

from pytest_jobtrace._report.otlp import otlp_json
from pytest_jobtrace.rq._connection import open_connection
from pytest_jobtrace.rq.instrumentation import RQInstrumentor


class Worker(RQWorker):
    def subscribe(self):  # no command channel (see tests/test_rq_instrumentation.py's forking worker)
        pass

    def wait_for_horse(self):
        if sys.argv[3] == "stop" and not getattr(self, "stop_sent", False):  # as the command channel would
            self.stop_sent = True
            deadline = time.monotonic() + 30
            while not os.path.exists("started") and time.monotonic() < deadline:
                time.sleep(0.01)
            from rq.command import handle_stop_job_command

            handle_stop_job_command(self, {"job_id": self.get_current_job_id()})
        return super().wait_for_horse()


class FileExporter(SpanExporter):
    def export(self, spans):
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps(otlp_json(spans)) + "\\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(FileExporter(), schedule_delay_millis=60_000))
trace.set_tracer_provider(provider)
RQInstrumentor().instrument()
lease = open_connection(sys.argv[1])
try:
    queue = Queue(connection=lease.connection)
    with trace.get_tracer("test").start_as_current_span("POST /pay"):
        retry = Retry(max=int(sys.argv[4])) if int(sys.argv[4]) else None
        queue.enqueue("doomed.die", sys.argv[3], retry=retry)
    Worker([queue], connection=lease.connection).work(burst=True)
finally:
    lease.close()
    provider.shutdown()
"""


def run_worker(tmp_path: Path, how: str, retries: int) -> JobSpans:
    url = rq_fidelity.require_redis()
    (tmp_path / "doomed.py").write_text(DOOMED)
    script, exported = tmp_path / "worker.py", tmp_path / "spans.jsonl"
    script.write_text(WORKER)
    done = subprocess.run(
        [sys.executable, str(script), url, str(exported), how, str(retries)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    said = "stopped by user" if how == "stop" else "Work-horse terminated unexpectedly"
    assert said in done.stdout + done.stderr  # RQ's own warning: the horse did die
    sink = CaptureSink("horse")
    for line in exported.read_text().splitlines():
        for span in decode_request(line.encode(), "application/json"):
            sink.add(span, received=True)
    return JobSpans(sink)


def attrs(span: object) -> dict[str, object]:
    return dict(getattr(span, "attributes", None) or {})


def test_a_killed_horse_s_attempt_is_failed_by_the_parent_with_its_span(tmp_path: Path) -> None:
    spans = run_worker(tmp_path, "kill", retries=0)
    spans.wait(timeout=5)  # the orphaned 'charge card' (its parent died with the horse) is not waited for
    job = spans.job("doomed.die")
    assert job.outcome == "failed"
    (attempt,) = job.attempts
    assert attempt.status.description == "Work-horse terminated unexpectedly: signal 9 (SIGKILL)"
    assert attrs(attempt)["error.type"] == "SIGKILL"
    assert attrs(attempt)["rq.job.status"] == "failed"
    assert isinstance(attrs(attempt)["rq.work_horse.pid"], int)
    (info,) = job.attempt_infos
    assert info.worker_lost == f"work horse pid {attrs(attempt)['rq.work_horse.pid']} terminated: signal 9 (SIGKILL)"
    assert attempt.start_time is not None
    assert attempt.end_time is not None
    assert attempt.start_time < attempt.end_time
    (card,) = spans.find("charge card")
    assert card.parent is not None
    assert card.parent.span_id != attempt.context.span_id  # the horse's own process span never arrived
    spans.assert_span_tree("""
    POST /pay
    └── send default
        └── process default [consumer, error "Work-horse terminated unexpectedly: signal 9 (SIGKILL)"]
    charge card
    """)


def test_a_horse_that_died_is_retried_by_the_parent_and_the_retry_reads_why(tmp_path: Path) -> None:
    spans = run_worker(tmp_path, "exit", retries=1)
    spans.wait(timeout=5)
    job = spans.job("doomed.die")
    assert [info.attempt_outcome for info in job.attempt_infos] == ["retried", "failed"]
    assert [info.attempt for info in job.attempt_infos] == [1, 2]
    assert job.retry_reasons == ["exit status 3: Work-horse terminated unexpectedly: exit status 3"]
    assert [attrs(a)["error.type"] for a in job.attempts] == ["exit status 3", "exit status 3"]


def test_a_job_stopped_on_request_gets_its_attempt_s_span_from_the_parent(tmp_path: Path) -> None:
    spans = run_worker(tmp_path, "stop", retries=1)  # a stopped job is not retried
    spans.wait(timeout=5)
    job = spans.job("doomed.die")
    assert job.outcome == "failed"
    (attempt,) = job.attempts
    pid = int((tmp_path / "started").read_text())
    assert attempt.status.description == "Job stopped by user, work-horse terminated."
    assert (attrs(attempt)["rq.job.status"], attrs(attempt)["rq.work_horse.pid"]) == ("stopped", pid)
    assert attrs(attempt)["error.type"] == "SIGKILL"  # RQ kills a stopped horse with SIGKILL
    (info,) = job.attempt_infos
    assert info.worker_lost == f"work horse pid {pid} terminated: signal 9 (SIGKILL)"
    spans.assert_span_tree("""
    POST /pay
    └── send default
        └── process default [consumer, error "Job stopped by user, work-horse terminated."]
    charge card
    """)


def test_without_the_parent_s_span_wait_would_not_end(tmp_path: Path) -> None:
    """What the parent's span fixes: drop it, and the job looks sent and never run, its span lost."""
    spans = run_worker(tmp_path, "kill", retries=0)
    sink = CaptureSink("without")
    for span in spans.spans:
        if "rq.work_horse.pid" not in attrs(span):
            sink.add(span, received=True)
    with pytest.raises(
        AssertionError, match=r"still running: 'charge card' arrived, from attempt 1, whose span has not"
    ):
        JobSpans(sink).wait(timeout=0.05)


_ = json
