"""The values one pattern gives, per document field, as the pattern walk collects them."""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypeVar

from elastic_connector.core.memo import Memo

_Value = TypeVar("_Value")


class FoundValues:
    """Values collected from one pattern, deduplicated, in pattern order, per document field.

    Fields are named by their dotted document path (``threat.indicator.file.name``); values are
    kept by type (``strs``, ``ints``, ``dates``) so each part of the document reads its own.
    """

    __slots__ = (
        "dates",
        "first_text",
        "groups",
        "inexact",
        "ints",
        "invalid",
        "scope",
        "stix_types",
        "strs",
        "types",
        "unsupported",
    )

    def __init__(self) -> None:
        self.strs: dict[str, dict[str, None]] = {}
        self.ints: dict[str, dict[int, None]] = {}
        self.dates: dict[str, dict[datetime, None]] = {}
        # Every dotted prefix of the fields holding a value (``field_groups``), kept as fields
        # are first given one.
        self.groups: set[str] = set()
        self.types: dict[str, None] = {}
        self.stix_types: dict[str, None] = {}
        self.first_text: str | None = None
        # Why parts of the pattern gave nothing (for the Unmappable reason).
        self.inexact: dict[str, None] = {}
        self.unsupported: dict[str, None] = {}
        self.invalid: list[str] = []
        # Values of the comparisons directly under one AND, for values that combine
        # (a file name and its directory make a path).
        self.scope: dict[str, list[str]] | None = None

    def text(self, field: str, value: str) -> None:
        """Add a keyword value to ``field``."""
        self._values(self.strs, field)[value] = None

    def number(self, field: str, value: int) -> None:
        """Add an integer value to ``field``."""
        self._values(self.ints, field)[value] = None

    def moment(self, field: str, value: datetime) -> None:
        """Add a date value to ``field``."""
        self._values(self.dates, field)[value] = None

    def _values(self, table: dict[str, dict[_Value, None]], field: str) -> dict[_Value, None]:
        """The values of ``field`` in ``table``, made (and the field's groups noted) when it
        has none yet."""
        values = table.get(field)
        if values is None:
            values = table[field] = {}
            prefixes = _prefixes.of(field)
            # ``groups`` holds every prefix of a prefix it holds: when a field's parent is
            # there (a sibling came first), so is the rest.
            if prefixes and prefixes[0] not in self.groups:
                self.groups.update(prefixes)
        return values

    def remember(self, key: str, value: str) -> None:
        """Note ``value`` under ``key`` for the AND it appears in (when walking one)."""
        if self.scope is not None:
            self.scope.setdefault(key, []).append(value)

    def found(self, ecs_type: str | None, stix_type: str, shown: str) -> None:
        """Record that a value of this type was found; ``shown`` may name the indicator."""
        if ecs_type is not None:
            self.types.setdefault(ecs_type, None)
        self.stix_types.setdefault(stix_type, None)
        if self.first_text is None:
            self.first_text = shown

    def s(self, field: str) -> tuple[str, ...]:
        """The keyword values of ``field``."""
        values = self.strs.get(field)
        return tuple(values) if values else ()

    def i(self, field: str) -> tuple[int, ...]:
        """The integer values of ``field``."""
        values = self.ints.get(field)
        return tuple(values) if values else ()

    def d(self, field: str) -> tuple[datetime, ...]:
        """The date values of ``field``."""
        values = self.dates.get(field)
        return tuple(values) if values else ()

    @property
    def empty(self) -> bool:
        """No exact value was found."""
        return not self.stix_types


def _prefixes_of(field: str) -> tuple[str, ...]:
    """Every dotted prefix of a field name: ``a.b.c`` gives (``a.b``, ``a``)."""
    prefixes: list[str] = []
    head = field.rpartition(".")[0]
    while head:
        prefixes.append(head)
        head = head.rpartition(".")[0]
    return tuple(prefixes)


_prefixes: Final = Memo(_prefixes_of, 1024)


def field_groups(found: FoundValues) -> set[str]:
    """Every dotted prefix of the fields holding a value (``threat``, ``threat.indicator``,
    ``threat.indicator.file``...): document parts are built only where they have content."""
    return found.groups
