"""Instrumenting a job system for each test: OpenTelemetry's dependency check (package metadata read from disk)
is made once per instrumentor class, skipped only after it passed (pytest_jobtrace/_jobs/instrumenting.py)."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Collection
from typing import Any

import pytest
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from pytest_jobtrace._jobs import instrumenting
from pytest_jobtrace.adapters import instrument_for_test


class _Counting(BaseInstrumentor):  # type: ignore[misc]
    requirement = "pytest >= 1"  # installed: the check passes
    checks = 0
    instrumented = 0

    def instrumentation_dependencies(self) -> Collection[str]:
        type(self).checks += 1
        return [self.requirement]

    def _instrument(self, **kwargs: Any) -> None:
        type(self).instrumented += 1

    def _uninstrument(self, **kwargs: Any) -> None:
        pass


class Installed(_Counting):
    pass


class Conflicting(_Counting):
    requirement = "pytest < 1"  # pytest 1 or later is installed: a conflict


@pytest.fixture(autouse=True)
def _forget_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instrumenting, "_passed", set())
    for kind in (Installed, Conflicting):
        kind.checks = kind.instrumented = 0
        kind._instance = None  # BaseInstrumentor is a singleton per class
        kind._is_instrumented_by_opentelemetry = False


def test_a_passed_check_is_made_once_for_every_test_after() -> None:
    for _ in range(3):  # three tests, each instrumenting and uninstrumenting
        assert instrument_for_test(Installed()) is True
        assert Installed().is_instrumented_by_opentelemetry
        Installed().uninstrument()
    assert (Installed.checks, Installed.instrumented) == (1, 3)


def test_a_conflict_is_checked_every_time_and_never_instruments(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        for _ in range(2):
            assert instrument_for_test(Conflicting()) is False
            assert not Conflicting().is_instrumented_by_opentelemetry
    assert (Conflicting.checks, Conflicting.instrumented) == (2, 0)
    logged = [r.getMessage() for r in caplog.records if r.name == "opentelemetry.instrumentation.instrumentor"]
    assert len(logged) == 2, logged
    assert all("Conflicting" in message for message in logged), logged


def test_each_instrumentor_class_is_checked_for_itself() -> None:
    instrument_for_test(Installed())
    Installed().uninstrument()
    assert instrument_for_test(Conflicting()) is False  # Installed's passed check is not Conflicting's
    assert Conflicting.checks == 1


# Per job system: its code, the instrumentor its fixture instruments with, and a test of its fixture.
SYSTEMS = {
    "celery": (
        """
        from celery import Celery

        app = Celery("shop", broker="memory://", backend="cache+memory://", set_as_current=False)


        @app.task
        def add(x, y):
            return x + y
        """,
        "opentelemetry.instrumentation.celery:CeleryInstrumentor",
        """
        def test_job(n, job_spans, celery_jobs):
            shop.add.delay(n, 1)
            celery_jobs.drain()
        """,
    ),
    "rq": (
        """
        def hello(value):
            return value
        """,
        "pytest_jobtrace.rq.instrumentation:RQInstrumentor",
        """
        def test_job(n, job_spans, rq_jobs):
            rq_jobs.queue().enqueue(shop.hello, n)
            rq_jobs.drain()
        """,
    ),
}


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_each_system_s_instrumentation_is_checked_once_over_tests(pytester: pytest.Pytester, system: str) -> None:
    pytest.importorskip(system, reason=f"the {system} extra")
    code, instrumentor, test = SYSTEMS[system]
    module, name = instrumentor.split(":")
    pytester.makepyfile(
        shop=code,
        conftest=f"""
        from {module} import {name}

        CHECKS = []
        check = {name}._check_dependency_conflicts


        def counted(self):
            CHECKS.append(1)
            return check(self)


        {name}._check_dependency_conflicts = counted


        def pytest_sessionfinish():
            print(f"dependency checks: {{len(CHECKS)}}")
        """,
        test_shop=textwrap.dedent(
            """
            import pytest

            import shop


            @pytest.mark.parametrize("n", range(3))
            """
        )
        + textwrap.dedent(test),
    )
    pytester.makeini("[pytest]\njobtrace_celery_app = shop:app\n" if system == "celery" else "[pytest]\n")
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*dependency checks: 1"])
