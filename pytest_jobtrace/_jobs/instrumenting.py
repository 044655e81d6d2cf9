"""Instrumenting a job system for one test, as the in-process and live fixtures do for every test.

OpenTelemetry's ``BaseInstrumentor.instrument()`` checks the instrumented package's installed version against
the instrumentation's requirements on every call, reading package metadata from disk: 1.5 ms a test for
Celery's, more than the rest of instrumenting it. The packages installed do not change while a test process
runs, so :func:`instrument_for_test` makes that check once per instrumentor class and process, and skips it
only after it passed; a conflict is checked (and logged by OpenTelemetry) every time, and never instruments.
"""

from __future__ import annotations

import threading
from typing import Any

_passed: set[type] = set()  # instrumentor classes whose dependency check passed in this process
_lock = threading.Lock()


def instrument_for_test(instrumentor: Any, **options: Any) -> bool:
    """``instrumentor.instrument(**options)`` (an OpenTelemetry ``BaseInstrumentor``), its dependency check
    made once per class; True if the library is instrumented now (False: a dependency conflict, logged)."""
    kind = type(instrumentor)
    with _lock:
        checked = kind in _passed
    instrumentor.instrument(**options, skip_dep_check=checked)
    if not instrumentor.is_instrumented_by_opentelemetry:
        return False
    with _lock:
        _passed.add(kind)
    return True
