"""The contract project's conftest: the `kit` fixture (one per job system) and the teardown-warning check.

Written into the pytester project as conftest.py by tests/test_runner_contract.py.
"""

import importlib
import warnings

import pytest

import pytest_jobtrace
from pytest_jobtrace.adapters import adapters

SYSTEMS = ["builtin", "celery", "rq", "minique"]
WITH_RETRIES = ["builtin", "celery", "rq"]  # minique has no retries
BY_HAND = {"builtin": "JobRuntime", "celery": "CeleryJobs", "rq": "RQRuntime"}


class Kit:
    """One system's runner and jobs, with the same small vocabulary on every system."""

    def __init__(self, system, module, runner):
        self.system, self.module, self.runner = system, module, runner
        self.label = module.LABEL

    def enqueue(self, name, *args):
        self.module.enqueue(name, *args)

    def job(self, name):
        """The job's function, class or task object."""
        return self.module.JOBS[name]

    def full_name(self, name):
        return f"{self.module.__name__}.{name}"

    def log(self):
        return [(name, arg) for name, arg, _ in self.module.LOG]

    def logged_ids(self, name):
        return [job_id for logged, _, job_id in self.module.LOG if logged == name]

    def item_id(self, item):
        return self.module.item_id(item)

    def pending(self):
        return [item.describe() for item in self.runner.pending]

    def pending_names(self):
        return [item.name for item in self.runner.pending]

    def undrained_warning(self):
        """The teardown warning for what is pending now (fewer than 10 jobs)."""
        pending, hint = self.pending(), self.undrained_hint
        return (
            f"{len(pending)} job(s) were enqueued but never performed: {', '.join(pending)}."
            f" Call {self.label}.drain() before asserting{', ' + hint if hint else ''}."
        )

    @property
    def undrained_hint(self):
        return adapters()[self.system].undrained_hint


def _kit(request, system):
    module = importlib.import_module(f"contract_{system}")
    module.LOG.clear()
    runner = request.getfixturevalue(module.LABEL)
    module.RUNNER = runner
    return Kit(system, module, runner)


@pytest.fixture(params=SYSTEMS)
def kit(request):
    return _kit(request, request.param)


@pytest.fixture(params=WITH_RETRIES)
def retrying_kit(request):
    return _kit(request, request.param)


@pytest.fixture
def expect_teardown_warnings(request):
    """Set the JobtraceWarnings the test's teardown must give (whole texts); by default none."""
    expected = []
    request.node.stash[EXPECTED] = expected
    return expected


EXPECTED = pytest.StashKey()
CALL_FAILED = pytest.StashKey()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED] = True
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    # Every test checks its teardown's JobtraceWarnings, exactly: none unless it says which.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = yield
    got = [str(w.message) for w in caught if issubclass(w.category, pytest_jobtrace.JobtraceWarning)]
    if item.stash.get(CALL_FAILED, False):
        return result  # what a failed test left pending is no news: its failure says what went wrong
    expected = item.stash.get(EXPECTED, [])
    assert got == expected, f"teardown JobtraceWarnings: expected {expected!r}, got {got!r}"
    return result
