"""What ``elastic-connector sightings`` and the library read: alerts as they are saved.

A file of alerts is NDJSON, one alert per line (a search hit ``{"_index", "_id", "_source"}``
or a bare ``_source``), or one whole saved ``_search`` response (``{"hits": {"hits": [...]}}``);
a UTF-8 byte order mark is ignored. Each alert comes with where it sits, so a problem can be
reported as ``{"skip": reason, "line": N}`` (``"hit": N`` in a search response).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal, TypeAlias

import msgspec

_BOM: Final = b"\xef\xbb\xbf"

Unit: TypeAlias = Literal["line", "hit", "item"]
"""Where an alert sits: a line of NDJSON, a hit of a search response, an item of a list."""


class _Hits(msgspec.Struct):
    hits: list[msgspec.Raw]


class _SearchResponse(msgspec.Struct):
    hits: _Hits


_response: Final = msgspec.json.Decoder(_SearchResponse)


def alert_records(data: bytes) -> tuple[Unit, Iterator[tuple[int, bytes]]]:
    """The unit of positions (``line`` or ``hit``), and (position, JSON text) of each alert of
    ``data``, in order; blank lines are not alerts. Never raises."""
    data = data.removeprefix(_BOM)
    stripped = data.strip()
    if stripped.startswith(b"{") and b'"hits"' in stripped:
        try:
            response = _response.decode(stripped)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            pass  # not one search response: read it as NDJSON
        else:
            return "hit", ((n, bytes(raw)) for n, raw in enumerate(response.hits.hits, start=1))
    lines = ((n, line) for n, line in enumerate(data.splitlines(), start=1) if line.strip())
    return "line", lines
