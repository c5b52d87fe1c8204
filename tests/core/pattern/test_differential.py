"""``parse`` against the OASIS reference validator (stix2-patterns 2.1.2, STIX 2.1).

The oracle is ``stix2patterns.validator.run_validator(text, stix_version="2.1")``: a pattern
is accepted when it returns no error. It crashes instead of answering on three kinds of input
(see ``reference_accepts``); there the same reference components are run without the crash.

Inputs: generated canonical patterns, realistic indicators, the STIX 2.1 specification
examples, the reference package's own test patterns, near misses made by mutating valid
patterns token- and character-wise, and arbitrary text. When both sides accept, the
comparisons the reference inspector extracts (object type, path, operator, literal value)
must also equal ours.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import stix2patterns
from hypothesis import example, given
from hypothesis import strategies as st
from returns.result import Success
from stix2patterns.exceptions import ParseException
from stix2patterns.helpers import brackets_check
from stix2patterns.inspector import INDEX_STAR, _PatternData
from stix2patterns.test.v21 import test_validator as reference_tests
from stix2patterns.v21 import object_validator
from stix2patterns.v21.inspector import InspectionListener
from stix2patterns.v21.pattern import Pattern as ReferencePattern
from stix2patterns.v21.validator import DuplicateQualifierTypeError, ValidationListener
from stix2patterns.validator import run_validator

from elastic_connector.core.pattern import comparisons, parse, render
from elastic_connector.core.pattern.tree import (
    AnyIndex,
    BinaryLiteral,
    BoolLiteral,
    Comparison,
    FloatLiteral,
    FollowedBy,
    HexLiteral,
    IntLiteral,
    Literal,
    ObservationAnd,
    ObservationOr,
    Op,
    Pattern,
    StringLiteral,
    TimestampLiteral,
)
from tests.core.pattern.pattern_strategies import (
    SPEC_PATTERNS,
    indicator_patterns,
    near_miss_texts,
    pattern_texts,
    patterns,
    respaced_texts,
)

REFERENCE_SPEC_PATTERNS = [
    line.strip()
    for line in (Path(stix2patterns.__file__).parent / "test" / "v21" / "spec_examples.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line.strip()
]
REFERENCE_TEST_PATTERNS: list[str] = [
    *reference_tests.PASS_CASES,
    *reference_tests.TIMESTAMP_PASS_CASES,
    *(text for text, _ in reference_tests.FAIL_CASES),
    *(text for text, _ in reference_tests.TIMESTAMP_FAIL_CASES),
]


# --- the oracle -------------------------------------------------------------------------------


class _TolerantInspector(InspectionListener):  # type: ignore[misc]  # untyped reference class
    """The reference inspector, able to record negative list indexes (it crashes on them)."""

    def exitIndexPathStep(self, ctx: Any) -> None:  # ANTLR listener name
        if ctx.ASTERISK():
            step: object = INDEX_STAR
        else:
            step = int((ctx.IntPosLiteral() or ctx.IntNegLiteral()).getText())
        self._InspectionListener__obj_path.append(step)


def _inspect(text: str) -> Any:
    inspector = _TolerantInspector()
    ReferencePattern(text).walk(inspector)
    return inspector.pattern_data()


def reference_accepts(text: str) -> bool:
    """Whether the reference validator accepts ``text``.

    It raises on the empty string (``brackets_check``), on any negative list index (its
    inspector), and on a ``hashes`` path ending with a list index (its digest check). Those
    inputs get the same checks run piecewise, minus the crash: the grammar (``Pattern``), the
    duplicate-qualifier rule (``ValidationListener``) and the digest check on every comparison
    whose path ends with a name.
    """
    try:
        return bool(run_validator(text, stix_version="2.1") == [])
    except (AttributeError, UnboundLocalError):
        pass
    if not text or not brackets_check(text):
        return False
    try:
        tree = ReferencePattern(text)
    except ParseException:
        return False
    try:
        tree.walk(ValidationListener())
    except DuplicateQualifierTypeError:
        return False
    data = _inspect(text)
    named = {
        object_type: [entry for entry in entries if not isinstance(entry[0][-1], int)]
        for object_type, entries in data.comparisons.items()
    }
    return not object_validator.verify_object(
        _PatternData(named, data.observation_ops, data.qualifiers)
    )


def _literal_from_reference(text: str) -> Literal | None:
    """The literal a reference token stands for (its own string decoding); sets: None."""
    if text.startswith("'"):
        return StringLiteral(text[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
    if text.startswith("h'"):
        return HexLiteral(bytes.fromhex(text[2:-1]))
    if text.startswith("b'"):
        return BinaryLiteral(base64.b64decode(text[2:-1]))
    if text.startswith("t'"):
        return TimestampLiteral(text[2:-1])
    if text in ("true", "false"):
        return BoolLiteral(text == "true")
    if text.startswith("("):
        return None
    return FloatLiteral(float(text)) if "." in text else IntLiteral(int(text))


def _assert_same_reading(text: str, ours: Pattern) -> None:
    """Our tree says what the reference inspector read: comparisons and observation ops."""
    data = _inspect(text)
    spelled = {"==": "=", "<>": "!="}  # the inspector keeps the operator as written
    theirs = [
        (
            object_type,
            tuple(AnyIndex() if step is INDEX_STAR else step for step in path),
            " ".join(spelled.get(word, word) for word in op.split(" ")),
            _literal_from_reference(value),
        )
        for object_type, entries in data.comparisons.items()
        for path, op, value in entries
    ]
    mine = [
        (
            site.test.path.object_type,
            site.test.path.steps,
            ("NOT " if site.test.negated else "") + site.test.op.value,
            None if site.test.op is Op.IN else site.test.value,
        )
        for site in comparisons(ours)
        if isinstance(site.test, Comparison)
    ]
    assert Counter(map(repr, mine)) == Counter(map(repr, theirs))
    operators = {
        name
        for name, node_type in (
            ("AND", ObservationAnd),
            ("OR", ObservationOr),
            ("FOLLOWEDBY", FollowedBy),
        )
        if _contains(ours, node_type)
    }
    assert operators == set(data.observation_ops)


def _contains(pattern: Pattern, node_type: type) -> bool:
    stack: list[object] = [pattern.expression]
    while stack:
        node = stack.pop()
        if isinstance(node, node_type):
            return True
        stack.extend(getattr(node, "operands", ()))
        if hasattr(node, "qualifier"):
            stack.append(node.expression)  # type: ignore[attr-defined]  # Qualified
    return False


def check_agreement(text: str) -> None:
    """The property every differential test asserts."""
    ours = parse(text)
    accepted = reference_accepts(text)
    assert isinstance(ours, Success) == accepted, (text, ours)
    if accepted:
        _assert_same_reading(text, ours.unwrap())


VALID_TEXTS = st.one_of(
    pattern_texts(), st.sampled_from(REFERENCE_SPEC_PATTERNS + REFERENCE_TEST_PATTERNS)
)


# --- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", SPEC_PATTERNS)
def test_spec_examples_are_accepted_by_both(text: str) -> None:
    assert reference_accepts(text)
    check_agreement(text)


@pytest.mark.parametrize("text", REFERENCE_SPEC_PATTERNS + REFERENCE_TEST_PATTERNS)
def test_reference_package_patterns(text: str) -> None:
    check_agreement(text)


@given(patterns().map(render))
def test_generated_patterns_agree(text: str) -> None:
    assert reference_accepts(text), text
    check_agreement(text)


@given(indicator_patterns().map(render))
def test_indicator_patterns_agree(text: str) -> None:
    assert reference_accepts(text), text
    check_agreement(text)


@given(respaced_texts(VALID_TEXTS))
def test_whitespace_and_comments_agree(text: str) -> None:
    check_agreement(text)


@given(near_miss_texts(VALID_TEXTS))
@example("[a:b[-1] = 1] WITHIN 1 SECONDS WITHIN 2 SECONDS")
@example("[file:hashes[0] = 'x' AND file:hashes.MD5 = 'y']")
@example("[file:x[-1] = 1 AND file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']")
@example("")
def test_near_misses_agree(text: str) -> None:
    check_agreement(text)


@given(st.text(st.characters(exclude_categories=()), max_size=40))
def test_arbitrary_text_agrees(text: str) -> None:
    check_agreement(text)


@given(st.text(st.sampled_from(list("[](): .,'=<>!*-+0123456789abht_ ")), max_size=30))
def test_pattern_alphabet_text_agrees(text: str) -> None:
    check_agreement("[" + text)
