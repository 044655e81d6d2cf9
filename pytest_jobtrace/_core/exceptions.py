"""Exceptions as spans record them, for exceptions whose ``__str__`` fails too.

OpenTelemetry's ``Span.record_exception`` calls ``str(exception)`` unguarded: a job raising an exception whose
``__str__`` raises would make the tracing code raise instead, and lose the job's own failure. These write the
same event and description as the SDK, with the message Python's own traceback prints for such an exception.
This module imports nothing of the package, so the production instrumentation can use it cheaply.
"""

from __future__ import annotations

import traceback

from opentelemetry.trace import Span

# What traceback.format_exception writes for an exception whose __str__ raises.
UNPRINTABLE = "<exception str() failed>"


def qualified_type_name(exc: BaseException) -> str:
    """The exception type as OpenTelemetry's ``record_exception`` writes it in ``exception.type``."""
    module, qualname = type(exc).__module__, type(exc).__qualname__
    return f"{module}.{qualname}" if module and module != "builtins" else qualname


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or :data:`UNPRINTABLE` where that raises."""
    try:
        return str(exc)
    except Exception:
        return UNPRINTABLE


def record_exception(span: Span, exc: BaseException) -> None:
    """``span.record_exception(exc)``, which also works when ``str(exc)`` raises."""
    try:
        str(exc)
    except Exception:
        span.add_event(
            "exception",
            {
                "exception.type": qualified_type_name(exc),
                "exception.message": UNPRINTABLE,
                "exception.stacktrace": "".join(traceback.format_exception(exc)),
                "exception.escaped": "False",
            },
        )
    else:
        span.record_exception(exc)
