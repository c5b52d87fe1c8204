"""Just enough GraphQL for the OpenCTI stand-in: parse an operation, resolve its arguments,
and cut a result down to the selected fields.

Projecting answers onto the selection set keeps the stand-in honest: a client that reads a
field it did not ask for fails here as it would against the real platform. There is no schema:
fields the stand-in does not know come back as null, and type conditions of fragments are
ignored (their fields are merged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

_TOKEN: Final = re.compile(
    r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
    |(?P<spread>\.\.\.)
    |(?P<punct>[!$&():=@\[\]{}|])
    |(?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
    |(?P<string>"(?:[^"\\\n\r]|\\.)*")
    |(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


class GraphQLSyntaxError(ValueError):
    """The document is not GraphQL this parser understands."""


class Field(msgspec.Struct, frozen=True):
    """One selected field: ``alias: name(arguments) { selections }``."""

    name: str
    alias: str
    arguments: dict[str, object]
    selections: tuple[Field, ...] = ()


class Operation(msgspec.Struct, frozen=True):
    kind: Literal["query", "mutation", "subscription"]
    name: str | None
    fields: tuple[Field, ...]


class _Token(msgspec.Struct, frozen=True):
    kind: str
    text: str
    at: int


def _tokenize(document: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(document):
        match = _TOKEN.match(document, position)
        if match is None:
            raise GraphQLSyntaxError(f"unexpected character {document[position]!r} at {position}")
        kind = match.lastgroup or "skip"
        if kind != "skip":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, document: str, variables: Mapping[str, object]) -> None:
        self.tokens = _tokenize(document)
        self.index = 0
        self.variables = variables
        self.fragments: dict[str, int] = {}

    # -- token helpers --
    def peek(self, offset: int = 0) -> _Token | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> _Token:
        token = self.peek()
        if token is None:
            raise GraphQLSyntaxError(f"unexpected end of document, expected {text or kind}")
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            raise GraphQLSyntaxError(f"expected {text or kind} at {token.at}, found {token.text!r}")
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text and token.kind != "string":
            self.index += 1
            return True
        return False

    # -- document --
    def operation(self) -> Operation:
        self.index_fragments()
        chosen: Operation | None = None
        while self.peek() is not None:
            token = self.peek()
            assert token is not None
            if token.text == "fragment":
                self.skip_fragment()
                continue
            operation = self.operation_definition()
            if chosen is None:
                chosen = operation
        if chosen is None:
            raise GraphQLSyntaxError("the document has no operation")
        return chosen

    def index_fragments(self) -> None:
        depth = 0
        for index, token in enumerate(self.tokens):
            if token.kind == "punct" and token.text in "{(":
                depth += 1
            elif token.kind == "punct" and token.text in "})":
                depth -= 1
            elif depth == 0 and token.kind == "name" and token.text == "fragment":
                name = self.tokens[index + 1].text if index + 1 < len(self.tokens) else ""
                self.fragments[name] = index

    def skip_fragment(self) -> None:
        self.take("fragment")
        self.take(kind="name")
        self.take("on")
        self.take(kind="name")
        self.directives()
        self.selection_set()

    def operation_definition(self) -> Operation:
        token = self.peek()
        assert token is not None
        kind: Literal["query", "mutation", "subscription"] = "query"
        name: str | None = None
        if token.kind == "name" and token.text in ("query", "mutation", "subscription"):
            self.index += 1
            kind = (
                "mutation"
                if token.text == "mutation"
                else ("subscription" if token.text == "subscription" else "query")
            )
            following = self.peek()
            if following is not None and following.kind == "name":
                name = self.take(kind="name").text
            if self.accept("("):
                self.variable_definitions()
            self.directives()
        return Operation(kind, name, self.selection_set())

    def variable_definitions(self) -> None:
        defaults: dict[str, object] = {}
        while not self.accept(")"):
            self.take("$")
            variable = self.take(kind="name").text
            self.take(":")
            self.type_reference()
            if self.accept("="):
                defaults[variable] = self.value(constant=True)
            self.directives()
        if defaults:
            self.variables = {**defaults, **self.variables}

    def type_reference(self) -> None:
        if self.accept("["):
            self.type_reference()
            self.take("]")
        else:
            self.take(kind="name")
        self.accept("!")

    def directives(self) -> None:
        while self.accept("@"):
            self.take(kind="name")
            if self.accept("("):
                self.arguments()

    # -- selections --
    def selection_set(self) -> tuple[Field, ...]:
        opening = self.take("{")
        fields: list[Field] = []
        if self.accept("}"):
            raise GraphQLSyntaxError(f"empty selection set at {opening.at}")
        while not self.accept("}"):
            if self.accept("..."):
                token = self.peek()
                if token is not None and token.text == "on":
                    self.index += 1
                    self.take(kind="name")
                    self.directives()
                    fields.extend(self.selection_set())
                elif token is not None and token.kind == "name":
                    fields.extend(self.fragment_spread(self.take(kind="name").text))
                else:
                    self.directives()
                    fields.extend(self.selection_set())
                continue
            fields.append(self.field())
        return tuple(fields)

    def fragment_spread(self, name: str) -> tuple[Field, ...]:
        self.directives()
        start = self.fragments.get(name)
        if start is None:
            raise GraphQLSyntaxError(f"unknown fragment {name}")
        saved = self.index
        self.index = start
        self.take("fragment")
        self.take(kind="name")
        self.take("on")
        self.take(kind="name")
        self.directives()
        fields = self.selection_set()
        self.index = saved
        return fields

    def field(self) -> Field:
        name = self.take(kind="name").text
        alias = name
        if self.accept(":"):
            name = self.take(kind="name").text
        arguments: dict[str, object] = {}
        if self.accept("("):
            arguments = self.arguments()
        self.directives()
        selections: tuple[Field, ...] = ()
        token = self.peek()
        if token is not None and token.text == "{" and token.kind == "punct":
            selections = self.selection_set()
        return Field(name, alias, arguments, selections)

    def arguments(self) -> dict[str, object]:
        arguments: dict[str, object] = {}
        while not self.accept(")"):
            key = self.take(kind="name").text
            self.take(":")
            arguments[key] = self.value(constant=False)
        return arguments

    # -- values --
    def value(self, *, constant: bool) -> object:
        token = self.take()
        if token.kind == "punct":
            if token.text == "$" and not constant:
                return self.variables.get(self.take(kind="name").text)
            if token.text == "[":
                items: list[object] = []
                while not self.accept("]"):
                    items.append(self.value(constant=constant))
                return items
            if token.text == "{":
                fields: dict[str, object] = {}
                while not self.accept("}"):
                    key = self.take(kind="name").text
                    self.take(":")
                    fields[key] = self.value(constant=constant)
                return fields
            raise GraphQLSyntaxError(f"unexpected {token.text!r} at {token.at}")
        if token.kind == "string":
            decoded: object = json.loads(token.text)
            return decoded
        if token.kind == "block":
            return token.text[3:-3].replace('\\"""', '"""')
        if token.kind == "number":
            return float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
        if token.text == "true":
            return True
        if token.text == "false":
            return False
        if token.text == "null":
            return None
        return token.text  # an enum value


def parse_operation(document: str, variables: Mapping[str, object] | None = None) -> Operation:
    """The first operation of ``document`` with its arguments resolved against ``variables``.

    Raises ``GraphQLSyntaxError`` on anything it cannot parse.
    """
    try:
        return _Parser(document, variables or {}).operation()
    except (IndexError, json.JSONDecodeError) as error:
        raise GraphQLSyntaxError(str(error)) from error


def project(value: object, selections: Sequence[Field]) -> object:
    """``value`` cut down to ``selections`` (lists are projected item by item)."""
    if not selections or value is None:
        return value
    if isinstance(value, list):
        return [project(item, selections) for item in value]
    if not isinstance(value, Mapping):
        return value
    result: dict[str, object] = {}
    for selected in selections:
        if selected.name == "__typename":
            projected: object = value.get("__typename", value.get("entity_type"))
        else:
            projected = project(value.get(selected.name), selected.selections)
        earlier = result.get(selected.alias)
        if isinstance(earlier, dict) and isinstance(projected, dict):
            projected = {**earlier, **projected}
        result[selected.alias] = projected
    return result


class UnsupportedFilter(ValueError):
    """A filter the stand-in cannot evaluate (so it refuses rather than guessing)."""


_OPERATORS: Final = frozenset({"eq", "not_eq", "nil", "not_nil"})


def _values_of(record: Mapping[str, object], key: str) -> list[object]:
    keys = ("id", "standard_id", "x_opencti_stix_ids") if key == "ids" else (key,)
    found: list[object] = []
    for name in keys:
        value = record.get(name)
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    return found


def _filter_matches(record: Mapping[str, object], spec: Mapping[str, object]) -> bool:
    raw_key = spec.get("key")
    keys = [str(k) for k in raw_key] if isinstance(raw_key, list) else [str(raw_key)]
    operator = str(spec.get("operator") or "eq")
    if operator not in _OPERATORS:
        raise UnsupportedFilter(f"filter operator {operator!r}")
    raw_values = spec.get("values")
    wanted = [str(v) for v in raw_values] if isinstance(raw_values, list) else []
    present = [str(v) for key in keys for v in _values_of(record, key)]
    if operator == "nil":
        return not present
    if operator == "not_nil":
        return bool(present)
    combine = all if spec.get("mode") == "and" else any
    hits = combine(v in present for v in wanted) if wanted else False
    return hits if operator == "eq" else not hits


def matches_filters(record: Mapping[str, object], group: object) -> bool:
    """Whether ``record`` passes an OpenCTI ``FilterGroup`` (``eq``/``not_eq``/``nil``/
    ``not_nil`` on plain fields; ``ids`` matches id, standard_id and x_opencti_stix_ids)."""
    if group is None:
        return True
    if not isinstance(group, Mapping):
        raise UnsupportedFilter("filters must be a FilterGroup object")
    filters = group.get("filters") or []
    groups = group.get("filterGroups") or []
    if not isinstance(filters, list) or not isinstance(groups, list):
        raise UnsupportedFilter("filters and filterGroups must be lists")
    results = [_filter_matches(record, spec) for spec in filters if isinstance(spec, Mapping)] + [
        matches_filters(record, sub) for sub in groups
    ]
    if not results:
        return True
    return any(results) if group.get("mode") == "or" else all(results)
