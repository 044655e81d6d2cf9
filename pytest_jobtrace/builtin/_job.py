"""The `Job` base class of the built-in runtime: its class-level options, their validation, and its arguments."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any, ClassVar

from pytest_jobtrace.builtin import _runtime as _builtin_runtime
from pytest_jobtrace.builtin._model import (
    PROPAGATIONS,
    JobArgumentError,
    JobHandle,
    Propagation,
    Wait,
    check_choice,
    display_name,
)

_WAIT_HELP = "a number of seconds >= 0, 'exponential' or a callable(attempt) -> seconds"


class Job:
    """A background job. Subclass it, define ``perform`` and set the class options you need::

        class ProcessOrderJob(Job):
            queue = "orders"
            retry_on = (PaymentError,)
            attempts = 5  # in total, the first one included
            wait = "exponential"  # 1, 2, 4, 8 seconds (virtual) after attempts 1, 2, 3, 4; no jitter
            discard_on = (RecordGone,)

            def perform(self, order_id: int) -> None: ...

    ``wait`` may also be a number of seconds, or a function (or lambda) assigned to it that takes the failed
    attempt's number (1-based) and returns seconds. ``propagation`` ("child", "link" or "none") overrides the
    runtime's for this job. Options are checked when the class is defined. An exception in both ``discard_on``
    and ``retry_on`` discards the job.

    The runtime makes a new instance (with no arguments) per attempt, with ``job_id`` (the same on every
    attempt) and ``executions`` (1 on the first attempt, 2 on the first retry) set; ``queue`` is the class's.
    """

    queue: ClassVar[str] = "default"
    retry_on: ClassVar[tuple[type[Exception], ...]] = ()
    discard_on: ClassVar[tuple[type[Exception], ...]] = ()
    attempts: ClassVar[int] = 1
    wait: ClassVar[Wait] = 0
    propagation: ClassVar[Propagation | None] = None

    job_id: str
    executions: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _validate(cls)

    def perform(self, *args: Any, **kwargs: Any) -> Any:
        """The job's work; define it in the subclass with the parameters ``perform_later`` is called with."""
        raise NotImplementedError(f"{display_name(type(self))} does not define perform()")

    @classmethod
    def perform_later(cls, /, *args: Any, **kwargs: Any) -> JobHandle:
        """Enqueue the job on the active `JobRuntime`; the arguments go through a JSON round trip first."""
        __tracebackhide__ = True
        args, kwargs = _round_trip(cls, args, kwargs)
        return _builtin_runtime.enqueue(cls, args, kwargs)

    @classmethod
    def perform_now(cls, /, *args: Any, **kwargs: Any) -> Any:
        """Perform one attempt at once, under a process span child of the current span; returns perform's result.

        Nothing is enqueued or serialised, ``retry_on`` and ``discard_on`` do not apply: exceptions reach the caller.
        The active runtime's tracer provider and span naming are used if there is one, else the global provider.
        """
        __tracebackhide__ = True
        return _builtin_runtime.perform_now(cls, args, kwargs)


def _validate(cls: type[Job]) -> None:
    name = display_name(cls)
    _check_perform(name, cls.perform)
    if not isinstance(cls.queue, str) or not cls.queue:
        error = ValueError if isinstance(cls.queue, str) else TypeError
        raise error(f"{name}.queue must be a non-empty str; got {cls.queue!r}")
    _check_exception_classes(name, "retry_on", cls.retry_on)
    _check_exception_classes(name, "discard_on", cls.discard_on)
    if not isinstance(cls.attempts, int) or isinstance(cls.attempts, bool):
        raise TypeError(f"{name}.attempts must be an int >= 1 (attempts in total); got {cls.attempts!r}")
    if cls.attempts < 1:
        raise ValueError(f"{name}.attempts must be an int >= 1 (attempts in total); got {cls.attempts!r}")
    _check_wait(name, cls.wait)
    check_choice(f"{name}.propagation", cls.propagation, (*PROPAGATIONS, None))


def _check_perform(name: str, perform: object) -> None:
    # Called without an event loop, an async perform would return a coroutine that never runs: the job would
    # "succeed" having done nothing.
    if inspect.iscoroutinefunction(perform) or inspect.isasyncgenfunction(perform):
        raise TypeError(
            f"{name}.perform is defined with `async def`; the built-in runtime performs jobs synchronously, "
            "as a worker does, so its body would never run. Define it with `def` (calling asyncio.run(...) "
            "inside if the work is async)."
        )


def _check_exception_classes(name: str, attribute: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(_is_exception_class(item) for item in value):
        raise TypeError(
            f"{name}.{attribute} must be a tuple of exception classes, e.g. (ConnectionError,); got {value!r}"
        )


def _is_exception_class(item: object) -> bool:
    return isinstance(item, type) and issubclass(item, Exception)


def _check_wait(name: str, wait: object) -> None:
    if callable(wait) or wait == "exponential":
        return
    if isinstance(wait, str):
        raise ValueError(f"{name}.wait must be {_WAIT_HELP}; got {wait!r}")
    if not isinstance(wait, (int, float)) or isinstance(wait, bool):
        raise TypeError(f"{name}.wait must be {_WAIT_HELP}; got {wait!r}")
    if wait < 0 or not math.isfinite(wait):
        raise ValueError(f"{name}.wait must be {_WAIT_HELP}; got {wait!r}")


def _round_trip(
    cls: type[Job], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Pass each argument through JSON, as a real queue would, naming the first one that cannot go."""
    __tracebackhide__ = True
    # Plain loops, not comprehensions: their frames could not be hidden from the traceback.
    loaded_args = []
    for index, value in enumerate(args):
        loaded_args.append(_through_json(cls, index, value))
    loaded_kwargs = {}
    for key, value in kwargs.items():
        loaded_kwargs[key] = _through_json(cls, key, value)
    return tuple(loaded_args), loaded_kwargs


def _through_json(cls: type[Job], position: int | str, value: object) -> Any:
    __tracebackhide__ = True
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError, RecursionError) as exc:
        label = f"keyword argument {position!r}" if isinstance(position, str) else _positional_label(cls, position)
        # Too deep to encode is a property of the whole value: searching it for a culprit would recurse too.
        deep = isinstance(exc, RecursionError)
        path, culprit = ("", value) if deep else _unserialisable(value)
        inside = f" at {path}" if path else ""
        reason = "nested too deeply" if deep else str(exc)
        raise JobArgumentError(
            f"{display_name(cls)}.perform_later(): {label} is not JSON-serialisable: "
            f"{type(culprit).__qualname__} object{inside} ({reason}). Jobs cross a serialisation boundary, as in "
            "a real queue: pass an id or a plain dict instead."
        ) from None  # json's own error is quoted in the message; its traceback is only json's internals


def _unserialisable(value: object) -> tuple[str, object]:
    """Where inside ``value`` (as ``['a'][1]``) the first value JSON cannot take sits, and that value.

    A loop rather than recursion, stopping at a container already visited: a circular argument (``d["self"]
    = d``) is reported where it closes the circle instead of exhausting the interpreter's stack.
    """
    path, seen = "", set()
    while id(value) not in seen:
        seen.add(id(value))
        for key, item in _items(value):
            try:
                json.dumps(item)
            except (TypeError, ValueError):
                path, value = f"{path}[{key!r}]", item
                break
        else:
            return path, value
    return path, value


def _items(value: object) -> list[tuple[object, object]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, (list, tuple)):
        return list(enumerate(value))
    return []


def _positional_label(cls: type[Job], index: int) -> str:
    """``argument 0 (order)``, naming ``perform``'s parameter that receives positional argument ``index``."""
    try:
        parameters = list(inspect.signature(cls.perform).parameters.values())[1:]  # without self
    except (TypeError, ValueError):
        return f"argument {index}"
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p.name for p in parameters if p.kind in kinds]
    if index < len(positional):
        return f"argument {index} ({positional[index]})"
    rest = [p.name for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL]
    return f"argument {index} (*{rest[0]})" if rest else f"argument {index}"
