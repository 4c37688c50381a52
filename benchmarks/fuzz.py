"""A fuzzing campaign: many random inputs through parse, derivative and compile, with figures.

Run::

    .venv/bin/python benchmarks/fuzz.py --parse 100000 --derive 20000 --compile 5000 --seed 0 \\
        --time-limit 1.0 --jobs 2 --failures fuzz-failures.jsonl

The inputs, the targets and what counts as a failure live in ``tests/fuzzing.py`` (shared with
``tests/test_fuzz.py``): only ``MatrixCalculusError`` may escape the library; printed text re-parses
to an equal value; derivatives (orders 1 and 2) agree with central finite differences in float64;
compiled code (several ``wrt``, ``dense=True``) agrees with the interpreter.

Input ``i`` of target ``t`` is drawn from ``random.Random(f"{seed}:{t}:{i}")``, so any input is
reproduced from its seed and index alone. Each input runs in a worker process under a deadline
(``--kill-after``): a hang is killed and recorded, never waited on; a worker that dies (memory
limit ``--memory-mb``, a crash) is recorded and replaced. An input slower than ``--time-limit``
counts in the ``> limit`` column. Every failing, slow or killed input goes to ``--failures``
(JSON lines, the format of ``tests/fuzz_regressions.jsonl``) so it can be added to the regressions.

``--replay FILE`` runs the inputs of a JSON-lines file instead; ``--atheris TARGET`` hands the
parse or derive target to atheris (coverage-guided, ``pip install atheris``; optional).

Exit status: 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import fuzzing as fz  # after the path is set


def case_for(target: str, seed: int, index: int) -> fz.Case:
    """Input ``index`` of ``target`` for campaign ``seed``."""
    chooser = fz.RandomChooser(random.Random(f"{seed}:{target}:{index}"))
    return fz.CASES[target](chooser, seed * 10_000_000 + index)


def _worker(conn: Connection, memory_mb: int) -> None:
    if memory_mb:
        try:
            import resource

            limit = memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):  # not on this platform: run without the cap
            pass
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        target, case = message
        try:
            out = fz.TARGETS[target](fz.Case.from_json(case))
            conn.send((out.status, out.detail, out.seconds))
        except BaseException as exc:  # MemoryError, a harness bug: report it, the parent decides
            conn.send(("uncaught", f"{type(exc).__name__} in the worker: {str(exc)[:300]}", float("nan")))


@dataclass
class Worker:
    process: Any
    conn: Connection
    task: tuple[str, int, dict[str, Any]] | None = None
    started: float = 0.0


@dataclass
class Stats:
    inputs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    over_limit: int = 0
    slowest: float = 0.0
    slowest_text: str = ""

    def add(self, status: str, seconds: float, text: str, limit: float) -> None:
        self.inputs += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        if seconds > limit:
            self.over_limit += 1
        if seconds > self.slowest:
            self.slowest, self.slowest_text = seconds, text


class Pool:
    """Worker processes, one input each at a time, each under a deadline."""

    def __init__(self, jobs: int, kill_after: float, memory_mb: int):
        self.kill_after = kill_after
        self.memory_mb = memory_mb
        self.context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self.workers = [self._spawn() for _ in range(jobs)]

    def _spawn(self) -> Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child, self.memory_mb), daemon=True)
        process.start()
        child.close()
        return Worker(process, parent)

    def _replace(self, w: Worker) -> None:
        w.process.kill()
        w.process.join()
        w.conn.close()
        fresh = self._spawn()
        w.process, w.conn, w.task = fresh.process, fresh.conn, None

    def run(self, tasks: Iterator[tuple[str, int, dict[str, Any]]]) -> Iterator[tuple[tuple, str, str, float]]:
        """Yield ``(task, status, detail, seconds)`` for every task, in completion order."""
        pending = iter(tasks)
        exhausted = False
        while True:
            for w in self.workers:
                if w.task is None and not exhausted:
                    task = next(pending, None)
                    if task is None:
                        exhausted = True
                        break
                    w.task, w.started = task, time.perf_counter()
                    w.conn.send((task[0], task[2]))
            busy = [w for w in self.workers if w.task is not None]
            if not busy:
                return
            now = time.perf_counter()
            timeout = max(0.0, min(w.started + self.kill_after - now for w in busy))
            ready = wait([w.conn for w in busy], timeout=timeout)
            now = time.perf_counter()
            for w in busy:
                task = w.task
                assert task is not None
                if w.conn in ready:
                    try:
                        status, detail, seconds = w.conn.recv()
                    except (EOFError, OSError):  # the worker died: out of memory, a crash
                        seconds = now - w.started
                        code = w.process.exitcode
                        self._replace(w)
                        yield task, "uncaught", f"the worker died (exit code {code})", seconds
                        continue
                    w.task = None
                    if seconds != seconds:  # nan: the worker could not time it
                        seconds = now - w.started
                    yield task, status, detail, seconds
                elif now - w.started >= self.kill_after:
                    self._replace(w)
                    yield task, "timeout", f"killed after {self.kill_after:g} s", now - w.started

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.process.join(timeout=2)
            if w.process.is_alive():
                w.process.kill()


def campaign(args: argparse.Namespace) -> int:
    plan = [(t, n) for t, n in (("parse", args.parse), ("derive", args.derive), ("compile", args.compile)) if n]
    if args.replay:
        records = [json.loads(line) for line in Path(args.replay).read_text().splitlines() if line.strip()]
        tasks = [(r["target"], i, fz.Case.from_json(r["case"]).as_json()) for i, r in enumerate(records)]
        plan = sorted({(t, 0) for t, _, _ in tasks})

        def generate() -> Iterator[tuple[str, int, dict[str, Any]]]:
            yield from tasks
    else:

        def generate() -> Iterator[tuple[str, int, dict[str, Any]]]:
            for target, n in plan:
                for i in range(n):
                    yield target, i, case_for(target, args.seed, i).as_json()

    stats = {t: Stats() for t, _ in plan}
    failures = open(args.failures, "w") if args.failures else None  # kept open for the whole run
    pool = Pool(args.jobs, args.kill_after, args.memory_mb)
    start = time.perf_counter()
    done = 0
    try:
        for (target, index, case), status, detail, seconds in pool.run(generate()):
            stats[target].add(status, seconds, case["text"], args.time_limit)
            done += 1
            bad = status in ("uncaught", "wrong", "timeout") or seconds > args.time_limit
            if bad and failures is not None:
                failures.write(
                    json.dumps(
                        {
                            "target": target,
                            "index": index,
                            "campaign_seed": args.seed,
                            "outcome": status,
                            "seconds": round(seconds, 3),
                            "detail": detail,
                            "case": case,
                        }
                    )
                    + "\n"
                )
                failures.flush()
            if bad and args.verbose:
                print(
                    f"{target}[{index}] {status} {seconds:.2f}s {case['text'][:120]!r} wrt={case['wrt']}: "
                    f"{detail[:200]}",
                    file=sys.stderr,
                )
            if args.progress and done % args.progress == 0:
                print(f"... {done} inputs, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    finally:
        pool.close()
        if failures is not None:
            failures.close()
    elapsed = time.perf_counter() - start
    print_table(stats, args, elapsed)
    failed = sum(s.counts.get(k, 0) for s in stats.values() for k in ("uncaught", "wrong", "timeout"))
    return 1 if failed or any(s.over_limit for s in stats.values()) else 0


def print_table(stats: dict[str, Stats], args: argparse.Namespace, elapsed: float) -> None:
    print(
        f"fuzz campaign: seed {args.seed}, time limit {args.time_limit:g} s, kill after {args.kill_after:g} s, "
        f"{args.jobs} job(s), {elapsed:.0f} s wall"
    )
    header = (
        "target",
        "inputs",
        "ok",
        "lib error",
        "skipped",
        "uncaught",
        "wrong",
        "timeouts",
        "> limit",
        "slowest (s)",
        "slowest input",
    )
    rows = []
    for target, s in stats.items():
        c = s.counts
        rows.append(
            (
                target,
                s.inputs,
                c.get("ok", 0),
                c.get("error", 0),
                c.get("skip", 0),
                c.get("uncaught", 0),
                c.get("wrong", 0),
                c.get("timeout", 0),
                s.over_limit,
                f"{s.slowest:.3f}",
                repr(s.slowest_text[:60]),
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        cells = (str(v).rjust(w) if isinstance(v, int) else str(v).ljust(w) for v, w in zip(r, widths, strict=True))
        print("  ".join(cells))


def run_atheris(target: str, argv: list[str]) -> None:
    """Coverage-guided fuzzing of one target with atheris (libFuzzer): bytes -> choices -> a case."""
    try:
        import atheris
    except ImportError:
        sys.exit("matrixcalculus fuzz: --atheris needs the atheris package (pip install atheris)")

    class BytesChooser:
        def __init__(self, fdp: Any):
            self.fdp = fdp

        def choice(self, options: Any) -> Any:
            return options[self.fdp.ConsumeIntInRange(0, len(options) - 1)]

        def integer(self, lo: int, hi: int) -> int:
            return self.fdp.ConsumeIntInRange(lo, hi)

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        if target == "text":  # raw text straight into the parse target
            case = fz.Case(fdp.ConsumeUnicodeNoSurrogates(400), {"x": "vector", "A": "matrix"})
            out = fz.run_parse(case)
        else:
            case = fz.CASES[target](BytesChooser(fdp), 0)
            out = fz.TARGETS[target](case)
        if out.failed:
            raise AssertionError(f"{out.status}: {out.detail}\ninput: {case.as_json()}")

    # Coverage guidance needs the library instrumented as it is imported: import it afresh (tests/fuzzing.py
    # imported it already), then reload the targets so they use the instrumented modules.
    global fz
    for name in [m for m in sys.modules if m == "matrixcalculus" or m.startswith("matrixcalculus.")]:
        del sys.modules[name]
    with atheris.instrument_imports(include=["matrixcalculus"]):
        import matrixcalculus  # noqa: F401
    fz = importlib.reload(fz)
    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parse", type=int, default=0, help="inputs for the parse target (any text)")
    parser.add_argument("--derive", type=int, default=0, help="inputs for the derivative target")
    parser.add_argument("--compile", type=int, default=0, help="inputs for the compile target (several wrt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=1.0, help="an input slower than this counts as slow")
    parser.add_argument(
        "--kill-after",
        type=float,
        default=None,
        help="kill an input's worker after this many seconds (default max(10, 10 * time limit))",
    )
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 0))
    parser.add_argument("--memory-mb", type=int, default=4096, help="address-space cap per worker (0: none)")
    parser.add_argument("--failures", default="fuzz-failures.jsonl", help="JSON lines of every failing input")
    parser.add_argument("--replay", help="run the inputs of this JSON-lines file instead of random ones")
    parser.add_argument(
        "--atheris",
        choices=("text", "parse", "derive", "compile"),
        help="coverage-guided fuzzing of one target with atheris; other arguments go to libFuzzer",
    )
    parser.add_argument("--progress", type=int, default=0, help="report every N inputs on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failure as it is found")
    args, rest = parser.parse_known_args(argv)
    if args.atheris:
        run_atheris(args.atheris, rest)
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.jobs < 1 or args.time_limit <= 0:
        parser.error("--jobs and --time-limit must be positive")
    if args.kill_after is None:
        args.kill_after = max(10.0, 10 * args.time_limit)
    if not (args.parse or args.derive or args.compile or args.replay):
        parser.error("give at least one of --parse, --derive, --compile (a number of inputs) or --replay")
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
