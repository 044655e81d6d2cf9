"""The global tracer provider: the plugin's stand-in until the application sets its own, and the providers
that existed before the plugin started.

Module-level tracers (``trace.get_tracer`` at import) record nothing until a global provider is set, so a
test needs one. But OpenTelemetry lets the global be set once, and tracers cache the first real tracer
they meet: a plain SDK provider set by the plugin would refuse the application's own later (an app
fixture calling ``trace.set_tracer_provider(TracerProvider(resource=...))``) and keep its resource off
the spans. The plugin's stand-in therefore records through a provider of its own only until the
application sets one, then through the application's, and it hands the global slot over when asked.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._decorator import _agnosticcontextmanager

SetGlobal = Callable[[trace.TracerProvider, bool], None]


class StandInProvider(trace.TracerProvider):
    """The global provider the plugin sets when nobody has: it delegates to the application's provider
    once that is set, else to an SDK provider of its own."""

    def __init__(self) -> None:
        self.application: trace.TracerProvider | None = None
        self._own = TracerProvider()  # made now: building one costs a few ms, too long inside a span start

    def current(self) -> trace.TracerProvider:
        return self._own if self.application is None else self.application

    def __getattr__(self, name: str) -> Any:
        # The SDK provider's own API (add_span_processor, force_flush, resource...) keeps working on the
        # global, as it did when the plugin set a plain SDK provider.
        return getattr(self.current(), name)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _DeferredTracer(self, (instrumenting_module_name, instrumenting_library_version, schema_url, attributes))


class _DeferredTracer(trace.Tracer):
    """A tracer that asks its stand-in which provider to use at each span: module-level tracers cache
    this one for good, and must still follow the application's provider once it is set."""

    def __init__(self, owner: StandInProvider, args: tuple[Any, ...]) -> None:
        self._owner, self._args = owner, args
        self._for: trace.TracerProvider | None = None
        self._tracer: trace.Tracer | None = None

    def _resolve(self) -> trace.Tracer:
        provider = self._owner.current()
        if provider is not self._for or self._tracer is None:
            self._for, self._tracer = provider, provider.get_tracer(*self._args)
        return self._tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._resolve().start_span(*args, **kwargs)

    @_agnosticcontextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._resolve().start_as_current_span(*args, **kwargs) as span:
            yield span


_original_set: SetGlobal | None = None


def _set_global(tracer_provider: trace.TracerProvider, log: bool) -> None:
    """``trace.set_tracer_provider`` (through the private function it calls): the application's provider
    replaces the stand-in instead of being refused."""
    assert _original_set is not None
    standing_in = trace._TRACER_PROVIDER
    if isinstance(standing_in, StandInProvider) and tracer_provider is not standing_in:
        standing_in.application = tracer_provider  # tracers that cached the stand-in's follow it
        trace._TRACER_PROVIDER = tracer_provider  # the slot the stand-in held only for the application
        return
    _original_set(tracer_provider, log)


def hook_set_global() -> None:
    global _original_set
    if _original_set is None:
        _original_set = trace._set_tracer_provider
        trace._set_tracer_provider = _set_global


def unhook_set_global() -> None:
    global _original_set
    if _original_set is not None:
        trace._set_tracer_provider = _original_set  # type: ignore[assignment]
        _original_set = None


def existing_providers() -> list[TracerProvider]:
    """SDK providers built before the plugin started (an early plugin, a ``-p`` module): they were made
    before ``TracerProvider.__init__`` was wrapped. Found once, at start-up, through the garbage
    collector's referrers of the provider classes (about 20 ms)."""
    classes = _with_subclasses(TracerProvider)
    return [obj for obj in gc.get_referrers(*classes) if type(obj) in classes]


def _with_subclasses(cls: type) -> set[type]:
    found, pending = {cls}, [cls]
    while pending:
        subclasses: list[type] = pending.pop().__subclasses__()
        for sub in subclasses:
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found
