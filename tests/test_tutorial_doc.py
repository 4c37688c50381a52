"""docs/tutorial.md is produced by running the tool: this test fails when it is out of date.

Each ```console block of the document holds one command line, ``$ matrixcalculus ...``, and then
the output that command printed; each ```pycon block is a doctest. The test runs every command
(the command line's own ``run``, as ``main`` calls it) and compares its output with the block's;
the digits of finite-difference errors (``max abs error 1.00e-10``) may differ from machine to
machine and are compared as numbers of that form only.

Regenerate the outputs after a change:

    python tests/test_tutorial_doc.py --write
"""

from __future__ import annotations

import doctest
import re
import shlex
import sys
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
_CONSOLE = re.compile(r"```console\n\$ (?P<command>[^\n]*)\n(?P<output>.*?)```", re.S)
_PYCON = re.compile(r"```pycon\n(?P<body>.*?)```", re.S)
_ERROR_DIGITS = re.compile(r"\d\.\d\de[-+]\d\d")


def _output(command: str) -> str:
    """What ``command`` prints (``matrixcalculus`` and its arguments as a shell would split them)."""
    from matrixcalculus import cli

    words = shlex.split(command)
    assert words[0] == "matrixcalculus", command
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text, _ = cli.run(words[1:])
    return text.rstrip("\n") + "\n"


def _comparable(text: str) -> str:
    return _ERROR_DIGITS.sub("#.##e-##", text)


def _commands(doc: str) -> list[tuple[str, str]]:
    return [(m["command"], m["output"]) for m in _CONSOLE.finditer(doc)]


def test_the_document_has_commands_and_examples():
    doc = DOC.read_text(encoding="utf-8")
    assert len(_commands(doc)) >= 10
    assert "--explain" in doc and "python tests/test_tutorial_doc.py --write" in doc


@pytest.mark.parametrize("command, shown", _commands(DOC.read_text(encoding="utf-8")))
def test_each_command_prints_what_the_document_shows(command, shown):
    assert _comparable(_output(command)) == _comparable(shown), (
        f"docs/tutorial.md is out of date for: {command}\nregenerate with: python tests/test_tutorial_doc.py --write"
    )


def test_python_examples_run_as_shown():
    doc = DOC.read_text(encoding="utf-8")
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    blocks = [m["body"] for m in _PYCON.finditer(doc)]
    assert blocks
    for k, body in enumerate(blocks):
        test = parser.get_doctest(body, {}, f"tutorial.md pycon block {k + 1}", str(DOC), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            runner.run(test)
    assert runner.failures == 0, "a Python example of docs/tutorial.md no longer prints what it shows"


def write() -> None:
    """Rewrite the output of every command block of the document."""
    doc = DOC.read_text(encoding="utf-8")
    doc = _CONSOLE.sub(lambda m: f"```console\n$ {m['command']}\n{_output(m['command'])}```", doc)
    DOC.write_text(doc, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_tutorial_doc.py --write")
    write()
