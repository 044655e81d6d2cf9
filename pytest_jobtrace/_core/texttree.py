"""The text-tree grammar: one span per line, depth by indentation or box drawing (docs/text-trees.md).

A line is a name (``*`` for any, ``/regex/`` for a pattern) and an optional trailing ``[...]`` of
annotations: kind, status with a JSON-string description, ``link "name"``, ``xN``. ``render()`` writes
the same grammar, so a rendered capture is a valid expectation.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_jobtrace._core.expect import Expected, ExpectedSpan
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
    return [_build(line) for line in _nest(parsed)]


def _meaningful_lines(text: str) -> list[tuple[int, str]]:
    _reject_mixed_tabs(text)
    raw = textwrap.dedent(text.expandtabs(4)).splitlines()
    kept = [(i + 1, line.rstrip()) for i, line in enumerate(raw)]
    return [(n, line) for n, line in kept if line.strip() and not line.lstrip().startswith("#")]


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
        parsed.append(_Line(number, line[len(prefix) :], len(prefix) // 4))
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


def _build(line: _Line) -> Expected:
    try:
        name, notes = _split_annotations(line)
        parsed = _parse_name(name)
    except re.error as exc:
        raise TextTreeError(f"line {line.number}: {line.text!r}: its /regex/ does not compile: {exc}") from None
    return ExpectedSpan(
        name=parsed,
        kind=notes.get("kind"),
        status=notes.get("status"),
        description=notes.get("description"),
        links=tuple(notes.get("links", ())),
        children=tuple(_build(child) for child in line.children),
        count=notes.get("count"),
    )


def written_name(name: str, notes: str = "") -> str:
    """How a tree line spells span ``name`` (followed by ``notes``) to read back as exactly that name.

    Names the grammar would read otherwise (``*``, ``/x/``, a trailing ``[ok]``, leading ``#`` or box
    characters, surrounding spaces, line breaks) are written as an escaped ``/regex/``.
    """
    line = name + notes
    if name and line.isprintable() and line == line.strip() and line[0] not in "#" + _BOX_CHARS:
        text, _ = _split_annotations(_Line(0, line, 0))
        if _reads_back_as(text, name):
            return name
    pattern = "".join(re.escape(c) if c.isprintable() else f"\\U{ord(c):08x}" for c in name)
    return f"/{pattern or '(?:)'}/"


def _reads_back_as(text: str, name: str) -> bool:
    try:
        return _parse_name(text) == name
    except re.error:  # a literal name such as "/[/" is not a pattern
        return False


def _parse_name(name: str) -> object:
    if name == "*":
        return None
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        return re.compile(name[1:-1])
    return name


def _split_annotations(line: _Line) -> tuple[str, dict[str, Any]]:
    """The trailing ``[...]`` is annotations only if everything in it parses as such."""
    text = line.text
    if text.endswith("]"):
        for match in re.finditer(r"\s\[", text):
            notes = _parse_notes(text[match.end() : -1])
            if notes is not None:
                return text[: match.start()].rstrip(), notes
    return text, {}


_NOTE_PATTERNS = (
    (re.compile(r"(server|client|producer|consumer|internal)\b", re.I), "kind"),
    (re.compile(r"(ok|error|unset)\b", re.I), "status"),
    (re.compile(r"link\b"), "link"),
    (re.compile(r"[x×](\d+)\b"), "count"),
)


def _parse_notes(body: str) -> dict[str, Any] | None:
    notes: dict[str, Any] = {}
    pos = 0
    while pos < len(body):
        pos = _parse_note(body, pos, notes)
        if pos < 0:
            return None
        pos = _skip(body, pos)
        if pos < len(body):
            if body[pos] != ",":
                return None
            pos = _skip(body, pos + 1)
    return notes or None


def _skip(body: str, pos: int) -> int:
    while pos < len(body) and body[pos] == " ":
        pos += 1
    return pos


def _parse_note(body: str, pos: int, notes: dict[str, Any]) -> int:
    for pattern, what in _NOTE_PATTERNS:
        match = pattern.match(body, pos)
        if match:
            return _NOTE_HANDLERS[what](body, match, notes)
    return -1


def _note_kind(body: str, match: re.Match[str], notes: dict[str, Any]) -> int:
    notes["kind"] = parse_kind(match.group(1))
    return match.end()


def _note_status(body: str, match: re.Match[str], notes: dict[str, Any]) -> int:
    notes["status"] = parse_status(match.group(1))
    description, end = _json_string(body, _skip(body, match.end()))
    if description is not None:
        notes["description"] = description
        return end
    return match.end()


def _note_link(body: str, match: re.Match[str], notes: dict[str, Any]) -> int:
    pos = _skip(body, match.end())
    if body.startswith("(not captured)", pos):
        # Nothing to check (the target is not there), but it makes the brackets annotations.
        notes["uncaptured links"] = notes.get("uncaptured links", 0) + 1
        return pos + len("(not captured)")
    target, end = _json_string(body, pos)
    if target is None:
        return -1
    notes.setdefault("links", []).append(ExpectedSpan(name=_parse_name(target)))
    return end


def _note_count(body: str, match: re.Match[str], notes: dict[str, Any]) -> int:
    notes["count"] = int(match.group(1))
    return match.end()


_NOTE_HANDLERS: dict[str, Callable[[str, re.Match[str], dict[str, Any]], int]] = {
    "kind": _note_kind,
    "status": _note_status,
    "link": _note_link,
    "count": _note_count,
}


def _json_string(body: str, pos: int) -> tuple[str | None, int]:
    if pos >= len(body) or body[pos] != '"':
        return None, pos
    try:
        value, end = json.JSONDecoder().raw_decode(body, pos)
    except json.JSONDecodeError:
        return None, pos
    return (value, end) if isinstance(value, str) else (None, pos)
