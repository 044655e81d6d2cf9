"""``JobSpans``: the object the ``job_spans`` fixture yields (spans, and the jobs they show)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.capture import CaptureSink
from pytest_jobtrace._core.check import check_span_tree
from pytest_jobtrace._core.expect import attributes_diff
from pytest_jobtrace._core.forest import SpanForest
from pytest_jobtrace._core.render import details_for, render_as
from pytest_jobtrace._core.values import parse_kind, parse_status, show_name, value_matches
from pytest_jobtrace._jobs.views import JobView, describe_jobs, job_index, name_matches
from pytest_jobtrace._jobs.waiting import wait_for_jobs

Format = Literal["text", "mermaid", "jobs"]

_current: list[JobSpans] = []


class JobSpans:
    """Every span that ended during the current test, from any tracer and any thread, in end order.

    Only exposed for type hints (``def test_x(job_spans: JobSpans)``); the constructor is not API.
    """

    def __init__(self, sink: CaptureSink, *, exact: bool = False, ordered: bool = False) -> None:
        self._sink = sink
        self._defaults = {"exact": exact, "ordered": ordered}
        self._forest: tuple[int, SpanForest] | None = None

    @property
    def spans(self) -> list[ReadableSpan]:
        """A copy of the captured spans, in the order they ended."""
        return self._sink.snapshot()[1]

    def __len__(self) -> int:
        return len(self._sink.spans)

    def __iter__(self) -> Iterator[ReadableSpan]:
        return iter(self.spans)

    def __repr__(self) -> str:
        count = len(self)
        return f"<JobSpans {self._sink.label}: {count} span{'s' * (count != 1)}>"

    def clear(self) -> None:
        """Forget what was captured so far (spans still open are captured when they end)."""
        self._sink.clear()

    def find(
        self,
        name: object = None,
        attributes: Mapping[str, object] | None = None,
        *,
        kind: object = None,
        status: object = None,
        **attrs: object,
    ) -> list[ReadableSpan]:
        """Spans whose name matches, of this ``kind`` and ``status``, with these attributes (None: absent).

        ``kind`` and ``status`` are the span's own (``"server"``, ``SpanKind.SERVER``; ``"ERROR"``), never
        attribute keys. Dotted attribute keys go in ``attributes={"payment.status": "ok"}``; plain ones may be
        keywords.
        """
        __tracebackhide__ = True
        wanted = {**(attributes or {}), **attrs}
        span_kind = None if kind is None else parse_kind(kind)
        code = None if status is None else parse_status(status)
        return [
            s
            for s in self.spans
            if (name is None or value_matches(name, s.name))
            and (span_kind is None or s.kind is span_kind)
            and (code is None or s.status.status_code is code)
            and attributes_diff(wanted, s.attributes or {}) is None
        ]

    def forest(self) -> SpanForest:
        """The captured spans as traces and trees (rebuilt only when spans were added)."""
        version, spans = self._sink.snapshot()
        if self._forest is None or self._forest[0] != version:
            self._forest = (version, SpanForest(spans))
        return self._forest[1]

    def render(self, format: Format = "text", *, details: bool = False, volatile: Iterable[str] = ()) -> str:
        """The captured forest as a box-drawn text tree (a valid expectation), a Mermaid graph, or
        with every job folded to one ``job NAME [queue, attempts, outcome]`` line (``"jobs"``); both read back.

        ``details=True`` is the snapshot form: each line also gives the span's attributes (sorted by key),
        events and exception; values of volatile keys (generated ids, times, hosts, threads, source
        locations, and the keys or globs in ``volatile``) are written ``*``, present with any value.
        """
        return render_as(self.forest(), format, details_for(details, volatile))

    def jobs(self) -> list[JobView]:
        """Every job the captured spans show (from any adapter), in enqueue order."""
        return list(job_index(self.forest()).jobs)

    def job(self, name: object) -> JobView:
        """The one job whose name (full, last component, or pattern) matches; fails listing candidates."""
        __tracebackhide__ = True
        jobs = self.jobs()
        found = [j for j in jobs if name_matches(name, j.name)]
        if len(found) != 1:
            what = "no job" if not found else f"{len(found)} jobs"
            raise AssertionError(
                f"expected exactly one job matching {show_name(name)}, found {what}; jobs captured: "
                f"{describe_jobs(jobs)}"
            )
        return found[0]

    def wait(self, timeout: float = 30.0) -> None:
        """Wait until every job published in this test has ended (succeeded, failed for good or been
        discarded) and none of its spans is still open, the spans of workers in other processes included;
        fails after ``timeout`` seconds listing, job by job, what has not arrived."""
        __tracebackhide__ = True
        wait_for_jobs(self._sink, self.forest, timeout)

    def assert_span_tree(self, expected: object, *, exact: bool | None = None, ordered: bool | None = None) -> None:
        """Assert that the captured forest contains ``expected``; see :func:`pytest_jobtrace.assert_span_tree`."""
        __tracebackhide__ = True
        check_span_tree(
            expected,
            self.forest(),
            still_open=self._sink.unfinished_names,
            exact=self._defaults["exact"] if exact is None else exact,
            ordered=self._defaults["ordered"] if ordered is None else ordered,
        )


def current() -> JobSpans:
    __tracebackhide__ = True
    if not _current:
        raise RuntimeError(
            "assert_span_tree() without spans= needs the job_spans fixture: request it in the test "
            "(or mark the test with @pytest.mark.jobtrace), or pass spans=..."
        )
    return _current[-1]
