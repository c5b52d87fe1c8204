"""Elastic Security alerts to the sightings the connector records: the aggregation
``elastic-connector sightings`` and the alert poller run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal, TypeAlias

import msgspec
from returns.result import Failure

from elastic_connector.api.failures import InputError, type_name
from elastic_connector.api.settings import resolve_config
from elastic_connector.core.config import Config
from elastic_connector.core.sightings import Alert, aggregate, decode_hit, ownership_for
from elastic_connector.core.sightings.aggregation import (
    SightingPayload,
    counts,
    format_time,
    suppressed_payloads,
)
from elastic_connector.core.sightings.alert_input import alert_records


class Sighting(msgspec.Struct, frozen=True, kw_only=True):
    """What the connector records in OpenCTI: indicator ``indicator_id`` (its OpenCTI id) was
    seen ``count`` times (distinct matches) between ``first_seen`` and ``last_seen``, by these
    alerts and rules; ``suppressed_of`` names the alert whose suppressed matches it counts."""

    indicator_id: str
    count: int
    first_seen: datetime
    last_seen: datetime
    alert_ids: tuple[str, ...]
    rules: tuple[str, ...]
    suppressed_of: str | None = None

    def to_dict(self) -> dict[str, object]:
        """What ``elastic-connector sightings`` prints for it."""
        line: dict[str, object] = {
            "indicator_id": self.indicator_id,
            "count": self.count,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "alert_ids": list(self.alert_ids),
            "rules": list(self.rules),
        }
        if self.suppressed_of:
            line["suppressed_of"] = self.suppressed_of
        return line


class SkippedAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert, or part of one, not used, and why; ``unit`` and ``position`` say where it sits:
    ``line`` N of NDJSON, ``hit`` N of a search response, ``item`` N of a list."""

    unit: Literal["line", "hit", "item"]
    position: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        """What ``elastic-connector sightings`` prints for it."""
        return {"skip": self.reason, self.unit: self.position}


class SightingsResult(msgspec.Struct, frozen=True, kw_only=True):
    """The sightings (ordered by indicator id, then those of suppressed matches), what was
    skipped, and ``error`` when the input or ``config`` could not be used at all."""

    sightings: tuple[Sighting, ...]
    skipped: tuple[SkippedAlert, ...] = ()
    error: InputError | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "sightings": [s.to_dict() for s in self.sightings],
            "skipped": [s.to_dict() for s in self.skipped],
            "error": None if self.error is None else self.error.to_dict(),
        }


_AlertRecord: TypeAlias = tuple[int, object]


def alerts_to_sightings(
    alerts: bytes | str | Mapping[str, object] | Sequence[Mapping[str, object]],
    *,
    config: Config | Mapping[str, object] | None = None,
) -> SightingsResult:
    """The sightings the connector would record for ``alerts``, as the alert poller counts
    them: each alert once per indicator of ours (``config``'s indicator index), closed alerts
    only with ``sightings.include_closed``, suppressed matches as one more sighting each.

    ``alerts``: NDJSON text or bytes (a search hit or a bare ``_source`` per line), a saved
    ``_search`` response (text or dict), or a list of hits or sources."""
    chosen = resolve_config(config)
    if isinstance(chosen, InputError):
        return SightingsResult(sightings=(), error=chosen)
    records = _alert_records(alerts)
    if isinstance(records, InputError):
        return SightingsResult(sightings=(), error=records)
    unit, items = records

    skipped: list[SkippedAlert] = []
    decoded: list[Alert] = []
    first_position: dict[str, int] = {}
    for position, item in items:
        if not isinstance(item, bytes | str | Mapping):
            reason = f"not an alert object (got {type_name(item)})"
            skipped.append(SkippedAlert(unit=unit, position=position, reason=reason))
            continue
        read = decode_hit(item)
        if isinstance(read, Failure):
            reason = str(read.failure())
            skipped.append(SkippedAlert(unit=unit, position=position, reason=reason))
            continue
        decoded.append(read.unwrap())
        first_position.setdefault(read.unwrap().id, position)

    ours = ownership_for(chosen)
    include_closed = chosen.sightings.include_closed
    result = aggregate(decoded, ours, include_closed=include_closed)
    # An alert present twice in the input is counted once; report its problems once too.
    for problem in dict.fromkeys(result.skipped):
        skipped.append(
            SkippedAlert(
                unit=unit,
                position=first_position[problem.alert_id],
                reason=f"alert {problem.alert_id}: {problem.reason}",
            )
        )
    sightings = [_sighting(p) for p in result.sightings if p.count > 0]
    # The poller writes an alert's suppressed matches as one more sighting, once it is final.
    for alert in {alert.id: alert for alert in decoded}.values():
        if counts(alert, include_closed):
            sightings.extend(_sighting(p) for p in suppressed_payloads(alert, ours))
    return SightingsResult(sightings=tuple(sightings), skipped=tuple(skipped))


def _alert_records(
    alerts: object,
) -> tuple[Literal["line", "hit", "item"], Iterable[_AlertRecord]] | InputError:
    if isinstance(alerts, bytes | bytearray | memoryview | str):
        data = alerts.encode("utf-8", "surrogatepass") if isinstance(alerts, str) else alerts
        return alert_records(bytes(data))
    if isinstance(alerts, Mapping):
        outer = alerts.get("hits")
        hits = outer.get("hits") if isinstance(outer, Mapping) else None
        if isinstance(hits, Sequence) and not isinstance(hits, str | bytes):
            return "hit", enumerate(hits, start=1)
        return "item", [(1, alerts)]
    if isinstance(alerts, Sequence):
        return "item", enumerate(alerts, start=1)
    return InputError(
        "expected alerts as NDJSON text or bytes, a search response or a list of hits, "
        f"not {type_name(alerts)}"
    )


def _sighting(payload: SightingPayload) -> Sighting:
    return Sighting(
        indicator_id=payload.indicator_id,
        count=payload.count,
        first_seen=payload.first_seen,
        last_seen=payload.last_seen,
        alert_ids=payload.alert_ids,
        rules=payload.rules,
        suppressed_of=payload.suppressed_of,
    )
