"""``JobFailedError`` as pytest reports it: each failed job's exception with the frames of the user's code.

A job's exception reaches the test through the job system's worker (Celery's ``trace_task``, RQ's
``perform_job``), and the worker logs it again with its traceback. In the style of pytest's own
traceback filtering (it cuts pluggy's and its own frames, and hides frames that set ``__tracebackhide__``),
pytest-jobtrace leaves out of a failing test's report the frames of the job systems and of the plugin,
and the job systems' log records of the failures it reports, unless ``--jobtrace-tb=full`` asks for
them. Only the report changes: ``caplog`` still sees every record, and the spans keep the whole stack.
Adapters name their job system's packages in ``internal_packages`` (optional; the plugin's own are always
left out).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType

from pytest_jobtrace._core.errors import JobFailedError
from pytest_jobtrace._jobs.registry import adapters
from pytest_jobtrace._jobs.runner import performing_an_attempt

TB_CHOICES = ("short", "full")
OWN_PACKAGES = ("pytest_jobtrace",)


def internal_packages() -> tuple[str, ...]:
    """The plugin's packages and those every registered adapter declares for its job system."""
    names = set(OWN_PACKAGES)
    for adapter in adapters().values():
        names.update(getattr(adapter, "internal_packages", ()) or ())
    return tuple(sorted(names))


def is_internal(module: str, packages: Sequence[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in packages)


def user_frames(tb: TracebackType | None, packages: Sequence[str]) -> TracebackType | None:
    """``tb`` without the frames of ``packages``' modules; unchanged when nothing else would be left."""
    kept = [entry for entry in _entries(tb) if not is_internal(entry.tb_frame.f_globals.get("__name__", ""), packages)]
    if not kept:
        return tb
    trimmed: TracebackType | None = None
    for entry in reversed(kept):
        trimmed = TracebackType(trimmed, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return trimmed


def trim_job_failures(error: BaseException, packages: Sequence[str]) -> None:
    """Trim, for the report, the tracebacks of the failed jobs' exceptions (and the exceptions they chain)
    of every ``JobFailedError`` in ``error``'s chain."""
    for exc in _chain(error):
        if isinstance(exc, JobFailedError):
            for run in exc.runs:
                for inner in _chain(getattr(run, "exception", None)):
                    inner.__traceback__ = user_frames(inner.__traceback__, packages)


class WorkerFailureLogs(logging.Filter):
    """Keeps out of pytest's report the job systems' log records with a traceback written while a job
    runner performs an attempt: the worker's own account of the failure the test's report tells."""

    def __init__(self, packages: Sequence[str]) -> None:
        super().__init__()
        self.packages = tuple(packages)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (performing_an_attempt() and is_internal(record.name, self.packages)):
            return True
        return not (record.exc_info or _TRACEBACK in record.getMessage())  # RQ writes it into its message


_TRACEBACK = "Traceback (most recent call last):"


def _entries(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _chain(error: BaseException | None) -> Iterable[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ if error.__cause__ is not None else error.__context__
