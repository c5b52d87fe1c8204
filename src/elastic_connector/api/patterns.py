"""STIX patterns: parsed, printed back in canonical form, their comparisons listed."""

from __future__ import annotations

import msgspec
from returns.result import Failure

from elastic_connector.core.pattern import ComparisonSite, comparisons, parse, render
from elastic_connector.core.pattern.parser import render_literal, render_path
from elastic_connector.core.pattern.tree import Comparison


class InvalidPattern(msgspec.Struct, frozen=True, kw_only=True):
    """Why a text is not a STIX 2.1 pattern: ``position`` (0-based character offset),
    ``expected`` there, the offending text ``found`` (empty at the end of the text)."""

    message: str
    position: int
    expected: tuple[str, ...] = ()
    found: str = ""

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.message,
            "position": self.position,
            "expected": list(self.expected),
            "found": self.found,
        }


class PatternComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One comparison (or ``EXISTS`` test) of a pattern, in canonical text: ``path`` (e.g.
    ``file:hashes.'SHA-256'``), ``operator`` (``=``, ``IN``, ``MATCHES``..., ``EXISTS``),
    ``value`` (a STIX literal such as ``'198.51.100.7'``; None for ``EXISTS``), ``negated``
    (``NOT``), and ``observation``: which ``[...]`` it sits in, from 0."""

    observation: int
    path: str
    operator: str
    value: str | None
    negated: bool = False

    def to_dict(self) -> dict[str, object]:
        return msgspec.structs.asdict(self)


class ParsedPattern(msgspec.Struct, frozen=True, kw_only=True):
    """A STIX pattern, parsed: ``pattern`` is its canonical text (``str()`` gives it too), which
    parses back to the same pattern; ``comparisons`` in text order."""

    pattern: str
    comparisons: tuple[PatternComparison, ...]

    def __str__(self) -> str:
        return self.pattern

    def to_dict(self) -> dict[str, object]:
        return {"pattern": self.pattern, "comparisons": [c.to_dict() for c in self.comparisons]}


def parse_pattern(text: str) -> ParsedPattern | InvalidPattern:
    """Parse a STIX 2.1 pattern (the parser the mapping uses), or say where and why it is not
    one."""
    parsed = parse(text)
    if isinstance(parsed, Failure):
        error = parsed.failure()
        return InvalidPattern(
            message=error.message,
            position=error.position,
            expected=error.expected,
            found=error.found,
        )
    tree = parsed.unwrap()
    return ParsedPattern(
        pattern=render(tree), comparisons=tuple(_comparison(site) for site in comparisons(tree))
    )


def _comparison(site: ComparisonSite) -> PatternComparison:
    test = site.test
    if isinstance(test, Comparison):
        operator, value = test.op.value, render_literal(test.value)
    else:
        operator, value = "EXISTS", None
    return PatternComparison(
        observation=site.observation,
        path=render_path(test.path),
        operator=operator,
        value=value,
        negated=test.negated,
    )
