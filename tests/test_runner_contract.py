"""The runner contract suite (issue 16): the same call gives the same behaviour and wording on every job system.

The contract project in ``tests/runner_contract/`` runs every runner verb and message on the built-in adapter,
Celery, RQ and docs/adapters.md's third-party example, minique. minique is taken from the docs at run time (its
``# minique.py`` and ``# minique_jobtrace.py`` blocks), so the suite tests the example the docs show. It runs
once in this process and once in a fresh one with ``-n 2``; every contract test must pass, and the counts are
exact, so a project that collects less (or skips) fails too.
"""

from __future__ import annotations

from pathlib import Path

import celery.contrib.pytest  # noqa: F401
import fakeredis  # noqa: F401
import opentelemetry.instrumentation.celery  # noqa: F401
import pytest
import rq  # noqa: F401
from test_docs import file_name, parse_blocks

import pytest_jobtrace.adapters
import pytest_jobtrace.celery._runtime
import pytest_jobtrace.rq._drain  # noqa: F401

# The imports above are for the in-process run: pytester forgets the modules a run imported, so a second run
# would import a second Celery (or RQ) next to objects still holding the first one's.

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "runner_contract"
FILES = {
    "conftest.py": "inner_conftest.py",
    "test_contract.py": "contract_checks.py",
    "contract_builtin.py": "contract_builtin.py",
    "contract_celery.py": "contract_celery.py",
    "contract_rq.py": "contract_rq.py",
    "contract_minique.py": "contract_minique.py",
}
DOCS_EXAMPLE = ("minique.py", "minique_jobtrace.py")

# Warnings the project's jobs give are not this suite's business, but a JobtraceWarning outside a teardown
# (where the conftest checks them one by one) is an error.
INI = """
[pytest]
addopts = -p minique_jobtrace
jobtrace_celery_app = contract_celery:app
filterwarnings =
    error::pytest_jobtrace.JobtraceWarning
"""

# Contract tests per system (the `kit` fixture), per system with retries (`retrying_kit`), and by hand.
PER_SYSTEM = 57
PER_RETRYING_SYSTEM = 5
BY_HAND = 3
TOTAL = 4 * PER_SYSTEM + 3 * PER_RETRYING_SYSTEM + BY_HAND


def docs_example() -> dict[str, str]:
    """docs/adapters.md's minique blocks by file name (the last block of a name wins, as in test_docs)."""
    blocks = {}
    for block in parse_blocks((ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")):
        name = file_name(block)
        if block.language == "python" and name in DOCS_EXAMPLE:
            blocks[name] = block.code
    missing = [name for name in DOCS_EXAMPLE if name not in blocks]
    assert not missing, f"docs/adapters.md has no ```python block starting with # {missing[0]}"
    return blocks


@pytest.fixture(name="contract_project")
def _contract_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for target, source in FILES.items():
        (pytester.path / target).write_text((PROJECT / source).read_text(encoding="utf-8"), encoding="utf-8")
    for name, code in docs_example().items():
        (pytester.path / name).write_text(code, encoding="utf-8")
    pytester.makeini(INI)
    pytester.syspathinsert()
    # minique_jobtrace registers its adapter on import: keep that out of this process's registry.
    from pytest_jobtrace._jobs import registry

    monkeypatch.setattr(registry, "_registry", dict(registry.adapters()))
    return pytester


def assert_every_contract_test_passed(result: pytest.RunResult) -> None:
    """Exactly TOTAL passed and nothing else; on failure, the failing contract tests (the run's whole output is
    in the captured stdout below it)."""
    outcomes = result.parseoutcomes()
    got = {key: value for key, value in outcomes.items() if key not in ("warnings", "warning")}
    if got != {"passed": TOTAL}:
        failures = [line for line in result.outlines if line.startswith(("FAILED ", "ERROR "))]
        pytest.fail(
            f"the runner contract: expected {TOTAL} passed, got {outcomes}\n" + "\n".join(failures),
            pytrace=False,
        )


ARGS = ("-q", "-rfE", "--tb=short", "--show-capture=no")


def test_the_contract_holds_in_process(contract_project: pytest.Pytester) -> None:
    assert_every_contract_test_passed(contract_project.runpytest(*ARGS))


def test_the_contract_holds_with_xdist(contract_project: pytest.Pytester) -> None:
    assert_every_contract_test_passed(contract_project.runpytest_subprocess(*ARGS, "-n", "2"))


def test_the_minique_example_comes_from_the_docs() -> None:
    example = docs_example()
    assert "def task(function):" in example["minique.py"]
    assert "register_adapter(ADAPTER)" in example["minique_jobtrace.py"]
