"""elastic-connector as a library: the connector's mapping, export policy, pattern parser and
alert aggregation for notebooks and other tools. ``elastic_connector`` re-exports every name
of ``__all__``; those names and their signatures are the compatibility promise
(``tests/test_api_surface.py`` pins them), whatever moves inside ``elastic_connector.core``.

Pure: no I/O, clock, randomness, logging or threads, and importing it loads neither pycti nor
the Elasticsearch client; time comes in as ``now``. Plain data in (dicts and lists as
``json.load`` gives them, or the JSON text or bytes of a file), small frozen values out, each
with ``to_dict()`` (JSON-ready). No function raises on bad input: a problem with the whole
input is an ``InputError`` (or ``InvalidPattern``), a problem with one object is a ``Skipped``.
The commands ``elastic-connector map`` and ``sightings`` are these functions plus printing.

``config`` is a ``Config`` (``make_config``) or a mapping shaped like ``config.yml``
(``{"connector": {"max_tlp": "TLP:GREEN"}}``); None means the defaults. Every option the
planner or the alert poller reads from it applies here exactly as in the daemon.

A walkthrough: ``docs/library.md``.

Modules, one concern each: ``mapping`` (``bundle_to_actions``, ``iter_bundle_actions``,
``indicator_to_ecs`` and their outcomes), ``patterns`` (``parse_pattern``), ``sightings``
(``alerts_to_sightings``), ``settings`` (``make_config``), ``failures`` (``InputError``).
"""

from elastic_connector.api.failures import InputError
from elastic_connector.api.mapping import (
    Deleted,
    Exported,
    MapResult,
    Outcome,
    Skipped,
    Withheld,
    bundle_to_actions,
    indicator_to_ecs,
    iter_bundle_actions,
)
from elastic_connector.api.patterns import (
    InvalidPattern,
    ParsedPattern,
    PatternComparison,
    parse_pattern,
)
from elastic_connector.api.settings import make_config
from elastic_connector.api.sightings import (
    Sighting,
    SightingsResult,
    SkippedAlert,
    alerts_to_sightings,
)
from elastic_connector.core.config import Config

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
