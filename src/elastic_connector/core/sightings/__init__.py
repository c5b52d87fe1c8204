"""Elastic Security's indicator-match alerts -> OpenCTI sightings.

- ``alerts``: the alerts, typed, as the sighting loop reads them (``decode_hit``);
- ``aggregation``: which enrichments are ours, one sighting payload per indicator and page,
  suppressed matches once final, the cursor that pages through the alerts, and how a stored
  sighting is checked against what was written.
- ``alert_input``: alerts as a file holds them (NDJSON or a saved search response), each with
  its position, for ``elastic-connector sightings`` and the library.

Exports ``decode_hit``, ``Alert``, ``AlertError``, ``aggregate``, ``Aggregation``,
``SightingPayload``, ``OwnershipRule``, ``ownership_for``, ``AlertCursor``, ``search_body`` and
``next_cursor``.
"""

from elastic_connector.core.sightings.aggregation import (
    Aggregation,
    AlertCursor,
    OwnershipRule,
    SightingPayload,
    aggregate,
    next_cursor,
    ownership_for,
    search_body,
)
from elastic_connector.core.sightings.alerts import Alert, AlertError, decode_hit

__all__ = [
    "Aggregation",
    "Alert",
    "AlertCursor",
    "AlertError",
    "OwnershipRule",
    "SightingPayload",
    "aggregate",
    "decode_hit",
    "next_cursor",
    "ownership_for",
    "search_body",
]
