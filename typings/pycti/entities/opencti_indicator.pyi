from collections.abc import Mapping
from typing import Literal, TypedDict, overload

from pycti._types import FilterGroup, IndicatorRecord

class Indicator:
    @staticmethod
    def generate_id(pattern: str) -> str: ...
    @overload
    def read(self, *, id: str, withFiles: bool = ...) -> IndicatorRecord | None: ...
    @overload
    def read(self, *, filters: FilterGroup, withFiles: bool = ...) -> IndicatorRecord | None: ...
    @overload
    def read(
        self, *, id: str, customAttributes: str, withFiles: bool = ...
    ) -> dict[str, object] | None: ...
    @overload
    def list(
        self,
        *,
        filters: FilterGroup | Mapping[str, object] | None = ...,
        search: str | None = ...,
        first: int = ...,
        after: str | None = ...,
        orderBy: str | None = ...,
        orderMode: Literal["asc", "desc"] | None = ...,
        customAttributes: str | None = ...,
        getAll: bool = ...,
        withPagination: Literal[False] = ...,
        withFiles: bool = ...,
        toStix: bool = ...,
    ) -> list[dict[str, object]]:
        """``indicators(...)``: one page (``first``, default 500), or every page with
        ``getAll``; with ``toStix`` each node is ``{"toStix": <the STIX JSON text>}``."""
    @overload
    def list(
        self,
        *,
        filters: FilterGroup | Mapping[str, object] | None = ...,
        search: str | None = ...,
        first: int = ...,
        after: str | None = ...,
        orderBy: str | None = ...,
        orderMode: Literal["asc", "desc"] | None = ...,
        customAttributes: str | None = ...,
        withPagination: Literal[True],
        withFiles: bool = ...,
        toStix: bool = ...,
    ) -> IndicatorPage: ...

class PageInfo(TypedDict):
    startCursor: str | None
    endCursor: str | None
    hasNextPage: bool
    hasPreviousPage: bool
    globalCount: int

class IndicatorPage(TypedDict):
    entities: list[dict[str, object]]
    pagination: PageInfo
