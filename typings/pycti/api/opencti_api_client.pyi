from collections.abc import Mapping

from pycti.entities.opencti_external_reference import ExternalReference
from pycti.entities.opencti_identity import Identity
from pycti.entities.opencti_indicator import Indicator
from pycti.entities.opencti_marking_definition import MarkingDefinition
from pycti.entities.opencti_stix_sighting_relationship import StixSightingRelationship

class OpenCTIApiClient:
    api_url: str
    external_reference: ExternalReference
    identity: Identity
    indicator: Indicator
    marking_definition: MarkingDefinition
    stix_sighting_relationship: StixSightingRelationship
    def __init__(
        self,
        url: str,
        token: str,
        log_level: str = "info",
        ssl_verify: bool | str = False,
        proxies: dict[str, str] | None = None,
        json_logging: bool = False,
        bundle_send_to_queue: bool = True,
        cert: str | tuple[str, str] | None = None,
        custom_headers: str | None = None,
        perform_health_check: bool = True,
        requests_timeout: int = 300,
        provider: str | None = None,
    ) -> None:
        """Raises ``ValueError`` when the URL/token is missing or the health check fails."""
    def query(
        self,
        query: str,
        variables: Mapping[str, object] | None = None,
        disable_impersonate: bool = False,
    ) -> dict[str, object]:
        """The whole response body (``{"data": ...}``). Raises ``ValueError`` on HTTP errors
        (the body as text) and on GraphQL ``errors`` (a dict with ``name`` and
        ``error_message``)."""
    def health_check(self) -> bool: ...
