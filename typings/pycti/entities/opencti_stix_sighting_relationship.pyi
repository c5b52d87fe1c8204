from collections.abc import Sequence
from datetime import datetime

from pycti._types import EntityRef

class StixSightingRelationship:
    @staticmethod
    def generate_id(
        sighting_of_ref: str,
        where_sighted_refs: list[str],
        first_seen: str | datetime | None = None,
        last_seen: str | datetime | None = None,
    ) -> str: ...
    def create(
        self,
        *,
        fromId: str,
        toId: str,
        stix_id: str | None = ...,
        description: str | None = ...,
        first_seen: str | None = ...,
        last_seen: str | None = ...,
        count: int | None = ...,
        x_opencti_negative: bool = ...,
        created: str | None = ...,
        modified: str | None = ...,
        confidence: int | None = ...,
        createdBy: str | None = ...,
        objectMarking: Sequence[str] | None = ...,
        objectLabel: Sequence[str] | None = ...,
        externalReferences: Sequence[str] | None = ...,
        x_opencti_stix_ids: Sequence[str] | None = ...,
        update: bool = ...,
    ) -> EntityRef:
        """``stixSightingRelationshipAdd`` (``count`` is sent as ``attribute_count``).
        Raises ``ValueError`` when the platform answers with errors (missing reference...)."""
    def read(self, *, id: str, customAttributes: str = ...) -> dict[str, object] | None:
        """``stixSightingRelationship(id:)``: the platform resolves internal ids, standard ids and
        ``x_opencti_stix_ids``. None when no sighting has that id."""
