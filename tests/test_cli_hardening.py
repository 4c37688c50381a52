"""The command line under hostile input (issue 9, findings 7 and 9).

Every failure is one ``matrixcalculus: error: ...`` message and exit status 2, never a
traceback; a closed pipe exits silently; Ctrl-C exits 130; ``-`` reads standard input.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from matrixcalculus import cli

TIMEOUT_S = 60  # a guard against hangs (--order 1000000000 used to run for ever), not a benchmark


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=TIMEOUT_S,
    )


def assert_one_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("matrixcalculus: error: "), result.stderr
    assert result.stderr.count("matrixcalculus: error:") == 1, result.stderr
    assert fragment in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["x'*A*x", "--wrt", "x", "--order", "50"], "max_order"),
        (["x'*A*x", "--wrt", "x", "--order", "1000000000"], "order 1,000,000,000"),
        (["x'*A*x", "--wrt", "x", "--order", "0"], "order is a whole number of at least 1"),
        (["x", "--evaluate", "--seed", "-1"], "--seed must be at least 0"),
        (["x", "--evaluate", "--size", "0"], "--size must be at least 1"),
        (["x'*A*x", "--wrt", "x", "--size", "1000000", "--check"], "max_array_bytes"),
        (["x'*x", "--wrt", "x", "--size", "1000000", "--check"], "max_check_entries"),
        (["sum(ones(1e6,1e6))", "--evaluate"], "ones(1000000,1000000) would be a 1000000 x 1000000 array"),
        (["x", "--order", "two"], "invalid int value"),
        (["x", "--no-such-flag"], "unrecognized arguments"),
        (["x", "--limit", "max_speed=3"], "--limit takes NAME=NUMBER"),
        (["x", "--limit", "max_order=0"], "positive whole number"),
        (
            # Inputs are drawn inside log's domain (x > 0), which x - 10 leaves.
            ["sum(log(x - 10))", "--wrt", "x", "--check"],
            "at the random inputs (size 3, seed 0): log of a non-positive entry",
        ),
        (["sum(exp(10000*x))", "--evaluate"], "exp overflows"),
        # The parser's own fix (another change) makes these library errors; either way: one line.
        (["1e5000*x"], ""),
        (["x/0"], ""),
        (["(0/0)*x"], ""),
    ],
)
def test_failures_are_one_line_and_status_2(args, fragment):
    assert_one_error(run(*args), fragment)


def test_limits_can_be_raised_on_the_command_line():
    result = run("sum(exp(x))", "--wrt", "x", "--order", "7", "--limit", "max_order=7")
    assert result.returncode == 0, result.stderr
    assert "d^7f/dx^7" in result.stdout


def test_expression_from_standard_input():
    result = run("-", "--wrt", "x", stdin="x'*A*x\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("df/dx = (A + A')*x\n")


def test_expression_from_standard_input_beyond_the_length_limit():
    assert_one_error(
        run("-", "--limit", "max_length=100", stdin="x+" * 100 + "x"), "standard input has more than 100 characters"
    )


def test_a_closed_pipe_exits_silently():
    # The reader goes away (as `| head -c 1` does) before the command writes: the command reads
    # its expression from standard input, so closing our end of its output first orders it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "matrixcalculus.cli", "-", "--wrt", "x"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    proc.stdin.write(b"x'*A*x")
    proc.stdin.close()
    status = proc.wait(timeout=TIMEOUT_S)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert stderr == ""
    assert status == 141  # 128 + SIGPIPE, as a program the signal ends


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["x"]) == 130
    assert capsys.readouterr().err == ""


def test_an_unexpected_exception_is_one_line_that_says_bug(monkeypatch, capsys):
    def broken(argv):
        raise RuntimeError("something\ninternal")

    monkeypatch.setattr(cli, "run", broken)
    assert cli.main(["x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("matrixcalculus: error: internal error, a bug in matrixcalculus")
    assert "RuntimeError: something internal" in err


def test_good_input_still_works(capsys):
    assert cli.main(["x'*A*x", "--wrt", "x", "--check"]) == 0
    out = capsys.readouterr().out
    assert "df/dx = (A + A')*x" in out and "(ok)" in out
