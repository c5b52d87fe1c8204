"""Which comparisons of a STIX pattern give values an indicator match rule can use.

What a rule can use from a pattern is its *exact* values: ``=``, each member of an ``IN`` set,
and the network of an ``ISSUBSET`` on an address. ``!=``, ``<``, ``>``, ``LIKE``, ``MATCHES``,
``ISSUPERSET``, ``NOT ...`` and ``EXISTS`` say something about a value without naming it, so
they never produce one. Each exact value goes to the fields its object path's rule names
(``path_rules``); what gives nothing is noted, to say why when nothing at all is left.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec.structs

from elastic_connector.core.indicators.field_handlers import address
from elastic_connector.core.indicators.found_values import FoundValues
from elastic_connector.core.indicators.path_rules import path_text, rule_for
from elastic_connector.core.indicators.value_forms import joined_path
from elastic_connector.core.memo import Memo
from elastic_connector.core.pattern.tree import (
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
    Literal,
    ObjectPath,
    Observation,
    ObservationAnd,
    ObservationExpression,
    ObservationOr,
    Op,
    Pattern,
    Qualified,
    SetLiteral,
    StringLiteral,
    TimestampLiteral,
)

# A tuple, not a set: membership by identity, without hashing an Enum in Python code.
_EXACT_OPS: Final = (Op.EQ, Op.IN, Op.ISSUBSET)
_IN: Final = Op.IN
_ISSUBSET: Final = Op.ISSUBSET
# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d).
# Paths repeat across patterns (a feed writes the same few): each is looked up in the table once.
_rules: Final = Memo(rule_for, 4096)
# The same few object types in lower case, kept: a new string for every comparison was hashed
# again where it is recorded.
_lower_types: Final = Memo(str.lower, 256)
_address: Final = address
_Comparison: Final = Comparison
_ComparisonAnd: Final = ComparisonAnd
_ComparisonOr: Final = ComparisonOr
_Exists: Final = Exists
_Observation: Final = Observation
_ObservationAnd: Final = ObservationAnd
_ObservationOr: Final = ObservationOr
_FollowedBy: Final = FollowedBy
_Qualified: Final = Qualified
_StringLiteral: Final = StringLiteral
# A comparison's four fields in one call: each read of a Struct's field is a generic attribute
# lookup for compiled code (docs/performance.md §7f).
_astuple: Final = msgspec.structs.astuple
_HexLiteral: Final = HexLiteral
# isinstance() tuples built once (a ``A | B`` union would be rebuilt on every call).
_TEXT_LITERALS: Final = (StringLiteral, TimestampLiteral)
_BYTE_LITERALS: Final = (BinaryLiteral, HexLiteral)
# The walk tells nodes apart by exact class (``type(x) is C``), not isinstance(): why, in
# ``core.pattern.tree``.
_NEVER_VALUES: Final[dict[type, str]] = {
    BoolLiteral: "bool",
    FloatLiteral: "float",
    BinaryLiteral: "binary",
}
"""Literal classes that are never a field value, with the name a reason gives them."""
_MAX_REASON_ITEMS: Final = 3


def exact_values(pattern: Pattern) -> FoundValues:
    """Walk ``pattern`` and collect its exact values per document field."""
    found = FoundValues()
    _observations(found, pattern.expression)
    return found


def no_value_reason(found: FoundValues) -> str:
    """Why ``found`` holds no value, for humans (logs, the map command)."""
    parts: list[str] = []
    if found.invalid:
        parts.append("no value is valid for its field: " + _listed(found.invalid))
    if found.unsupported:
        parts.append("no field for " + _listed(found.unsupported))
    if found.inexact:
        operators = "/".join(found.inexact)
        parts.append(f"only {operators} comparisons")
    if not parts:
        parts.append("no comparison")
    return "pattern has no exact-match value: " + "; ".join(parts)


def _describe(literal: Literal) -> str:
    if isinstance(literal, _TEXT_LITERALS):
        text = literal.value
        shown = text if len(text) <= 60 else text[:57] + "..."
        return "'" + shown.replace("'", "\\'") + "'"
    if isinstance(literal, _BYTE_LITERALS):
        return f"{type(literal).__name__}({len(literal.value)} bytes)"
    return repr(literal.value)


def _comparison(found: FoundValues, comparison: Comparison) -> None:
    path: ObjectPath
    op: Op
    value: Literal | SetLiteral
    negated: bool
    path, op, value, negated = _astuple(comparison)
    if negated or op not in _EXACT_OPS:
        found.inexact.setdefault(("NOT " if negated else "") + op.value, None)
        return
    match = _rules.of(path)
    if match is None:
        found.unsupported.setdefault(path_text(path), None)
        return
    rule, argument = match
    if op is _ISSUBSET and not rule.networks:
        found.inexact.setdefault(op.value, None)
        return
    # The class by name: mypy narrows both branches only for a name (not for a ``Final`` alias).
    if type(value) is SetLiteral:
        if op is not _IN:
            found.invalid.append(f"{path_text(path)} {op.value} a set")
            return
        literals: tuple[Literal, ...] = value.values
    else:
        literals = (value,)
    handler = rule.handler
    stix_type = _lower_types.of(path.object_type)
    for literal in literals:
        kind = _NEVER_VALUES.get(type(literal))
        if kind is not None:
            problem: str | None = f"a {kind} is not a valid value"
        else:
            problem = handler(found, literal, argument)
        if problem is not None:
            found.invalid.append(f"{path_text(path)} {op.value} {_describe(literal)}: {problem}")
            continue
        ecs_type = rule.ecs_type
        if handler is _address and type(literal) is _StringLiteral:
            # What the document carries is an address, whichever object it came from.
            ecs_type = "ipv6-addr" if ":" in literal.value else "ipv4-addr"
        found.found(ecs_type, stix_type, _shown(literal))


def _shown(literal: Literal) -> str:
    if type(literal) is _HexLiteral:
        return literal.value.hex()
    value = literal.value
    return value if isinstance(value, str) else str(value)


def _expression(found: FoundValues, expression: ComparisonExpression) -> None:
    if type(expression) is _Comparison:
        _comparison(found, expression)
    elif type(expression) is _Exists:
        found.inexact.setdefault("EXISTS", None)
    elif type(expression) is _ComparisonOr or type(expression) is _ComparisonAnd:
        for operand in expression.operands:
            _expression(found, operand)


def _observation_body(found: FoundValues, expression: ComparisonExpression) -> None:
    if type(expression) is not _ComparisonAnd:
        _expression(found, expression)
        return
    # Values ANDed directly in one observation describe one object: a file name and its
    # directory combine into the file's path, a registry key and a value name into the
    # value's path.
    scope: dict[str, list[str]] = {}
    for operand in expression.operands:
        found.scope = scope if type(operand) is _Comparison else None
        _expression(found, operand)
    found.scope = None
    names, directories = scope.get("file.name", []), scope.get("file.directory", [])
    if len(names) == 1 and len(directories) == 1:
        joined = joined_path(directories[0], names[0])
        if joined is not None:
            found.text("threat.indicator.file.path", joined)
    keys, values = scope.get("registry.path", []), scope.get("registry.value", [])
    if len(keys) == 1 and len(values) == 1:
        found.text("threat.indicator.registry.path", f"{keys[0]}\\{values[0]}")


def _observations(found: FoundValues, expression: ObservationExpression) -> None:
    if type(expression) is _Observation:
        _observation_body(found, expression.expression)
    elif type(expression) is _Qualified:
        _observations(found, expression.expression)
    elif (
        type(expression) is _ObservationAnd
        or type(expression) is _ObservationOr
        or type(expression) is _FollowedBy
    ):
        for operand in expression.operands:
            _observations(found, operand)


def _listed(items: Iterable[str]) -> str:
    listed = list(items)
    shown = ", ".join(listed[:_MAX_REASON_ITEMS])
    more = len(listed) - _MAX_REASON_ITEMS
    return shown + (f" (and {more} more)" if more > 0 else "")
