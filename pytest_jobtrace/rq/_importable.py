"""``rq_jobs`` refuses, at enqueue, a job function RQ could not import when the job runs.

RQ stores a job's function as its dotted name (``module.qualname``) and imports it in the worker. A function
defined inside another one (a test, say) or a lambda has ``<locals>`` or ``<lambda>`` in that name: RQ
accepts the enqueue and the job then fails with its bare "Invalid attribute name: charge". A real worker
fails the same way; the test gets the reason and the fix at the line that enqueued instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class JobNotImportable(ValueError):
    """A job function RQ cannot import by its dotted name."""


def check(func: object) -> None:
    """Raise ``JobNotImportable`` for a function RQ could not import by its dotted name."""
    if not inspect.isfunction(func) or "<" not in func.__qualname__:
        return  # a dotted-name string, a module-level function, a method or a callable instance
    __tracebackhide__ = True
    name = f"{func.__module__}.{func.__qualname__}"
    fix = "a named function" if func.__name__ == "<lambda>" else func.__name__
    raise JobNotImportable(
        f"rq_jobs: {name} cannot be an RQ job: RQ stores a job's function by its dotted name and imports it "
        "when the job runs, and a function defined inside another function (or a lambda) cannot be imported "
        f"(a real worker fails the job with 'Invalid attribute name: {func.__name__}'). Define {fix} at "
        "module level."
    )


def install() -> Callable[[], None]:
    """Check every ``Queue.create_job`` call (enqueue, enqueue_at/in, enqueue_many); returns the undo."""
    from rq.queue import Queue

    original = Queue.create_job

    def create_job(queue: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        check(func)
        return original(queue, func, *args, **kwargs)

    Queue.create_job = create_job  # type: ignore[method-assign, assignment]

    def undo() -> None:
        Queue.create_job = original  # type: ignore[method-assign]

    return undo
