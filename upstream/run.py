"""Run one job system's own tests against this project's fixtures, or against a real worker.

    python upstream/run.py celery --mode fixture          # under celery_jobs (what .ci/run runs)
    python upstream/run.py celery --mode reference        # against a real worker on the Redis here
    python upstream/run.py rq --mode fixture -- -k retry -x   # anything after -- goes to pytest
    python upstream/run.py celery --mode fixture -- t/integration/test_tasks.py::test_tasks   # these tests only

A suite is a folder ``upstream/SUITE/`` holding:

- ``suite.toml``: ``package`` (the distribution whose sdist holds the tests), ``copy`` (paths in the sdist copied
  into the work tree), ``tests`` (paths or node ids to run), ``adapt`` (the folder of the work tree our
  ``conftest.py`` goes into; an upstream ``conftest.py`` there is kept as ``upstream_conftest.py`` for ours to
  import from), optional ``config`` (the pytest config file in the work tree; default an empty ``pytest.ini``,
  so this project's own pytest settings never apply), ``workers`` (pytest-xdist workers, default 2; 0 = none)
  and ``args`` (more pytest arguments, e.g. ``["-p", "celery.contrib.pytest"]``).
- ``conftest.py``: the adaptation layer (app, broker and worker fixtures for each mode). The mode is the
  ``--upstream-mode`` option and, for choices made at import time, the ``JOBTRACE_UPSTREAM_MODE`` variable.
- ``expected.toml``: the tests expected to differ or excluded, each with its reason (see ``upstream/_expect.py``).

The sdist of the installed version is fetched by ``upstream/fetch.py``; the work tree is rebuilt on every run
under ``.upstream-cache/run/SUITE-MODE/``. pytest's exit status is the runner's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

if __package__ in (None, ""):  # run as a script: make ``upstream`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from upstream.fetch import CACHE, ROOT, FetchError, fetch

HERE = Path(__file__).resolve().parent
MODES = ("fixture", "reference")
SUITE_KEYS = {"package", "copy", "tests", "adapt", "config", "workers", "args"}


def suites() -> list[str]:
    return sorted(path.parent.name for path in HERE.glob("*/suite.toml"))


def load_suite(name: str) -> dict[str, object]:
    path = HERE / name / "suite.toml"
    if not path.exists():
        raise SystemExit(f"run: no suite {name!r} (known: {', '.join(suites()) or 'none'})")
    with path.open("rb") as file:
        suite = tomllib.load(file)
    unknown = set(suite) - SUITE_KEYS
    missing = {"package", "copy", "tests", "adapt"} - set(suite)
    if unknown or missing:
        raise SystemExit(f"run: {path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    return suite


def build_work_tree(name: str, mode: str, suite: dict[str, object], source: Path) -> Path:
    work = CACHE / "run" / f"{name}-{mode}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for entry in _strings(suite["copy"]):
        src = source / entry
        if not src.exists():
            raise SystemExit(f"run: {entry!r} is not in the sdist of {suite['package']} ({source})")
        if src.is_dir():
            shutil.copytree(src, work / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (work / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / entry)
    adapt = work / str(suite["adapt"])
    adapt.mkdir(parents=True, exist_ok=True)
    if (adapt / "conftest.py").exists():
        (adapt / "conftest.py").rename(adapt / "upstream_conftest.py")
    ours = HERE / name / "conftest.py"
    if ours.exists():
        shutil.copy2(ours, adapt / "conftest.py")
    if "config" not in suite:
        (work / "pytest.ini").write_text("[pytest]\n")
    return work


def pytest_command(name: str, mode: str, suite: dict[str, object], work: Path, extra: list[str]) -> list[str]:
    config = work / str(suite.get("config", "pytest.ini"))
    command = [
        sys.executable, "-m", "pytest", "-c", str(config), "--rootdir", str(work),
        "-p", "upstream._expect", "--upstream-mode", mode,
        "--upstream-expected", str(HERE / name / "expected.toml"),
        # upstream suites run in their own order; this project's cache stays out of the work tree
        "-p", "no:randomly", "-p", "no:cacheprovider", "-ra",
    ]  # fmt: skip
    workers = int(str(suite.get("workers", 2)))
    if workers and not any(arg == "-n" or arg.startswith(("-n", "--numprocesses")) for arg in extra):
        command += ["-n", str(workers)]
    if not extra:
        command.append("--upstream-check-list")  # a full run: every listed test must exist
    # node ids or test files among the extra arguments replace the suite's own list
    chosen = any("::" in arg or arg.endswith(".py") for arg in extra if not arg.startswith("-"))
    tests = [] if chosen else _strings(suite["tests"])
    return [*command, *_strings(suite.get("args", [])), *tests, *extra]


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SystemExit(f"run: expected a list of strings, got {value!r}")
    return list(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a job system's own tests (see upstream/run.py).")
    parser.add_argument("suite", help=f"one of: {', '.join(suites())}")
    parser.add_argument("--mode", choices=MODES, required=True)
    argv = sys.argv[1:] if argv is None else argv
    ours, pytest_args = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser.epilog = "Arguments after -- go to pytest."
    args = parser.parse_args(ours)
    suite = load_suite(args.suite)
    try:
        source = fetch(str(suite["package"]))
    except FetchError as error:
        print(f"run: {error}", file=sys.stderr)
        return 2
    work = build_work_tree(args.suite, args.mode, suite, source)
    command = pytest_command(args.suite, args.mode, suite, work, pytest_args)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["JOBTRACE_UPSTREAM_MODE"] = args.mode  # for conftests that choose their fixtures at import time
    print(f"run: {args.suite} ({suite['package']} from {source.name}), mode {args.mode}, in {work}", flush=True)
    started = time.monotonic()
    status = subprocess.run(command, cwd=work, env=env, check=False).returncode
    print(f"run: {args.suite} --mode {args.mode}: pytest exit {status} in {time.monotonic() - started:.0f}s")
    return status


if __name__ == "__main__":
    sys.exit(main())
