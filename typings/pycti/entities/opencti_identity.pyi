from collections.abc import Sequence
from typing import Literal

from pycti._types import EntityRef

class Identity:
    @staticmethod
    def generate_id(name: str, identity_class: str) -> str: ...
    def read(
        self, *, id: str, customAttributes: str | None = ..., withFiles: bool = ...
    ) -> dict[str, object] | None:
        """``query Identity($id: String!) { identity(id: $id) {...} }`` (internal or any STIX
        id); None when the platform answers null. Raises ``ValueError`` on GraphQL errors."""
    def create(
        self,
        *,
        type: Literal["Organization", "Individual", "System", "SecurityPlatform", "Sector"],
        name: str,
        description: str | None = ...,
        stix_id: str | None = ...,
        createdBy: str | None = ...,
        objectMarking: Sequence[str] | None = ...,
        objectLabel: Sequence[str] | None = ...,
        externalReferences: Sequence[str] | None = ...,
        confidence: int | None = ...,
        security_platform_type: str | None = ...,
        x_opencti_organization_type: str | None = ...,
        update: bool = ...,
    ) -> EntityRef | None:
        """``organizationAdd``/``systemAdd``/``securityPlatformAdd``/``individualAdd`` or
        ``identityAdd``; the platform upserts by name and class. None only when ``type`` or
        ``name`` is None. Raises ``ValueError`` when the platform answers with errors."""
