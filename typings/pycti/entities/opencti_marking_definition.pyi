from typing import Literal

from pycti._types import FilterGroup, MarkingDefinitionRecord

class MarkingDefinition:
    @staticmethod
    def generate_id(definition_type: str, definition: str) -> str: ...
    def list(
        self,
        *,
        filters: FilterGroup | None = ...,
        first: int = ...,
        after: str | None = ...,
        orderBy: str | None = ...,
        orderMode: Literal["asc", "desc"] | None = ...,
        withPagination: Literal[False] = ...,
    ) -> list[MarkingDefinitionRecord]:
        """One page (``first``, default 500) of marking definitions."""
    def read(self, *, id: str) -> MarkingDefinitionRecord | None:
        """``markingDefinition(id:)`` (standard or internal id); None when unknown."""
