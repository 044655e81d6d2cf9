"""A live worker as a subprocess of the test process: started, watched, stopped and reaped.

The worker's stdout and stderr go to a file of its own (a pipe nobody reads would fill and stop it), so
that when it fails to start or dies, the failure shows what the worker itself said.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from pytest_jobtrace._live.tracing import ENDPOINT_ENV, READY_ENV

TAIL_LINES = 40
STOP_SECONDS = 10.0


class LiveWorkerError(RuntimeError):
    """A live worker did not start, or died; the message holds the end of its output."""


class WorkerProcess:
    """One worker command (``python -m ...``), its output file, and a readiness file it writes."""

    def __init__(self, label: str, argv: Sequence[str], env: Mapping[str, str], endpoint: str) -> None:
        self.label = label
        self.argv = list(argv)
        self._directory = Path(tempfile.mkdtemp(prefix="jobtrace-live-"))
        self.output_path = self._directory / "output.log"
        self._ready_path = self._directory / "ready"
        self.env = {
            **os.environ,
            "PYTHONPATH": python_path(),
            "PYTHONUNBUFFERED": "1",
            **env,
            ENDPOINT_ENV: endpoint,
            READY_ENV: str(self._ready_path),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._output: BinaryIO | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float) -> WorkerProcess:
        """Start the worker and return once it takes jobs; raise :class:`LiveWorkerError` with its output
        if it exits first or is not ready within ``timeout`` seconds."""
        self._output = open(self.output_path, "wb")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # its own process group: stop() ends the pool's children too
        )
        deadline = time.monotonic() + timeout
        while not self._ready_path.exists():
            code = self._process.poll()
            if code is not None:
                raise LiveWorkerError(f"{self.label} exited with code {code} before it was ready\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LiveWorkerError(
                    f"{self.label} was not ready after {timeout:g}s (jobtrace_live_timeout); stopped it\n{self.tail()}"
                )
            time.sleep(0.02)
        return self

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def death(self) -> str | None:
        """Why the worker is gone (with its output), or None while it runs."""
        if self._process is None or self._process.poll() is None:
            return None
        return f"{self.label} died (exit code {self._process.returncode})\n{self.tail()}"

    def output(self) -> str:
        try:
            return self.output_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = TAIL_LINES) -> str:
        kept = self.output().splitlines()[-lines:]
        shown = "\n".join(f"    {line}" for line in kept) if kept else "    (no output)"
        return f"  its output (last {len(kept)} lines, {self.output_path}):\n{shown}"

    def stop(self) -> None:
        """Ask the worker to stop (SIGTERM to its process group), kill it after ``STOP_SECONDS``, reap it."""
        process, self._process = self._process, None
        if process is not None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(STOP_SECONDS)
            _signal_group(process, signal.SIGKILL)  # pool children it left behind
        if self._output is not None:
            self._output.close()
            self._output = None

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"<WorkerProcess {self.label} pid={self.pid} {state}>"


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def python_path() -> str:
    """The test process's import path, so that the worker imports the same task modules (tests/ and
    the rootdir included, as pytest put them on ``sys.path``)."""
    entries = [entry or os.getcwd() for entry in sys.path]
    existing = os.environ.get("PYTHONPATH", "")
    kept = [entry for entry in entries if os.path.isdir(entry)]
    return os.pathsep.join(dict.fromkeys([*kept, *filter(None, existing.split(os.pathsep))]))
