"""Foreground servers for benchmarks: run one in its own session, wait for its port, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

HOST = "127.0.0.1"


def tail(log: Path, lines: int = 20) -> str:
    """The end of a log file, to quote in an error (the file may go with its tmpdir)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no {log})"


def wait_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 15.0
) -> None:
    """Return once something accepts on HOST:port; raise if `proc` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port}:\n{tail(log)}")


def wait_ports_file(
    path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0
) -> dict[str, int]:
    """Return {listener: port} once mailcore wrote MAILCORE_PORTS_FILE (it is listening then).

    Our server binds the ports asked as "auto" itself and reports them, so no port is
    picked here and then raced for; the starter removes an old file before the start.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}):\n{tail(log)}")
        if path.exists():
            return {name: int(port) for name, port in json.loads(path.read_text()).items()}
        time.sleep(0.05)
    raise TimeoutError(f"no ports reported in {path}:\n{tail(log)}")


@contextlib.contextmanager
def daemon(
    argv: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a foreground daemon in its own session; on exit stop its process group."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        proc.terminate()  # every server run here stops its children on SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of our own session
        proc.wait()
