"""The notation of one text-tree line: a head, then one ``[notes]`` and one ``{attributes}`` group.

Reading and writing live together so that what the plugin prints reads back as what it describes
(docs/text-trees.md has the grammar). Values are ``/regex/`` or Python literals; strings in notes are
written double-quoted, with every character that is not printable escaped, so a line stays one line.
"""

from __future__ import annotations

import ast
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

ANY: Any = object()  # a ``*`` value: anything


class _Present:
    """``{key=*}``: the attribute is there, with any value (render(details=True) writes volatile values so).

    It equals only itself: value_matches() asks is_present(). An ``__eq__`` that took anything would make
    ``{k=*}`` and ``{k=0}`` one key where the matcher memoises expectations, and the second pass unchecked.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "*"


PRESENT: Any = _Present()


def is_present(value: object) -> bool:
    """``*``, or ``unittest.mock.ANY`` written in Python (looked up only if the test imported mock)."""
    if value is PRESENT:
        return True
    mock = sys.modules.get("unittest.mock")
    return mock is not None and value is getattr(mock, "ANY", None)


class NotationError(ValueError):
    """A part of a line that does not parse; ``pos`` is how far reading got (to pick the best reason)."""

    def __init__(self, message: str, pos: int = 0) -> None:
        super().__init__(message)
        self.pos = pos


# --- writing -------------------------------------------------------------------------------------


def escape_unprintable(text: str, keep: str = "") -> str:
    """``text`` with each character that is not printable (controls, U+2028, U+202E...) as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _escape_char(c) for c in text)


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(text: str) -> str:
    """A double-quoted Python string literal (also JSON for printable text) that stays on one line."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escape_unprintable(body.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")) + '"'


_INLINE_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"), (re.ASCII, "a"))


def show_pattern(pattern: re.Pattern[Any], *, head: bool = False) -> str:
    """``/pattern/``, with flags written inline and unescaped slashes escaped, so it reads back.

    A line's head is ``/.../`` as a whole, so there (``head=True``) slashes stay as they are.
    """
    text = pattern.pattern if isinstance(pattern.pattern, str) else repr(pattern.pattern)
    flags = "".join(letter for flag, letter in _INLINE_FLAGS if pattern.flags & flag)
    if flags and not text.startswith("(?"):
        text = f"(?{flags}){text}"
    return "/" + escape_unprintable(text if head else escape_slashes(text)) + "/"


def escape_slashes(text: str) -> str:
    out, escaped = [], False
    for char in text:
        out.append("\\/" if char == "/" and not escaped else char)
        escaped = char == "\\" and not escaped
    return "".join(out)


def write_value(value: object) -> str:
    """An attribute or note value as the notation writes it (repr for anything with no text form)."""
    if isinstance(value, re.Pattern):
        return show_pattern(value)
    if isinstance(value, str):
        return quote(value)
    if is_present(value):
        return "*"
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # nan, inf, -inf: read back by name
    if isinstance(value, (list, tuple)):
        inner = ", ".join(write_value(item) for item in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else _brackets(value, inner)
    return escape_unprintable(repr(value))


def _brackets(value: list[Any] | tuple[Any, ...], inner: str) -> str:
    return f"[{inner}]" if isinstance(value, list) else f"({inner})"


_BARE_KEY = re.compile(r"[^\s=,{}\[\]\"'/]+")


def write_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) and key.isprintable() else quote(key)


def write_attributes(attributes: Mapping[str, object]) -> str:
    return "{" + ", ".join(f"{write_key(key)}={write_value(value)}" for key, value in attributes.items()) + "}"


# --- reading -------------------------------------------------------------------------------------


@dataclass
class Groups:
    """What follows a line's head: its notes (by the handlers' keys) and its attributes."""

    notes: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, object] | None = None
    bracket: str = ""  # the ``[...]`` group as written, for messages


NoteHandler = Callable[["Reader", str, dict[str, Any]], None]


class Reader:
    """A cursor over one line, for the groups after its head."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    def fail(self, message: str) -> NotationError:
        return NotationError(message, self.pos)

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def word(self) -> str:
        match = _WORD.match(self.text, self.pos)
        if not match:
            return ""
        self.pos = match.end()
        return match.group()

    def at_value(self) -> bool:
        return self.peek() in ("'", '"', "/", "*")

    def value(self) -> object:
        """``/regex/``, ``*`` (ANY) or a Python literal."""
        if self.take("*"):
            return ANY
        if self.peek() == "/":
            return self._pattern()
        return self.literal()

    def string_or_pattern(self, what: str) -> object:
        start = self.pos
        value = self.value() if self.at_value() else None
        if value is ANY or isinstance(value, (str, re.Pattern)):
            return value
        self.pos = start
        raise self.fail(f"{what} takes a quoted string or a /regex/")

    def _pattern(self) -> re.Pattern[str]:
        start, pos, escaped = self.pos, self.pos + 1, False
        while pos < len(self.text) and (escaped or self.text[pos] != "/"):
            escaped = self.text[pos] == "\\" and not escaped
            pos += 1
        if pos >= len(self.text):
            raise self.fail("a /regex/ is not closed with /")
        self.pos = pos + 1
        try:
            return re.compile(self.text[start + 1 : pos])
        except re.error as exc:
            raise NotationError(f"/{self.text[start + 1 : pos]}/ does not compile: {exc}", start) from None

    def literal(self, stops: str = " ,") -> object:
        start, end = self.pos, _literal_end(self.text, self.pos, stops)
        source = self.text[start:end]
        if not source:
            raise self.fail("expected a value")
        if source in _NON_FINITE:
            self.pos = end
            return _NON_FINITE[source]
        try:
            value = _literal_eval(source)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            hint = f" (a string is quoted: {quote(source)})" if _BARE_KEY.fullmatch(source) else ""
            raise self.fail(f"{source} is not a value{hint}") from None
        if not _plain(value):
            raise self.fail(f"{source}: a value is a string, number, bool, None or a list of one of them")
        self.pos = end
        return value


_WORD = re.compile(r"[A-Za-z_×][A-Za-z0-9_]*")
_COUNT = re.compile(r"[x×]\d+")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _literal_eval(source: str) -> object:
    """``ast.literal_eval``, also reading ``nan``, ``inf`` and ``-inf`` inside a list or tuple, as written."""
    if "inf" not in source and "nan" not in source:
        return ast.literal_eval(source)
    tree = ast.parse(source, mode="eval")
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    if not names <= {"inf", "nan"}:
        return ast.literal_eval(source)  # raises for the name that is not a value
    return _non_finite(ast.literal_eval(_replace_names(tree)))


_MARK = "\x00jobtrace-non-finite:"


def _replace_names(tree: ast.Expression) -> ast.Expression:
    """``inf``/``nan`` names (and ``-inf``) as marker strings, turned back into floats afterwards."""

    class Replace(ast.NodeTransformer):
        def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
            if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Name):
                return ast.Constant(_MARK + "-" + node.operand.id)
            return self.generic_visit(node)

        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.Constant(_MARK + node.id)

    replaced: ast.Expression = ast.fix_missing_locations(Replace().visit(tree))
    return replaced


def _non_finite(value: object) -> object:
    if isinstance(value, str) and value.startswith(_MARK):
        name = value[len(_MARK) :]
        if name not in _NON_FINITE:
            raise ValueError(f"{name} is not a value")
        return _NON_FINITE[name]
    if isinstance(value, (list, tuple)):
        return type(value)(_non_finite(item) for item in value)
    return value


_SCALARS = (str, int, float, bool)


def _plain(value: object) -> bool:
    if value is None or type(value) in _SCALARS:
        return True
    return isinstance(value, (list, tuple)) and all(type(item) in _SCALARS for item in value)


def _literal_end(text: str, pos: int, stops: str = " ,") -> int:
    """Where a literal starting at ``pos`` ends: at a top-level closing bracket or one of ``stops``."""
    depth, quote_char, escaped = 0, "", False
    while pos < len(text):
        char = text[pos]
        if quote_char:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote_char:
                quote_char = ""
        elif char in "'\"":
            quote_char = char
        elif char in "([":
            depth += 1
        elif depth == 0 and (char in ")]}" or char in stops):
            return pos
        elif char in ")]":
            depth -= 1
        pos += 1
    return pos


def read_groups(text: str, pos: int, handlers: Mapping[str, NoteHandler], words: str) -> Groups:
    """The ``[notes]`` and ``{attributes}`` groups from ``pos`` to the end of the line, one of each at most."""
    reader, groups, seen = Reader(text, pos), Groups(), ""
    while reader.pos < len(text):
        opening = reader.peek()
        if opening not in "[{":
            raise reader.fail("expected [annotations] or {attributes}")
        if opening in seen:
            raise TwoGroups(opening, reader.pos)
        seen += opening
        start = reader.pos
        if opening == "[":
            _read_notes(reader, groups.notes, handlers, words)
            groups.bracket = text[start : reader.pos]
        else:
            groups.attributes = read_attributes(reader)
        reader.skip()
    return groups


class TwoGroups(NotationError):
    def __init__(self, opening: str, pos: int) -> None:
        closing = "]" if opening == "[" else "}"
        what = "annotations" if opening == "[" else "attributes"
        super().__init__(f"two {opening}...{closing} groups: write every one of the {what} in one", pos)


def _read_notes(reader: Reader, notes: dict[str, Any], handlers: Mapping[str, NoteHandler], words: str) -> None:
    reader.take("[")
    while True:
        reader.skip()
        start = reader.pos
        word = reader.word()
        handler = handlers.get("xN" if _COUNT.fullmatch(word) else word.lower())
        if handler is None:
            reader.pos = start
            shown = word or re.split(r"[,\]]", reader.text[start:], maxsplit=1)[0].strip()[:40]
            raise reader.fail(f"unknown annotation {shown!r}; annotations here are: {words}")
        handler(reader, word, notes)
        reader.skip()
        if reader.take("]"):
            return
        if not reader.take(","):
            raise reader.fail("expected ',' or ']' after an annotation")


def read_attributes(reader: Reader) -> dict[str, object]:
    reader.take("{")
    attributes: dict[str, object] = {}
    while True:
        reader.skip()
        key = _key(reader)
        reader.skip()
        if not reader.take("="):
            raise reader.fail(f"expected '=' after attribute {key!r} (write {{key=value, ...}})")
        reader.skip()
        if key in attributes:
            raise reader.fail(f"attribute {key!r} is given twice")
        value = reader.value()
        attributes[key] = PRESENT if value is ANY else value
        reader.skip()
        if reader.take("}"):
            return attributes
        if not reader.take(","):
            raise reader.fail("expected ',' or '}' after an attribute")


def _key(reader: Reader) -> str:
    if reader.peek() in "'\"":
        value = reader.literal(" ,=")
        if isinstance(value, str):
            return value
    match = _BARE_KEY.match(reader.text, reader.pos)
    if not match:
        raise reader.fail("expected an attribute key")
    reader.pos = match.end()
    return match.group()


_REGEX_LOOKING = re.compile(r"\\[dDwWsSbB.]|\.[*+]|\[\^?[a-z0-9]-[a-z0-9]\]|\(\?")


def looks_like_regex(name: str) -> bool:
    """A literal name that is surely meant as a pattern: ``\\d``, ``.*``, ``[0-9]``..."""
    return _REGEX_LOOKING.search(name) is not None
