"""The live workers' bootstrap (``python -m pytest_jobtrace.<system>.live_worker``) as workers elsewhere use it:
where it finds the receiver, and where a Celery worker sets its tracing up (``tests/test_live_workers.py`` runs
both bootstraps as workers elsewhere, end to end)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_jobtrace.adapters import live_tracing
from pytest_jobtrace.celery.live_worker import forks_pool_processes  # imports Celery only when called


def _unset_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, and put back as they were after the test, even those the code under test sets (setenv first: a
    delenv of a variable that is not there records nothing to undo, and JOBTRACE_LIVE_ENDPOINT would leak
    into the tests after, which then take themselves for a live worker)."""
    for name in ("JOBTRACE_LIVE_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("env", "adopted"),
    [
        ({"JOBTRACE_LIVE_ENDPOINT": "http://a:1/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x"},
         "http://a:1/v1/traces"),  # the fixture's own variable wins
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:3"},
         "http://b:2/v1/traces"),  # the traces URL as it is, before the base URL
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:3/"}, "http://c:3/v1/traces"),  # the base URL, as OTLP/HTTP adds
        ({}, None),
    ],
)  # fmt: skip
def test_a_worker_elsewhere_finds_the_receiver_in_the_otlp_exporter_s_own_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], adopted: str | None
) -> None:
    _unset_endpoints(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert live_tracing.adopt_otlp_endpoint() == adopted
    import os

    assert os.environ.get("JOBTRACE_LIVE_ENDPOINT") == adopted  # for its children and its reports too


def test_a_worker_with_no_receiver_url_says_which_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    _unset_endpoints(monkeypatch)
    monkeypatch.setattr(live_tracing, "_provider", None)
    with pytest.raises(RuntimeError, match=r"set JOBTRACE_LIVE_ENDPOINT \(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT\)"):
        live_tracing.install("celery-worker")


def _app(**conf: Any) -> Any:
    pytest.importorskip("celery", reason="the Celery bootstrap's pool choice is Celery's (the celery extra)")
    from celery import Celery

    app = Celery("shop", set_as_current=False)
    app.conf.update(conf)
    return app


@pytest.mark.parametrize(
    ("options", "conf", "forks"),
    [
        ([], {}, True),  # Celery's default pool
        (["--pool=solo"], {}, False),
        (["-P", "threads"], {}, False),
        (["-Pprefork"], {"worker_pool": "solo"}, True),  # the command line over the app's setting
        (["--pool", "processes"], {}, True),  # Celery's other name for prefork
        ([], {"worker_pool": "solo"}, False),
        ([], {"worker_pool": "celery.concurrency.prefork:TaskPool"}, True),
        (["--pool=gevent"], {}, False),  # not installed here: not a forking pool either way
        (["--loglevel=INFO", "--concurrency=2"], {}, True),
    ],
)
def test_a_celery_worker_traces_in_its_pool_processes_only_with_the_prefork_pool(
    options: list[str], conf: dict[str, str], forks: bool
) -> None:
    assert forks_pool_processes(options, _app(**conf)) is forks


@pytest.mark.parametrize("module", ["pytest_jobtrace.rq.live_worker", "pytest_jobtrace.celery.live_worker"])
def test_a_bootstrap_started_by_hand_with_no_receiver_url_says_what_to_set_and_exits(
    module: str, tmp_path: Any
) -> None:
    import os
    import subprocess
    import sys

    pytest.importorskip(module.split(".")[1], reason="the bootstrap runs the job system's own command line")
    env = {key: value for key, value in os.environ.items() if "ENDPOINT" not in key}
    argv = ["shop:app"] if "celery" in module else ["--url", "redis://127.0.0.1:1/0", "orders"]
    done = subprocess.run(
        [sys.executable, "-m", module, *argv], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "pytest-jobtrace live worker: set JOBTRACE_LIVE_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) to the "
        "receiver's traces URL, http://HOST:PORT/v1/traces"
    )
