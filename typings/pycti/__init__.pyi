"""Type stubs for the part of pycti 7.261026.0 that elastic-connector uses.

Only what the project calls is declared; anything else is an error on purpose (add it here,
checked against the source, when it is needed). The module layout is pycti's own. pycti's
entity methods take ``**kwargs`` and silently ignore misspelled names: the stubs list the
accepted keyword names instead, so a typo fails type checking. Returned dicts are the shapes
the default GraphQL selections produce, after pycti's ``process_multiple_fields`` (which adds
``createdById``, ``objectMarkingIds``...); they are declared in the stub-only ``pycti._types``.
"""

from pycti.api.opencti_api_client import OpenCTIApiClient as OpenCTIApiClient
from pycti.connector.opencti_connector_helper import (
    OpenCTIConnectorHelper as OpenCTIConnectorHelper,
)
from pycti.entities.opencti_external_reference import ExternalReference as ExternalReference
from pycti.entities.opencti_identity import Identity as Identity
from pycti.entities.opencti_indicator import Indicator as Indicator
from pycti.entities.opencti_marking_definition import MarkingDefinition as MarkingDefinition
from pycti.entities.opencti_stix_sighting_relationship import (
    StixSightingRelationship as StixSightingRelationship,
)

__version__: str
