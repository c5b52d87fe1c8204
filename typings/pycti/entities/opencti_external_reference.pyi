from pycti._types import ExternalReferenceRecord

class ExternalReference:
    @staticmethod
    def generate_id(
        url: str | None = None, source_name: str | None = None, external_id: str | None = None
    ) -> str | None: ...
    def create(
        self,
        *,
        source_name: str,
        url: str | None = ...,
        external_id: str | None = ...,
        description: str | None = ...,
        stix_id: str | None = ...,
        update: bool = ...,
    ) -> ExternalReferenceRecord | None:
        """``externalReferenceAdd`` (the platform upserts by the standard id of the URL, else of
        source name + external id). None only when neither ``source_name`` nor ``url`` is given.
        Raises ``ValueError`` when the platform answers with errors."""
