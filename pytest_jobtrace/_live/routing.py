"""Received spans routed to the test whose trace they continue, never to another.

A test owns the traces its own spans belong to (those it started, in-process) and the traces linked to
or from them (a worker that starts a new trace linked to the publish span). A received span whose trace
is owned by an open capture joins it; one whose trace belonged to a test that has finished is reported
as late (a warning naming that test), never given to the test running now; one whose trace is not known
yet (its linking span has not arrived) waits in a holding area until it is, and is reported at the end
of the session if no test ever owns it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._core.capture import ROUTER, CaptureSink, LeakedSpan, SpanRouter

HELD_LIMIT = 10_000  # spans of unknown traces kept; beyond it the oldest are reported as belonging to no test


class _Held:
    """Spans of traces no test owns yet, by trace, oldest trace first, each found again by any trace it names
    (its own, or one it links to): when a trace becomes known, only the spans naming it are looked at again,
    so a request costs the same however many spans wait (workers elsewhere may send many no test owns)."""

    def __init__(self) -> None:
        self.by_trace: dict[int, list[ReadableSpan]] = {}  # insertion order: the oldest first
        self.count = 0
        self._age: dict[int, int] = {}  # a held trace -> when it was first held (its place in by_trace)
        self._added = 0
        self._naming: dict[int, set[int]] = {}  # a trace -> held traces with a span naming it
        self._names: dict[int, set[int]] = {}  # a held trace -> the traces its spans name

    def add(self, span: ReadableSpan) -> None:
        assert span.context is not None
        trace = span.context.trace_id
        if trace not in self.by_trace:
            self.by_trace[trace] = []
            self._age[trace] = self._added
            self._added += 1
        self.by_trace[trace].append(span)
        self.count += 1
        for named in _named(span):
            self._naming.setdefault(named, set()).add(trace)
            self._names.setdefault(trace, set()).add(named)

    def naming(self, traces: set[int]) -> list[int]:
        """The held traces with a span naming one of ``traces``, the oldest first."""
        found = {held for trace in traces for held in self._naming.get(trace, ())}
        return sorted(found, key=self._age.__getitem__)

    def keep(self, trace: int, spans: list[ReadableSpan]) -> None:
        """Of ``trace``'s held spans, keep ``spans`` only (the trace keeps its place among the others)."""
        if not spans:
            self.pop(trace)
            return
        self.count -= len(self.by_trace[trace]) - len(spans)
        self.by_trace[trace] = spans

    def pop(self, trace: int) -> list[ReadableSpan]:
        spans = self.by_trace.pop(trace)
        self.count -= len(spans)
        del self._age[trace]
        for named in self._names.pop(trace, ()):
            holders = self._naming[named]
            holders.discard(trace)
            if not holders:
                del self._naming[named]
        return spans

    def oldest(self) -> int:
        return next(iter(self.by_trace))

    def __bool__(self) -> bool:
        return bool(self.by_trace)


def _named(span: ReadableSpan) -> list[int]:
    assert span.context is not None
    return [span.context.trace_id, *(link.context.trace_id for link in span.links)]


class LiveRouter:
    """Routes spans received over OTLP to the open captures (one per running test, per process)."""

    def __init__(self, router: SpanRouter = ROUTER) -> None:
        self.captures = router  # the in-process router: its open captures, its leak reports
        self._lock = threading.Lock()
        self._owners: dict[int, CaptureSink] = {}  # trace id -> the open capture that owns it
        self._finished: dict[int, str] = {}  # trace id -> label of the finished test that owned it
        self._held = _Held()  # spans of traces no test owns yet
        self._learned: set[int] = set()  # traces owned or finished since held spans were last looked at
        self._joining: list[tuple[CaptureSink, ReadableSpan]] = []  # placed, given to their owners by _commit()
        self._read: dict[CaptureSink, tuple[int, int]] = {}  # an open capture -> how far _refresh() read it

    def deliver(self, spans: Iterable[ReadableSpan]) -> None:
        """Give each span to the capture that owns its trace, or report it, or hold it until one does."""
        with self._lock:
            pending = [span for span in spans if span.context is not None]
            refreshed = False
            while pending:
                # Before the open captures were asked, a finished test's trace is not taken for late: an
                # open test may share it (both under one session-wide span).
                rest = [span for span in pending if not self._place(span, late=refreshed)]
                if len(rest) == len(pending):
                    if refreshed:
                        break
                    self._refresh()  # a miss: learn the open captures' traces, once per request
                    refreshed = True
                    continue
                pending = rest
            for span in pending:
                self._hold(span)
            self._release_held()
            woke = self._commit()
        if woke:
            # The waiting test thread was just woken, and needs the interpreter lock to run. Left alone, it
            # would get it only at this thread's next blocking call (answering the exporter, tens of
            # microseconds of Python later); handed over now, wait() returns that much sooner: a job through
            # live_celery_worker took 6 to 8% less (docs/benchmarks.md). This thread answers after.
            time.sleep(0)

    def held(self) -> list[ReadableSpan]:
        """Spans received for traces that no test owns (yet)."""
        with self._lock:
            return [span for spans in self._held.by_trace.values() for span in spans]

    def opened(self, sink: CaptureSink) -> None:
        pass  # its traces are learned when a received span misses

    def closed(self, sink: CaptureSink) -> None:
        """Remember whose traces they were, so that late spans name the test and go to no other."""
        with self._lock:
            self._read.pop(sink, None)
            traces = _traces_of(sink) | {trace for trace, owner in self._owners.items() if owner is sink}
            for trace in traces:
                self._owners.pop(trace, None)
                self._finished[trace] = sink.label
            self._learned.update(traces)
            self._release_held()
            self._commit()

    def finish(self) -> None:
        """Report the spans that no test ever owned (at the end of the session)."""
        with self._lock:
            held, self._held = self._held, _Held()
        for spans in held.by_trace.values():
            for span in spans:
                self.captures.record_leak(LeakedSpan(span.name, "", self.captures.test_label, received=True))

    def _place(self, span: ReadableSpan, late: bool = True) -> bool:
        """Give ``span`` to the open capture owning its trace (or a linked one), or, if ``late``, report it
        for the finished test that owned it; False if neither."""
        traces = _named(span)
        for trace in traces:
            owner = self._owners.get(trace)
            if owner is not None:
                self._join(owner, span, traces)
                return True
        for trace in traces if late else ():
            label = self._finished.get(trace)
            if label is not None:
                self._late(span, label)
                return True
        return False

    def _join(self, owner: CaptureSink, span: ReadableSpan, traces: list[int]) -> None:
        for trace in traces:
            self._own(trace, owner)
        self._joining.append((owner, span))

    def _own(self, trace: int, owner: CaptureSink) -> None:
        if trace not in self._owners:
            self._owners[trace] = owner
            if self._held:
                self._learned.add(trace)

    def _commit(self) -> bool:
        """Give the placed spans to their captures, each capture its spans at once (a waiter wakes once);
        True if a thread was waiting on one of them."""
        joining, self._joining = self._joining, []
        by_owner: dict[int, tuple[CaptureSink, list[ReadableSpan]]] = {}
        for owner, span in joining:
            by_owner.setdefault(id(owner), (owner, []))[1].append(span)
        woke = False
        for owner, spans in by_owner.values():
            woken = owner.receive(spans)
            if woken is None:  # closed since: late, as if they had arrived after
                for span in spans:
                    self._late(span, owner.label)
            woke = woke or bool(woken)
        return woke

    def _late(self, span: ReadableSpan, label: str) -> None:
        self.captures.record_leak(LeakedSpan(span.name, label, self.captures.test_label, received=True))

    def _refresh(self) -> None:
        """Learn the traces of the open captures' spans: those kept since the last time (each span is read once,
        not on every request: a test of a thousand jobs sends a request for each) and those still open."""
        for sink in self.captures.sinks():
            if not sink.closed:
                self._read[sink], spans = sink.since(self._read.get(sink, (0, 0)))
                for trace in _traces_in([*spans, *sink.open_spans()]):
                    self._own(trace, sink)

    def _hold(self, span: ReadableSpan) -> None:
        self._held.add(span)
        if self._held.count > HELD_LIMIT:
            for dropped in self._held.pop(self._held.oldest()):
                self.captures.record_leak(LeakedSpan(dropped.name, "", self.captures.test_label, received=True))

    def _release_held(self) -> None:
        """Place held spans whose trace became known; placing one may make another trace known."""
        while self._learned and self._held:
            learned, self._learned = self._learned, set()
            for trace in self._held.naming(learned):
                if trace in self._held.by_trace:
                    self._held.keep(trace, [span for span in self._held.by_trace[trace] if not self._place(span)])
        self._learned.clear()


def _traces_of(sink: CaptureSink) -> set[int]:
    """The traces a capture's spans (ended or still open) belong to or link to."""
    _, spans = sink.snapshot()
    return _traces_in([*spans, *sink.open_spans()])


def _traces_in(spans: Iterable[ReadableSpan]) -> set[int]:
    traces: set[int] = set()
    for span in spans:
        if span.context is not None:
            traces.add(span.context.trace_id)
        traces.update(link.context.trace_id for link in span.links)
    return traces
