"""Jobs as one thing: the publish span, the attempts and the jobs they enqueue, across linked traces.

Which spans belong to which job is decided by the adapters' ``recognise`` functions (one per job
system, see ``registry.py``); this module only groups what they recognise.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.values import show_name
from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace._jobs.names import job_name_matches, short_name
from pytest_jobtrace._jobs.protocol import JobAdapter
from pytest_jobtrace._jobs.registry import active_adapter, recognise

Outcome = Literal["succeeded", "failed", "discarded", "pending"]


@dataclass(eq=False)
class JobView:
    """One job as the captured spans tell it."""

    name: str
    system: str
    id: str | None
    queue: str | None
    publish_node: SpanNode | None
    attempt_nodes: list[SpanNode] = field(default_factory=list)
    attempt_infos: list[JobSpanInfo] = field(default_factory=list)
    republish_nodes: list[SpanNode] = field(default_factory=list)
    enqueued: list[JobView] = field(default_factory=list)
    parent: JobView | None = None
    adapter: JobAdapter | None = field(default=None, repr=False)
    """The adapter that recognised the job's spans (its fixture drains it)."""

    @property
    def publish(self) -> ReadableSpan | None:
        """The span where the job was enqueued (None for a job performed directly)."""
        return self.publish_node.span if self.publish_node else None

    @property
    def attempts(self) -> list[ReadableSpan]:
        """The process spans, one per attempt, in order."""
        return [node.span for node in self.attempt_nodes]

    @property
    def outcome(self) -> Outcome:
        if not self.attempt_infos:
            return "pending"
        last = self.attempt_infos[-1].attempt_outcome
        if last is None or last == "retried":
            return "pending"  # a retry is scheduled and has not run yet
        return last

    @property
    def retry_reasons(self) -> list[str]:
        return [info.retry_reason for info in self.attempt_infos if info.retry_reason]

    @property
    def short_name(self) -> str:
        return short_name(self.name)

    @property
    def site(self) -> SpanNode | None:
        """Where the job is matched: its publish span, or its first attempt when it was never enqueued."""
        return self.publish_node or (self.attempt_nodes[0] if self.attempt_nodes else None)

    def went_elsewhere(self) -> str | None:
        """Why a job that was never processed is not in its fixture's queue, as its adapter tells it (say,
        published through another Celery app): None when the fixture has it, or cannot tell."""
        tell = getattr(self.adapter, "elsewhere", None)
        active = active_adapter(self.adapter.name) if self.adapter is not None else None
        if tell is None or active is None or self.id is None or self.attempt_nodes:
            return None
        answer = tell(active, self.id)
        return answer if isinstance(answer, str) else None

    def describe_attempts(self) -> str:
        states = [info.attempt_outcome or "?" for info in self.attempt_infos]
        return ", ".join(f"attempt {i} {state}" for i, state in enumerate(states, 1))

    def __repr__(self) -> str:
        return f"<JobView {self.name!r} id={self.id} {len(self.attempt_nodes)} attempts, {self.outcome}>"


name_matches = job_name_matches


class JobIndex:
    """Every job in a forest, with the lookup the matchers need (site span -> job)."""

    def __init__(self, forest: SpanForest) -> None:
        self.forest = forest
        self.info: dict[int, JobSpanInfo] = {}
        self.adapter_of: dict[int, JobAdapter] = {}
        for node in forest.nodes:
            found = recognise(node.span)
            if found is not None:
                self.adapter_of[node.index], self.info[node.index] = found
        self._job_of_send: dict[int, JobView] = {}  # send span -> the job it enqueued or re-published
        self._attempt_owner: dict[int, JobView] = {}  # process span -> its job
        self.jobs = self._group()
        self.by_site = {job.site.index: job for job in self.jobs if job.site is not None}
        self._link_enqueued()

    def _group(self) -> list[JobView]:
        """Jobs told apart by execution: a send span starts a job, an attempt joins the job whose send it
        descends from or links to; the job id (with the name) decides only where ancestry says nothing."""
        ordered: list[JobView] = []
        for node in sorted(self.forest.nodes, key=_start):
            info = self.info.get(node.index)
            if info is None:
                continue
            job = self._republished(node, info) if info.role == "send" else self._attempted(node, info, ordered)
            if job is None:
                job = JobView(info.job_name, info.system, info.job_id, info.queue, None)
                job.adapter = self.adapter_of[node.index]
                ordered.append(job)
            owner = self._job_of_send if info.role == "send" else self._attempt_owner
            owner[node.index] = job
            _add_span(job, node, info)
        for job in ordered:
            _sort_attempts(job)
        return ordered

    def _republished(self, node: SpanNode, info: JobSpanInfo) -> JobView | None:
        """The job a send span re-publishes: one sent from an attempt of the same job that is being retried
        (Celery workers and RQ re-publish a retry from inside the failed attempt), or one sent under the
        job's own send (RQ re-enqueues a dependent when its dependency finished). Any other send, even
        with the same id (``Task.replace``, two enqueues with one ``task_id``), starts a job of its own."""
        attempt = self._nearest(node, info.system)
        if attempt is None:
            return None
        sent = self._job_of_send.get(attempt.index)
        if sent is not None:  # a send under the job's own send (RQ releasing a dependent) is the same job
            return sent if _same_job(sent, info) else None
        attempt_info = self.info[attempt.index]
        job = self._attempt_owner.get(attempt.index)
        if job is None or not _same_job(job, info) or attempt_info.attempt_outcome not in ("retried", None):
            return None
        return job

    def _attempted(self, node: SpanNode, info: JobSpanInfo, ordered: list[JobView]) -> JobView | None:
        """The job an attempt belongs to: the one whose send it descends from or links to, else (no
        ancestry: eager runs, detached traces) the first job with its id and name that may still run."""
        job = self._sent_by(node, info)
        if job is None:
            open_jobs = (j for j in ordered if _same_job(j, info) and info.job_id is not None and _may_run(j))
            job = next(open_jobs, None)
        return job

    def _sent_by(self, node: SpanNode, info: JobSpanInfo) -> JobView | None:
        nearest = self._nearest(node, info.system)
        sends = [nearest] if nearest is not None else []
        sends += [target for target in node.links if target.index in self._job_of_send]
        for send in sends:
            job = self._job_of_send.get(send.index)
            if job is not None and _same_job(job, info):
                return job
        return None

    def _nearest(self, node: SpanNode, system: str) -> SpanNode | None:
        """The closest ancestor recognised as a span of ``system``'s jobs."""
        current = node.parent
        while current is not None:
            found = self.info.get(current.index)
            if found is not None and found.system == system:
                return current
            current = current.parent
        return None

    def _link_enqueued(self) -> None:
        owner = {node.index: job for job in self.jobs for node in job.attempt_nodes}
        for job in self.jobs:
            parent = _enclosing_job(job.publish_node, owner) if job.publish_node else None
            if parent is not None and parent is not job:
                job.parent = parent
                parent.enqueued.append(job)

    @functools.cached_property
    def attempt_of(self) -> dict[int, tuple[JobView, int]]:
        """Each attempt span's job and 1-based attempt number."""
        return {node.index: (job, n) for job in self.jobs for n, node in enumerate(job.attempt_nodes, 1)}

    def reused_by(self, job: JobView) -> JobView | None:
        """A later job enqueued under the same id and name (RQ keeps one job per id: the later enqueue
        overwrites the earlier one, which then never runs), or None."""
        later = self.jobs[self.jobs.index(job) + 1 :]
        return next(
            (j for j in later if j.id is not None and (j.system, j.id, j.name) == (job.system, job.id, job.name)), None
        )

    def job_at(self, node: SpanNode) -> JobView | None:
        return self.by_site.get(node.index)

    @functools.cached_property
    def hidden(self) -> frozenset[int]:
        """Spans that the folded rendering shows as part of a job line rather than on their own."""
        nodes = {n.index for job in self.jobs for n in (*job.attempt_nodes, *job.republish_nodes)}
        return frozenset(nodes - set(self.by_site))

    def __iter__(self) -> Iterator[JobView]:
        return iter(self.jobs)


def job_index(forest: SpanForest) -> JobIndex:
    """The forest's jobs, recognised once per forest."""
    return forest.cached("jobs", JobIndex)


def _start(node: SpanNode) -> tuple[int, int]:
    return (node.span.start_time or 0, node.index)


def _same_job(job: JobView, info: JobSpanInfo) -> bool:
    """A span may belong to ``job``: same system, id and name (a different name under one id is another
    job, as with Celery's ``Task.replace``)."""
    return (job.system, job.id, job.name) == (info.system, info.job_id, info.job_name)


def _may_run(job: JobView) -> bool:
    """The job has not ended: never attempted, or its last attempt is being retried (or still running)."""
    return not job.attempt_infos or job.attempt_infos[-1].attempt_outcome in ("retried", None)


def _add_span(job: JobView, node: SpanNode, info: JobSpanInfo) -> None:
    if info.role == "send":
        if job.publish_node is None:
            job.publish_node = node
        else:
            job.republish_nodes.append(node)  # a retry that re-publishes (Celery workers do)
        return
    job.attempt_nodes.append(node)
    job.attempt_infos.append(info)


def _sort_attempts(job: JobView) -> None:
    pairs = sorted(
        zip(job.attempt_nodes, job.attempt_infos),
        key=lambda pair: (pair[1].attempt or 0, pair[0].span.start_time or 0),
    )
    job.attempt_nodes = [node for node, _ in pairs]
    job.attempt_infos = [info for _, info in pairs]


def _enclosing_job(node: SpanNode, owner: dict[int, JobView]) -> JobView | None:
    current = node.parent
    while current is not None:
        job = owner.get(current.index)
        if job is not None:
            return job
        current = current.parent
    return None


def describe_jobs(jobs: Sequence[JobView]) -> str:
    return ", ".join(f"{job.name!r} ({job.outcome})" for job in jobs) or "none"


def job_label(name: object) -> str:
    """``job 'ProcessOrderJob'``: a job expectation as messages show it, whether named by a string, a
    pattern, the job's class or function, or a Celery task object."""
    return f"job {show_name(written_job_name(name))}"


def written_job_name(name: object) -> object:
    """A job expectation's name as text: a class, function or task object gives its name."""
    if isinstance(name, (str, re.Pattern)):
        return name
    task_name = getattr(name, "name", None)
    if isinstance(task_name, str) and not isinstance(name, type):
        return task_name
    qualname = getattr(name, "__qualname__", None)
    if isinstance(qualname, str) and hasattr(name, "__module__"):
        return qualname.rpartition("<locals>.")[2]
    return name


def folded_children(index: JobIndex, node: SpanNode) -> list[SpanNode]:
    """What shows under a node when jobs are folded: a job's user spans from all its attempts."""
    job = index.job_at(node)
    sources = [node] if job is None else [node, *job.attempt_nodes, *job.republish_nodes]
    # A job performed directly has no send span: its site is its (only) attempt, listed once.
    sources = list({source.index: source for source in sources}.values())
    hidden = index.hidden
    kids: list[SpanNode] = []
    for source in sources:
        # Hidden children (attempts, re-publishes) are shown through their own job's line.
        kids.extend(child for child in source.children if child.index not in hidden)
    return sorted(kids, key=_start)
