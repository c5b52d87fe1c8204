"""`elastic-connector sightings`: Elastic alerts in, the sightings the connector would record out.

Runs the same decoding, ownership rule and aggregation as the alert poller, with no network, so
an analyst can check what a set of alerts would become in OpenCTI. Input: NDJSON, one alert per
line (a search hit ``{"_index", "_id", "_source"}`` or a bare ``_source``), or a whole saved
``_search`` response (``{"hits": {"hits": [...]}}``). Output: one JSON line per sighting, ordered
by indicator id, then one per suppressing alert and indicator for its suppressed matches
(``kibana.alert.suppression.docs_count``); closed alerts count only with
``sightings.include_closed``. Anything not used goes to the error stream as
``{"skip": reason, "line": N}`` (``"hit": N`` for a saved search response).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, Final, TextIO

import msgspec

from elastic_connector.core.config import Config
from elastic_connector.core.sightings import Alert, decode_hit
from elastic_connector.core.sightings.aggregation import (
    SightingPayload,
    aggregate,
    counts,
    format_time,
    ownership_for,
    suppressed_payloads,
)

EXIT_OK: Final = 0
EXIT_UNREADABLE: Final = 2

_BOM: Final = b"\xef\xbb\xbf"
_encoder: Final = msgspec.json.Encoder()


class _Hits(msgspec.Struct):
    hits: list[msgspec.Raw]


class _SearchResponse(msgspec.Struct):
    hits: _Hits


_response: Final = msgspec.json.Decoder(_SearchResponse)


def _records(data: bytes) -> tuple[str, Iterator[tuple[int, bytes]]]:
    """("line" | "hit", (position, JSON text) for each alert in the input)."""
    stripped = data.strip()
    if stripped.startswith(b"{") and b'"hits"' in stripped:
        try:
            response = _response.decode(stripped)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not one search response: read it as NDJSON
        else:
            return "hit", ((n, bytes(raw)) for n, raw in enumerate(response.hits.hits, start=1))
    lines = ((n, line) for n, line in enumerate(data.splitlines(), start=1) if line.strip())
    return "line", lines


def _sighting_line(payload: SightingPayload) -> str:
    return _encoder.encode(
        {
            "indicator_id": payload.indicator_id,
            "count": payload.count,
            "first_seen": format_time(payload.first_seen),
            "last_seen": format_time(payload.last_seen),
            "alert_ids": payload.alert_ids,
            "rules": payload.rules,
            **({"suppressed_of": payload.suppressed_of} if payload.suppressed_of else {}),
        }
    ).decode()


def run_sightings(source: BinaryIO, output: TextIO, errors: TextIO, config: Config) -> int:
    """Aggregate the alerts of ``source`` into sightings on ``output``; skips go to ``errors``.

    Returns 0 once the input was read (whatever was skipped), 2 when it could not be read.
    """
    try:
        data = source.read()
    except OSError as error:
        errors.write(f"elastic-connector sightings: cannot read input: {error}\n")
        return EXIT_UNREADABLE
    data = data.removeprefix(_BOM)
    unit, records = _records(data)

    def skip(reason: str, position: int) -> None:
        errors.write(_encoder.encode({"skip": reason, unit: position}).decode() + "\n")

    alerts: list[Alert] = []
    first_position: dict[str, int] = {}
    for position, text in records:
        decoded = decode_hit(text)
        alert = decoded.value_or(None)
        if alert is None:
            skip(str(decoded.failure()), position)
            continue
        alerts.append(alert)
        first_position.setdefault(alert.id, position)

    ours = ownership_for(config)
    include_closed = config.sightings.include_closed
    result = aggregate(alerts, ours, include_closed=include_closed)
    # An alert present twice in the input is counted once; report its problems once too.
    for skipped in dict.fromkeys(result.skipped):
        skip(f"alert {skipped.alert_id}: {skipped.reason}", first_position[skipped.alert_id])
    for payload in result.sightings:
        if payload.count > 0:
            output.write(_sighting_line(payload) + "\n")
    # The poller writes an alert's suppressed matches as one more sighting, once it is final.
    for alert in {alert.id: alert for alert in alerts}.values():
        if counts(alert, include_closed):
            for payload in suppressed_payloads(alert, ours):
                output.write(_sighting_line(payload) + "\n")
    output.flush()
    return EXIT_OK
