"""OpenCTI -> Elastic threat-intel connector, and its mapping as a library.

The library (``elastic_connector.api``, every name re-exported here; ``docs/library.md``):
``bundle_to_actions``/``iter_bundle_actions`` (STIX in, the documents, deletions, withheld and
skipped objects out: ``MapResult`` of ``Exported``, ``Withheld``, ``Deleted``, ``Skipped``),
``indicator_to_ecs`` (one indicator), ``parse_pattern`` (``ParsedPattern`` with its
``PatternComparison``s, or ``InvalidPattern``), ``alerts_to_sightings`` (``SightingsResult`` of
``Sighting`` and ``SkippedAlert``), ``make_config`` (a ``Config``); ``InputError`` when an input
cannot be used at all. Pure: importing it loads neither pycti nor the Elasticsearch client.

``elastic_connector.core`` is the pure core those functions use; ``elastic_connector.shell``
does the I/O of the daemon.
"""

from elastic_connector.api import (
    Config,
    Deleted,
    Exported,
    InputError,
    InvalidPattern,
    MapResult,
    Outcome,
    ParsedPattern,
    PatternComparison,
    Sighting,
    SightingsResult,
    Skipped,
    SkippedAlert,
    Withheld,
    alerts_to_sightings,
    bundle_to_actions,
    indicator_to_ecs,
    iter_bundle_actions,
    make_config,
    parse_pattern,
)

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Deleted",
    "Exported",
    "InputError",
    "InvalidPattern",
    "MapResult",
    "Outcome",
    "ParsedPattern",
    "PatternComparison",
    "Sighting",
    "SightingsResult",
    "Skipped",
    "SkippedAlert",
    "Withheld",
    "alerts_to_sightings",
    "bundle_to_actions",
    "indicator_to_ecs",
    "iter_bundle_actions",
    "make_config",
    "parse_pattern",
]
