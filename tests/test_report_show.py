"""--jobtrace-show: each failing (or every) test's spans, jobs folded, as a section of its report."""

from __future__ import annotations

import pytest
from helpers import assert_in_order, run_pytest
from report_project import make_shop

FOLDED = [
    "POST /checkout [server]",
    '└── job test_shop.ChargeJob [queue "payments", attempts 3, outcome "succeeded"]',
    '    ├── charge_card [ERROR "GatewayTimeout: gateway timed out"]',
    '    ├── charge_card [ERROR "GatewayTimeout: gateway timed out"]',
    "    └── charge_card",
    "",
    'audit [link "POST /checkout"]',
]

XDIST = pytest.mark.parametrize("xdist", [[], ["-n", "2", "-p", "xdist"]], ids=["plain", "xdist"])


@XDIST
def test_a_failing_test_shows_its_folded_trace(pytester: pytest.Pytester, xdist: list[str]) -> None:
    make_shop(pytester)
    result = pytester.runpytest_subprocess("--jobtrace-show=failed", "-p", "no:randomly", *xdist)
    result.assert_outcomes(passed=3, failed=1, skipped=1, xfailed=1, errors=1)
    output = result.stdout.str()
    section = output.index("jobtrace spans call")
    assert output[section:].splitlines()[1:8] == FOLDED
    assert output.count("jobtrace spans call") == 1  # only the failing test's
    assert output.count("jobtrace spans setup") == 1  # the test whose fixture broke
    assert "jobtrace: spans of passed tests" not in output


def test_the_section_sits_in_the_failing_tests_report(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    result = pytester.runpytest("--jobtrace-show=failed", "-p", "no:randomly", "-k", "fails")
    assert_in_order(result, "_ test_checkout_fails _", "AssertionError: expected two jobs", "jobtrace spans call")
    assert_in_order(result, "jobtrace spans call", *FOLDED[:2], "short test summary info")


@XDIST
def test_all_shows_passed_tests_too(pytester: pytest.Pytester, xdist: list[str]) -> None:
    make_shop(pytester)
    result = pytester.runpytest_subprocess("--jobtrace-show=all", "-p", "no:randomly", "-k", "passes", *xdist)
    assert result.parseoutcomes()["passed"] == 1  # (xdist reports no deselected count)
    assert_in_order(result, "jobtrace: spans of passed tests", "_ test_checkout_passes _", *FOLDED[:2])


def test_all_with_rP_leaves_passed_sections_to_pytest(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    result = pytester.runpytest("--jobtrace-show=all", "-rP", "-k", "passes")
    assert_in_order(result, "PASSES", "_ test_checkout_passes _", "jobtrace spans call", FOLDED[0])
    assert "jobtrace: spans of passed tests" not in result.stdout.str()


def test_the_ini_key(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.makeini("[pytest]\njobtrace_show = all\n")
    result = pytester.runpytest("-k", "hostile")
    assert_in_order(result, "jobtrace: spans of passed tests", "_ test_hostile_names _")


def test_a_wrong_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.makeini("[pytest]\njobtrace_show = failures\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*jobtrace_show = 'failures': use one of failed, all (or leave it empty)*"])


@pytest.mark.parametrize("run", ["inprocess", "subprocess"])
def test_control_characters_are_neutralised(pytester: pytest.Pytester, run: str) -> None:
    make_shop(pytester)
    result = run_pytest(pytester, run, "--jobtrace-show=all", "-k", "hostile")
    output = result.stdout.str()
    assert "\x1b" not in output
    assert "\\x1b[2J" in output  # the escape is shown, not obeyed
    # The line break too is written as an escape, so the name stays on its one line.
    assert_in_order(result, "_ test_hostile_names _", "\nevil \\x1b[2J\\x1b[31mname\\x0asecond line\n")


def test_off_by_default_no_section_and_no_hooks(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            print("report plugin:", session.config.pluginmanager.has_plugin("jobtrace-report"))
        """
    )
    result = pytester.runpytest("-s")
    assert "jobtrace spans" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*report plugin: False*"])


def test_tests_without_a_capture_get_no_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert False\n")
    result = pytester.runpytest("--jobtrace-show=all")
    result.assert_outcomes(failed=1)
    assert "jobtrace spans" not in result.stdout.str()


def test_show_capture_no_hides_the_section(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    result = pytester.runpytest("--jobtrace-show=failed", "--show-capture=no", "-k", "fails")
    result.assert_outcomes(failed=1)
    assert "jobtrace spans" not in result.stdout.str()


def test_a_teardown_failure_shows_the_whole_trace(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace

        tracer = trace.get_tracer("app")

        @pytest.mark.jobtrace(unfinished="error")
        def test_leaves_a_span_open(job_spans):
            with tracer.start_as_current_span("request"):
                tracer.start_span("never ended")
        """
    )
    result = pytester.runpytest("--jobtrace-show=failed")
    result.assert_outcomes(passed=1, errors=1)
    assert_in_order(result, "jobtrace spans teardown", "\nrequest\n", "(still open, not shown: 1 span)")
    assert "jobtrace spans call" not in result.stdout.str()


def test_a_capture_asked_for_through_getfixturevalue_is_shown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from opentelemetry import trace

        tracer = trace.get_tracer(__name__)

        def test_dynamic(request):
            request.getfixturevalue("job_spans")
            with tracer.start_as_current_span("dynamic_work"):
                pass
            assert False, "fails on purpose"
        """
    )
    result = pytester.runpytest("--jobtrace-show=failed", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    assert_in_order(result, "jobtrace spans call", "dynamic_work")
