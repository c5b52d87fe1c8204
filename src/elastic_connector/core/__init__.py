"""The functional core: pure, typed functions from STIX stream events to ECS documents and from
Elastic alerts to sightings. Imports only the standard library, msgspec and returns; no I/O,
clock, randomness, logging or threads (time is always an argument).

Entry points, at the top:

- ``events``: one stream frame in, the Elasticsearch actions it calls for out (``plan_frame``);
- ``actions``: those actions (``Upsert``, ``Delete``, ``Skip``);
- ``stix``: OpenCTI's stream events decoded into typed STIX 2.1 objects; ``stix_objects``: those
  types and the stream-event envelope (``stix`` re-exports them); ``json_scan`` reads the
  envelope's top level without decoding it;
- ``stix_input``: STIX data as a file holds it (bundle, objects, NDJSON stream events) as the
  frames ``plan_frame`` takes, for ``elastic-connector map`` and the library;
- ``reconcile``: the difference between the index and what OpenCTI holds (missing, stale,
  orphaned) and the guarded repairs it calls for, planned as the stream plans;
- ``stix_mode``: any STIX object as one document (mode ``stix``); ``backoff``: retry waits;
- ``plans``: the types ``events`` takes and gives, kept apart so that it can be compiled;
- ``memo``: memos of a pure function, for lookups repeated on every event (``Memo``, bounded;
  ``Latest``, of the last argument, by identity).

A wheel built where a C compiler is available holds the core's code compiled with mypyc
(``setup.py``); ``compiled()`` tells whether this process runs that build.

Packages, one concern each (their ``__init__`` says what they export):

- ``policy``: what may leave OpenCTI and for how long: the export rules, TLP levels, marking
  resolution and indicator lifetime;
- ``pattern``: the STIX patterning language, text to typed tree and back;
- ``indicators``: an indicator and its pattern to one ECS threat-indicator document, with the
  mapping's rule tables and the ECS document types;
- ``stream``: OpenCTI's live stream: SSE frames, event ids, positions and what may be saved;
- ``sightings``: Elastic alerts decoded, aggregated into OpenCTI sightings, paged by a cursor;
- ``config``: the settings: their type, registry, parsers, loading, export and generated docs
  (and the OpenCTI catalog files);
- ``elastic``: what Elasticsearch must grant, the ES|QL lookup rows and the dead letters;
- ``monitoring``: the phase and progress of a sync, and how often a warning may repeat.

``docs/architecture.md`` describes the layout, the threads and the data path.
"""

from __future__ import annotations

import types


def compiled() -> bool:
    """Whether the core's code runs compiled (mypyc extension modules) rather than as Python.
    Both builds behave the same; the compiled one is faster."""
    from elastic_connector.core import events

    return not isinstance(events.plan_frame, types.FunctionType)
