"""Per-test span capture that survives every way an application sets up OpenTelemetry.

The global ``TracerProvider`` can be set once per process, module-level tracers cache the first real
tracer they meet, and opentelemetry-test-utils' ``TestBase`` swaps providers every test. Rather than
fighting any of that, one process-wide span processor (the router) is attached to *every* SDK
``TracerProvider``: those that exist when the plugin starts, and every one constructed later (by
wrapping ``TracerProvider.__init__``). The router hands each ended span to the capture of the test
that is running, and keeps track of spans started in one test and ended in another.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext

from pytest_jobtrace._core import provider as _provider


@dataclass(frozen=True)
class LeakedSpan:
    """A span started in one capture that ended after that capture closed."""

    name: str
    started_in: str
    ended_in: str | None
    received: bool = False
    """Received over OTLP from another process (a worker), rather than ended in this one."""


class SpanRouter(SpanProcessor):
    """The one span processor the plugin adds; routes spans to the active capture.

    Open spans are keyed by their SpanContext object, not by its ids: the SDK hands ``on_end`` a
    ReadableSpan holding the very context object ``on_start`` saw, while ids collide across providers
    with their own id generators (a counter per provider, as snapshot tests use). The span or its owner
    keeps the context alive while it is open, so its id() is not reused meanwhile.
    """

    def __init__(self) -> None:
        self._stack: list[CaptureSink] = []
        self._open: dict[int, tuple[SpanContext, CaptureSink | OwnerLabel]] = {}
        self._mark: OwnerLabel | None = None
        self._leaks: list[LeakedSpan] = []
        self._lock = threading.Lock()
        self.test_label: str | None = None
        self.shared_setup = 0  # > 0 while a fixture wider than a function is being set up
        self.watchers: list[CaptureWatcher] = []  # told when a capture opens and closes (the OTLP receiver)

    @property
    def active(self) -> CaptureSink | None:
        try:
            return self._stack[-1]
        except IndexError:  # checked and emptied by another thread in between
            return None

    def open(self, sink: CaptureSink) -> None:
        self._stack.append(sink)
        for watcher in self.watchers:
            watcher.opened(sink)

    def sinks(self) -> list[CaptureSink]:
        """The open captures, innermost last."""
        return list(self._stack)

    def close(self, sink: CaptureSink) -> None:
        """Stop routing to ``sink``; its spans still open become leaks if they end later.

        The router then keeps only the capture's label for them, not the capture and its spans.
        """
        if sink in self._stack:
            self._stack.remove(sink)
        for watcher in self.watchers:
            watcher.closed(sink)
        tombstone = OwnerLabel(sink.label)
        for key in sink.close():
            entry = self._open.get(key)
            if entry is not None and entry[1] is sink:
                self._open[key] = (entry[0], tombstone)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        context = span.context
        if not context.trace_flags.sampled or self.shared_setup:
            return  # a class, module or session fixture's span is no test's: it goes where it ends
        sink = self.active
        if sink is not None:
            self._open[id(context)] = (context, sink)
            sink.started(span)
        elif self.test_label is not None:
            # A test without a capture (or before its capture opened): remember whose span it is, so
            # that ending in a later test's capture is reported as a leak, not taken for that test's own.
            self._open[id(context)] = (context, self._owner_label(self.test_label))

    def _owner_label(self, label: str) -> OwnerLabel:
        mark = self._mark
        if mark is None or mark.label != label:
            mark = self._mark = OwnerLabel(label)
        return mark

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        entry = self._open.pop(id(context), None)
        owner = entry[1] if entry is not None and entry[0] is context else None
        if owner is not None and owner.add(span):
            return
        if owner is None or owner.label == self.test_label:
            # Started outside any test (an import, a wider fixture) or earlier in this same test, before
            # its capture opened: the span belongs to the test during which it ends.
            active = self.active
            if active is not None and (owner is None or active.label == owner.label):
                active.add(span)
        else:
            self._record_leak(span, owner.label)

    def _record_leak(self, span: ReadableSpan, started_in: str) -> None:
        self.record_leak(LeakedSpan(span.name, started_in, self.test_label))

    def record_leak(self, leak: LeakedSpan) -> None:
        """Report ``leak`` at the running test's teardown (or in the session summary)."""
        with self._lock:
            self._leaks.append(leak)

    def take_leaks(self) -> list[LeakedSpan]:
        if not self._leaks:
            return []
        with self._lock:
            leaks, self._leaks = self._leaks, []
        return leaks

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class CaptureWatcher(Protocol):
    """Told when a capture opens and closes (the OTLP receiver's routing, which owns traces per test)."""

    def opened(self, sink: CaptureSink) -> None: ...

    def closed(self, sink: CaptureSink) -> None: ...


class OwnerLabel:
    """Whose span it is, when there is no open capture to hold it: a test without ``job_spans``, or one
    whose capture has closed. Only the label, for the leak report."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def add(self, span: ReadableSpan) -> bool:
        return False


class CaptureSink:
    """Where the router puts spans for one test; the public ``JobSpans`` wraps one.

    Spans arrive on any thread; the lock makes "closed?" and "add" one step, so a span ending while
    the test closes is either captured or reported as leaked, never lost. Waiters (``job_spans.wait()``)
    are woken on the lock's condition whenever a span is added.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.spans: list[ReadableSpan] = []
        self.unfinished: dict[int, Span] = {}
        self.received: set[tuple[int, int]] = set()  # (trace id, span id) of spans received from other processes
        self.duplicates = 0  # received spans dropped because the capture already held them
        self._keys: set[tuple[int, int]] | None = None
        self.version = 0
        self.clears = 0  # clear() calls: a reader of spans added since a mark (since()) starts over after one
        self.closed = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0  # threads in wait_for_change: add() notifies only then (it is on every span's path)

    def started(self, span: Span) -> None:
        with self._lock:
            self.unfinished[id(span.context)] = span

    def add(self, span: ReadableSpan, *, received: bool = False) -> bool:
        """Keep ``span`` unless the capture has closed (then the caller reports it); ``received``: it came
        from another process (over OTLP), so it was never started here, and is dropped if the capture
        already holds a span with its ids (an exporter re-sends a batch whose answer it did not get)."""
        with self._lock:
            if self.closed:
                return False
            if self._keep(span, received) and self._waiting:
                self._changed.notify_all()
        return True

    def receive(self, spans: Sequence[ReadableSpan]) -> bool | None:
        """``add(span, received=True)`` for each of ``spans`` (one request's, from another process) as one
        step: a waiter wakes once, with all of them there. None (nothing kept) if the capture has closed,
        else whether a waiter was woken."""
        with self._lock:
            if self.closed:
                return None
            kept = [self._keep(span, True) for span in spans]
            woken = any(kept) and self._waiting > 0
            if woken:
                self._changed.notify_all()
        return woken

    def _keep(self, span: ReadableSpan, received: bool) -> bool:
        """Under the lock: keep ``span``; False if it was a received duplicate (dropped)."""
        key = (span.context.trace_id, span.context.span_id) if span.context is not None else None
        if received and key is not None:
            if self._keys is None:  # built once something is received; kept up to date from then on
                self._keys = {(s.context.trace_id, s.context.span_id) for s in self.spans if s.context}
            if key in self._keys:  # sent twice (an exporter's retry), or a span of this process sent back
                self.duplicates += 1
                return False
            self.received.add(key)
        elif span.context is not None:
            self.unfinished.pop(id(span.context), None)
        if self._keys is not None and key is not None:
            self._keys.add(key)
        self.spans.append(span)
        self.version += 1
        return True

    def wait_for_change(self, version: int, timeout: float) -> bool:
        """Block until a span is added after ``version`` (see :meth:`snapshot`) or ``timeout`` passes;
        True if one was."""
        with self._lock:
            self._waiting += 1
            try:
                return self._changed.wait_for(lambda: self.version != version, timeout)
            finally:
                self._waiting -= 1

    def open_spans(self) -> list[Span]:
        """The spans started in this capture and not yet ended."""
        with self._lock:
            return list(self.unfinished.values())

    def close(self) -> list[int]:
        """Take no more spans; returns the keys of those still open."""
        with self._lock:
            self.closed = True
            return list(self.unfinished)

    def snapshot(self) -> tuple[int, list[ReadableSpan]]:
        with self._lock:
            return self.version, list(self.spans)

    def since(self, mark: tuple[int, int] = (0, 0)) -> tuple[tuple[int, int], list[ReadableSpan]]:
        """The spans kept after ``mark`` (what an earlier call returned; every span at first, and again after
        a ``clear()``), and the mark to give next time."""
        with self._lock:
            clears, seen = mark
            return (self.clears, len(self.spans)), self.spans[seen if clears == self.clears else 0 :]

    def unfinished_names(self) -> list[str]:
        with self._lock:
            return [span.name for span in self.unfinished.values()]

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.received.clear()
            self._keys = None
            self.version += 1
            self.clears += 1
            if self._waiting:
                self._changed.notify_all()


ROUTER = SpanRouter()
_attached: weakref.WeakSet[TracerProvider] = weakref.WeakSet()
_original_init: Callable[..., None] | None = None
_installs = 0


def attach(provider: object) -> None:
    """Add the router to an SDK provider once; other providers (no-op, proxy) are left alone."""
    if isinstance(provider, TracerProvider) and provider not in _attached:
        _attached.add(provider)
        provider.add_span_processor(ROUTER)


def _patched_init(self: TracerProvider, *args: Any, **kwargs: Any) -> None:
    assert _original_init is not None
    _original_init(self, *args, **kwargs)
    attach(self)


def install() -> None:
    """Start routing spans from every SDK provider; reference-counted for nested pytest sessions."""
    global _installs, _original_init
    _installs += 1
    if _installs > 1:
        return
    _original_init = TracerProvider.__init__
    TracerProvider.__init__ = _patched_init  # type: ignore[method-assign]
    _provider.hook_set_global()
    attach(trace.get_tracer_provider())
    for provider in _provider.existing_providers():
        attach(provider)


def uninstall() -> None:
    """Undo :func:`install` when the last session using it ends; attached providers keep the router."""
    global _installs, _original_init
    _installs -= 1
    if _installs == 0 and _original_init is not None:
        TracerProvider.__init__ = _original_init  # type: ignore[method-assign]
        _original_init = None
        _provider.unhook_set_global()


_last_global: object = None


def ensure_global_provider() -> None:
    """Make module-level tracers record: set a stand-in provider only if nobody has set one.

    Called when a capture opens, not at start-up, so an application that sets its own provider
    during collection (conftest, module import) is never overridden and never warned about; one that
    sets it later replaces the stand-in (see ``provider.py``).
    """
    global _last_global
    current = trace.get_tracer_provider()
    if current is _last_global:
        return
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(_provider.StandInProvider())
    else:
        _last_global = current  # only a real provider: a proxy may be the global again after a reset
        attach(current)
