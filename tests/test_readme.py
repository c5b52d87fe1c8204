"""The README embeds the generated/maintained fragments under docs/ verbatim.

Each ``<!-- BEGIN docs/x.md -->`` ... ``<!-- END docs/x.md -->`` block must equal the file
(which, for the config table, is itself checked against the option registry). Regenerate with
``UPDATE_README=1 pytest tests/test_readme.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_BLOCK = re.compile(
    r"(<!-- BEGIN (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- END (?P=name) -->)", re.S
)


def _embedded() -> list[str]:
    return [match.group("name") for match in _BLOCK.finditer(README.read_text())]


_HEADING = re.compile(r"^(#+) ", re.M)


def _section_level(text: str, position: int) -> int:
    """Level of the README heading the block sits under."""
    headings = _HEADING.findall(text[:position])
    return len(headings[-1]) if headings else 1


def _fit(fragment: str, level: int) -> str:
    """The fragment without its own title, its headings moved just below ``level``."""
    lines = fragment.strip("\n").splitlines()
    if lines and _HEADING.match(lines[0]):
        lines = lines[1:]
    body = "\n".join(lines).strip("\n")
    levels = [len(m) for m in _HEADING.findall(body)]
    if not levels:
        return body
    shift = level + 1 - min(levels)
    return _HEADING.sub(lambda m: "#" * (len(m.group(1)) + shift) + " ", body)


def _render(text: str) -> str:
    def fill(match: re.Match[str]) -> str:
        fragment = (ROOT / match.group("name")).read_text()
        body = _fit(fragment, _section_level(text, match.start()))
        return match.group(1) + (body + "\n" if body else "") + match.group(4)

    return _BLOCK.sub(fill, text)


def test_every_fragment_exists() -> None:
    names = _embedded()
    assert "docs/config-table.md" in names
    assert "docs/ecs-mapping.md" in names
    for name in names:
        assert (ROOT / name).is_file(), name


@pytest.mark.skipif(not os.environ.get("UPDATE_README"), reason="only with UPDATE_README=1")
def test_update_readme() -> None:
    README.write_text(_render(README.read_text()))


def test_readme_embeds_the_fragments_verbatim() -> None:
    text = README.read_text()
    assert text == _render(text), "README is stale: run UPDATE_README=1 pytest tests/test_readme.py"
