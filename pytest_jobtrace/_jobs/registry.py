"""Every known adapter: those of the ``pytest_jobtrace.adapters`` entry points, then registered ones."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from importlib.metadata import entry_points
from types import MappingProxyType

from opentelemetry.sdk.trace import ReadableSpan

from pytest_jobtrace._jobs.info import JobSpanInfo
from pytest_jobtrace._jobs.protocol import ActiveAdapter, JobAdapter

ENTRY_POINT_GROUP = "pytest_jobtrace.adapters"

# What the plugin and the job layer read; an object lacking one is refused with its name, rather than
# guessed at: a missing member would otherwise show as a snapshot that differs on every run, or a warning.
_MEMBERS = (
    "name",
    "fixture_name",
    "extra",
    "options",
    "recognise",
    "activate",
    "volatile_attributes",
    "undrained_hint",
)
_ACTIVE_MEMBERS = ("pending", "drain", "perform_one", "failed", "chain_error", "close")

_registry: dict[str, JobAdapter] = {}
_entry_points_loaded = False
_recognised: weakref.WeakKeyDictionary[ReadableSpan, tuple[tuple[int, ...], Recognised | None]] = (
    weakref.WeakKeyDictionary()
)
_active: dict[str, ActiveAdapter] = {}  # the running test's activations, by adapter name


def activated(name: str, active: ActiveAdapter | None) -> None:
    """Note adapter ``name``'s activation for the running test (None once its fixture is torn down)."""
    if active is None:
        _active.pop(name, None)
    else:
        _active[name] = active


def active_adapter(name: str) -> ActiveAdapter | None:
    """The activation of adapter ``name`` for the running test (its fixture's value), or None."""
    return _active.get(name)


def register_adapter(adapter: JobAdapter) -> None:
    """Make an adapter known after the entry-point ones (replacing one of the same name)."""
    _load()
    _add(adapter)


def adapters() -> Mapping[str, JobAdapter]:
    """Every known adapter by name (read-only): those from entry points, then registered ones."""
    _load()
    return MappingProxyType(_registry)


Recognised = tuple[JobAdapter, JobSpanInfo]


def recognise(span: ReadableSpan) -> Recognised | None:
    """The adapter that recognises ``span`` and its description; each system recognises only its own spans.

    Remembered per span object while the adapters stay the same (an ended span does not change): a live
    test's ``wait()`` reads the whole capture again on each arrival."""
    _load()
    adapters_now = tuple(map(id, _registry.values()))
    known = _recognised.get(span)
    if known is not None and known[0] == adapters_now:
        return known[1]
    found: Recognised | None = None
    for adapter in _registry.values():
        info = adapter.recognise(span)
        if info is not None:
            found = adapter, info
            break
    if span.end_time is not None:
        _recognised[span] = (adapters_now, found)
    return found


def checked_activation(adapter: JobAdapter, active: ActiveAdapter) -> ActiveAdapter:
    """What ``activate()`` returned, refused with what it lacks unless it is an active adapter."""
    missing = [member for member in _ACTIVE_MEMBERS if not hasattr(active, member)]
    if missing:
        raise TypeError(
            f"the {adapter.name} adapter's activate() returned {active!r}, which lacks {', '.join(missing)}"
            f" (an active adapter has {_listing(_ACTIVE_MEMBERS)}; set chain_error = None until a drain raises"
            " JobChainError)"
        )
    return active


def _add(adapter: JobAdapter) -> None:
    missing = [member for member in _MEMBERS if not hasattr(adapter, member)]
    if missing:
        raise TypeError(
            f"{adapter!r} is not a job adapter: it lacks {', '.join(missing)}"
            f" (an adapter has {_listing(_MEMBERS)}; volatile_attributes = () and undrained_hint = None"
            " when there are none)"
        )
    _registry[adapter.name] = adapter


def _listing(members: tuple[str, ...]) -> str:
    written = [f"{m}()" if m in ("recognise", "activate", "drain", "perform_one", "close") else m for m in members]
    return f"{', '.join(written[:-1])} and {written[-1]}"


def _load() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name)):
        try:
            _add(entry.load())
        except Exception as error:  # a broken adapter must not pass for an absent one
            raise RuntimeError(
                f"pytest-jobtrace: the adapter entry point {entry.name!r} ({entry.value}) failed to load: {error}"
            ) from error


for _public in (register_adapter, adapters):
    _public.__module__ = "pytest_jobtrace.adapters"
