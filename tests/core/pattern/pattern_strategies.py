"""Hypothesis strategies for STIX 2.1 patterns, shared by every test that needs patterns.

* ``patterns()``: arbitrary canonical trees (the shape ``core.pattern.parse`` returns) over
  arbitrary names and values, everything STIX can write, including odd corners (keywords as
  quoted property names, surrogates in strings, negative indexes, stacked qualifiers).
* ``comparison_values(op)``, ``literals()``, ``object_paths()``...: the building blocks.
* ``indicator_patterns()``: what OpenCTI indicators really carry: real observable types and
  paths with realistic values (valid digests, addresses, domains...), mostly one comparison,
  sometimes OR/AND groups, rarely qualifiers.
* texts: ``pattern_texts()`` (valid: rendered trees, indicators, the STIX 2.1 specification
  examples in ``data/stix_spec_patterns.txt``), ``respaced_texts()`` (other whitespace and
  comments) and ``near_miss_texts()`` (mutated, mostly invalid), for "never raises" and
  oracle tests of anything that takes pattern text.

Every tree drawn here is well formed: ``parse(render(tree)) == Success(tree)``. To stay clear of
the validator's digest check, arbitrary trees never use a ``hashes`` path step; digests appear
only in ``indicator_patterns()``, always valid.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

from hypothesis import strategies as st

from elastic_connector.core.pattern import render
from elastic_connector.core.pattern.tree import (
    AnyIndex,
    BinaryLiteral,
    BoolLiteral,
    Comparison,
    ComparisonAnd,
    ComparisonExpression,
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
    PathStep,
    Pattern,
    Qualified,
    Qualifier,
    Repeats,
    SetLiteral,
    StartStop,
    StringLiteral,
    TimestampLiteral,
    Within,
)

T = TypeVar("T")

# Words the STIX lexer turns into tokens of their own: not usable as bare names.
RESERVED_WORDS = frozenset(
    [
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "LIKE",
        "MATCHES",
        "ISSUPERSET",
        "ISSUBSET",
        "EXISTS",
        "LAST",
        "IN",
        "START",
        "STOP",
        "SECONDS",
        "WITHIN",
        "REPEATS",
        "TIMES",
        "true",
        "false",
    ]
)

# STIX 2.1 cyber observable types (part 6) plus a custom one.
OBSERVABLE_TYPES = (
    "artifact",
    "autonomous-system",
    "directory",
    "domain-name",
    "email-addr",
    "email-message",
    "file",
    "ipv4-addr",
    "ipv6-addr",
    "mac-addr",
    "mutex",
    "network-traffic",
    "process",
    "software",
    "url",
    "user-account",
    "windows-registry-key",
    "x509-certificate",
    "x-acme-widget",
)

HASH_LENGTHS = {"MD5": 32, "SHA-1": 40, "SHA-256": 64, "SHA-512": 128, "SHA3-256": 64}

# --- names ------------------------------------------------------------------------------------

_FIRST_CHARS = string.ascii_letters + "_"
_IDENTIFIER = st.builds(
    str.__add__,
    st.sampled_from(_FIRST_CHARS),
    st.text(st.sampled_from(_FIRST_CHARS + string.digits), max_size=10),
)
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)


@cache
def object_types() -> st.SearchStrategy[str]:
    """Object type names: real SCO types and arbitrary names the grammar allows."""
    arbitrary = st.builds(
        str.__add__,
        st.sampled_from(_FIRST_CHARS),
        st.text(st.sampled_from(_FIRST_CHARS + string.digits + "-"), max_size=12),
    ).filter(lambda name: name not in RESERVED_WORDS)
    return st.one_of(st.sampled_from(OBSERVABLE_TYPES), arbitrary)


@cache
def path_keys() -> st.SearchStrategy[str]:
    """Property names: identifiers, keywords and arbitrary text (printed quoted if needed)."""
    common = st.sampled_from(
        [
            *("value", "name", "size", "key", "SHA-256", "x_custom", "a b", "", "it's", "C:\\"),
            *sorted(RESERVED_WORDS),
        ]
    )
    return st.one_of(common, _IDENTIFIER, _ANY_TEXT.filter(lambda key: key != "hashes"))


@cache
def path_steps() -> st.SearchStrategy[PathStep]:
    return st.one_of(
        path_keys(),
        st.integers(min_value=-3, max_value=20),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.just(AnyIndex()),
    )


@cache
def object_paths() -> st.SearchStrategy[ObjectPath]:
    return st.builds(
        lambda object_type, first, rest: ObjectPath(object_type, (first, *rest)),
        object_types(),
        path_keys(),
        st.lists(path_steps(), max_size=2),
    )


# --- literals ---------------------------------------------------------------------------------


@cache
def timestamp_texts() -> st.SearchStrategy[str]:
    """RFC 3339 UTC timestamps as the STIX lexer accepts them (day 31 in any month, second 60)."""
    return st.builds(
        lambda year, month, day, hour, minute, second, fraction: (
            f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{fraction}Z"
        ),
        st.integers(0, 9999),
        st.integers(1, 12),
        st.integers(1, 31),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 60),
        st.one_of(
            st.just(""),
            st.text(st.sampled_from(string.digits), min_size=1, max_size=9).map(
                lambda digits: "." + digits
            ),
        ),
    )


@cache
def string_literals() -> st.SearchStrategy[StringLiteral]:
    tricky = st.text(st.sampled_from("\\'\"ab /*[]()\n\u00a0"), max_size=8)
    everything = st.text(st.characters(exclude_categories=()), max_size=20)
    return st.builds(StringLiteral, st.one_of(tricky, everything))


@cache
def orderable_literals() -> st.SearchStrategy[Literal]:
    """Every literal kind except booleans (what ``<``, ``<=``, ``>``, ``>=`` accept)."""
    return st.one_of(
        string_literals(),
        st.builds(IntLiteral, st.integers(min_value=-(10**30), max_value=10**30)),
        st.builds(FloatLiteral, st.floats(allow_nan=False)),
        st.builds(HexLiteral, st.binary(max_size=12)),
        # The grammar has no empty binary literal.
        st.builds(BinaryLiteral, st.binary(min_size=1, max_size=12)),
        st.builds(TimestampLiteral, timestamp_texts()),
    )


@cache
def literals() -> st.SearchStrategy[Literal]:
    """Every literal kind (what ``=`` and ``!=`` and set members accept)."""
    return st.one_of(orderable_literals(), st.builds(BoolLiteral, st.booleans()))


@cache
def set_literals() -> st.SearchStrategy[SetLiteral]:
    return st.builds(lambda values: SetLiteral(tuple(values)), st.lists(literals(), max_size=3))


_EQUALITY = (Op.EQ, Op.NEQ)
_ORDER = (Op.LT, Op.LE, Op.GT, Op.GE)
_STRING_OPS = (Op.LIKE, Op.MATCHES, Op.ISSUBSET, Op.ISSUPERSET)


@cache
def comparison_values(op: Op) -> st.SearchStrategy[Literal | SetLiteral]:
    """Values the grammar allows on the right of ``op``."""
    if op in _EQUALITY:
        return literals()
    if op in _ORDER:
        return orderable_literals()
    if op is Op.IN:
        return set_literals()
    return string_literals()


# --- trees ------------------------------------------------------------------------------------


@st.composite
def comparison_nodes(
    draw: st.DrawFn, paths: st.SearchStrategy[ObjectPath] | None = None
) -> Comparison:
    """One ``path [NOT] op value`` test with a value the operator accepts."""
    op = draw(st.sampled_from(list(Op)))
    path = draw(paths if paths is not None else object_paths())
    return Comparison(path, op, draw(comparison_values(op)), draw(st.booleans()))


@st.composite
def _trees(
    draw: st.DrawFn,
    leaves: st.SearchStrategy[T],
    grow: st.SearchStrategy[str],
    combine: Callable[[st.DrawFn, str, list[T]], T],
    depth: int,
) -> T:
    """A tree of at most ``depth`` operator levels over ``leaves``.

    Hand-rolled rather than ``st.recursive``: with small trees, ``st.recursive`` throws away
    most of its draws for exceeding ``max_leaves``, which made these strategies slow.
    """
    choice = draw(grow) if depth > 0 else "leaf"
    if choice == "leaf":
        return draw(leaves)
    count = 1 if choice == "qualify" else draw(st.sampled_from([2, 2, 3]))
    operands = [draw(_trees(leaves, grow, combine, depth - 1)) for _ in range(count)]
    return combine(draw, choice, operands)


def _comparison_group(
    draw: st.DrawFn, kind: str, operands: list[ComparisonExpression]
) -> ComparisonExpression:
    """AND/OR node in canonical form: same-kind operands are spliced into it."""
    node_type = ComparisonAnd if kind == "and" else ComparisonOr
    flat: list[ComparisonExpression] = []
    for operand in operands:
        if isinstance(operand, node_type):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return node_type(tuple(flat))


def _observation_group(
    draw: st.DrawFn, kind: str, operands: list[ObservationExpression]
) -> ObservationExpression:
    """Qualified node, or AND/OR/FOLLOWEDBY node with same-kind operands spliced in."""
    if kind == "qualify":
        return Qualified(operands[0], draw(qualifiers()))
    node_type: type[ObservationAnd] | type[ObservationOr] | type[FollowedBy]
    if kind == "and":
        node_type = ObservationAnd
    elif kind == "or":
        node_type = ObservationOr
    else:
        node_type = FollowedBy
    flat: list[ObservationExpression] = []
    for operand in operands:
        if isinstance(operand, node_type):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return node_type(tuple(flat))


_COMPARISON_GROWTH = st.sampled_from(["leaf", "leaf", "leaf", "and", "or"])
_OBSERVATION_GROWTH = st.sampled_from(
    ["leaf", "leaf", "leaf", "and", "or", "followedby", "qualify", "qualify"]
)


def comparison_expressions(
    leaves: st.SearchStrategy[ComparisonExpression] | None = None, depth: int = 2
) -> st.SearchStrategy[ComparisonExpression]:
    """Canonical AND/OR trees of comparisons and EXISTS tests."""
    if leaves is None:
        exists = st.builds(Exists, object_paths(), st.booleans())
        leaves = st.one_of(comparison_nodes(), exists)
    return _trees(leaves, _COMPARISON_GROWTH, _comparison_group, depth)


@cache
def qualifiers() -> st.SearchStrategy[Qualifier]:
    timestamps = st.builds(TimestampLiteral, timestamp_texts())
    return st.one_of(
        st.builds(Within, st.integers(min_value=0, max_value=10**6)),
        st.builds(Within, st.floats(min_value=0, max_value=1e6)),
        st.builds(Repeats, st.integers(min_value=0, max_value=1000)),
        st.builds(StartStop, timestamps, timestamps),
    )


def observation_expressions(
    comparison_trees: st.SearchStrategy[ComparisonExpression] | None = None, depth: int = 2
) -> st.SearchStrategy[ObservationExpression]:
    """Canonical AND/OR/FOLLOWEDBY trees of observations, with stacked qualifiers anywhere."""
    inner = comparison_trees if comparison_trees is not None else comparison_expressions()
    return _trees(st.builds(Observation, inner), _OBSERVATION_GROWTH, _observation_group, depth)


@cache
def patterns() -> st.SearchStrategy[Pattern]:
    """Arbitrary well-formed canonical patterns."""
    return st.builds(Pattern, observation_expressions())


# --- realistic indicators ---------------------------------------------------------------------

_HEX = "0123456789abcdef"
_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)


@cache
def _digest(length: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(_HEX), min_size=length, max_size=length)


@cache
def _ipv4() -> st.SearchStrategy[str]:
    octets = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(
        lambda parts: ".".join(map(str, parts))
    )
    return st.one_of(octets, st.tuples(octets, st.integers(8, 32)).map(lambda p: f"{p[0]}/{p[1]}"))


@cache
def _ipv6() -> st.SearchStrategy[str]:
    return st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(
        lambda groups: ":".join(f"{group:x}" for group in groups)
    )


@cache
def _domain() -> st.SearchStrategy[str]:
    tld = st.sampled_from(["com", "net", "org", "ru", "io", "info"])
    return st.tuples(st.lists(_LABEL, min_size=1, max_size=3), tld).map(
        lambda parts: ".".join([*parts[0], parts[1]])
    )


@cache
def _url() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["http", "https"]), _domain(), _LABEL).map(
        lambda parts: f"{parts[0]}://{parts[1]}/{parts[2]}.php?id=1"
    )


def _string(values: st.SearchStrategy[str]) -> st.SearchStrategy[Literal | SetLiteral]:
    return values.map(StringLiteral)


@cache
def _indicator_comparisons() -> st.SearchStrategy[Comparison]:
    """Equality tests on the paths OpenCTI indicators use, with believable values."""
    hashes = [
        (ObjectPath(object_type, ("hashes", name)), _string(_digest(length)))
        for object_type in ("file", "artifact", "x509-certificate")
        for name, length in HASH_LENGTHS.items()
    ]
    windows_paths = st.builds(lambda name: f"C:\\Windows\\System32\\{name}.dll", _LABEL)
    choices: list[tuple[ObjectPath, st.SearchStrategy[Literal | SetLiteral]]] = [
        *hashes,
        (ObjectPath("ipv4-addr", ("value",)), _string(_ipv4())),
        (ObjectPath("ipv6-addr", ("value",)), _string(_ipv6())),
        (ObjectPath("domain-name", ("value",)), _string(_domain())),
        (ObjectPath("url", ("value",)), _string(_url())),
        (ObjectPath("email-addr", ("value",)), _string(_domain().map(lambda d: f"bad@{d}"))),
        (ObjectPath("email-message", ("subject",)), _string(st.text(max_size=30))),
        (ObjectPath("file", ("name",)), _string(_LABEL.map(lambda n: f"{n}.exe"))),
        (ObjectPath("file", ("size",)), st.builds(IntLiteral, st.integers(0, 10**9))),
        (ObjectPath("file", ("parent_directory_ref", "path")), _string(windows_paths)),
        (ObjectPath("mac-addr", ("value",)), _string(st.just("00:1a:2b:3c:4d:5e"))),
        (ObjectPath("mutex", ("name",)), _string(_LABEL)),
        (ObjectPath("process", ("name",)), _string(_LABEL)),
        (
            ObjectPath("autonomous-system", ("number",)),
            st.builds(IntLiteral, st.integers(1, 65535)),
        ),
        (
            ObjectPath("network-traffic", ("dst_port",)),
            st.builds(IntLiteral, st.integers(1, 65535)),
        ),
        (ObjectPath("network-traffic", ("dst_ref", "value")), _string(_ipv4())),
        (ObjectPath("user-account", ("user_id",)), _string(_LABEL)),
        (
            ObjectPath("windows-registry-key", ("key",)),
            _string(_LABEL.map(lambda k: f"HKEY_LOCAL_MACHINE\\Software\\{k}")),
        ),
        (ObjectPath("x509-certificate", ("serial_number",)), _string(_digest(32))),
        (ObjectPath("cryptocurrency-wallet", ("value",)), _string(_LABEL)),
    ]
    return st.one_of(
        [
            st.builds(lambda value, path=path: Comparison(path, Op.EQ, value), values)
            for path, values in choices
        ]
    )


@st.composite
def indicator_patterns(draw: st.DrawFn) -> Pattern:
    """Patterns shaped like real OpenCTI indicators (valid digests, real observable paths)."""
    shape = draw(st.sampled_from(["single", "single", "single", "or", "and", "observations"]))
    tests = draw(st.lists(_indicator_comparisons(), min_size=2, max_size=4))
    expression: ObservationExpression
    if shape == "single":
        expression = Observation(tests[0])
    elif shape == "or":
        expression = Observation(ComparisonOr(tuple(tests)))
    elif shape == "and":
        expression = Observation(ComparisonAnd(tuple(tests)))
    else:
        observations = tuple(Observation(test) for test in tests)
        expression = _observation_group(
            draw, draw(st.sampled_from(["and", "or", "followedby"])), list(observations)
        )
    if draw(st.integers(0, 9)) == 0:
        expression = Qualified(expression, draw(qualifiers()))
    return Pattern(expression)


# --- texts: valid, respaced, near misses --------------------------------------------------

SPEC_PATTERNS = tuple(
    line
    for line in (Path(__file__).parent / "data" / "stix_spec_patterns.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line and not line.startswith("#")
)
"""The examples of STIX 2.1 part 9, all valid."""


# Rough token boundaries: good enough to cut valid text into pieces worth shuffling.
_SPAN_RE = re.compile(
    r"[hbt]?'(?:[^'\\]|\\.)*'|[A-Za-z_][\w-]*|[+-]?[0-9]*\.?[0-9]+|<=|>=|!=|<>|==|/\*.*?\*/|\S",
    re.DOTALL,
)
FRAGMENTS = [
    *[
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "EXISTS",
        "IN",
        "LIKE",
        "MATCHES",
        "ISSUBSET",
        "ISSUPERSET",
        "LAST",
    ],
    *[
        "WITHIN",
        "SECONDS",
        "REPEATS",
        "TIMES",
        "START",
        "STOP",
        "and",
        "or",
        "within",
        "true",
        "false",
        "True",
    ],
    "WITHIN 5 SECONDS",
    "WITHIN 2.5 SECONDS",
    "WITHIN -5 SECONDS",
    "REPEATS 2 TIMES",
    "START t'2016-01-01T00:00:00Z' STOP t'2016-01-01T00:00:01Z'",
    *[
        "[",
        "]",
        "(",
        ")",
        ":",
        ".",
        ",",
        "'",
        "\\",
        '"',
        "=",
        "==",
        "!=",
        "<>",
        "<",
        "<=",
        ">",
        ">=",
        "*",
        "-",
        "+",
        "^",
        "/",
        "!",
        "?",
        ";",
    ],
    "[*]",
    "[0]",
    "[-1]",
    "[+1]",
    "[01]",
    "/* c */",
    "// c\n",
    "\n",
    "\u00a0",
    "\u200b",
    "\u3000",
    "\x1c",
    "\x00",
    "\ud800",
    "h''",
    "h'0a'",
    "h'abc'",
    "b''",
    "b'AA=='",
    "b'AAA='",
    "b'A'",
    "b'AAAAA'",
    "t'2016-13-01T00:00:00Z'",
    "t'2016-01-01T00:00:00Z'",
    "t'2016-01-01T00:00:00.Z'",
    "t'2016-02-31T23:59:60.5Z'",
    "'a\\\\b'",
    "'a\\'b'",
    "'a\\nb'",
    "''",
    *["1", "-1", "+1", "0", "-0", "01", "1.5", ".5", "-.5", "+.5", "1.", "1e5", "00.5"],
    *[
        "x",
        "x-y",
        "_",
        "file:name",
        "a:b",
        "a:'b'",
        "hashes",
        "'hashes'",
        "MD5",
        "'SHA-256'",
        "md5",
    ],
    "a:b = 1",
    "'d41d8cd98f00b204e9800998ecf8427e'",
    "[a:b = 1]",
    "([a:b = 1])",
]


def token_spans(text: str) -> list[tuple[int, int]]:
    """Approximate token boundaries (exact on ``render`` output): where pieces may be cut."""
    return [match.span() for match in _SPAN_RE.finditer(text)]


@st.composite
def _mutated(draw: st.DrawFn, text: str) -> str:
    spans = token_spans(text) or [(0, len(text))]
    index = draw(st.integers(0, len(spans) - 1))
    start, end = spans[index]
    fragment = draw(st.sampled_from(FRAGMENTS))
    spacing = draw(st.sampled_from(["", " "]))
    operation = draw(
        st.sampled_from(
            [
                "delete",
                "duplicate",
                "swap",
                "insert",
                "replace",
                "case",
                "char-insert",
                "char-delete",
                "char-replace",
            ]
        )
    )
    if operation == "delete":
        return text[:start] + text[end:]
    if operation == "duplicate":
        return text[:end] + spacing + text[start:end] + text[end:]
    if operation == "swap" and index + 1 < len(spans):
        next_start, next_end = spans[index + 1]
        return (
            text[:start]
            + text[next_start:next_end]
            + text[end:next_start]
            + text[start:end]
            + text[next_end:]
        )
    if operation == "insert":
        return text[:start] + fragment + spacing + text[start:]
    if operation == "replace":
        return text[:start] + fragment + text[end:]
    if operation == "case":
        piece = text[start:end]
        changed = draw(st.sampled_from([piece.lower(), piece.upper(), piece.swapcase()]))
        return text[:start] + changed + text[end:]
    position = draw(st.integers(0, len(text)))
    if operation == "char-insert":
        char = draw(st.one_of(st.characters(exclude_categories=()), st.sampled_from("[]()'\\ ")))
        return text[:position] + char + text[position:]
    if operation == "char-delete":
        length = draw(st.integers(1, 3))
        return text[:position] + text[position + length :]
    return text[:position] + draw(st.sampled_from("'\\[]() -.:09aZ")) + text[position + 1 :]


@cache
def pattern_texts() -> st.SearchStrategy[str]:
    """Valid pattern texts: rendered generated trees, realistic indicators, spec examples."""
    return st.one_of(
        patterns().map(render),
        indicator_patterns().map(render),
        st.sampled_from(SPEC_PATTERNS),
    )


@st.composite
def near_miss_texts(draw: st.DrawFn, valid: st.SearchStrategy[str] | None = None) -> str:
    """A valid text after one to three mutations: token deleted, duplicated, swapped, replaced
    or case-changed, fragment inserted (keywords in the wrong case, malformed literals, bad
    escapes, stray punctuation, odd whitespace), character inserted, deleted or replaced."""
    text = draw(valid if valid is not None else pattern_texts())
    for _ in range(draw(st.integers(1, 3))):
        text = draw(_mutated(text))
    return text


_GLUE_GAPS = ("", " ", "  ", "\t", "\n", "\u3000", "/**/", " /* x */ ", "//c\n")
_SPACE_GAPS = (" ", "\t", "\r\n", "\u3000\u00a0", "\u2028")
_COMMENT_GAPS = (" /* x */ ", "/**/", "// c\n", " // c ( [ ]\n")


@st.composite
def respaced_texts(
    draw: st.DrawFn, valid: st.SearchStrategy[str] | None = None, *, keep_meaning: bool = False
) -> str:
    """A valid text with the whitespace and comments between its tokens changed.

    With ``keep_meaning`` the result means the same pattern: gaps are never empty (``true``
    and ``AND`` must not fuse) and no comment comes before the first ``[``. Without it, tokens
    may fuse and comments may come first (texts the reference may refuse).
    """
    text = draw(valid if valid is not None else pattern_texts())
    pieces = [text[start:end] for start, end in token_spans(text)]
    out = pieces[:1]
    seen_bracket = pieces[:1] == ["["]
    gaps: tuple[str, ...]
    for piece in pieces[1:]:
        if not keep_meaning:
            gaps = _GLUE_GAPS
        else:
            gaps = _SPACE_GAPS + _COMMENT_GAPS if seen_bracket else _SPACE_GAPS
        out.append(draw(st.sampled_from(gaps)))
        out.append(piece)
        seen_bracket = seen_bracket or piece == "["
    return "".join(out) + draw(st.sampled_from(["", " ", "// end", "/* end */"]))
