"""``render("jobs")``: the forest with each job folded to one ``job`` line, and the notes on failures."""

from __future__ import annotations

from pytest_jobtrace._core.forest import SpanForest, SpanNode
from pytest_jobtrace._core.render import Details, first_exception, span_line, tree_lines
from pytest_jobtrace._jobs.lost import VERDICTS
from pytest_jobtrace._jobs.match import job_line
from pytest_jobtrace._jobs.registry import active_adapter, adapters
from pytest_jobtrace._jobs.views import JobIndex, JobView, folded_children, job_index
from pytest_jobtrace._jobs.waiting import discard_of


def render_jobs(forest: SpanForest, details: Details | None = None) -> str:
    """The ``"jobs"`` render format."""
    return render_folded(job_index(forest), details)


def render_folded(index: JobIndex, details: Details | None = None) -> str:
    """The forest with each job folded to one line; its attempts' own spans hang under it."""
    hidden = index.hidden
    traces = [[root for root in roots if root.index not in hidden] for roots in index.forest.traces]

    def line(node: SpanNode) -> str:
        job = index.job_at(node)
        if job is None:
            return span_line(node, details=details)
        return detailed_job_line(job, details) if details else job_line(job)

    blocks = [
        "\n".join(text for _, text in tree_lines(roots, lambda n: folded_children(index, n), line))
        for roots in traces
        if roots
    ]
    return "\n\n".join(blocks) if blocks else "(no spans captured)"


def detailed_job_line(job: JobView, details: Details) -> str:
    """What ``job(attributes=..., exception=...)`` checks: the last attempt's (the send span's if none ran)."""
    if job.attempt_nodes:
        node = job.attempt_nodes[-1]
        return job_line(job, details.attributes(node.span.attributes), first_exception(node)[1])
    return job_line(job, details.attributes(job.site.span.attributes) if job.site else None)


def pending_notes(forest: SpanForest) -> list[str]:
    """A failure's likely cause: jobs enqueued and never processed, by the fixture that drains them."""
    pending: dict[tuple[str, str], list[str]] = {}
    notes = []
    index = job_index(forest)
    for job in index.jobs:
        if job.attempt_nodes or index.reused_by(job) is not None:
            continue  # a job whose id a later enqueue reused never runs: its own difference says so
        elsewhere = job.went_elsewhere()
        discarded = discard_of(job, VERDICTS.of(job.id))
        if elsewhere is not None:
            notes.append(f"note: {job.short_name!r} was never processed: {elsewhere}")
        elif discarded is not None:  # a live worker's word: the job will not run
            notes.append(f"note: {job.short_name!r} was never processed: {discarded.describe()}")
        else:
            fixture = job.adapter.fixture_name if job.adapter is not None else "its job system"
            active = job.adapter is not None and active_adapter(job.adapter.name) is not None
            # a system with live workers (an adapter naming their fixture) may be run by one instead
            live = "" if active else str(getattr(job.adapter, "live_fixture_name", "") or "")
            pending.setdefault((fixture, live), []).append(repr(job.short_name))
    for (fixture, live), jobs in pending.items():
        names = ", ".join(jobs[:5]) + (f" and {len(jobs) - 5} more" if len(jobs) > 5 else "")
        note = f"note: enqueued but never processed: {names}; drain the queue first ({fixture}.drain())"
        if live:  # no in-process fixture of this test runs it: a live worker, or nothing, would
            note += f", or with {live} wait for it (job_spans.wait())"
        notes.append(note)
    return notes


def adapters_volatile_keys() -> list[str]:
    """Every known adapter's volatile attribute keys, for ``render(details=True)``."""
    return [key for adapter in adapters().values() for key in adapter.volatile_attributes]
