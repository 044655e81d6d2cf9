"""``job()``: an expected node that matches a whole job at its enqueue site."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_jobtrace._core.diagnose import where
from pytest_jobtrace._core.expect import ExceptionSpec, Expected, attributes_diff, exception_difference, show_attrs
from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.notation import Groups, NotationError, Reader, looks_like_regex, quote, write_value
from pytest_jobtrace._core.parse import check_count, check_flag, exception_spec, expected_list
from pytest_jobtrace._core.texttree import LineKind, note_exception
from pytest_jobtrace._core.values import show, show_name, value_matches
from pytest_jobtrace._jobs.registry import active_adapter
from pytest_jobtrace._jobs.views import (
    JobIndex,
    JobView,
    describe_jobs,
    folded_children,
    job_index,
    job_label,
    name_matches,
    written_job_name,
)

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

OUTCOMES = ("succeeded", "failed", "discarded", "pending")
JOB_KEYS = ("job", "queue", "attempts", "outcome", "attributes", "exception", "linked", "children", "count", "exact")


@dataclass(frozen=True, eq=False)
class ExpectedJob(Expected):
    """An expected job; build it with :func:`pytest_jobtrace.job`."""

    name: object
    queue: object = None
    attempts: int | None = None
    outcome: str | None = None
    attributes: Mapping[str, object] | None = None
    exception: ExceptionSpec | None = None
    linked: bool | None = None
    children: tuple[Expected, ...] = ()
    count: int | None = None
    exact: bool | None = None
    noun = "job"

    def label(self) -> str:
        return job_label(self.name)

    def describe(self) -> str:
        return self.render_line()

    def absent(self, forest: SpanForest) -> str | None:
        jobs = job_index(forest).jobs
        if any(name_matches(self.name, j.name) for j in jobs):
            return None
        message = f"no job {show_name(self.name)} was enqueued; jobs captured: {describe_jobs(jobs)}"
        return message + "".join(f"; {hint}" for hint in _not_a_job(self.name, jobs))

    def covered_roots(self, forest: SpanForest) -> set[int]:
        jobs = [j for j in job_index(forest).jobs if name_matches(self.name, j.name)]
        nodes = [n for j in jobs for n in (*j.attempt_nodes, *j.republish_nodes) if n is not j.site]
        return {n.index for n in nodes if n.parent is None}

    def whereabouts(self, forest: SpanForest) -> str | None:
        index = job_index(forest)
        sites = [j.site for j in index.jobs if name_matches(self.name, j.name) and j.site]
        if not sites:
            return None
        places = " and ".join(f"under {where(s.parent)}" if s.parent else "as a trace root" for s in sites[:3])
        return f"{self.label()} was enqueued {places}" + _last_of_its_kind(index, sites[0])

    def missing_hint(self, parent: SpanNode) -> str | None:
        found = job_index(parent.forest).attempt_of.get(parent.index)
        if found is None or found[0].outcome != "failed":
            return None
        # A link callback (Celery's link=, RQ's dependents) is enqueued only once its job succeeded.
        return f"job {found[0].short_name!r} failed, so its link callbacks did not run"

    def siblings(self, actual: Sequence[SpanNode]) -> str:
        """The jobs enqueued where this one was expected (not the spans there)."""
        if not actual:
            return "it has no children"
        index = job_index(actual[0].forest)
        jobs = [job for job in (index.job_at(node) for node in actual) if job is not None]
        if not jobs:
            return f"no job was enqueued there (its children are {', '.join(repr(n.name) for n in actual[:6])})"
        shown = ", ".join(repr(job.short_name) for job in jobs[:6])
        more = f" and {len(jobs) - 6} more" if len(jobs) > 6 else ""
        return f"the job{'s' * (len(jobs) > 1)} enqueued there: {shown}{more}"

    def same_name(self, node: SpanNode) -> bool:
        job = job_index(node.forest).job_at(node)
        return job is not None and name_matches(self.name, job.name)

    def child_nodes(self, node: SpanNode) -> Sequence[SpanNode]:
        # The spans every attempt made, in start order: what render("jobs") shows under the job's line.
        return folded_children(job_index(node.forest), node) if self._last_attempt(node) else ()

    def children_owner(self, node: SpanNode) -> SpanNode:
        return self._last_attempt(node) or node

    def _last_attempt(self, node: SpanNode) -> SpanNode | None:
        job = job_index(node.forest).job_at(node)
        return job.attempt_nodes[-1] if job is not None and job.attempt_nodes else None

    def local_mismatch(self, node: SpanNode) -> str | None:
        job = job_index(node.forest).job_at(node)
        if job is None:
            return f"expected {self.label()}, but {node.name!r} is not where a job was enqueued"
        if not name_matches(self.name, job.name):
            return f"expected {self.label()}, got job {job.name!r}"
        prefix = f"job {job.short_name!r}: "
        for check in (self._queue_diff, self._processed_diff, self._attempts_diff, self._outcome_diff):
            message = check(job)
            if message is not None:
                return message if message.startswith("job ") else prefix + message
        return self._linked_diff(job, prefix) or self._attributes_diff(job, prefix) or self._exception_diff(job, prefix)

    def _queue_diff(self, job: JobView) -> str | None:
        if self.queue is None or value_matches(self.queue, job.queue):
            return None
        return f"expected queue {show_name(self.queue)}, got {job.queue!r}"

    def _processed_diff(self, job: JobView) -> str | None:
        if job.attempt_nodes or self.outcome == "pending" or self.attempts == 0:
            return None
        site = job.publish_node
        under = site.parent.name if site is not None and site.parent is not None else None
        where = f" under {under!r}" if under else ""
        reused = job_index(site.forest).reused_by(job) if site is not None else None
        why = f": a later enqueue reused its id {job.id!r}" if reused is not None else ""
        return f"job {job.short_name!r} was enqueued{where} but never processed{why}"

    def _attempts_diff(self, job: JobView) -> str | None:
        found = len(job.attempt_nodes)
        if self.attempts is None or found == self.attempts:
            return None
        detail = f" ({job.describe_attempts()})" if found else ""
        return f"expected {_plural(self.attempts, 'attempt')}, found {found}{detail}"

    def _outcome_diff(self, job: JobView) -> str | None:
        if self.outcome is None or job.outcome == self.outcome:
            return None
        detail = f" ({job.describe_attempts()})" if job.attempt_nodes else ""
        return f"expected outcome {self.outcome!r}, got {job.outcome!r}{detail}"

    def _linked_diff(self, job: JobView, prefix: str) -> str | None:
        if self.linked is None:
            return None
        # With no enqueue or no attempt there is no relation to check: that is a mismatch, not a pass.
        asked = f"linked={self.linked}"
        if job.publish_node is None:
            return f"{prefix}{asked} needs an enqueue to relate to, but the job was performed without one"
        if not job.attempt_nodes:
            return f"{prefix}{asked} needs an attempt to check, but the job was never processed"
        wanted: Relation = "linked" if self.linked else "child"
        for number, attempt in enumerate(job.attempt_nodes, 1):
            relation = _relation(attempt, job)
            if relation != wanted:
                return prefix + _relation_message(wanted, number, relation, attempt)
        return None

    def _attributes_diff(self, job: JobView, prefix: str) -> str | None:
        if not self.attributes:
            return None
        node = job.attempt_nodes[-1] if job.attempt_nodes else job.site
        assert node is not None
        message = attributes_diff(self.attributes, node.span.attributes or {})
        return None if message is None else f"{prefix}{message} (on {node.name!r})"

    def _exception_diff(self, job: JobView, prefix: str) -> str | None:
        if self.exception is None:
            return None
        if not job.attempt_nodes:
            return f"{prefix}expected {self.exception.describe()}, but the job was never processed"
        node = job.attempt_nodes[-1]
        message = exception_difference(self.exception, node)
        return None if message is None else f"{prefix}{message} (on {node.name!r})"

    def render_line(self) -> str:
        """``job NAME [queue "q", attempts 2, outcome "failed", exception "T" "m", linked, xN, exact] {attributes}``:
        it parses back."""
        notes = [f"queue {_value(self.queue)}"] if self.queue is not None else []
        notes += [] if self.attempts is None else [f"attempts {self.attempts}"]
        notes += [] if self.outcome is None else [f"outcome {quote(self.outcome)}"]
        notes += [] if self.exception is None else [self.exception.note()]
        notes += [] if self.linked is None else ["linked" if self.linked else "not linked"]
        notes += [] if self.count is None else [f"x{self.count}"]
        notes += ["exact"] if self.exact else []
        line = f"job {_job_name(self.name)}" + (f" [{', '.join(notes)}]" if notes else "")
        if self.attributes:
            line += f" {show_attrs(self.attributes)}"
        return line


def job_line(
    job: JobView, attributes: Mapping[str, object] | None = None, exception: ExceptionSpec | None = None
) -> str:
    """A job folded to one line, as the expectation that matches it: ``job NAME [queue "q", attempts 2,
    outcome "succeeded"]``; the snapshot form adds its last attempt's ``exception`` and ``attributes``."""
    expected = ExpectedJob(
        name=job.name,
        queue=job.queue or None,
        attempts=len(job.attempt_nodes),
        outcome=job.outcome,
        attributes=attributes or None,
        exception=exception,
    )
    return expected.render_line()


def _value(value: object) -> str:
    return write_value(value) if isinstance(value, (str, re.Pattern)) else show(value)


def _job_name(name: object) -> str:
    name = written_job_name(name)  # a job's class or task object is written as its name
    if isinstance(name, str) and _BARE_JOB.fullmatch(name):
        return name
    return _value(name)


_BARE_JOB = re.compile(r"[A-Za-z_][\w.:]*")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


Relation = Literal["child", "linked", "detached"]


def _relation(attempt: SpanNode, job: JobView) -> Relation:
    """How an attempt hangs off its enqueue: below it in the same trace, in a trace linked to it, or neither.

    A retry may be re-published (Celery workers do), so a link to any of the job's publish spans counts.
    """
    publish = job.publish_node
    if publish is not None and any(node is publish for node in attempt.path()):
        return "child"
    sends = {node.index for node in (publish, *job.republish_nodes) if node is not None}
    return "linked" if any(target.index in sends for target in attempt.links) else "detached"


_RELATIONS = {
    "child": "a child of {parent} in the enqueuing trace",
    "linked": "in a new trace linked to the enqueue",
    "detached": "in a new trace with no link to the enqueue",
}


def _relation_message(wanted: Relation, number: int, found: Relation, attempt: SpanNode) -> str:
    parent = repr(attempt.parent.name) if attempt.parent else "nothing"
    got = _RELATIONS[found].format(parent=parent)
    if wanted == "linked":
        return f"expected attempt {number} in its own trace linked to the enqueue (linked=True), but it is {got}"
    return f"expected attempt {number} to continue the enqueuing trace (linked=False), but it is {got}"


def job(
    name: object,
    *,
    queue: object = None,
    attempts: int | None = None,
    outcome: str | None = None,
    attributes: Mapping[str, object] | None = None,
    exception: object = None,
    linked: bool | None = None,
    children: object = (),
    count: int | None = None,
    exact: bool | None = None,
) -> ExpectedJob:
    """An expected job, matched at its enqueue site (its publish span) with all its attempts.

    ``name`` matches the full job name, its last dotted component, or a pattern. ``children`` are
    matched against the spans every attempt made, in start order (what ``render("jobs")`` shows under
    the job). ``attributes`` and ``exception`` (a class, a type name, or ``{"type": ..., "message": ...}``)
    are checked on the last attempt's process span. ``count=N`` stands for exactly N sibling jobs.
    ``exact=True``: exactly these children, whatever the assertion's ``exact``.
    """
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r}: use one of {', '.join(OUTCOMES)}")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0):
        raise ValueError(f"attempts={attempts!r}: expected a whole number of attempts, 0 or more")
    if linked is not None and not isinstance(linked, bool):
        raise TypeError(f"linked={linked!r}: expected True, False or None")
    return ExpectedJob(
        name=name,
        queue=queue,
        attempts=attempts,
        outcome=outcome,
        attributes=None if attributes is None else dict(attributes),
        exception=None if exception is None else exception_spec(exception),
        linked=linked,
        children=tuple(expected_list(children)),
        count=check_count(count),
        exact=check_flag("exact", exact, none=True),
    )


def job_from_dict(data: Mapping[str, Any]) -> Expected:
    unknown = [key for key in data if key not in JOB_KEYS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        raise ValueError(f"unknown key(s) {names} in an expected job; valid keys: {', '.join(JOB_KEYS)}")
    values = dict(data)
    return job(values.pop("job"), **values)


def _not_a_job(name: object, jobs: Sequence[JobView]) -> list[str]:
    """What the job systems say about a name that is no job: a callback that runs inside a job's attempt."""
    hints = []
    for adapter in {id(j.adapter): j.adapter for j in jobs if j.adapter is not None}.values():
        explain = getattr(adapter, "not_a_job", None)
        active = active_adapter(adapter.name)
        if explain is not None and active is not None:
            hint = explain(active, name, [j for j in jobs if j.adapter is adapter])
            hints += [hint] if isinstance(hint, str) else []
    return hints


def _last_of_its_kind(index: JobIndex, site: SpanNode) -> str:
    """A job sent from one of several look-alike jobs (a chord body, sent by the header task that finished
    last): say which of them it was."""
    found = next((index.attempt_of[n.index] for n in reversed(site.path()[:-1]) if n.index in index.attempt_of), None)
    if found is None:
        return ""
    sender = found[0]
    place = sender.site.parent if sender.site is not None else None
    alike = [j for j in index.jobs if j.name == sender.name and j.site is not None and j.site.parent is place]
    if len(alike) < 2 or not all(_ended(sender) >= _ended(j) for j in alike):
        return ""
    number = alike.index(sender) + 1
    there = f"under {where(place)}" if place is not None else "at the root"
    return (
        f" (the {_ordinal(number)} of the {len(alike)} {sender.short_name!r} jobs {there}, id {sender.id!r}, the "
        "last to finish: a chord body runs under the header task that finished last)"
    )


def _ended(job: JobView) -> int:
    return max((node.span.end_time or 0 for node in job.attempt_nodes), default=0)


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def job_scope(node: SpanNode) -> tuple[SpanNode, str] | None:
    """A span an attempt made is placed from its job (``job 'X', attempt 1 > 'span'``), not from the trace
    root: the attempts of a retried job sit side by side, six levels down in a real trace."""
    attempts = job_index(node.forest).attempt_of
    for ancestor in reversed(node.path()):
        found = attempts.get(ancestor.index)
        if found is not None:
            job, number = found
            label = job_label(job.short_name)
            # The last attempt stands for the job itself (its children are matched there).
            if len(job.attempt_nodes) > 1 and not (ancestor is node and number == len(job.attempt_nodes)):
                label += f", attempt {number}"
            return ancestor, label
    return None


# --- the text-tree line ``job NAME [notes] {attributes}`` -------------------------------------------


def _job_line(head: str, groups: Groups, children: tuple[Expected, ...]) -> Expected:
    notes = groups.notes
    return job(
        _read_job_name(head[len("job ") :].strip()),
        attributes=groups.attributes,
        children=children,
        **{
            key: notes[key]
            for key in ("queue", "attempts", "outcome", "exception", "linked", "count", "exact")
            if key in notes
        },
    )


def _read_job_name(text: str) -> object:
    if text[:1] in ("'", '"', "/", "*"):
        reader = Reader(text)
        value = reader.string_or_pattern("a job name")
        if reader.pos != len(text):
            raise reader.fail(f"unexpected {text[reader.pos :]!r} after the job name")
        return value
    if looks_like_regex(text):
        raise NotationError(f"job name {text!r} looks like a regular expression: write /{text}/ to match a pattern")
    return text


def _note_queue(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    notes["queue"] = reader.string_or_pattern("queue")


def _note_attempts(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    value = reader.value()
    if type(value) is not int:
        raise reader.fail("attempts takes a whole number")
    notes["attempts"] = value


def _note_outcome(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    value = reader.value() if reader.at_value() else reader.word()
    if value not in OUTCOMES:
        raise reader.fail(f"outcome takes one of {', '.join(OUTCOMES)}")
    notes["outcome"] = value


def _note_linked(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    if word.lower() == "not":
        reader.skip()
        if reader.word() != "linked":
            raise reader.fail("expected 'not linked'")
    notes["linked"] = word.lower() != "not"


def _note_count(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    notes["count"] = int(word[1:])


def _note_exact(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    notes["exact"] = True


JOB_LINE = LineKind(
    {
        "queue": _note_queue,
        "attempts": _note_attempts,
        "outcome": _note_outcome,
        "exception": note_exception,
        "linked": _note_linked,
        "not": _note_linked,
        "xN": _note_count,
        "exact": _note_exact,
    },
    'queue "name", attempts N, outcome "succeeded"/"failed"/"discarded"/"pending", exception "Type" "message", '
    "linked, not linked, xN, exact",
    _job_line,
)
