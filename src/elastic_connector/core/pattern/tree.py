"""Typed syntax tree of the STIX 2.1 patterning language.

The tree is canonical: boolean operators are n-ary and never directly contain an operator of
the same kind (``a AND (b AND c)`` and ``(a AND b) AND c`` are both ``And(a, b, c)``), and
parentheses that only group are not kept. Every node is an immutable, hashable msgspec Struct,
so two trees compare equal exactly when they denote the same pattern structure. Node classes
are ``final``: code that walks a tree may tell nodes apart by exact class (``type(x) is C``),
which costs far less than an isinstance() test that fails on a Struct class (about a thousand
instructions: CPython looks up and calls ``StructMeta.__instancecheck__``). Nodes are not
tracked by the garbage collector (``gc=False``): a node is built after its children and never
changes, so no tree can hold a reference cycle, and the parsed patterns the planner caches
are not walked by every full collection.

Grammar reference: STIX 2.1 part 9 (Patterning) and the ANTLR grammar ``STIXPattern.g4`` of
the OASIS ``cti-pattern-validator`` project.
"""

from __future__ import annotations

import enum
from typing import TypeAlias, final

import msgspec

# --- literals -------------------------------------------------------------------------------


@final
class StringLiteral(msgspec.Struct, frozen=True, gc=False, tag="string"):
    """``'text'`` with escapes already decoded (``'C:\\\\Windows'`` holds ``C:\\Windows``)."""

    value: str


@final
class IntLiteral(msgspec.Struct, frozen=True, gc=False, tag="int"):
    value: int


@final
class FloatLiteral(msgspec.Struct, frozen=True, gc=False, tag="float"):
    value: float


@final
class BoolLiteral(msgspec.Struct, frozen=True, gc=False, tag="bool"):
    value: bool


@final
class BinaryLiteral(msgspec.Struct, frozen=True, gc=False, tag="binary"):
    """``b'base64'``: the decoded bytes."""

    value: bytes


@final
class HexLiteral(msgspec.Struct, frozen=True, gc=False, tag="hex"):
    """``h'0a1b'``: the decoded bytes."""

    value: bytes


@final
class TimestampLiteral(msgspec.Struct, frozen=True, gc=False, tag="timestamp"):
    """``t'2016-01-01T00:00:00Z'``: the RFC 3339 text as written between the quotes."""

    value: str


Literal: TypeAlias = (
    StringLiteral
    | IntLiteral
    | FloatLiteral
    | BoolLiteral
    | BinaryLiteral
    | HexLiteral
    | TimestampLiteral
)


@final
class SetLiteral(msgspec.Struct, frozen=True, gc=False, tag="set"):
    """``('a', 'b')`` on the right of ``IN``."""

    values: tuple[Literal, ...]


# --- object paths ---------------------------------------------------------------------------


@final
class AnyIndex(msgspec.Struct, frozen=True, gc=False, tag="any_index"):
    """The ``[*]`` list step."""


PathStep: TypeAlias = str | int | AnyIndex
"""A key (``.name`` or ``.'quoted name'``), a list index (``[0]``, ``[-1]``) or ``[*]``."""


@final
class ObjectPath(msgspec.Struct, frozen=True, gc=False):
    """``file:hashes.'SHA-256'`` is ``ObjectPath("file", ("hashes", "SHA-256"))``.

    ``steps`` is never empty and its first element is always a key (``str``).
    """

    object_type: str
    steps: tuple[PathStep, ...]


# --- comparison expressions (inside one ``[...]``) -----------------------------------------


class Op(enum.Enum):
    EQ = "="
    NEQ = "!="
    GT = ">"
    LT = "<"
    GE = ">="
    LE = "<="
    IN = "IN"
    LIKE = "LIKE"
    MATCHES = "MATCHES"
    ISSUBSET = "ISSUBSET"
    ISSUPERSET = "ISSUPERSET"


@final
class Comparison(msgspec.Struct, frozen=True, gc=False, tag="comparison"):
    """``path [NOT] op value``. ``value`` is a ``SetLiteral`` exactly when ``op`` is ``IN``."""

    path: ObjectPath
    op: Op
    value: Literal | SetLiteral
    negated: bool = False


@final
class Exists(msgspec.Struct, frozen=True, gc=False, tag="exists"):
    """``[NOT] EXISTS path`` (STIX 2.1 allows ``NOT`` in front of ``EXISTS``)."""

    path: ObjectPath
    negated: bool = False


@final
class ComparisonAnd(msgspec.Struct, frozen=True, gc=False, tag="comparison_and"):
    """At least two operands, none of them a ``ComparisonAnd``."""

    operands: tuple[ComparisonExpression, ...]


@final
class ComparisonOr(msgspec.Struct, frozen=True, gc=False, tag="comparison_or"):
    """At least two operands, none of them a ``ComparisonOr``."""

    operands: tuple[ComparisonExpression, ...]


ComparisonExpression: TypeAlias = Comparison | Exists | ComparisonAnd | ComparisonOr


@final
class ComparisonSite(msgspec.Struct, frozen=True, gc=False):
    """One comparison or ``EXISTS`` test of a pattern, with what surrounds it.

    ``observation`` numbers the enclosing ``[...]`` from 0 in text order. ``disjunctive`` is
    true when every operator between the pattern root and the test is an ``OR`` (comparison
    or observation level): such a test, if it also is not ``qualified`` (no WITHIN/REPEATS/
    START-STOP above it) and not ``test.negated``, matches the whole pattern on its own.
    STIX has no ``NOT`` over groups, so ``test.negated`` is the only negation on the path.
    """

    test: Comparison | Exists
    observation: int
    disjunctive: bool
    qualified: bool


# --- observation expressions ---------------------------------------------------------------


@final
class Within(msgspec.Struct, frozen=True, gc=False, tag="within"):
    """``WITHIN n SECONDS``; ``seconds`` is an ``int`` when written as an integer."""

    seconds: int | float


@final
class Repeats(msgspec.Struct, frozen=True, gc=False, tag="repeats"):
    """``REPEATS n TIMES``."""

    times: int


@final
class StartStop(msgspec.Struct, frozen=True, gc=False, tag="start_stop"):
    """``START t'...' STOP t'...'``."""

    start: TimestampLiteral
    stop: TimestampLiteral


Qualifier: TypeAlias = Within | Repeats | StartStop


@final
class Observation(msgspec.Struct, frozen=True, gc=False, tag="observation"):
    """``[ comparison expression ]``."""

    expression: ComparisonExpression


@final
class ObservationAnd(msgspec.Struct, frozen=True, gc=False, tag="observation_and"):
    """At least two operands, none of them an ``ObservationAnd``."""

    operands: tuple[ObservationExpression, ...]


@final
class ObservationOr(msgspec.Struct, frozen=True, gc=False, tag="observation_or"):
    """At least two operands, none of them an ``ObservationOr``."""

    operands: tuple[ObservationExpression, ...]


@final
class FollowedBy(msgspec.Struct, frozen=True, gc=False, tag="followed_by"):
    """At least two operands in order, none of them a ``FollowedBy``."""

    operands: tuple[ObservationExpression, ...]


@final
class Qualified(msgspec.Struct, frozen=True, gc=False, tag="qualified"):
    """An observation expression with one qualifier; stacked qualifiers nest."""

    expression: ObservationExpression
    qualifier: Qualifier


ObservationExpression: TypeAlias = (
    Observation | ObservationAnd | ObservationOr | FollowedBy | Qualified
)


@final
class Pattern(msgspec.Struct, frozen=True, gc=False):
    """A whole STIX pattern."""

    expression: ObservationExpression


# --- errors ---------------------------------------------------------------------------------


@final
class PatternError(msgspec.Struct, frozen=True, gc=False):
    """Why a pattern text is not a STIX 2.1 pattern.

    ``position`` is the 0-based character offset where parsing failed, ``expected`` names what
    would have been accepted there (``"']'"``, ``"comparison operator"``...), ``found`` is the
    offending text (empty at end of input), and ``message`` is a one-line human explanation.
    """

    position: int
    message: str
    expected: tuple[str, ...] = ()
    found: str = ""

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"
