"""The docs run: every ```python block in README.md and docs/*.md is a test file, run through pytester.

Conventions the docs follow (see docs/index.md, "About the examples"):

- A ```python block is a complete test file. Its first line may name the file (``# test_signup.py``);
  otherwise it is ``test_example.py``. A block named like ``# conftest.py`` or ``# signup.py`` is a support
  file: it is written next to every later test block of the same page (until a block of the same name
  replaces it).
- By default the block must pass: at least one test passed, nothing failed, no errors, no warnings.
  ``<!-- expect: failed=1 -->`` (any of pytest's outcome counts) on the line before the fence says what
  to expect instead; the word ``subprocess`` in it runs the block in a fresh interpreter (for examples
  that change process-wide state, such as the adapter registry); words starting with ``--`` are
  command-line options for that run (``<!-- expect: failed=1 --jobtrace-show=failed -->``).
- A ```text block right below a python block (only prose in between) is that block's output: each of
  its lines must appear in pytest's output, in order (pytest's ``E`` prefix ignored; ``...`` at the start
  or end of a line stands for text left out). Passing tests' printed output is shown with ``-rA``.
- A ```ini block whose first line is ``# pytest.ini`` replaces the run's ini file for the later blocks.
- ```python-fragment blocks are not complete files and are not run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pytest_jobtrace
import pytest_jobtrace.adapters
import pytest_jobtrace.builtin

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})([\w-]*)\s*$")
EXPECT = re.compile(r"^<!--\s*expect:(.*)-->\s*$")
FILE_NAME = re.compile(r"^#\s*([\w/]+\.(?:py|ini))\s*$")
OUTCOMES = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "warnings", "deselected")


@dataclass
class Block:
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    expect: dict[str, int] | None = None
    subprocess: bool = False
    args: tuple[str, ...] = ()


@dataclass
class Example:
    page: Path
    index: int
    block: Block
    support: list[Block] = field(default_factory=list)
    output: Block | None = None

    @property
    def id(self) -> str:
        return f"{self.page.name}-{self.index}"

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.block.line}"


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a page, each with the ``<!-- expect: ... -->`` comment on the line before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    before = ""  # the last non-blank line above the current one
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            before = lines[i] if lines[i].strip() else before
            i += 1
            continue
        fence, language, start = match.group(1), match.group(2), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        expect, subprocess, args = _expectation(before)
        blocks.append(Block(language, "\n".join(body) + "\n", start + 1, expect, subprocess, args))
        before = ""
        i += 1
    return blocks


def _expectation(line: str) -> tuple[dict[str, int] | None, bool, tuple[str, ...]]:
    """The outcome counts an ``<!-- expect: ... -->`` line asks for, whether to run in a subprocess, and options."""
    match = EXPECT.match(line.strip())
    if match is None:
        return None, False, ()
    counts = {}
    subprocess = False
    args: list[str] = []
    for item in re.split(r"[,\s]+", match.group(1).strip()):
        if item == "subprocess":
            subprocess = True
            continue
        if item.startswith("--"):
            args.append(item)
            continue
        key, _, value = item.partition("=")
        if key not in OUTCOMES or not value.isdigit():
            raise ValueError(f"bad expect comment {line!r}: use e.g. <!-- expect: failed=1, passed=2 -->")
        counts[key] = int(value)
    return counts or None, subprocess, tuple(args)


def file_name(block: Block) -> str | None:
    first = block.code.splitlines()[0] if block.code.strip() else ""
    match = FILE_NAME.match(first)
    return match.group(1) if match else None


def is_support(block: Block) -> bool:
    name = file_name(block)
    return name is not None and not Path(name).name.startswith("test_")


def examples_of(page: Path) -> list[Example]:
    examples: list[Example] = []
    support: dict[str, Block] = {}  # by file name; a later block of the same name replaces it
    unused: set[str] = set()
    previous: Example | None = None
    for block in parse_blocks(page.read_text(encoding="utf-8")):
        if block.language == "text" and previous is not None:
            previous.output = block
        if block.language == "ini" and is_support(block):
            support[file_name(block) or ""] = block  # a ``# pytest.ini`` block replaces the run's ini
            unused.add(file_name(block) or "")
        if block.language != "python":
            previous = None
            continue
        if is_support(block):
            support[file_name(block) or ""] = block
            unused.add(file_name(block) or "")
            previous = None
            continue
        previous = Example(page, len(examples), block, list(support.values()))
        examples.append(previous)
        unused.clear()
    if unused:
        raise ValueError(f"{page.name}: support file(s) {sorted(unused)} with no test block after them")
    return examples


# Modules of the project's own test runs that an in-process docs run would collide with.
PROJECT_MODULES = {p.stem for folder in ("tests", "examples") for p in (ROOT / folder).rglob("*.py")} | {"storefront"}
EXAMPLES = [example for page in PAGES for example in examples_of(page)]


def normalise(line: str) -> str:
    """A line of pytest's output as the docs show it: without the ``E       `` prefix, right-stripped."""
    if line == "E" or line.startswith("E   "):
        # pytest writes "E" and 7 spaces, or 3 when the exception was raised at column 0.
        body = line[1:]
        line = body[min(7, len(body) - len(body.lstrip(" "))) :]
    return line.rstrip()


def line_matches(wanted: str, actual: str) -> bool:
    """Equal, or with ``...`` standing for what the docs leave out at the start and/or end of the line."""
    # pytest indents an exception's E line like the source line it was raised at; that line is another
    # plugin's when it wraps fixture setup (pytest-asyncio does), so a docs line at column 0 may be indented.
    if wanted[:1] not in ("", " ", ".") and actual[:1] == " ":
        actual = actual.lstrip()
    if len(wanted) > 6 and wanted.startswith("...") and wanted.endswith("..."):
        return wanted[3:-3] in actual
    if wanted.startswith("..."):
        return actual.endswith(wanted[3:])
    if wanted.endswith("..."):
        return actual.startswith(wanted[:-3])
    return actual == wanted


def assert_output_shown(output: list[str], shown: str, where: str) -> None:
    actual = [normalise(line) for line in output]
    position = 0
    for wanted in (normalise(line) for line in shown.splitlines()):
        if not wanted.strip() or wanted.strip() == "...":
            continue
        found = next((i for i in range(position, len(actual)) if line_matches(wanted, actual[i])), None)
        if found is None:
            pytest.fail(
                f"{where}: the docs show this line, but the run did not print it (in this order):\n"
                f"  {wanted}\n\nThe run printed:\n" + "\n".join(actual),
                pytrace=False,
            )
        position = found + 1


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.id for example in EXAMPLES])
def test_doc_example(pytester: pytest.Pytester, example: Example) -> None:
    # Warnings are recorded, not raised, whatever filters the outer run has: the expectation counts them.
    pytester.makeini("[pytest]\nfilterwarnings =\n    always\n")
    for block in [*example.support, example.block]:
        name = file_name(block) or "test_example.py"
        if name == "pytest.ini":
            (pytester.path / "tox.ini").unlink()
        module = name.removesuffix(".py").replace("/", ".")
        in_process = not example.block.subprocess and module != "conftest"
        if in_process and (module in PROJECT_MODULES or module in sys.modules):
            # An in-process run would import the module of that name already loaded, not the block.
            pytest.fail(f"{example.where}: rename {name}: the test run has a module {module!r}", pytrace=False)
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.code, encoding="utf-8")
    args = ("-rA", *example.block.args)
    result = pytester.runpytest_subprocess(*args) if example.block.subprocess else pytester.runpytest(*args)
    expect = example.block.expect
    if expect is None:
        outcomes = result.parseoutcomes()
        unexpected = {k: v for k, v in outcomes.items() if k != "passed"}
        if outcomes.get("passed", 0) < 1 or unexpected:
            pytest.fail(f"{example.where}: expected a clean pass, got {outcomes}\n{result.stdout.str()}", pytrace=False)
    else:
        try:
            result.assert_outcomes(**expect)
        except AssertionError:
            pytest.fail(f"{example.where}: expected {expect}\n{result.stdout.str()}", pytrace=False)
    if example.output is not None:
        assert_output_shown(result.outlines, example.output.code, example.where)


def test_docs_have_examples() -> None:
    pages = {example.page.name for example in EXAMPLES}
    assert "README.md" in pages
    assert {"assertions.md", "builtin.md", "jobs.md", "text-trees.md"} <= pages


def test_every_public_name_is_documented() -> None:
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    modules = (pytest_jobtrace, pytest_jobtrace.builtin, pytest_jobtrace.adapters)
    missing = [f"{m.__name__}.{name}" for m in modules for name in m.__all__ if f"`{name}" not in text]
    assert not missing, f"public names the docs never mention (as `code`): {missing}"


def test_readme_quickstart_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in section.splitlines() if line.startswith("python -m venv")]
    assert len(commands) == 2, f"the quickstart should give exactly two commands, found {commands}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        steps = [step.strip() for step in command.split("&&")]
        assert steps[-1] in ci, f".ci/run does not run the README's {steps[-1]!r}"
        extras = set(_extras(command))
        assert {"all", "test"} <= extras
        installs = [set(_extras(line)) for line in ci if line.startswith("python -m pip install")]
        assert any(extras <= installed for installed in installs), f".ci/run should install the extras {extras}"
    assert "examples" in _extras(commands[0]), "the first command runs the example project: it needs its extra"
    assert "--jobtrace-show=all" in commands[0], "the first command shows each test's trace"


def _extras(command: str) -> list[str]:
    match = re.search(r'-e "\.\[([\w,]+)\]"', command)
    return match.group(1).split(",") if match else []
