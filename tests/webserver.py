"""A real ``matrixcalculus serve`` for the page's tests: started as a user starts it, on a free
loopback port, and stopped when the test module is done."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(*options: str, timeout: float = 60.0) -> Iterator[str]:
    """The base URL of a ``matrixcalculus serve --port P *options`` subprocess, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "matrixcalculus.cli", "serve", "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its worker processes are stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(process, url, timeout)
        yield url
    finally:
        stop(process)


def _wait(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"matrixcalculus serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"matrixcalculus serve did not answer at {url} within {timeout} s")


def stop(process: subprocess.Popen, signals: Sequence[int] = (signal.SIGINT, signal.SIGKILL)) -> None:
    """Ctrl-C, as a person stops it; then kill what is left of its process group."""
    if process.poll() is None:
        process.send_signal(signals[0])
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signals[-1])
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
