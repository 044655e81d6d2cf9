"""The upstream suites' lists of tests expected to differ (upstream/*/expected.toml) and the plugin that checks them.

The suites themselves run through ``upstream/run.py`` (in .ci/run); here: every list reads, every entry points at
a docs section that exists, and the plugin fails a run where a listed test passes, an unlisted one fails, or an
entry names no test.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
LISTS = sorted((ROOT / "upstream").glob("*/expected.toml"))


def _plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("upstream_expect_under_test", ROOT / "upstream" / "_expect.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXPECT = _plugin()


def _anchors(markdown: Path) -> set[str]:
    """The ids MkDocs gives the headings of a page (its default slugify, enough for plain headings)."""
    anchors = set()
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,6} (.+)", line):
            text = re.sub(r"[^\w\s-]", "", match.group(1).strip().lower())
            anchors.add(re.sub(r"[-\s]+", "-", text).strip("-"))
    return anchors


def test_there_are_lists_for_the_three_suites() -> None:
    assert {path.parent.name for path in LISTS} >= {"celery", "otel_celery", "rq"}


@pytest.mark.parametrize("path", LISTS, ids=lambda path: path.parent.name)
def test_every_entry_names_a_docs_section_that_exists(path: Path) -> None:
    entries = EXPECT.load(path)
    assert entries
    for entry in entries:
        page, _, anchor = entry.docs.partition("#")
        assert (ROOT / page).is_file(), f"{entry.id}: {page} does not exist"
        assert anchor in _anchors(ROOT / page), f"{entry.id}: {page} has no section #{anchor}"


@pytest.mark.parametrize("path", LISTS, ids=lambda path: path.parent.name)
def test_a_run_lists_only_differences_by_design_or_not_applied_or_of_the_environment(path: Path) -> None:
    for entry in EXPECT.load(path):
        assert entry.kind in ("by design", "not applied", "environment")
        if entry.kind == "environment":  # fails on a real worker too, so it is no difference of the fixture
            assert "reference" in entry.modes, f"{entry.id}: an environment entry must fail in reference mode too"


ENTRY = """
[[test]]
id = "test_it.py::{name}"
outcome = "fails"
kind = "by design"
reason = "it differs"
docs = "docs/celery.md#what-it-does"
"""


def _copy_plugin(pytester: pytest.Pytester) -> None:
    """The plugin beside the tests (``python -m pytest`` imports from the current directory), as run.py loads it."""
    (pytester.path / "_expect.py").write_text((ROOT / "upstream" / "_expect.py").read_text())


def _run(pytester: pytest.Pytester, listed: list[str], *args: str) -> pytest.RunResult:
    pytester.makepyfile(
        test_it="""
        def test_passes():
            pass

        def test_fails():
            assert False, "boom"
        """
    )
    expected = pytester.path / "expected.toml"
    expected.write_text("".join(ENTRY.format(name=name) for name in listed))
    _copy_plugin(pytester)
    return pytester.runpytest_subprocess("-p", "_expect", "--upstream-expected", str(expected), *args)


def test_a_listed_test_that_fails_is_expected_and_the_run_passes(pytester: pytest.Pytester) -> None:
    result = _run(pytester, ["test_fails"], "-k", "test_fails")
    result.assert_outcomes(xfailed=1, deselected=1)
    result.stdout.fnmatch_lines(["tests 1: passed 0, expected to differ 1, *failed 0*"])


def test_a_listed_test_that_passes_fails_the_run(pytester: pytest.Pytester) -> None:
    result = _run(pytester, ["test_passes"], "-k", "test_passes")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*expected to differ: by design: it differs*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_unlisted_test_that_fails_fails_the_run(pytester: pytest.Pytester) -> None:
    result = _run(pytester, [])
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_fails - AssertionError: boom*"])


def test_an_entry_that_names_no_test_fails_a_full_run(pytester: pytest.Pytester) -> None:
    result = _run(pytester, ["test_fails", "test_renamed_upstream"], "--upstream-check-list")
    result.stderr.fnmatch_lines(["*upstream list names tests that were not collected*", "*test_renamed_upstream"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_malformed_entry_is_an_error_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_it="def test_passes(): pass")
    expected = pytester.path / "expected.toml"
    expected.write_text('[[test]]\nid = "test_it.py::test_passes"\noutcome = "fails"\nkind = "a bug"\nreason = "x"\n')
    _copy_plugin(pytester)
    result = pytester.runpytest_subprocess("-p", "_expect", "--upstream-expected", str(expected))
    result.stderr.fnmatch_lines(
        ["*expected.toml entry 1 (test_it.py::test_passes): missing 'docs'; kind 'a bug' is not one of*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_the_summary_counts_upstreams_own_xfail_marks_apart_from_the_list(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.xfail(reason="upstream: broken on rpc", strict=False)
        def test_upstream_xfail_passes():
            pass

        @pytest.mark.xfail(reason="upstream: known bug")
        def test_upstream_xfail_fails():
            assert False

        def test_listed():
            assert False
        """
    )
    expected = pytester.path / "expected.toml"
    expected.write_text(ENTRY.format(name="test_listed"))
    _copy_plugin(pytester)
    result = pytester.runpytest_subprocess("-p", "_expect", "--upstream-expected", str(expected))
    result.assert_outcomes(xpassed=1, xfailed=2)
    result.stdout.fnmatch_lines(
        [
            "tests 3: passed 1, expected to differ 1, excluded 0, skipped or xfail upstream 1, failed 0"
            " (passed though upstream marks them xfail: 1)"
        ]
    )
