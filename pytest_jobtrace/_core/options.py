"""Options: the core's and every adapter's, from the command line, ini and the ``jobtrace`` marker.

The core declares three options (``exact``, ``ordered``, ``unfinished``); each adapter declares its own
(``AdapterOption``). All of them are marker keywords, ini keys ``jobtrace_<name>`` and, where declared, flags
``--jobtrace-<name>``. Values are checked where they are given: a bad ini value is reported once at startup
naming the key and the file, a bad marker value fails the test naming the keyword.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest

# Errors raised here are about the caller's input: pytest shows the caller's line, not these frames.
__tracebackhide__ = True

OptionKind = Literal["string", "bool", "float", "int"]
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True, kw_only=True)
class Option:
    """One option: a ``jobtrace`` marker keyword, an ini key and, with ``flag``, a command-line flag.

    ``name`` is the marker keyword; the ini key is ``jobtrace_<name>`` and the flag ``--jobtrace-<name>``
    (underscores as dashes). ``kind`` says how ini and flag text is read and what a marker value must be;
    ``choices`` restricts the values. Several adapters may declare the same option (equal in every field),
    as they do :data:`pytest_jobtrace.adapters.EXPECT_FAILURES`.
    """

    name: str
    help: str
    default: Any
    kind: OptionKind = "string"
    choices: tuple[Any, ...] | None = None
    flag: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"option name {self.name!r} must be a Python identifier (it is a marker keyword)")

    @property
    def ini_key(self) -> str:
        return f"jobtrace_{self.name}"

    @property
    def flag_name(self) -> str:
        return f"--jobtrace-{self.name.replace('_', '-')}"

    def check(self, value: object, where: str) -> Any:
        """``value`` if it is of this option's kind and among its choices; else a TypeError/ValueError."""
        if not _is_kind(value, self.kind):
            raise TypeError(f"{where}: {self.name} takes {_KIND_WORDS[self.kind]}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{where}: {self.name}={value!r}; use one of {', '.join(map(repr, self.choices))}")
        return value

    def read(self, text: str, where: str) -> Any:
        """Parse ``text`` from an ini file or a flag into a value of this option's kind, then check it."""
        value: Any = text.strip()
        try:
            if self.kind == "bool":
                value = _read_bool(value)
            elif self.kind == "int":
                value = int(value)
            elif self.kind == "float":
                value = float(value)
        except ValueError:
            raise ValueError(f"{where}: {self.name} takes {_KIND_WORDS[self.kind]}, got {text!r}") from None
        return self.check(value, where)


_KIND_WORDS = {
    "string": "a string",
    "bool": "True or False",
    "float": "a finite number",
    "int": "a whole number",
}


def _is_kind(value: object, kind: OptionKind) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str)


def _read_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(text)


CORE_OPTIONS = (
    Option(
        name="exact",
        help="assert_span_tree defaults to exact=True: every captured span must be expected",
        default=False,
        kind="bool",
    ),
    Option(
        name="ordered",
        help="assert_span_tree defaults to ordered=True: children are matched in start order",
        default=False,
        kind="bool",
    ),
    Option(
        name="unfinished",
        help="spans a test started and never ended: warn (default), error or ignore",
        default="warn",
        choices=("warn", "error", "ignore"),
        flag=True,
    ),
)


class OptionSet:
    """Every known option by name: the core's, then each adapter's (an option declared twice must be equal)."""

    def __init__(self, groups: Iterable[tuple[str, Sequence[Option]]]) -> None:
        self.options: dict[str, Option] = {}
        self.owners: dict[str, str] = {}
        for owner, options in (("pytest-jobtrace", CORE_OPTIONS), *groups):
            for option in options:
                self._add(owner, option)

    def _add(self, owner: str, option: Option) -> None:
        known = self.options.get(option.name)
        if known is not None and known != option:
            raise ValueError(
                f"pytest-jobtrace: the {owner} adapter declares an option {option.name!r} that differs from the"
                f" one {self.owners[option.name]} declares; rename one of them"
            )
        self.options.setdefault(option.name, option)
        self.owners.setdefault(option.name, owner)

    def __iter__(self) -> Iterator[Option]:
        return iter(self.options.values())

    def unknown(self, names: Iterable[str], source: str) -> TypeError | None:
        unknown = sorted(set(names) - set(self.options))
        if not unknown:
            return None
        return TypeError(f"{source}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(self.options)}")


class JobtraceOptions(Mapping[str, Any]):
    """The options in force for one test: ini and command line, overridden by the closest ``jobtrace`` marker.

    The core's are attributes (``exact``, ``ordered``, ``unfinished``); every option, adapters' included, is
    an item (``options["mode"]``) and an attribute (``options.mode``). Only exposed for type hints and for
    adapters reading their options; the constructor is not API.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    @property
    def exact(self) -> bool:
        return bool(self._values.get("exact", False))

    @property
    def ordered(self) -> bool:
        return bool(self._values.get("ordered", False))

    @property
    def unfinished(self) -> str:
        return str(self._values.get("unfinished", "warn"))

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no pytest-jobtrace option {name!r}; options: {', '.join(self._values)}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("JobtraceOptions is read-only; set options with @pytest.mark.jobtrace(...)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"JobtraceOptions({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobtraceOptions) and self._values == other._values


def marker_help(options: OptionSet) -> str:
    """The marker's line in ``pytest --markers``, its signature taken from every known option."""
    signature = ", ".join(f"{option.name}={option.default!r}" for option in options)
    return (
        f"jobtrace(*, {signature}): capture this test's spans (the test gets the job_spans fixture without "
        "asking) and set pytest-jobtrace options for it."
    )


def add_options(parser: pytest.Parser, options: OptionSet) -> None:
    group = parser.getgroup("jobtrace", "assertions on OpenTelemetry traces of background jobs")
    for option in options:
        owner = options.owners[option.name]
        help_text = option.help if owner == "pytest-jobtrace" else f"{option.help} [{owner}]"
        if option.flag:
            kwargs: dict[str, Any] = {"choices": option.choices} if option.choices else {"metavar": option.name.upper()}
            group.addoption(option.flag_name, default=None, help=f"{help_text} (ini: {option.ini_key})", **kwargs)
        # Read as text so a bad value is reported by us, naming the key, rather than by pytest's bool parser.
        parser.addini(option.ini_key, f"{help_text}{_INI_HINT[option.kind]}", type="string", default=None)


_INI_HINT = {"string": "", "bool": " (true/false)", "int": " (a whole number)", "float": " (a number)"}
_DEFAULTS_KEY = pytest.StashKey[JobtraceOptions]()
_SET_KEY = pytest.StashKey[OptionSet]()
_OPTIONS_KEY = pytest.StashKey[JobtraceOptions]()


def configure(config: pytest.Config, options: OptionSet) -> None:
    """Read the session's options once at startup; a bad ini or flag value stops the session naming it."""
    config.stash[_SET_KEY] = options
    values: dict[str, Any] = {}
    inifile = str(config.inipath) if config.inipath else "the ini file"
    for option in options:
        values[option.name] = option.default
        text = _ini(config, option)
        if text:
            values[option.name] = _startup(option, str(text), f"ini key {option.ini_key} in {inifile}")
        flag = config.getoption(option.flag_name, None) if option.flag else None
        if flag is not None:
            values[option.name] = _startup(option, flag, option.flag_name)
    config.stash[_DEFAULTS_KEY] = JobtraceOptions(values)


def _ini(config: pytest.Config, option: Option) -> object:
    try:
        return config.getini(option.ini_key)
    except ValueError:  # an adapter registered after options were parsed (in a conftest): marker keywords only
        return None


def _startup(option: Option, text: str, where: str) -> Any:
    try:
        return option.read(text, where)
    except (TypeError, ValueError) as error:
        raise pytest.UsageError(f"pytest-jobtrace: {error}") from None


def session_options(config: pytest.Config) -> JobtraceOptions:
    """The session's options (ini and command line), for what lives longer than a test (live workers)."""
    return config.stash[_DEFAULTS_KEY]


def options_for(item: pytest.Item) -> JobtraceOptions:
    """The session's options, overridden by the closest jobtrace marker's keywords.

    Tests without the marker share one options object, so the common case costs a lookup.
    """
    options = item.stash.get(_OPTIONS_KEY, None)
    if options is None:
        options = item.stash[_OPTIONS_KEY] = _resolve(item)
    return options


def _resolve(item: pytest.Item) -> JobtraceOptions:
    defaults = item.config.stash[_DEFAULTS_KEY]
    markers = list(item.iter_markers("jobtrace"))
    if not markers:
        return defaults
    known = item.config.stash[_SET_KEY]
    values = dict(defaults)
    for marker in reversed(markers):
        if marker.args:
            raise TypeError(f"@pytest.mark.jobtrace takes keyword arguments only, got {marker.args!r}")
        error = known.unknown(marker.kwargs, "@pytest.mark.jobtrace")
        if error is not None:
            raise error
        for name, value in marker.kwargs.items():
            values[name] = known.options[name].check(value, "@pytest.mark.jobtrace")
    return JobtraceOptions(values)
