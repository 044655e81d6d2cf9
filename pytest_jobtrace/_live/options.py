"""The options every live fixture reads (each adapter with live workers declares them, equal)."""

from __future__ import annotations

from pytest_jobtrace._core.options import Option

LIVE_WORKERS = Option(
    name="live_workers",
    help="live worker fixtures: start (a worker subprocess per test process) or external (workers run "
    "elsewhere and export to the receiver at jobtrace_live_receiver)",
    default="start",
    choices=("start", "external"),
    flag=True,
)
LIVE_TIMEOUT = Option(
    name="live_timeout",
    help="seconds a live worker may take to start, and settle() waits for a test's jobs",
    default=30.0,
    kind="float",
    flag=True,
)
LIVE_RECEIVER = Option(
    name="live_receiver",
    help="host:port of the OTLP receiver (default 127.0.0.1 and a free port); under xdist, worker gwN "
    "listens on port+N",
    default="",
    flag=True,
)
LIVE_OPTIONS = (LIVE_WORKERS, LIVE_TIMEOUT, LIVE_RECEIVER)


def receiver_address(spec: str, xdist_worker: str | None) -> tuple[str, int]:
    """``("127.0.0.1", 0)`` for "", else the host and port of ``spec`` (shifted by N on xdist worker gwN)."""
    if not spec:
        return ("127.0.0.1", 0)
    host, colon, port = spec.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"jobtrace_live_receiver = {spec!r}: write host:port, e.g. 0.0.0.0:4318")
    shift = int(xdist_worker[2:]) if xdist_worker and xdist_worker[2:].isdigit() else 0
    return (host.strip("[]"), int(port) + shift)
