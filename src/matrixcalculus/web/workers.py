"""Worker processes that compute the page's answers, each stoppable when it runs too long.

A derivation is pure Python: a thread cannot be interrupted, so a runaway expression would hold
a thread (and the GIL) for as long as it runs. Each request is instead sent to one of a few
worker processes (``python -m matrixcalculus.web.workers``), one JSON line in and one out;
when it has not answered within the time limit, that worker is killed, a fresh one is started
in its place, and the request gets a 503. Workers are plain subprocesses rather than
``multiprocessing`` children, so they never re-import the program that started the server.

>>> pool = WorkerPool(workers=1, time_limit=10.0)
>>> await pool.start()   # doctest: +SKIP
>>> await pool.run("parse", {"expression": "x'*A*x", "types": {}})   # doctest: +SKIP
(200, {'expression': {...}})
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict, replace
from typing import Any

from matrixcalculus.web.service import DEFAULT_LIMITS, RequestError, WebLimits

__all__ = ["WorkerPool", "default_workers"]

_READY = b"ready\n"
# A line of the protocol holds one JSON answer; generated code for a large expression is long.
_LINE_LIMIT = 2**24


def default_workers() -> int:
    """One worker per core, from 2 to 4: a derivation is single-threaded, and one slow request
    should not stop the page from answering the next keystroke."""
    return max(2, min(4, os.cpu_count() or 1))


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process

    @classmethod
    async def started(cls, limits: WebLimits) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "matrixcalculus.web.workers", json.dumps(asdict(limits)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_LINE_LIMIT,
        )  # fmt: skip
        assert process.stdout is not None
        line = await process.stdout.readline()
        if line != _READY:
            process.kill()
            await process.wait()
            raise RuntimeError("a worker process of the web server did not start (see its error output above)")
        return cls(process)

    async def ask(self, endpoint: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([endpoint, request]).encode() + b"\n")
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError
        status, body = json.loads(line)
        return status, body

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class WorkerPool:
    """``workers`` processes; :meth:`run` sends a request to an idle one and awaits its answer."""

    def __init__(
        self, workers: int = 2, time_limit: float = 10.0, limits: WebLimits = DEFAULT_LIMITS, queue_wait: float = 30.0
    ):
        self.limits = replace(limits, time_limit=time_limit)
        self.size = workers
        self._queue_wait = queue_wait
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: set[_Worker] = set()
        self.restarts = 0

    async def start(self) -> None:
        """Start the workers and wait until each has imported the library."""
        self._idle = asyncio.Queue()
        workers = await asyncio.gather(*[_Worker.started(self.limits) for _ in range(self.size)])
        for worker in workers:
            self._all.add(worker)
            self._idle.put_nowait(worker)

    async def stop(self) -> None:
        await asyncio.gather(*[w.stop() for w in self._all])
        self._all.clear()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all]

    async def run(self, endpoint: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The answer of an idle worker, or :class:`RequestError` 503 when the request waited too
        long for one or computed past the time limit (that worker is then replaced)."""
        assert self._idle is not None, "start() the pool first"
        try:
            worker = await asyncio.wait_for(self._idle.get(), self._queue_wait)
        except TimeoutError:
            raise RequestError(503, "the server is busy; try again in a moment") from None
        healthy = False
        try:
            answer = await asyncio.wait_for(worker.ask(endpoint, request), self.limits.time_limit)
            healthy = True
            return answer
        except TimeoutError:
            raise RequestError(
                503,
                f"this derivation took longer than the server's time limit of {self.limits.time_limit:g} s and "
                "was stopped; try a smaller expression or a lower order, or the command line (no time limit)",
                limit="time_limit",
            ) from None
        except (EOFError, OSError, ValueError):
            raise RequestError(503, "the worker computing this request stopped; try again") from None
        finally:
            if healthy:
                self._idle.put_nowait(worker)
            else:
                # Stopped mid-derivation (or dead, or the client went away): a fresh process takes its place.
                self._all.discard(worker)
                await worker.stop()
                self.restarts += 1
                replacement = await _Worker.started(self.limits)
                self._all.add(replacement)
                self._idle.put_nowait(replacement)


def _serve(limits: WebLimits) -> None:
    """A worker's loop: one JSON request line in, one ``[status, body]`` line out."""
    from matrixcalculus.web.service import answer

    try:
        # The pictures' library, loaded before the first request rather than inside its time limit.
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.patches  # noqa: F401
    except ImportError:
        pass  # no plot extra: a picture request gets the library's error naming it
    # The protocol owns the real standard output; anything printed goes to standard error.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    protocol.write(_READY)
    protocol.flush()
    for line in sys.stdin.buffer:
        endpoint, request = json.loads(line)
        try:
            result: tuple[int, dict[str, Any]] = answer(endpoint, request, limits)
        except MemoryError:
            result = (503, {"error": {"message": "the server ran out of memory for this request"}})
        except Exception as exc:  # a bug: say so in one line, keep serving
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            result = (500, {"error": {"message": f"internal error, a bug in matrixcalculus: {detail}"}})
        protocol.write(json.dumps(result).encode() + b"\n")
        protocol.flush()


if __name__ == "__main__":
    _serve(WebLimits(**json.loads(sys.argv[1])))
