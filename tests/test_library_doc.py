"""``docs/library.md`` runs: its ``pycon`` blocks are one doctest, in order, in a scratch
directory, so the walkthrough cannot drift from what the library does."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "library.md"
_FENCED = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def _sessions(text: str) -> str:
    """The ``pycon`` blocks, everything else blanked, so a failure names the file's line."""
    lines = ["" for _ in text.splitlines()]
    for block in _FENCED.finditer(text):
        if block.group(1) == "pycon":
            first = text.count("\n", 0, block.start(2))
            for offset, line in enumerate(block.group(2).splitlines()):
                lines[first + offset] = line
    return "\n".join(lines) + "\n"


def test_the_walkthrough_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the walkthrough writes its sample files where it runs
    text = DOC.read_text(encoding="utf-8")
    test = doctest.DocTestParser().get_doctest(_sessions(text), {}, DOC.name, str(DOC), 0)
    assert len(test.examples) >= 50, "the pycon blocks were not all found"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.REPORT_NDIFF)
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries == len(test.examples)


def test_every_interactive_block_is_run() -> None:
    """A ``python`` block holds code that is not run (it needs a cluster); one that looks like
    a session must be marked ``pycon``, or it would silently go untested."""
    text = DOC.read_text(encoding="utf-8")
    for block in _FENCED.finditer(text):
        language, body = block.groups()
        if ">>> " in body:
            line = text.count("\n", 0, block.start()) + 1
            assert language == "pycon", f"docs/library.md line {line}: a session not run"
