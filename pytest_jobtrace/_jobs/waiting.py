"""``job_spans.wait()``: until every job published in the test has ended and none of its spans is open.

Jobs come from the job model (``views.py``), so any adapter's jobs are waited for alike: a job has ended
when its last attempt succeeded, failed for good or was discarded. Spans received from workers end
before they are sent, so "still open" there means a span whose parent in the same trace has not
arrived; in this process it means a span started and not ended (other than the ones the caller is in).
The wait wakes on each span the capture takes, and always ends: on timeout it fails saying, job by job,
what has not arrived. A job whose attempt died with its worker process and was not redelivered (``lost.py``)
fails it at once: waiting cannot bring that attempt back. What a worker reports of a job that no span shows
(``lost.py``'s verdicts) counts too: a job it discarded unrun is not waited for, and after an attempt it
rejected with requeue, the redelivered attempt is.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._jobs.lost import LOSSES, VERDICTS, JobVerdict, WorkerLoss
from pytest_jobtrace._jobs.registry import active_adapter
from pytest_jobtrace._jobs.views import JobView, job_index

SpanKey = tuple[int, int]
_REPORT_POLL = 0.25
"""Seconds between looks at the reported worker losses, which arrive beside the spans, not as spans."""

# Checks the wait makes on each wake-up (live workers: "did the worker die?"); one returning text fails the
# wait at once with it, instead of after the timeout.
_checks: list[Callable[[], str | None]] = []
CHECK_SECONDS = 0.2  # how often the checks run while nothing arrives
GATHER_AFTER = 0.001
"""Seconds a reading of the capture may take before the wait lets spans gather between readings."""


def add_check(check: Callable[[], str | None]) -> None:
    _checks.append(check)


def remove_check(check: Callable[[], str | None]) -> None:
    if check in _checks:
        _checks.remove(check)


def wait_for_jobs(sink: CaptureSink, forest: Callable[[], SpanForest], timeout: float) -> None:
    """Return once nothing is missing; fail after ``timeout`` seconds listing what still is."""
    __tracebackhide__ = True
    if not timeout > 0:
        raise ValueError(f"wait(timeout={timeout!r}): the timeout must be a positive number of seconds")
    started = time.monotonic()
    deadline = started + timeout
    woken = False
    while True:
        version = sink.snapshot()[0]
        began = time.monotonic()
        state = WaitState(sink, forest())
        cost = time.monotonic() - began
        at_once = state.queued_here() or state.lost_message()
        if at_once:
            raise AssertionError(at_once)
        if state.done():
            return
        for check in list(_checks):
            problem = check()
            if problem:
                raise AssertionError(f"job_spans.wait(): {problem}\nwhen it stopped, {state.missing()}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(state.message(timeout, time.monotonic() - started))
        read_at = time.monotonic()
        sink.wait_for_change(version, min(remaining, CHECK_SECONDS if _checks else _REPORT_POLL))
        # Spans arriving one by one (a thousand jobs) would have the capture read again for each: once a
        # reading is not cheap, the next starts no sooner than it took after the last one ended, so reading
        # takes at most half the time. A cheap one (a few jobs) is read again at once, and so is an
        # expensive one after the first wake or a quiet spell as long as a reading: that is what the test
        # waits on (a big capture and one job: the job's spans are read as they arrive).
        if cost >= GATHER_AFTER and woken:
            rest = cost - (time.monotonic() - read_at)
            if rest > 0:
                time.sleep(min(rest, max(0.0, deadline - time.monotonic())))
        woken = True


def discard_of(job: JobView, verdicts: Sequence[JobVerdict]) -> JobVerdict | None:
    """The verdict among ``verdicts`` (the job id's) that discarded ``job``: one taken after it was published."""
    published = job.publish.start_time if job.publish is not None else None
    return next((verdict for verdict in verdicts if verdict.discards(published)), None)


class WaitState:
    """What the capture still lacks, read once from one forest."""

    def __init__(self, sink: CaptureSink, forest: SpanForest) -> None:
        self.index = job_index(forest)
        open_spans = sink.open_spans()
        present: set[SpanKey] = {_key(node.span) for node in forest.nodes}
        present.update(_key(span) for span in open_spans)
        orphans = [node for node in forest.nodes if _key(node.span) in sink.received and _orphan(node, present)]
        self.losses = {job.id: LOSSES.of(job.id) for job in self.index.jobs if job.id is not None}
        self.verdicts = {job.id: VERDICTS.of(job.id) for job in self.index.jobs if job.id is not None}
        # Spans a dead worker process exported before it died: their parent died with it, never to arrive.
        self.lost_orphans = [
            node for job in self.index.jobs if self._lost_an_attempt(job) for node in _take_orphans(job, orphans)
        ]
        self.orphans = orphans
        caller = _callers_spans(open_spans)
        self.open_names = [span.name for span in open_spans if _key(span) not in caller]
        self.unfinished = [job for job in self.index.jobs if self._waits_for(job)]

    def done(self) -> bool:
        return not (self.unfinished or self.orphans or self.open_names)

    def queued_here(self) -> str | None:
        """Why waiting cannot help: a job waits in an in-process fixture's queue, which only this thread drains."""
        for job in self.unfinished:
            active = active_adapter(job.adapter.name) if job.adapter is not None else None
            if active is not None and any(item.name == job.name for item in active.pending):
                assert job.adapter is not None
                fixture = job.adapter.fixture_name
                return (
                    f"job_spans.wait(): {_job(job)} is queued in {fixture}, which runs jobs in this process: "
                    f"wait() waits for workers in other processes; call {fixture}.drain() to run it"
                )
        return None

    def _waits_for(self, job: JobView) -> bool:
        """Whether more of ``job`` is to come: an attempt of a pending job, or the one after an attempt its
        worker rejected with requeue; nothing of a job its worker discarded."""
        if self._discarded(job):
            return False
        requeued = self._requeued(job)
        if requeued and len(job.attempt_infos) <= len(requeued):
            return True
        return job.outcome == "pending"

    def _discarded(self, job: JobView) -> JobVerdict | None:
        return discard_of(job, self.verdicts.get(job.id or "", []))

    def _requeued(self, job: JobView) -> list[JobVerdict]:
        return [v for v in self.verdicts.get(job.id or "", []) if v.verdict == "requeued"]

    def _lost_an_attempt(self, job: JobView) -> bool:
        """Whether an attempt of ``job`` ended with its process (lost, or killed by a revoke), so that the spans
        it exported before have no parent to wait for."""
        if self.losses.get(job.id or "") or self._discarded(job):
            return True
        return any(info.worker_lost for info in job.attempt_infos)

    def lost(self, job: JobView) -> WorkerLoss | None:
        """The loss that ended ``job``: an attempt that died with its worker, not redelivered, none after it."""
        for loss in self.losses.get(job.id or "", []):
            later = any((info.attempt or 1) >= loss.attempt for info in job.attempt_infos)
            if not loss.redelivered and not later:
                return loss
        return None

    def lost_message(self) -> str | None:
        """Why waiting cannot help: a job's attempt died with its worker and the job will not run again."""
        lines = [f"  {_job(job)}: {loss.describe()}" for job in self.unfinished if (loss := self.lost(job))]
        if not lines:
            return None
        return (
            "job_spans.wait(): job(s) lost: their worker process died running them, and they were not "
            "redelivered; no span of theirs will come:\n" + "\n".join(lines)
        )

    def message(self, timeout: float, waited: float) -> str:
        return f"job_spans.wait(timeout={timeout:g}) gave up after {waited:.2f}s: {self.missing()}"

    def missing(self) -> str:
        """``2 of 3 job(s) have not finished; missing:`` and a line for each thing missing."""
        orphans = list(self.orphans)
        lines = [f"  {_job(job)}: {self._job_missing(job, orphans)}" for job in self.unfinished]
        for node in orphans:
            parent = _parent_key(node.span)
            assert parent is not None
            lines.append(
                f"  span {node.name!r} arrived, but not its parent span {parent[1]:016x} (trace {parent[0]:032x})"
            )
        if self.open_names:
            shown = ", ".join(repr(name) for name in self.open_names[:10])
            lines.append(f"  span(s) started in this test and still open: {shown}")
        total = len(self.index.jobs)
        jobs = (
            f"{len(self.unfinished)} of {total} job(s) have not finished" if self.unfinished else "every job finished"
        )
        return f"{jobs}; missing:\n" + "\n".join(lines)

    def _job_missing(self, job: JobView, orphans: list[SpanNode]) -> str:
        mine = _take_orphans(job, orphans)
        if mine:
            shown = ", ".join(repr(node.name) for node in mine[:5])
            attempt = f"attempt {len(job.attempt_nodes) + 1}"
            return f"still running: {shown} arrived, from {attempt}, whose span has not"
        requeued = self._requeued(job)
        if requeued and len(job.attempt_infos) <= len(requeued):
            return f"{requeued[-1].describe()}; the redelivered attempt has not arrived"
        redelivered = [loss for loss in self.losses.get(job.id or "", []) if loss.redelivered]
        if redelivered:
            return f"lost and redelivered: {redelivered[-1].describe()}; no attempt has arrived since"
        if not job.attempt_infos:
            published = _at(job.publish.start_time if job.publish is not None else None)
            return f"never delivered: published{published}, no attempt has arrived"
        last = job.attempt_infos[-1]
        number = len(job.attempt_infos)
        if last.attempt_outcome == "retried":
            reason = f" ({last.retry_reason})" if last.retry_reason else ""
            due = f"due{_at(last.retry_due)}" if last.retry_due else "not arrived"
            return f"retry pending: attempt {number} was retried{reason}, attempt {number + 1} {due}"
        return f"attempt {number} ended with no outcome its adapter recognises ({job.describe_attempts()})"


def _orphan(node: SpanNode, present: set[SpanKey]) -> bool:
    parent = _parent_key(node.span)
    return parent is not None and parent not in present


def _take_orphans(job: JobView, orphans: list[SpanNode]) -> list[SpanNode]:
    """Spans in the job's trace whose parent is missing: its attempt is running (or its span is lost)."""
    traces = {node.span.context.trace_id for node in (job.publish_node, *job.republish_nodes) if node is not None}
    traces.discard(0)
    mine = [node for node in orphans if _key(node.span)[0] in traces]
    for node in mine:
        orphans.remove(node)
    return mine


def _job(job: JobView) -> str:
    return f"job {job.name!r}" + (f" (id {job.id})" if job.id else "")


def _at(ns: int | None) -> str:
    if not ns:
        return ""
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc)
    ago = time.time() - ns / 1e9
    relative = f"{ago:.1f}s ago" if ago >= 0 else f"in {-ago:.1f}s"
    return f" at {moment.strftime('%H:%M:%S.%f')[:-3]} UTC ({relative})"


def _key(span: ReadableSpan) -> SpanKey:
    context = span.context
    return (context.trace_id, context.span_id) if context is not None else (0, 0)


def _parent_key(span: ReadableSpan) -> SpanKey | None:
    parent = span.parent
    return (parent.trace_id, parent.span_id) if parent is not None and parent.span_id else None


def _callers_spans(open_spans: Sequence[ReadableSpan]) -> set[SpanKey]:
    """The caller's current span and its open ancestors: wait() inside ``with tracer.start_as_current_span``
    must not wait for that span to end."""
    by_key = {_key(span): span for span in open_spans}
    context = trace.get_current_span().get_span_context()
    key: SpanKey | None = (context.trace_id, context.span_id)
    found: set[SpanKey] = set()
    while key is not None and key in by_key and key not in found:
        found.add(key)
        key = _parent_key(by_key[key])
    return found
