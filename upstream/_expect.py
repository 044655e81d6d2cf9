"""The list of upstream tests expected to differ, checked by the run (a pytest plugin loaded by run.py).

``upstream/SUITE/expected.toml`` holds one ``[[test]]`` table per listed test::

    [[test]]
    id = "t/integration/test_canvas.py::test_chord::test_generator"   # node id (without [params]: every param)
    modes = ["fixture"]          # where it differs: "fixture", "reference" or both (default ["fixture"])
    outcome = "fails"            # "fails": runs and must fail (strict xfail); "excluded": not run
    kind = "by design"           # "by design", "not applied" or "environment" (fails on a real worker too)
    reason = "a chord header generator needs a worker running while the header is produced"
    docs = "docs/celery.md#chord-header-generators"

A listed test that passes fails the run (XPASS strict), an unlisted test that fails fails the run, and with
``--upstream-check-list`` (a full run) an entry that names no collected test fails it too, so the list can
neither hide a fix nor go stale. The terminal summary gives the figures the docs' tables are made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomllib

MODES = ("fixture", "reference")
OUTCOMES = ("fails", "excluded")
KINDS = ("by design", "not applied", "environment")
KEYS = {"id", "modes", "outcome", "kind", "reason", "docs"}


@dataclass
class Entry:
    id: str
    modes: tuple[str, ...]
    outcome: str
    kind: str
    reason: str
    docs: str
    matched: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.kind}: {self.reason} ({self.docs})"


def load(path: Path) -> list[Entry]:
    """Read and check an expectations file; a malformed entry is a UsageError naming it."""
    if not path.exists():
        return []
    with path.open("rb") as file:
        data = tomllib.load(file)
    if set(data) - {"test"}:
        raise pytest.UsageError(f"{path}: only [[test]] tables are allowed, found {sorted(set(data) - {'test'})}")
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, raw in enumerate(data.get("test", []), start=1):
        where = f"{path.name} entry {number} ({raw.get('id', 'no id')})"
        problems = [f"unknown key {key!r}" for key in sorted(set(raw) - KEYS)]
        problems += [f"missing {key!r}" for key in ("id", "outcome", "kind", "reason", "docs") if not raw.get(key)]
        modes = tuple(raw.get("modes", ["fixture"]))
        problems += [f"mode {mode!r} is not one of {MODES}" for mode in modes if mode not in MODES]
        if raw.get("outcome") and raw["outcome"] not in OUTCOMES:
            problems.append(f"outcome {raw['outcome']!r} is not one of {OUTCOMES}")
        if raw.get("kind") and raw["kind"] not in KINDS:
            problems.append(f"kind {raw['kind']!r} is not one of {KINDS}")
        if raw.get("docs") and "#" not in raw["docs"]:
            problems.append(f"docs {raw['docs']!r} names no section (file.md#anchor)")
        if raw.get("id") in seen:
            problems.append("listed twice")
        if problems:
            raise pytest.UsageError(f"{where}: {'; '.join(problems)}")
        seen.add(raw["id"])
        reason = " ".join(raw["reason"].split())
        entries.append(Entry(raw["id"], modes, raw["outcome"], raw["kind"], reason, raw["docs"]))
    return entries


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upstream", "upstream suites (upstream/run.py)")
    group.addoption("--upstream-mode", choices=MODES, default="fixture", help="fixture (default) or reference")
    group.addoption("--upstream-expected", default=None, help="the suite's expected.toml")
    group.addoption(
        "--upstream-check-list",
        action="store_true",
        help="fail when a listed test is not collected (set by run.py for a full run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("upstream_expected")
    mode = config.getoption("upstream_mode")
    entries = [entry for entry in load(Path(path)) if mode in entry.modes] if path else []
    config.stash[_ENTRIES] = entries


_ENTRIES = pytest.StashKey[list[Entry]]()


def _entry_for(item: pytest.Item, by_id: dict[str, Entry]) -> Entry | None:
    return by_id.get(item.nodeid) or by_id.get(item.nodeid.split("[", 1)[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    entries = config.stash[_ENTRIES]
    by_id = {entry.id: entry for entry in entries}
    for item in items:
        entry = _entry_for(item, by_id)
        if entry is None:
            continue
        entry.matched.append(item.nodeid)
        if entry.outcome == "excluded":
            item.add_marker(pytest.mark.skip(reason=f"excluded by upstream list: {entry.label()}"))
        else:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"expected to differ: {entry.label()}"))
    if config.getoption("upstream_check_list"):
        stale = [entry.id for entry in entries if not entry.matched]
        if stale:
            raise pytest.UsageError(
                "upstream list names tests that were not collected (renamed upstream? remove or fix the entry):\n  "
                + "\n  ".join(stale)
            )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stats = terminalreporter.stats
    keys = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")
    ids = {key: {report.nodeid for report in stats.get(key, [])} for key in keys}
    excluded = {r.nodeid for r in stats.get("skipped", []) if "excluded by upstream list" in str(r.longrepr)}
    failed = ids["failed"] | ids["error"]  # an error in setup or teardown fails the test too
    mode = terminalreporter.config.getoption("upstream_mode")
    terminalreporter.write_sep("=", f"upstream suite, {mode} mode")
    # A listed test that passes is XPASS(strict), a failure; an XPASS here is upstream's own non-strict xfail mark
    passed = (ids["passed"] | ids["xpassed"]) - failed
    listed = {r.nodeid for r in stats.get("xfailed", []) if "expected to differ" in getattr(r, "wasxfail", "")}
    terminalreporter.write_line(
        f"tests {len(set().union(*ids.values()))}: passed {len(passed)},"
        f" expected to differ {len(listed)}, excluded {len(excluded)},"
        f" skipped or xfail upstream {len(ids['skipped'] - excluded) + len(ids['xfailed'] - listed)},"
        f" failed {len(failed)} (passed though upstream marks them xfail: {len(ids['xpassed'])})"
    )
