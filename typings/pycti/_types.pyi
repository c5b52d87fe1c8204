"""Shapes pycti returns (stub-only: these names do not exist in pycti at run time, so import
them only under ``if TYPE_CHECKING:``)."""

from collections.abc import Mapping
from typing import Literal, NotRequired, TypedDict

# Shapes

class Filter(TypedDict):
    key: str | list[str]
    values: list[str] | list[bool] | list[int] | list[str | None]
    operator: NotRequired[str]
    """``eq`` (default), ``not_eq``, ``nil``, ``not_nil``, ``gt``..."""
    mode: NotRequired[Literal["and", "or"]]

class FilterGroup(TypedDict):
    mode: Literal["and", "or"]
    filters: list[Filter]
    filterGroups: list[FilterGroup]

class EntityRef(TypedDict):
    """What pycti's ``create`` methods return (the mutation selects these four fields)."""

    id: str
    standard_id: str
    entity_type: str
    parent_types: list[str]
    createdById: str | None

class ExternalReferenceRecord(TypedDict):
    """``externalReferenceAdd`` with pycti's default selection."""

    id: str
    standard_id: str
    entity_type: str
    parent_types: list[str]
    source_name: str
    url: str | None
    external_id: str | None
    description: str | None

class MarkingDefinitionRecord(TypedDict):
    id: str
    standard_id: str
    entity_type: str
    parent_types: list[str]
    definition_type: str
    definition: str
    x_opencti_order: int
    x_opencti_color: str | None
    created: str
    modified: str
    created_at: str
    updated_at: str
    createdById: str | None

class IndicatorMarking(TypedDict):
    id: str
    standard_id: str
    entity_type: str
    definition_type: str
    definition: str
    created: str
    modified: str
    x_opencti_order: int
    x_opencti_color: str | None

class IndicatorRecord(TypedDict):
    """``indicator.read`` with the default selection (the fields the project may read)."""

    id: str
    standard_id: str
    entity_type: str
    parent_types: list[str]
    name: str
    description: str | None
    pattern: str
    pattern_type: str
    pattern_version: str | None
    valid_from: str | None
    valid_until: str | None
    revoked: bool
    confidence: int | None
    created: str
    modified: str
    x_opencti_score: int | None
    x_opencti_detection: bool | None
    x_opencti_main_observable_type: str | None
    x_mitre_platforms: list[str] | None
    objectMarking: list[IndicatorMarking]
    objectMarkingIds: list[str]
    createdById: str | None

class AppLogger:
    """pycti's logger: a message plus an optional dict of attributes."""

    def debug(self, message: str, meta: Mapping[str, object] | None = None) -> None: ...
    def info(self, message: str, meta: Mapping[str, object] | None = None) -> None: ...
    def warning(self, message: str, meta: Mapping[str, object] | None = None) -> None: ...
    def error(self, message: str, meta: Mapping[str, object] | None = None) -> None: ...
