"""`elastic-connector sightings`: Elastic alerts in, the sightings the connector would record out.

The aggregation is the library's (``elastic_connector.api.alerts_to_sightings``): the same
decoding, ownership rule and aggregation as the alert poller, with no network, so an analyst can
check what a set of alerts would become in OpenCTI; this module only prints it. Input: NDJSON,
one alert per line (a search hit ``{"_index", "_id", "_source"}`` or a bare ``_source``), or a
whole saved ``_search`` response (``{"hits": {"hits": [...]}}``). Output: one JSON line per
sighting, ordered by indicator id, then one per suppressing alert and indicator for its
suppressed matches (``kibana.alert.suppression.docs_count``); closed alerts count only with
``sightings.include_closed``. Anything not used goes to the error stream as
``{"skip": reason, "line": N}`` (``"hit": N`` for a saved search response).
"""

from __future__ import annotations

from typing import BinaryIO, Final, TextIO

import msgspec

from elastic_connector.api import alerts_to_sightings
from elastic_connector.core.config import Config

EXIT_OK: Final = 0
EXIT_UNREADABLE: Final = 2

_encoder: Final = msgspec.json.Encoder()


def run_sightings(source: BinaryIO, output: TextIO, errors: TextIO, config: Config) -> int:
    """Aggregate the alerts of ``source`` into sightings on ``output``; skips go to ``errors``.

    Returns 0 once the input was read (whatever was skipped), 2 when it could not be read.
    """
    try:
        data = source.read()
    except OSError as error:
        errors.write(f"elastic-connector sightings: cannot read input: {error}\n")
        return EXIT_UNREADABLE
    result = alerts_to_sightings(data, config=config)
    if result.error is not None:
        errors.write(f"elastic-connector sightings: {result.error}\n")
        return EXIT_UNREADABLE
    for skipped in result.skipped:
        errors.write(_encoder.encode(skipped.to_dict()).decode() + "\n")
    for sighting in result.sightings:
        output.write(_encoder.encode(sighting.to_dict()).decode() + "\n")
    output.flush()
    return EXIT_OK
