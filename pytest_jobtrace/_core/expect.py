"""Expected nodes: what a test says a span (or, later, a job) should look like."""

from __future__ import annotations

import builtins
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from pytest_jobtrace._core.notation import is_present, quote, show_pattern, write_attributes, write_value
from pytest_jobtrace._core.values import (
    distinct_matches,
    kind_word,
    mismatch,
    show,
    show_name,
    value_matches,
)

if TYPE_CHECKING:
    from pytest_jobtrace._core.forest import SpanForest, SpanNode


class Expected:
    """Base of every expected node; the matcher only talks to this interface."""

    children: tuple[Expected, ...] = ()
    links: tuple[Expected, ...] = ()
    count: int | None = None
    exact: bool | None = None  # exactly these children here, whatever the assertion's exact=
    noun = "span"  # what messages call the things this node counts

    def label(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """The label and the checks it carries, for a message: ``'charge' with [server] {a='b'}``."""
        return self.label()

    def exact_name(self) -> str | None:
        """A literal name lets the matcher look candidates up instead of trying every span."""
        return None

    def exact_attribute(self) -> tuple[str, object] | None:
        """An attribute that must equal a plain value lets the matcher look candidates up too."""
        return None

    def absent(self, forest: SpanForest) -> str | None:
        """A message for when nothing captured is even the kind of thing meant (no such job at all)."""
        return None

    def covered_roots(self, forest: SpanForest) -> set[int]:
        """Captured roots this node accounts for besides the span it matches (a job's linked attempts)."""
        return set()

    def whereabouts(self, forest: SpanForest) -> str | None:
        """Where the thing meant is, when it is not where it was expected (a job enqueued elsewhere)."""
        return None

    def missing_hint(self, parent: SpanNode) -> str | None:
        """Why this node may be missing under ``parent`` (a job under one that failed), or None."""
        return None

    def siblings(self, actual: Sequence[SpanNode]) -> str:
        """What is there instead, when nothing under a span matches this node: its children."""
        shown = ", ".join(show_name(n.name) for n in actual[:6])
        more = f" and {len(actual) - 6} more" if len(actual) > 6 else ""
        return f"its children are {shown}{more}" if actual else "it has no children"

    def same_name(self, node: SpanNode) -> bool:
        """Whether the node is the one meant, even if other checks fail (for picking the closest)."""
        name = self.exact_name()
        return name is None or name == node.name

    def local_mismatch(self, node: SpanNode) -> str | None:
        """The first difference on this node itself (not its children or links), or None."""
        raise NotImplementedError

    def closeness(self, node: SpanNode) -> int:
        """How many of this node's own checks the span passes, to pick the closest of several."""
        return 0

    def child_nodes(self, node: SpanNode) -> Sequence[SpanNode]:
        """The actual nodes that this node's expected children are matched against."""
        return node.children

    def children_owner(self, node: SpanNode) -> SpanNode:
        """The span whose children ``child_nodes`` are, as messages name it."""
        return node

    def group_key(self) -> Hashable:
        """Equal keys mean interchangeable siblings (matched as one group); id() when unsure."""
        return id(self)

    def render_line(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class EventSpec:
    name: object
    attributes: Mapping[str, object] | None = None

    def describe(self) -> str:
        if not self.attributes:
            return show_name(self.name)
        return f"{show_name(self.name)} {show_attrs(self.attributes)}"

    def note(self) -> str:
        """The ``event "name" {attributes}`` annotation."""
        attributes = f" {show_attrs(self.attributes)}" if self.attributes else ""
        return f"event {_note_value(self.name)}{attributes}"


@dataclass(frozen=True)
class ExceptionSpec:
    type: object = None
    message: object = None

    def describe(self) -> str:
        parts = []
        if self.type is not None:
            parts.append(_type_label(self.type))
        if self.message is not None:
            parts.append(f"message {show(self.message)}")
        return " with ".join(parts) if parts else "any exception"

    def note(self) -> str:
        """The ``exception "Type" "message"`` annotation."""
        words = ["exception"]
        if self.type is not None or self.message is not None:
            words.append("*" if self.type is None else _note_value(self.type))
        if self.message is not None:
            words.append(_note_value(self.message))
        return " ".join(words)


def _note_value(value: object) -> str:
    """A string or pattern as the notation writes it; a class by its name; other matchers as they show."""
    if isinstance(value, type):
        value = value.__name__
    return write_value(value) if isinstance(value, (str, re.Pattern)) else show(value)


def _type_label(expected: object) -> str:
    if isinstance(expected, type):
        # A class that shadows a builtin's name is shown qualified: "expected ConnectionError, got
        # ConnectionError" would say nothing.
        return _qualified(expected) if _shadows_builtin(expected) else expected.__name__
    return show_name(expected)


def _qualified(cls: type) -> str:
    """The type as OpenTelemetry's ``record_exception`` writes it (SDK 1.25 on): plain for builtins."""
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def _shadows_builtin(cls: type) -> bool:
    return cls.__module__ != "builtins" and isinstance(getattr(builtins, cls.__name__, None), type)


def exception_type_matches(expected: object, actual: object) -> bool:
    """A class matches its qualified name as recorded, or its bare name where a recorder wrote only that;
    a string also matches a dotted tail of the recorded name."""
    if not isinstance(actual, str):
        return False
    if isinstance(expected, type):
        if actual == _qualified(expected):
            return True
        # Other recorders may write only the class's name (or qualname), but a builtin's name recorded
        # means the builtin was raised: a local `class ConnectionError` must not match it.
        unqualified = actual in (expected.__name__, expected.__qualname__)
        return unqualified and not isinstance(getattr(builtins, actual, None), type)
    if isinstance(expected, str):
        return actual == expected or actual.endswith(f".{expected}")
    return value_matches(expected, actual)


@dataclass(frozen=True, eq=False)
class ExpectedSpan(Expected):
    """An expected span; build it with :func:`pytest_jobtrace.span`."""

    name: object = None
    kind: SpanKind | None = None
    attributes: Mapping[str, object] | None = None
    status: StatusCode | None = None
    description: object = None
    events: tuple[EventSpec, ...] = ()
    exception: ExceptionSpec | None = None
    links: tuple[Expected, ...] = ()
    children: tuple[Expected, ...] = ()
    count: int | None = None
    exact: bool | None = None
    exact_attributes: bool = False
    links_not_captured: int = 0  # ``link (not captured)`` in a text tree: links to spans outside the capture
    _key: Hashable = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", self._compute_key())

    def _compute_key(self) -> Hashable:
        try:
            attrs = None if self.attributes is None else tuple(sorted(self.attributes.items()))
            children = tuple(c.group_key() for c in self.children)
            links = tuple(x.group_key() for x in self.links)
            key = (self.name, self.kind, attrs, self.status, self.description, self.events, self.exception)
            key_all = (*key, children, links, self.count, self.exact, self.exact_attributes, self.links_not_captured)
            hash(key_all)
        except TypeError:
            return id(self)
        return key_all

    def group_key(self) -> Hashable:
        return self._key

    def label(self) -> str:
        return "any span" if self.name is None else show_name(self.name)

    def exact_name(self) -> str | None:
        return self.name if isinstance(self.name, str) else None

    def exact_attribute(self) -> tuple[str, object] | None:
        for key, value in (self.attributes or {}).items():
            if type(value) in (str, int, float, bool):
                return key, value
        return None

    def same_name(self, node: SpanNode) -> bool:
        return self.name is None or value_matches(self.name, node.name)

    def local_mismatch(self, node: SpanNode) -> str | None:
        for check in (self._name_diff, self._kind_diff, self._status_diff, self._attributes_diff):
            message = check(node)
            if message is not None:
                return message
        return self._events_diff(node) or self._exception_diff(node) or self._uncaptured_diff(node)

    def _uncaptured_diff(self, node: SpanNode) -> str | None:
        wanted, found = self.links_not_captured, node.unresolved_links
        if found >= wanted:
            return None
        return f"links: expected {wanted} link{'s' * (wanted != 1)} to a span outside the capture, found {found}"

    def closeness(self, node: SpanNode) -> int:
        checks = (self._kind_diff, self._status_diff, self._events_diff, self._exception_diff)
        passed = sum(check(node) is None for check in checks)
        actual = node.span.attributes or {}
        return passed + sum(attributes_diff({k: v}, actual) is None for k, v in (self.attributes or {}).items())

    def _name_diff(self, node: SpanNode) -> str | None:
        if self.name is None or value_matches(self.name, node.name):
            return None
        part = isinstance(self.name, re.Pattern) and self.name.search(node.name) is not None
        why = " (it matches only part of it: a name pattern must match the whole name, re.fullmatch)" if part else ""
        return f"name: expected {show_name(self.name)}, got {node.name!r}{why}"

    def _kind_diff(self, node: SpanNode) -> str | None:
        if self.kind is None or node.kind == self.kind:
            return None
        return f"kind: expected {kind_word(self.kind)}, got {kind_word(node.kind)}"

    def _status_diff(self, node: SpanNode) -> str | None:
        status = node.span.status
        if self.status is not None and status.status_code != self.status:
            got = status.status_code.name
            if status.description:
                got += f" ({status.description!r})"
            return f"status: expected {self.status.name}, got {got}"
        if self.description is not None and not value_matches(self.description, status.description):
            return f"status description: {mismatch(self.description, status.description)}"
        return None

    def _attributes_diff(self, node: SpanNode) -> str | None:
        actual = node.span.attributes or {}
        found = attributes_diff(self.attributes, actual) if self.attributes else None
        if found is None and self.exact_attributes:
            return extra_attributes(self.attributes or {}, actual)
        return found

    def _events_diff(self, node: SpanNode) -> str | None:
        if not self.events:
            return None
        events = node.span.events
        options = [[i for i, event in enumerate(events) if _event_matches(spec, event)] for spec in self.events]
        for spec, found in zip(self.events, options):
            if not found:
                return _event_difference(spec, events)
        if distinct_matches(options):
            return None
        return f"events: {_short_of(self.events, options)}, got {[event.name for event in events]}"

    def _exception_diff(self, node: SpanNode) -> str | None:
        return None if self.exception is None else exception_difference(self.exception, node)

    def describe(self) -> str:
        rest = self._groups()
        return f"{self.label()} with {rest}" if rest else self.label()

    def render_line(self) -> str:
        """The line a text tree would hold for this node (docs/text-trees.md): it parses back as this node."""
        groups = self._groups()
        suffix = f" {groups}" if groups else ""
        return _head(self.name, suffix) + suffix

    def _groups(self) -> str:
        notes = self._notes()
        parts = [f"[{', '.join(notes)}]"] if notes else []
        if self.attributes:
            parts.append(show_attrs(self.attributes))
        return " ".join(parts)

    def _notes(self) -> list[str]:
        notes = [] if self.kind is None else [kind_word(self.kind)]
        status = [] if self.status is None else [self.status.name]
        if self.description is not None:
            status.append(write_value(self.description) if status else f"description {write_value(self.description)}")
        notes += [" ".join(status)] if status else []
        notes.extend(f"link {write_value(_link_name(link))}" for link in self.links)
        notes.extend("link (not captured)" for _ in range(self.links_not_captured))
        notes.extend(spec.note() for spec in self.events)
        if self.exception is not None:
            notes.append(self.exception.note())
        notes += [] if self.count is None else [f"x{self.count}"]
        notes += ["exact"] if self.exact else []
        notes += ["exact attributes"] if self.exact_attributes else []
        return notes


def _head(name: object, suffix: str) -> str:
    from pytest_jobtrace._core.texttree import written_name  # the grammar module imports this one

    if name is None:
        return "*"
    if isinstance(name, re.Pattern):
        return show_pattern(name, head=True)
    return written_name(name, suffix) if isinstance(name, str) else show_name(name)


def _link_name(link: Expected) -> object:
    """A link target as a text tree names it: a string (``*`` or ``/x/`` inside), or a pattern."""
    name = getattr(link, "name", None)
    if name is None:
        return "*"
    return _head(name, "") if isinstance(name, str) else name


def show_attrs(attributes: Mapping[str, object]) -> str:
    return write_attributes(attributes)


def extra_attributes(expected: Mapping[str, object], actual: Mapping[str, Any]) -> str | None:
    """With exact attributes: the attributes the span has that the expectation does not list."""
    extra = [key for key in actual if key not in expected]
    if not extra:
        return None
    shown = ", ".join(f"{key}={show(actual[key])}" for key in extra[:5])
    more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
    return f"attributes: unexpected {shown}{more} (exact attributes: the span may have only those listed)"


def attributes_diff(expected: Mapping[str, object], actual: Mapping[str, Any]) -> str | None:
    """Subset match; None as a value asserts the attribute is absent."""
    for key, value in expected.items():
        got = actual.get(key, _ABSENT)
        if value is None:
            if got is not _ABSENT:
                return f"attributes[{key!r}]: expected absent, got {got!r}"
            continue
        if got is _ABSENT:
            wanted = "the attribute (any value, *)" if is_present(value) else show(value)
            return f"attributes[{key!r}]: expected {wanted}, but the span has no such attribute"
        if not value_matches(value, got):
            return f"attributes[{key!r}]: {mismatch(value, got)}"
    return None


_ABSENT: Any = object()


def _event_difference(spec: EventSpec, events: Sequence[Any]) -> str:
    """The attribute that differs when an event of that name is there, else which events there are."""
    named = [event for event in events if value_matches(spec.name, event.name)]
    if named and spec.attributes is not None:
        detail = attributes_diff(spec.attributes, named[0].attributes or {})
        more = f" (and {len(named) - 1} more such events)" if len(named) > 1 else ""
        return f"event {named[0].name!r}{more}: {detail}"
    names = [event.name for event in events]
    return f"events: expected an event {spec.describe()}, got {names or 'no events'}"


def _short_of(specs: Sequence[EventSpec], options: list[list[int]]) -> str:
    """The expectation repeated more often than the span has matching events (or, failing that, all)."""
    for spec, found in zip(specs, options):
        wanted = sum(other == spec for other in specs)
        if wanted > len(found):
            return f"expected {wanted} events {spec.describe()}, {len(found)} match"
    return f"expected {len(specs)} distinct events [{', '.join(spec.describe() for spec in specs)}]"


def _event_matches(spec: EventSpec, event: Any) -> bool:
    if not value_matches(spec.name, event.name):
        return False
    return spec.attributes is None or attributes_diff(spec.attributes, event.attributes or {}) is None


def exception_difference(spec: ExceptionSpec, node: SpanNode) -> str | None:
    """Why no exception event of ``node``'s span matches ``spec``, or None when one does."""
    found = [dict(e.attributes or {}) for e in node.span.events if e.name == "exception"]
    if any(_exception_matches(spec, attrs) for attrs in found):
        return None
    got = ", ".join(f"{a.get('exception.type')}: {a.get('exception.message')!r}" for a in found)
    return f"exception: expected {spec.describe()}, got {got or 'no exception event'}"


def _exception_matches(spec: ExceptionSpec, attributes: Mapping[str, Any]) -> bool:
    if spec.type is not None and not exception_type_matches(spec.type, attributes.get("exception.type")):
        return False
    return spec.message is None or value_matches(spec.message, attributes.get("exception.message"))


def json_string(text: str) -> str:
    """Strings inside text-tree annotations are double-quoted literals that stay on one line."""
    return quote(text)
