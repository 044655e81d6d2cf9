"""The text-tree grammar: one span per line, depth by indentation or box drawing (docs/text-trees.md).

A line is a head (a name: ``*`` for any, ``/regex/`` for a pattern; or ``job NAME``) and optional
``[annotations]`` and ``{attributes}`` (notation.py reads those). ``render()`` and the "expected:"
block of a failure write the same grammar, so what the plugin prints reads back.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_jobtrace._core import extensions
from pytest_jobtrace._core.expect import EventSpec, ExceptionSpec, Expected, ExpectedSpan
from pytest_jobtrace._core.notation import (
    ANY,
    Groups,
    NotationError,
    NoteHandler,
    Reader,
    TwoGroups,
    escape_unprintable,
    looks_like_regex,
    read_attributes,
    read_groups,
)
from pytest_jobtrace._core.values import parse_kind, parse_status

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True


class TextTreeError(ValueError):
    """A text tree that does not parse; the message names the line and the problem."""


TextTreeError.__module__ = "pytest_jobtrace"


_BOX_CHARS = "│├└─ "
_BRANCHES = ("├── ", "└── ")


@dataclass
class _Line:
    number: int
    text: str
    depth: int
    children: list[_Line] = field(default_factory=list)


def parse_text_tree(text: str) -> list[Expected]:
    """Parse an indented or box-drawn tree, one span per line (see docs/text-trees.md)."""
    lines = _meaningful_lines(text)
    if not lines:
        raise TextTreeError("the text tree is empty: write one span name per line")
    boxed = any(set(_prefix(line)) - {" "} for _, line in lines)
    parsed = _box_depths(lines) if boxed else _indent_depths(lines)
    return _build_all(_nest(parsed))


def _meaningful_lines(text: str) -> list[tuple[int, str]]:
    _reject_mixed_tabs(text)
    # Split on newlines only: str.splitlines() also breaks at form feeds, U+2028 and the like.
    raw = textwrap.dedent(text.replace("\r\n", "\n").expandtabs(4)).split("\n")
    kept = [(i + 1, line.rstrip()) for i, line in enumerate(raw)]
    lines = [(n, line) for n, line in kept if line.strip() and not line.lstrip().startswith("#")]
    for number, line in lines:
        _reject_odd_indent(number, line)
    return lines


def _reject_odd_indent(number: int, line: str) -> None:
    """Whitespace other than spaces in the indentation would silently change a line's depth."""
    indent = line[: len(line) - len(line.lstrip())]
    odd = next((c for c in indent if c != " "), None)
    if odd is not None:
        name = unicodedata.name(odd, "a control character")
        raise TextTreeError(
            f"line {number}: {escape_unprintable(line.strip())!r} is indented with {name} (U+{ord(odd):04X}); "
            "indent a text tree with spaces only"
        )


def _reject_mixed_tabs(text: str) -> None:
    """A tab is 4 columns here, but maybe not in the editor it was typed in: never mix the two."""
    first: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if line.strip() and not line.lstrip().startswith("#"):
            for char, word in ((" ", "spaces"), ("\t", "tabs")):
                if char in indent:
                    first.setdefault(word, number)
    if len(first) == 2:
        (early, a), (late, b) = sorted((n, w) for w, n in first.items())
        raise TextTreeError(
            f"line {late}: indented with {b}, but line {early} with {a}; indent the tree with spaces only"
        )


def _prefix(line: str) -> str:
    stripped = line.lstrip(_BOX_CHARS)
    return line[: len(line) - len(stripped)]


def _box_depths(lines: list[tuple[int, str]]) -> list[_Line]:
    parsed = []
    for number, line in lines:
        prefix = _prefix(line)
        if len(prefix) % 4 or (prefix and not prefix.endswith(_BRANCHES)):
            raise TextTreeError(
                f"line {number}: {line.strip()!r}: a box-drawn line must start with '├── ' or '└── ' "
                "after 4 columns per level ('│   ' or '    '), as render() writes it"
            )
        rest = line[len(prefix) :]
        if rest[:1].isspace():
            raise TextTreeError(
                f"line {number}: {escape_unprintable(line.strip())!r}: whitespace between the box drawing and the "
                "name; write exactly one space after '──'"
            )
        parsed.append(_Line(number, rest, len(prefix) // 4))
    return parsed


def _indent_depths(lines: list[tuple[int, str]]) -> list[_Line]:
    indents = [len(line) - len(line.lstrip(" ")) for _, line in lines]
    unit = min((i for i in indents if i), default=2)
    if unit < 2:
        raise TextTreeError(f"line {lines[indents.index(1)][0]}: indent each level by two or more spaces, not one")
    parsed = []
    for (number, line), indent in zip(lines, indents):
        if indent % unit:
            raise TextTreeError(
                f"line {number}: {line.strip()!r} is indented {indent} spaces, "
                f"but the tree uses {unit} spaces per level"
            )
        parsed.append(_Line(number, line.strip(), indent // unit))
    return parsed


def _nest(lines: list[_Line]) -> list[_Line]:
    if lines[0].depth:
        first = lines[0]
        shallower = next((line for line in lines if line.depth == 0), None)
        if shallower is None:
            raise TextTreeError(f"line {first.number}: {first.text!r} is nested, but no line above it is its parent")
        raise TextTreeError(
            f"line {first.number}: {first.text!r} is indented more than {shallower.text!r} on line "
            f"{shallower.number}; the tree's first span must be its least indented line"
        )
    roots: list[_Line] = []
    stack: list[_Line] = []
    for line in lines:
        if line.depth > len(stack):
            raise TextTreeError(
                f"line {line.number}: {line.text!r} is indented {line.depth - len(stack) + 1} levels deeper "
                f"than the line above it ({stack[-1].text!r}); a child goes exactly one level deeper than its parent"
            )
        del stack[line.depth :]
        (stack[-1].children if stack else roots).append(line)
        stack.append(line)
    return roots


def _build_all(roots: list[_Line]) -> list[Expected]:
    """Children before parents, without recursion: a tree may be thousands of levels deep."""
    order: list[_Line] = []
    stack = list(roots)
    while stack:
        line = stack.pop()
        order.append(line)
        stack.extend(line.children)
    built: dict[int, Expected] = {}
    for line in reversed(order):
        built[id(line)] = _build(line, tuple(built.pop(id(child)) for child in line.children))
    return [built[id(root)] for root in roots]


def _build(line: _Line, children: tuple[Expected, ...]) -> Expected:
    try:
        head, groups, kind = parse_line(line.text)
        return kind.build(head, groups, children)
    except NotationError as exc:
        raise TextTreeError(f"line {line.number}: {escape_unprintable(line.text)!r}: {exc}") from None


@dataclass(frozen=True)
class LineKind:
    """What a line stands for: a span, or (registered by another node type) a line starting ``job ``."""

    notes: Mapping[str, NoteHandler]
    words: str
    build: Callable[[str, Groups, tuple[Expected, ...]], Expected]


LINE_KINDS: dict[str, LineKind] = {}  # by the first word of the head, e.g. "job"


def _kind_of(head: str) -> LineKind:
    extensions.load()
    word = head.split(" ", 1)[0]
    return LINE_KINDS.get(word, SPAN_LINE) if " " in head else SPAN_LINE


def parse_line(text: str) -> tuple[str, Groups, LineKind]:
    """Split a line into its head and its groups; a trailing group that does not parse is an error."""
    for match in _GROUP_START.finditer(text):
        head = text[: match.start()].rstrip()
        kind = _kind_of(head)
        try:
            groups = read_groups(text, match.end(), kind.notes, kind.words)
        except TwoGroups:
            raise
        except NotationError:
            continue
        _check_head(head, kind)
        return head, groups, kind
    _check_head(text, _kind_of(text))
    return text, Groups(), _kind_of(text)


_GROUP_START = re.compile(r"\s+(?=[\[{])")


def _check_head(head: str, kind: LineKind) -> None:
    """A head may not end in a group: that is a mistyped annotation or attribute, not part of a name."""
    if not (_attempted_group(head) if kind is SPAN_LINE else head.endswith(("]", "}"))):
        return
    failures = []
    for match in _GROUP_START.finditer(head):
        try:
            read_groups(head, match.end(), kind.notes, kind.words)
        except NotationError as exc:
            failures.append(exc)
    if failures:
        reason = max(failures, key=lambda exc: exc.pos)
        if kind is not SPAN_LINE:
            raise NotationError(str(reason))
        raise NotationError(f"{reason}; for a name that ends in brackets, write a /regex/: {literal_pattern(head)}")


def _attempted_group(head: str) -> bool:
    """Whether a head ends in what is meant as annotations (``[word...]``) or attributes (``{k=v}``).

    ``SELECT [1]``, ``list []`` and ``GET /users/ {id}`` are names; ``charge [clinet]`` is a typo.
    """
    if not head.endswith(("]", "}")):
        return False
    for match in _GROUP_START.finditer(head):
        opening, body = head[match.end()], head[match.end() + 1 :]
        if re.match(r"['\"×A-Za-z]", body) if opening == "[" else "=" in body or ":" in body:
            return True
    return False


def build_span(head: str, groups: Groups, children: tuple[Expected, ...]) -> Expected:
    notes = groups.notes
    return ExpectedSpan(
        name=read_name(head),
        kind=notes.get("kind"),
        attributes=groups.attributes,
        status=notes.get("status"),
        description=notes.get("description"),
        events=tuple(notes.get("events", ())),
        exception=notes.get("exception"),
        links=tuple(notes.get("links", ())),
        children=children,
        count=notes.get("count"),
        exact=notes.get("exact"),
        exact_attributes=notes.get("exact attributes", False),
        links_not_captured=notes.get("links not captured", 0),
    )


def read_name(head: str) -> object:
    """``*``, ``/regex/`` or a literal name; a literal that looks like a pattern is refused."""
    if head == "*":
        return None
    if len(head) > 2 and head.startswith("/") and head.endswith("/"):
        try:
            return re.compile(head[1:-1])
        except re.error as exc:
            raise NotationError(f"its /regex/ does not compile: {exc}") from None
    if looks_like_regex(head):
        raise NotationError(
            f"{head!r} looks like a regular expression, but a name is taken literally: write /{head}/ to match "
            "a pattern (or escape it, /name\\.\\*/, to match those characters literally)"
        )
    return head


def written_name(name: str, notes: str = "") -> str:
    """How a tree line spells span ``name`` (followed by ``notes``) to read back as exactly that name.

    Names the grammar would read otherwise (``*``, ``/x/``, a trailing ``[ok]`` or ``{...}``, ``job ...``,
    a pattern-looking name, leading ``#`` or box characters, surrounding spaces, line breaks) are written
    as an escaped ``/regex/``.
    """
    if notes[:1] == " " and name == name.rstrip() and _GROUP_START.search(name) is None:
        # The plugin's own notes always read as groups, and nothing in the name can start one: the line
        # splits where the notes begin, so the name reads back as it would alone (and no need to parse
        # the notes, which in render(details=True) hold every attribute).
        return written_name(name)
    line = name + notes
    if name and line.isprintable() and line == line.strip() and line[0] not in "#" + _BOX_CHARS:
        try:
            head, _, kind = parse_line(line)
            if kind is SPAN_LINE and read_name(head) == name:
                return name
        except NotationError:
            pass
    return literal_pattern(name)


def _escape_char(char: str) -> str:
    if char == " ":
        return char  # re.escape's "\ " is noise: a space matches itself
    return re.escape(char) if char.isprintable() else f"\\U{ord(char):08x}"


def literal_pattern(name: str) -> str:
    """``/regex/`` matching exactly ``name``."""
    pattern = "".join(_escape_char(c) for c in name)
    return "/" + (pattern or "(?:)") + "/"


# --- a span's annotations -----------------------------------------------------------------------------


def _note_kind(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    _once(reader, notes, "kind", parse_kind(word))


def _note_status(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    _once(reader, notes, "status", parse_status(word))
    reader.skip()
    if reader.at_value():
        _once(reader, notes, "description", reader.string_or_pattern("a status description"))


def _note_description(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    _once(reader, notes, "description", reader.string_or_pattern("description"))


def _note_link(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    if reader.take("(not captured)"):
        # written by render() for a link to a span outside the capture (a sampled-out request, say)
        notes["links not captured"] = notes.get("links not captured", 0) + 1
        return
    target = reader.string_or_pattern("link")
    name = None if target is ANY else read_name(target) if isinstance(target, str) else target
    notes.setdefault("links", []).append(ExpectedSpan(name=name))


def _note_count(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    _once(reader, notes, "count", int(word[1:]))


def _note_exact(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    start = reader.pos
    if reader.word() == "attributes":
        _once(reader, notes, "exact attributes", True)
        return
    reader.pos = start
    _once(reader, notes, "exact", True)


def _note_event(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    reader.skip()
    name = reader.string_or_pattern("event")
    reader.skip()
    attributes = read_attributes(reader) if reader.peek() == "{" else None
    notes.setdefault("events", []).append(EventSpec(None if name is ANY else name, attributes))


def note_exception(reader: Reader, word: str, notes: dict[str, Any]) -> None:
    values: list[object] = []
    for what in ("an exception type", "an exception message"):
        reader.skip()
        if not reader.at_value():
            break
        value = reader.string_or_pattern(what)
        values.append(None if value is ANY else value)
    _once(reader, notes, "exception", ExceptionSpec(*values))


def _once(reader: Reader, notes: dict[str, Any], key: str, value: object) -> None:
    if key in notes:
        raise reader.fail(f"{key} is given twice")
    notes[key] = value


SPAN_NOTES: dict[str, NoteHandler] = {
    **dict.fromkeys(("server", "client", "producer", "consumer", "internal"), _note_kind),
    **dict.fromkeys(("ok", "error", "unset"), _note_status),
    "description": _note_description,
    "link": _note_link,
    "xN": _note_count,
    "exact": _note_exact,
    "event": _note_event,
    "exception": note_exception,
}
SPAN_LINE = LineKind(
    SPAN_NOTES,
    'a kind (server, client...), OK/ERROR/UNSET with an optional "description", description "...", '
    'link "name", event "name", exception "Type" "message", xN, exact, exact attributes',
    build_span,
)
