"""STIX pattern parser and printer: decoding rules, errors, limits and round trips.

Agreement with the OASIS reference validator lives in ``test_pattern_differential.py``.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Success

from elastic_connector.core.pattern import parser as pattern_module
from elastic_connector.core.pattern.parser import (
    MAX_HEIGHT,
    MAX_INT_DIGITS,
    MAX_NESTING,
    ComparisonSite,
    comparisons,
    parse,
    render,
    render_literal,
    render_path,
)
from elastic_connector.core.pattern.tree import (
    AnyIndex,
    BinaryLiteral,
    BoolLiteral,
    Comparison,
    ComparisonAnd,
    ComparisonOr,
    Exists,
    FloatLiteral,
    FollowedBy,
    HexLiteral,
    IntLiteral,
    Literal,
    ObjectPath,
    Observation,
    ObservationAnd,
    ObservationExpression,
    ObservationOr,
    Op,
    Pattern,
    PatternError,
    Qualified,
    Repeats,
    SetLiteral,
    StartStop,
    StringLiteral,
    TimestampLiteral,
    Within,
)
from tests.core.pattern.pattern_strategies import (
    indicator_patterns,
    near_miss_texts,
    pattern_texts,
    patterns,
    respaced_texts,
)


def tree(text: str) -> ObservationExpression:
    pattern = parse(text).value_or(None)
    assert pattern is not None, parse(text)
    return pattern.expression


def error(text: str) -> PatternError:
    refused = parse(text).swap().value_or(None)
    assert refused is not None, parse(text)
    return refused


def value_of(text: str) -> Literal | SetLiteral:
    """The literal of ``[x:v = <text>]`` (or of ``IN`` when ``text`` is a set)."""
    op = "IN" if text.startswith("(") else "="
    node = tree(f"[x:v {op} {text}]")
    assert isinstance(node, Observation)
    assert isinstance(node.expression, Comparison)
    return node.expression.value


def cmp(path: str, op: Op, value: Literal | SetLiteral, negated: bool = False) -> Comparison:
    object_type, _, key = path.partition(":")
    return Comparison(ObjectPath(object_type, (key,)), op, value, negated)


A = cmp("a:b", Op.EQ, IntLiteral(1))
B = cmp("a:b", Op.EQ, IntLiteral(2))
C = cmp("a:b", Op.EQ, IntLiteral(3))
D = cmp("a:b", Op.EQ, IntLiteral(4))
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA256 = "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"


# --- literals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"'C:\\Windows'", StringLiteral("C:\\Windows")),
        (r"'it\'s'", StringLiteral("it's")),
        (r"'\\\''", StringLiteral("\\'")),
        ("''", StringLiteral("")),
        ("'line\nbreak \u00e9 \U0001f600'", StringLiteral("line\nbreak \u00e9 \U0001f600")),
        ("'/* not a comment */'", StringLiteral("/* not a comment */")),
        ("b'dGhpcyBpcyBhIHRlc3Q='", BinaryLiteral(b"this is a test")),
        ("b'AA=='", BinaryLiteral(b"\x00")),
        ("b'AAAA'", BinaryLiteral(b"\x00\x00\x00")),
        ("h'ffD8'", HexLiteral(b"\xff\xd8")),
        ("h''", HexLiteral(b"")),
        ("t'2016-01-01T00:00:00Z'", TimestampLiteral("2016-01-01T00:00:00Z")),
        ("t'2016-02-31T23:59:60.123Z'", TimestampLiteral("2016-02-31T23:59:60.123Z")),
        ("42", IntLiteral(42)),
        ("+42", IntLiteral(42)),
        ("-42", IntLiteral(-42)),
        ("-0", IntLiteral(0)),
        ("7.0", FloatLiteral(7.0)),
        ("-.5", FloatLiteral(-0.5)),
        ("+.5", FloatLiteral(0.5)),
        ("00.25", FloatLiteral(0.25)),
        ("1" + "0" * 400 + ".0", FloatLiteral(float("inf"))),
        ("true", BoolLiteral(True)),
        ("false", BoolLiteral(False)),
        ("()", SetLiteral(())),
        (
            "('a', 1, true, h'00')",
            SetLiteral((StringLiteral("a"), IntLiteral(1), BoolLiteral(True), HexLiteral(b"\x00"))),
        ),
    ],
)
def test_literals_are_decoded(text: str, expected: Literal | SetLiteral) -> None:
    assert value_of(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        r"'\n'",  # only \\ and \' are escapes
        r"'\x41'",
        r"'\"'",
        "'unterminated",
        "h'abc'",  # odd number of hex digits
        "h'zz'",
        "b''",  # the grammar needs at least one base64 quantum
        "b'A'",
        "b'AAAAA'",
        "b'A==='",
        "t'2016-13-01T00:00:00Z'",
        "t'2016-01-01T24:00:00Z'",
        "t'2016-01-01T00:00:61Z'",
        "t'2016-01-01T00:00:00'",
        "t'2016-01-01T00:00:00.Z'",
        "t'2016-01-01 00:00:00Z'",
        "007",
        "1.",
        "1e5",
        "True",
        "TRUE",
        '"double quoted"',
    ],
)
def test_malformed_literals_are_refused(text: str) -> None:
    assert isinstance(parse(f"[x:v = {text}]"), Failure)


def test_integers_longer_than_the_limit_are_refused() -> None:
    assert value_of("9" * MAX_INT_DIGITS) == IntLiteral(int("9" * MAX_INT_DIGITS))
    too_long = error("[x:v = " + "9" * (MAX_INT_DIGITS + 1) + "]")
    assert too_long.position == 7
    assert f"longer than {MAX_INT_DIGITS} digits" in too_long.message
    assert too_long.found.endswith("...")


# --- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file:name", ObjectPath("file", ("name",))),
        ("file:hashes.'SHA-256'", ObjectPath("file", ("hashes", "SHA-256"))),
        ("x-acme:'first key'.second", ObjectPath("x-acme", ("first key", "second"))),
        ("a:b[*].c", ObjectPath("a", ("b", AnyIndex(), "c"))),
        ("a:b[0][-1][+2]", ObjectPath("a", ("b", 0, -1, 2))),
        ("a:b.'AND'.'it\\'s'", ObjectPath("a", ("b", "AND", "it's"))),
        ("a-:_", ObjectPath("a-", ("_",))),
        ("TRUE:True", ObjectPath("TRUE", ("True",))),
        ("a : b . c [ 1 ]", ObjectPath("a", ("b", "c", 1))),
    ],
)
def test_object_paths(text: str, expected: ObjectPath) -> None:
    assert tree(f"[EXISTS {text}]") == Observation(Exists(expected))


@pytest.mark.parametrize(
    "text",
    ["a:b-c", "a:b.c-d", "a:AND", "AND:b", "true:b", "a:b[1.5]", "a:b[x]", "a:b.[0]", "a:", "a.b"],
)
def test_malformed_object_paths_are_refused(text: str) -> None:
    assert isinstance(parse(f"[{text} = 1]"), Failure)


# --- operators, precedence, qualifiers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op", "negated"),
    [
        ("= 1", Op.EQ, False),
        ("== 1", Op.EQ, False),
        ("!= 1", Op.NEQ, False),
        ("<> 1", Op.NEQ, False),
        ("NOT = 1", Op.EQ, True),
        ("< 1", Op.LT, False),
        ("<= 1", Op.LE, False),
        ("> 1", Op.GT, False),
        ("NOT >= 1", Op.GE, True),
        ("IN (1)", Op.IN, False),
        ("NOT IN (1)", Op.IN, True),
        ("LIKE 'a%'", Op.LIKE, False),
        ("MATCHES '^a$'", Op.MATCHES, False),
        ("NOT ISSUBSET '10.0.0.0/8'", Op.ISSUBSET, True),
        ("ISSUPERSET '10.0.0.0/8'", Op.ISSUPERSET, False),
    ],
)
def test_comparison_operators(text: str, op: Op, negated: bool) -> None:
    node = tree(f"[a:b {text}]")
    assert isinstance(node, Observation)
    assert isinstance(node.expression, Comparison)
    assert (node.expression.op, node.expression.negated) == (op, negated)


@pytest.mark.parametrize(
    "text",
    [
        "[a:b > true]",  # booleans are not ordered
        "[a:b LIKE 1]",
        "[a:b MATCHES h'00']",
        "[a:b IN 1]",
        "[a:b = (1)]",
        "[a:b NOT NOT = 1]",
        "[NOT a:b = 1]",
        "[a:b and a:c = 1]",
        "[a:b = 1 and a:c = 1]",
        "[a:b = 1] and [a:c = 1]",
        "[a:b = 1] within 5 seconds",
        "[a:b = 1] LAST 5 SECONDS",
        "[a:b EXISTS]",
        "[exists a:b]",
    ],
)
def test_operator_misuse_and_keyword_case_are_refused(text: str) -> None:
    assert isinstance(parse(text), Failure)


def test_exists_and_not_exists() -> None:
    assert tree("[EXISTS a:b]") == Observation(Exists(ObjectPath("a", ("b",))))
    assert tree("[NOT EXISTS a:b[*]]") == Observation(
        Exists(ObjectPath("a", ("b", AnyIndex())), negated=True)
    )


def test_comparison_and_binds_tighter_than_or() -> None:
    assert tree("[a:b = 1 OR a:b = 2 AND a:b = 3]") == Observation(
        ComparisonOr((A, ComparisonAnd((B, C))))
    )
    assert tree("[(a:b = 1 OR a:b = 2) AND a:b = 3]") == Observation(
        ComparisonAnd((ComparisonOr((A, B)), C))
    )


def test_observation_precedence_is_and_then_or_then_followedby() -> None:
    a, b, c, d = (Observation(item) for item in (A, B, C, D))
    assert tree("[a:b = 1] FOLLOWEDBY [a:b = 2] OR [a:b = 3] AND [a:b = 4]") == FollowedBy(
        (a, ObservationOr((b, ObservationAnd((c, d)))))
    )
    assert tree("[a:b = 1] AND [a:b = 2] OR [a:b = 3] FOLLOWEDBY [a:b = 4]") == FollowedBy(
        (ObservationOr((ObservationAnd((a, b)), c)), d)
    )
    assert tree("([a:b = 1] FOLLOWEDBY [a:b = 2]) AND [a:b = 3]") == ObservationAnd(
        (FollowedBy((a, b)), c)
    )


def test_groups_of_one_operator_are_flattened_and_parentheses_dropped() -> None:
    a, b, c = (Observation(item) for item in (A, B, C))
    expected = ObservationAnd((a, b, c))
    assert tree("[a:b = 1] AND [a:b = 2] AND [a:b = 3]") == expected
    assert tree("([a:b = 1] AND [a:b = 2]) AND [a:b = 3]") == expected
    assert tree("[a:b = 1] AND ([a:b = 2] AND ([a:b = 3]))") == expected
    assert tree("[((a:b = 1 OR a:b = 2)) OR ((a:b = 3))]") == Observation(ComparisonOr((A, B, C)))
    assert tree("((([a:b = 1])))") == a


def test_qualifiers_bind_tighter_than_operators_and_stack() -> None:
    a, b = Observation(A), Observation(B)
    start, stop = TimestampLiteral("2016-01-01T00:00:00Z"), TimestampLiteral("2017-01-01T00:00:00Z")
    assert tree("[a:b = 1] AND [a:b = 2] WITHIN 5 SECONDS") == ObservationAnd(
        (a, Qualified(b, Within(5)))
    )
    assert tree("([a:b = 1] AND [a:b = 2]) WITHIN 2.5 SECONDS") == Qualified(
        ObservationAnd((a, b)), Within(2.5)
    )
    stacked = (
        "[a:b = 1] REPEATS 3 TIMES WITHIN +10 SECONDS"
        " START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00Z'"
    )
    assert tree(stacked) == Qualified(
        Qualified(Qualified(a, Repeats(3)), Within(10)), StartStop(start, stop)
    )
    assert tree("[a:b = 1] WITHIN 0 SECONDS REPEATS 0 TIMES") == Qualified(
        Qualified(a, Within(0)), Repeats(0)
    )


def test_a_qualifier_kind_repeats_only_over_parentheses() -> None:
    # The reference validator refuses a repeated kind on one [...]; parentheses reset that.
    refused = error("[a:b = 1] WITHIN 1 SECONDS REPEATS 2 TIMES WITHIN 3 SECONDS")
    assert refused.position == 43
    assert refused.found == "WITHIN"
    assert "twice" in refused.message
    expected = Qualified(Qualified(Observation(A), Within(1)), Within(3))
    assert tree("([a:b = 1]) WITHIN 1 SECONDS WITHIN 3 SECONDS") == expected
    assert tree("([a:b = 1] WITHIN 1 SECONDS) WITHIN 3 SECONDS") == expected
    assert render(Pattern(expected)) == "([a:b = 1] WITHIN 1 SECONDS) WITHIN 3 SECONDS"


@pytest.mark.parametrize(
    "text",
    [
        "[a:b = 1] WITHIN -5 SECONDS",
        "[a:b = 1] WITHIN 5",
        "[a:b = 1] WITHIN 5 HOURS",
        "[a:b = 1] REPEATS 2.5 TIMES",
        "[a:b = 1] REPEATS -1 TIMES",
        "[a:b = 1] START t'2016-01-01T00:00:00Z'",
        "[a:b = 1] START '2016-01-01T00:00:00Z' STOP '2017-01-01T00:00:00Z'",
        "WITHIN 5 SECONDS [a:b = 1]",
    ],
)
def test_malformed_qualifiers_are_refused(text: str) -> None:
    assert isinstance(parse(text), Failure)


# --- whitespace, comments, digests --------------------------------------------------------------


def test_whitespace_and_comments_between_tokens_are_ignored() -> None:
    plain = tree("[a:b = 1] AND [a:b = 2]")
    assert tree("\u3000( [a:b/* c */=\t1]\nAND// line\n[a:b\u00a0=\u20282] ) // end") == plain
    assert tree("[a:b = 1]AND[a:b = 2]") == plain


def test_nothing_but_brackets_and_whitespace_may_precede_the_first_bracket() -> None:
    # The reference validator's brackets_check: a comment up front is refused.
    assert error("/* c */ [a:b = 1]").position == 0
    assert error(" ( // c\n[a:b = 1])").position == 3
    assert error("").position == 0


def test_digests_are_checked_as_the_reference_validator_does() -> None:
    assert isinstance(parse(f"[file:hashes.MD5 = '{MD5}']"), Success)
    assert isinstance(parse(f"[file:hashes.'SHA-256' = '{SHA256}']"), Success)
    assert isinstance(parse(f"[file:hashes.sha256 != '{SHA256.upper()}']"), Success)
    assert isinstance(parse("[x:hashes[*] = 'anything']"), Success)
    assert isinstance(parse("[x:hashes.'unknown-algo' = 'anything']"), Success)
    assert isinstance(parse("[x:hashes[0] = 'anything']"), Success)
    assert isinstance(parse("[x:'hashes'.MD5 = 12345678901234567890123456789012]"), Success)
    bad = error("[file:hashes.'SHA-256' = 'f00']")
    assert (bad.position, bad.found) == (25, "'f00'")
    assert bad.message == "'f00' is not a valid SHA-256 hash"
    assert isinstance(parse(f"[file:hashes.MD5 = '{MD5}' OR file:hashes.MD5 = 'x']"), Failure)
    assert isinstance(parse(f"[file:hashes.MD5 LIKE '{MD5[:-1]}%']"), Failure)
    # The check reads the literal as written, so a set never passes it.
    assert isinstance(parse(f"[file:hashes.MD5 IN ('{MD5}')]"), Failure)
    assert isinstance(parse(f"[file:a.hashes.b.MD5 = h'{MD5}']"), Failure)


# --- errors -------------------------------------------------------------------------------------


LITERALS = ("integer", "float", "string", "binary", "hex", "timestamp", "true/false")


@pytest.mark.parametrize(
    ("text", "position", "expected", "found"),
    [
        ("[file:size = ]", 13, LITERALS, "]"),
        ("file:size = 1280", 0, ("'['", "'('"), "file"),
        (f"[file:hashes.MD5 = {MD5}]", 19, LITERALS, MD5),
        ("[file.size = 1280]", 5, ("':'",), "."),
        (r"[file:name MATCHES /.*\.dll/]", 19, ("string",), "/"),
        ("[a:b = 1] WITHIN ]", 17, ("non-negative number of seconds",), "]"),
        ("[a:b = 1] WITHIN 5 HOURS", 19, ("SECONDS",), "HOURS"),
        ("[a:b =? 1]", 6, LITERALS, "?"),
        ("[x:d = t'2457-73-22T32:81:84.1Z']", 7, LITERALS, "t"),
        ("[a:b = 'unterminated]", 7, LITERALS, "'"),
        ("[a:b = 1", 8, ("']'", "AND", "OR"), ""),
        ("[a:b[1.5] = 1]", 5, ("list index", "'*'"), "1.5"),
        ("[NOT a:b = 1]", 5, ("EXISTS",), "a"),
        ("[a:b > true]", 7, LITERALS[:-1], "true"),
        ("[a:b IN ('x' 'y')]", 13, ("','", "')'"), "'y'"),
        ("[a:b = 1] AND", 13, ("'['", "'('"), ""),
        (
            "[foo:bar=1] within 2 seconds",
            12,
            ("AND", "OR", "FOLLOWEDBY", "WITHIN", "REPEATS", "START", "end of input"),
            "within",
        ),
    ],
)
def test_errors_say_where_what_was_expected_and_what_was_found(
    text: str, position: int, expected: tuple[str, ...], found: str
) -> None:
    refused = error(text)
    assert (refused.position, refused.expected, refused.found) == (position, expected, found)
    assert str(refused).endswith(f"at position {position}")


def test_error_messages_explain_malformed_literals() -> None:
    assert "malformed hex literal" in error("[a:b = h'abc']").message
    assert "malformed binary literal" in error("[a:b = b'A']").message
    assert "malformed timestamp" in error("[a:b = t'2016-13-01T00:00:00Z']").message
    assert "backslash" in error(r"[a:b = 'C:\Windows']").message


def test_long_offending_text_is_shortened_in_errors() -> None:
    refused = error("[a:b = 1] " + "x" * 10_000)
    assert refused.position == 10
    assert len(refused.found) < 50
    assert len(refused.message) < 200


# --- limits and hostile input -------------------------------------------------------------------


def test_parentheses_up_to_the_limit_are_accepted_and_deeper_refused() -> None:
    assert tree("(" * MAX_NESTING + "[a:b = 1]" + ")" * MAX_NESTING) == Observation(A)
    inner = "[" + "(" * MAX_NESTING + "a:b = 1" + ")" * MAX_NESTING + "]"
    assert tree(inner) == Observation(A)
    refused = error("(" * (MAX_NESTING + 1) + "[a:b = 1]" + ")" * (MAX_NESTING + 1))
    assert refused.position == MAX_NESTING
    assert refused.message == f"parentheses nested deeper than {MAX_NESTING} levels"


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + "[a:b = 1]" + ")" * 10_000,
        "[" + "(" * 10_000 + "a:b = 1" + ")" * 10_000 + "]",
        "(" * 5_000 + "[a:b = 1]",
        "([a:b = 1] AND " * 5_000 + "[a:b = 1]" + ")" * 5_000,
    ],
)
def test_deep_nesting_gives_an_error_not_a_crash(text: str) -> None:
    assert "nested deeper than" in error(text).message


def test_tall_trees_are_refused() -> None:
    # Every level adds an AND and a qualifier: the tree outgrows MAX_HEIGHT long before the
    # parentheses reach MAX_NESTING.
    levels = MAX_HEIGHT // 2 + 1
    text = "([a:b = 1] AND " * levels + "[a:b = 2]" + ") WITHIN 1 SECONDS" * levels
    assert levels < MAX_NESTING
    assert error(text).message == f"pattern nested deeper than {MAX_HEIGHT} levels"
    chain = "([a:b = 1])" + " WITHIN 1 SECONDS" * (MAX_HEIGHT + 1)
    assert error(chain).message == f"pattern nested deeper than {MAX_HEIGHT} levels"


HUGE = 10_000_000


@pytest.mark.parametrize(
    "text",
    [
        "(" * HUGE,
        "[" * HUGE,
        "]" * HUGE,
        "'" * HUGE,
        "\\" * HUGE,
        "/*" * (HUGE // 2),
        "[a:b = 1] " + "/*" * (HUGE // 2),
        "[a:b = '" + "a" * HUGE,
        "[a:b = 1" + "0" * HUGE + "]",
        "[a:b = 0" + "0" * HUGE + "]",
        "[" + "a" * HUGE,
        "[a:b = 1]" + " WITHIN 1 SECONDS" * (HUGE // 17),
        "[a:b = h'" + "0" * HUGE + "1']",
        "[a:b = b'" + "A" * (HUGE + 1) + "']",
        "\ud800" * HUGE,
        "[" + "\x00" * HUGE,
    ],
)
def test_huge_malformed_input_is_refused(text: str) -> None:
    refused = error(text)
    assert 0 <= refused.position <= len(text)
    assert len(refused.found) < 50


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("[a:b = '" + "a" * HUGE + "']", HUGE),
        ("[a:b = '" + "\\\\" * (HUGE // 2) + "']", HUGE // 2),
        ("[a:b = 1." + "0" * HUGE + "]", 0),
        ("[a:b = h'" + "0a" * (HUGE // 2) + "']", HUGE // 2),
    ],
)
def test_huge_literals_are_decoded(text: str, size: int) -> None:
    value = value_of(text[7:-1])
    assert isinstance(value, StringLiteral | FloatLiteral | HexLiteral)
    if not isinstance(value, FloatLiteral):
        assert len(value.value) == size


def test_long_valid_patterns_are_parsed() -> None:
    count = 50_000
    observations = tree(" OR ".join(["[ipv4-addr:value = '10.0.0.1']"] * count))
    assert isinstance(observations, ObservationOr)
    assert len(observations.operands) == count
    one = tree("[" + " AND ".join(["a:b = 1"] * count) + "]")
    assert isinstance(one, Observation)
    assert isinstance(one.expression, ComparisonAnd)
    assert len(one.expression.operands) == count


@given(st.text(st.characters(exclude_categories=())))
def test_parse_never_raises_on_any_text(text: str) -> None:
    check_result_shape(text)


@given(near_miss_texts())
def test_parse_never_raises_on_near_misses(text: str) -> None:
    check_result_shape(text)


def check_result_shape(text: str) -> None:
    result = parse(text)
    if isinstance(result, Failure):
        refused = result.failure()
        assert 0 <= refused.position <= len(text)
        assert refused.message
        shown = refused.found.removesuffix("...")
        assert text[refused.position : refused.position + len(shown)] == shown
    else:
        assert isinstance(result.unwrap(), Pattern)


def test_parse_refuses_non_text() -> None:
    assert isinstance(parse(b"[a:b = 1]"), Failure)  # not text: refused, not raised


# --- printing -----------------------------------------------------------------------------------


@given(patterns())
def test_render_then_parse_gives_the_same_tree(pattern: Pattern) -> None:
    assert parse(render(pattern)) == Success(pattern)


@given(indicator_patterns())
def test_render_then_parse_gives_the_same_indicator(pattern: Pattern) -> None:
    assert parse(render(pattern)) == Success(pattern)


@given(pattern_texts())
def test_render_is_a_fixed_point_of_parse(text: str) -> None:
    first = parse(text).unwrap()
    canonical = render(first)
    assert render(parse(canonical).unwrap()) == canonical


@given(respaced_texts(keep_meaning=True))
def test_spacing_and_comments_do_not_change_the_tree(text: str) -> None:
    assert parse(text) == parse(render(parse(text).unwrap()))


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("( [a:b=1] )AND([c:d!=2])", "[a:b = 1] AND [c:d != 2]"),
        (
            "[a:b == 1 OR (c:d <> 'x' AND e:f NOT IN ())]",
            "[a:b = 1 OR c:d != 'x' AND e:f NOT IN ()]",
        ),
        ("[(a:b=1 OR a:b=2) AND NOT EXISTS a:c]", "[(a:b = 1 OR a:b = 2) AND NOT EXISTS a:c]"),
        (
            "([a:b=1] OR [a:b=2]) AND ([a:b=3] FOLLOWEDBY [a:b=4])",
            "([a:b = 1] OR [a:b = 2]) AND ([a:b = 3] FOLLOWEDBY [a:b = 4])",
        ),
        ("[a:b=1] WITHIN +5 SECONDS", "[a:b = 1] WITHIN 5 SECONDS"),
        ("[a:b=.50] WITHIN 00.50 SECONDS", "[a:b = 0.5] WITHIN 0.5 SECONDS"),
        ("[x:'k'.'a b'.'AND'[+1] = 'it\\'s']", "[x:k.'a b'.'AND'[1] = 'it\\'s']"),
        ("[a:b = h'FFd8' OR a:b = b'AB==']", "[a:b = h'ffd8' OR a:b = b'AA==']"),
    ],
)
def test_render_gives_canonical_text(text: str, canonical: str) -> None:
    assert render(parse(text).unwrap()) == canonical


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (FloatLiteral(1e20), "100000000000000000000.0"),
        (FloatLiteral(1.5e-7), "0.00000015"),
        (FloatLiteral(-2.0), "-2.0"),
        (StringLiteral("C:\\Windows\\'x'"), "'C:\\\\Windows\\\\\\'x\\''"),
        (BinaryLiteral(b"this is a test"), "b'dGhpcyBpcyBhIHRlc3Q='"),
        (
            SetLiteral((BoolLiteral(False), TimestampLiteral("2016-01-01T00:00:00Z"))),
            "(false, t'2016-01-01T00:00:00Z')",
        ),
    ],
)
def test_render_literal(value: Literal | SetLiteral, text: str) -> None:
    assert render_literal(value) == text
    assert value_of(text) == value


def test_infinite_floats_survive_the_round_trip() -> None:
    for number in (float("inf"), float("-inf")):
        assert value_of(render_literal(FloatLiteral(number))) == FloatLiteral(number)


def test_render_path_quotes_what_is_not_a_plain_name() -> None:
    path = ObjectPath("x-y", ("AND", "true", "a b", "ok", "x-y", "", 0, -1, AnyIndex()))
    assert render_path(path) == "x-y:'AND'.'true'.'a b'.ok.'x-y'.''[0][-1][*]"


# --- comparison sites ---------------------------------------------------------------------------


def test_comparisons_reports_every_test_in_text_order_with_its_context() -> None:
    pattern = parse(
        "[a:b = 1 OR a:b = 2 AND NOT EXISTS a:c] OR ([a:b = 3] FOLLOWEDBY [a:b = 4])"
        " OR [a:b NOT = 5] WITHIN 5 SECONDS"
    ).unwrap()
    sites = list(comparisons(pattern))
    exists = Exists(ObjectPath("a", ("c",)), negated=True)
    five = cmp("a:b", Op.EQ, IntLiteral(5), negated=True)
    assert sites == [
        ComparisonSite(A, observation=0, disjunctive=True, qualified=False),
        ComparisonSite(B, observation=0, disjunctive=False, qualified=False),
        ComparisonSite(exists, observation=0, disjunctive=False, qualified=False),
        ComparisonSite(C, observation=1, disjunctive=False, qualified=False),
        ComparisonSite(D, observation=2, disjunctive=False, qualified=False),
        ComparisonSite(five, observation=3, disjunctive=True, qualified=True),
    ]


def _sites(node: object, disjunctive: bool, qualified: bool) -> list[tuple[object, bool, bool]]:
    """Plain recursive restatement of what ``comparisons`` promises."""
    if isinstance(node, Comparison | Exists):
        return [(node, disjunctive, qualified)]
    if isinstance(node, Observation):
        return _sites(node.expression, disjunctive, qualified)
    if isinstance(node, Qualified):
        return _sites(node.expression, disjunctive, True)
    keeps = isinstance(node, ComparisonOr | ObservationOr)
    return [
        site
        for operand in node.operands  # type: ignore[attr-defined]  # n-ary nodes
        for site in _sites(operand, disjunctive and keeps, qualified)
    ]


@given(patterns())
def test_comparisons_finds_every_leaf_once_in_order(pattern: Pattern) -> None:
    sites = list(comparisons(pattern))
    expected = _sites(pattern.expression, True, False)
    assert [(site.test, site.disjunctive, site.qualified) for site in sites] == expected
    numbers = [site.observation for site in sites]
    assert numbers == sorted(numbers)
    assert not numbers or numbers[0] == 0
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(numbers))


# --- the fast path ------------------------------------------------------------------------------


def fast_path(text: str) -> Pattern | None:
    """What the regular-expression fast path reads from ``text``, if it reads it."""
    single = pattern_module._SINGLE_RE.fullmatch(text)
    if single is not None:
        comparison = pattern_module._simple_comparison(*single.groups())
        return None if comparison is None else Pattern(Observation(comparison))
    return pattern_module._simple_pattern(text)


def check_fast_path(text: str) -> None:
    """Whatever the regular-expression fast path reads, the token parser reads the same way."""
    fast = fast_path(text)
    if fast is not None:
        assert pattern_module._check_leading_bracket(text) is None
        assert pattern_module._Parser(text).pattern() == fast


@given(st.one_of(pattern_texts(), respaced_texts()))
def test_fast_path_agrees_with_the_parser_on_valid_texts(text: str) -> None:
    check_fast_path(text)


@given(near_miss_texts())
def test_fast_path_agrees_with_the_parser_on_near_misses(text: str) -> None:
    check_fast_path(text)


@pytest.mark.parametrize(
    "text",
    [
        "[a:b = 'x']",
        "[a:b NOT IN ('x', 1, -2.5, true, h'00', b'AA==', t'2016-01-01T00:00:00Z')]",
        "[a:b[*].c >= -1.5]",
        "[a:'d e'[-1].'f' NOT LIKE 'x%']",
        "[x:y NOT= h'00']",
        "[a:b IN()]",
        "[a:b != 'it\\'s']",
        "[a:c = 'C:\\\\']",
        "[a:b = 1 AND c:d = 2]",
        "[a:b = 1 AND  c:d = 2 ]",
        "[a:b = 1 OR c:d = 2 OR e:f = 3] FOLLOWEDBY [a:b IN (1, 2)] FOLLOWEDBY [x:y = 'z']",
        "[ a:b = 1 AND c:d NOT LIKE 'x' ] OR [e:f = 3]",
        "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
        "[file:hashes.'SHA-256' = '" + "a" * 64 + "']",
        # Quoted steps holding dots, which cutting the path at its dots would split.
        "[a:'b.c' = 'x']",
        "[a:x.'b.c'.d = 1]",
        "[a:'.' = 1]",
        "[a:'b.' = 1]",
        "[a:'.b'.'c' = 1]",
        "[a:'' = 1]",
    ],
)
def test_fast_path_reads_its_shapes(text: str) -> None:
    assert fast_path(text) is not None
    check_fast_path(text)


@pytest.mark.parametrize(
    "text",
    [
        "[a:bIN ('x')]",
        "[a:b NOTIN ('x')]",
        "[a:b = 1AND c:d = 2]",  # valid, but the fast path wants spaces around AND
        "[a:b = trueAND c:d = 2]",
        "[file:hashes.MD5 = 'x']",
        "[file:hashes.MD5 IN ('d41d8cd98f00b204e9800998ecf8427e')]",
        "[a:b = 05]",
        "[a:b LIKE 1]",
        "[a:b > true]",
        "[a:b = (1)]",
        "[a:b IN 1]",
        "[AND:b = 1]",
        "[a:AND = 1]",
        "[a:b.true = 1]",
        "[a:b = 1 AND c:d = 2 OR e:f = 3]",  # precedence: the parser's business
        "[a:b = 1] AND [c:d = 2] OR [e:f = 3]",
        "[a:b = 1\tAND c:d = 2]",
        "[a:b = 1]AND [c:d = 2]",
        "[a:b = 1] WITHIN 5 SECONDS",
        "[a:b = 1] ",  # trailing space
        "[a:b = " + "9" * (MAX_INT_DIGITS + 1) + "]",
    ],
)
def test_fast_path_leaves_the_rest_to_the_parser(text: str) -> None:
    assert fast_path(text) is None
    check_fast_path(text)
