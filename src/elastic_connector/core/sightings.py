"""Indicator-match alerts -> OpenCTI sighting payloads, and the cursor that pages through alerts.

Counting rule: a sighting's ``count`` is the number of *distinct alerts* that matched the
indicator. Kibana writes one enrichment per matched field, so an alert that matched one indicator
on ``source.ip`` and ``source.port`` carries it twice and still counts once.

Which enrichments are ours (``OwnershipRule``): ``matched.index`` is our indicator index (the
configured name or pattern, a rollover backing index ``<name>-000001``, a data-stream backing
index), or the enrichment's copy of the indicator holds our id signature in ``indicator.id``
(the OpenCTI internal id *and* the ``indicator--`` standard id, as our documents write
``threat.indicator.id``). The OpenCTI indicator to sight is ``matched.id`` (our document ``_id``
is the OpenCTI internal id), else the internal id from ``indicator.id``: no read is needed.
Enrichments from other feeds are ignored.

Paging (``search_body`` / ``next_cursor``): alerts are read in ``(@timestamp, tiebreaker)``
order with ``search_after``; the cursor is the position of the last alert consumed and only moves
forward. The tiebreaker is a real document field, because the cursor is persisted across polls
and restarts: ``kibana.alert.uuid`` on 8.x/9.x (a keyword with doc values, equal to the alert
``_id``), ``_id`` on 7.x signals (sortable there; 8.x refuses ``_id`` sorts by default). A point
in time's ``_shard_doc`` would be cheaper but is only valid inside one PIT, so it cannot be kept.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias
from urllib.parse import quote

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.alerts import (
    ENRICHMENT_TYPE_INDICATOR_MATCH,
    THREAT_MATCH_RULE_TYPE,
    Alert,
    AlertError,
    AlertSchema,
    Enrichment,
    decode_hit,
    parse_time,
)
from elastic_connector.core.config import Config

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_UUID: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_INTERNAL_ID: Final = re.compile(rf"^{_UUID}$")
_STANDARD_ID: Final = re.compile(rf"^indicator--{_UUID}$")

SIGHTING_NAMESPACE: Final = uuid.UUID("4b6f1a5e-2d0c-5c3a-9f57-7e1d2b8c0a61")
"""Namespace of the deterministic sighting STIX ids (``SightingPayload.stix_id``)."""

DEFAULT_SPACE: Final = "default"
ALERTS_ALIAS_PREFIX: Final = ".alerts-security.alerts-"


# --- whose enrichment is it -----------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _index_regex(name: str) -> re.Pattern[str]:
    # Elasticsearch index patterns know one wildcard, ``*``; everything else is literal.
    body = ".*".join(re.escape(part) for part in name.split("*"))
    return re.compile(
        rf"^(?:[^:]+:)?(?:{body}|{body}-\d+|\.ds-{body}-\d{{4}}\.\d{{2}}\.\d{{2}}-\d+)$"
    )


class OwnershipRule(msgspec.Struct, frozen=True):
    """Which enrichments point at our indicators."""

    indices: tuple[str, ...]
    """Our indicator index names or ``*`` patterns (an alias also covers its backing indices,
    and a remote-cluster prefix ``cluster:`` is accepted)."""
    trust_indicator_ids: bool = True
    """Also claim enrichments from other indices whose ``indicator.id`` holds our signature."""

    def owns_index(self, index: str) -> bool:
        """True when ``index`` (an enrichment's ``matched.index``) holds our indicators."""
        return any(_index_regex(name).match(index) for name in self.indices if name)


def ownership_for(config: Config) -> OwnershipRule:
    """The ownership rule of a configuration: its indicator index (alias, name or pattern)."""
    return OwnershipRule(indices=(config.index,))


def _internal_id(ids: Sequence[str]) -> str | None:
    return next((value.lower() for value in ids if _INTERNAL_ID.match(value)), None)


def claim(enrichment: Enrichment, rule: OwnershipRule) -> str | AlertError | None:
    """The OpenCTI indicator id an enrichment sights; None when it is not ours; an error when it
    comes from our index but names no indicator."""
    if (
        enrichment.matched_type is not None
        and enrichment.matched_type != ENRICHMENT_TYPE_INDICATOR_MATCH
    ):
        return None
    internal = _internal_id(enrichment.indicator_ids)
    if enrichment.matched_index is not None and rule.owns_index(enrichment.matched_index):
        if enrichment.matched_id is not None:
            return enrichment.matched_id
        if internal is not None:
            return internal
        standard = next((v for v in enrichment.indicator_ids if _STANDARD_ID.match(v)), None)
        if standard is not None:
            return standard
        return AlertError(
            f"threat.enrichments[{enrichment.position}] is from our index "
            f"{enrichment.matched_index} but has no matched.id and no indicator.id"
        )
    signature = any(_STANDARD_ID.match(value) for value in enrichment.indicator_ids)
    if rule.trust_indicator_ids and internal is not None and signature:
        return internal
    return None


# --- sighting payloads ----------------------------------------------------------------------


class AlertRef(msgspec.Struct, frozen=True):
    """One alert behind a sighting (for the description and external references)."""

    id: str
    seen: datetime
    """The matched event's time (``original_time``), else the alert's ``@timestamp``."""
    timestamp: datetime
    rule_name: str | None = None
    rule_uuid: str | None = None
    space_id: str | None = None
    matched_fields: tuple[str, ...] = ()
    """The source-event fields that matched this indicator in this alert."""
    url: str | None = None
    """A link to the alert in Kibana (configured ``kibana.url``, else Kibana's own)."""


class SightingPayload(msgspec.Struct, frozen=True):
    """What to record in OpenCTI: ``indicator_id`` was sighted ``count`` times."""

    indicator_id: str
    count: int
    """Distinct alerts that matched the indicator."""
    first_seen: datetime
    last_seen: datetime
    alert_ids: tuple[str, ...]
    rules: tuple[str, ...]
    rule_uuids: tuple[str, ...]
    space_ids: tuple[str, ...]
    alerts: tuple[AlertRef, ...]
    """Ordered by (seen, id)."""
    key: str
    """Deterministic identity: a digest of the indicator id and the alert ids."""

    @property
    def stix_id(self) -> str:
        """A STIX id that is the same whenever the same alerts sight the same indicator, so a
        retried page upserts the sighting it already wrote instead of adding one."""
        return f"sighting--{uuid.uuid5(SIGHTING_NAMESPACE, self.key)}"


class Skipped(msgspec.Struct, frozen=True):
    """Part of an alert that was not used, and why."""

    alert_id: str
    reason: str


class Aggregation(msgspec.Struct, frozen=True):
    sightings: tuple[SightingPayload, ...]
    """One per indicator, ordered by indicator id."""
    skipped: tuple[Skipped, ...] = ()


def _ref_order(ref: AlertRef) -> tuple[datetime, str, bytes]:
    return (ref.seen, ref.id, msgspec.json.encode(ref))


def _payload(indicator_id: str, refs: Iterable[AlertRef]) -> SightingPayload:
    # One ref per alert id; if an alert was read twice with different content, the choice
    # must not depend on input order (folding pages equals one pass).
    chosen: dict[str, AlertRef] = {}
    for ref in refs:
        kept = chosen.get(ref.id)
        if kept is None or _ref_order(ref) < _ref_order(kept):
            chosen[ref.id] = ref
    ordered = tuple(sorted(chosen.values(), key=_ref_order))
    alert_ids = tuple(sorted(chosen))
    digest = hashlib.sha256("\n".join((indicator_id, *alert_ids)).encode()).hexdigest()
    return SightingPayload(
        indicator_id=indicator_id,
        count=len(ordered),
        first_seen=min(ref.seen for ref in ordered),
        last_seen=max(ref.seen for ref in ordered),
        alert_ids=alert_ids,
        rules=tuple(sorted({ref.rule_name for ref in ordered if ref.rule_name})),
        rule_uuids=tuple(sorted({ref.rule_uuid for ref in ordered if ref.rule_uuid})),
        space_ids=tuple(sorted({ref.space_id for ref in ordered if ref.space_id})),
        alerts=ordered,
        key=digest,
    )


def _alert_url(alert: Alert, space: str | None, kibana_url: str | None) -> str | None:
    if kibana_url and alert.schema is AlertSchema.ALERTS:
        return kibana_alert_link(kibana_url, space or DEFAULT_SPACE, alert.id, alert.timestamp)
    return alert.url


def aggregate(
    alerts: Iterable[Alert], ours: OwnershipRule, kibana_url: str | None = None
) -> Aggregation:
    """Group alerts into one sighting per OpenCTI indicator.

    Only enrichments ``ours`` claims count; each alert counts once per indicator however many
    of its enrichments name that indicator. ``kibana_url`` adds a Kibana link to each 8.x alert.
    """
    refs: dict[str, list[AlertRef]] = {}
    skipped: list[Skipped] = []
    for alert in alerts:
        skipped.extend(Skipped(alert.id, reason) for reason in alert.skipped)
        fields: dict[str, set[str]] = {}
        for enrichment in alert.enrichments:
            claimed = claim(enrichment, ours)
            if isinstance(claimed, AlertError):
                skipped.append(Skipped(alert.id, claimed.reason))
            elif claimed is not None:
                matched = fields.setdefault(claimed, set())
                if enrichment.matched_field:
                    matched.add(enrichment.matched_field)
        if not fields:
            continue
        space = alert.space_ids[0] if alert.space_ids else None
        url = _alert_url(alert, space, kibana_url)
        for indicator_id, matched in fields.items():
            refs.setdefault(indicator_id, []).append(
                AlertRef(
                    id=alert.id,
                    seen=alert.seen,
                    timestamp=alert.timestamp,
                    rule_name=alert.rule_name,
                    rule_uuid=alert.rule_uuid,
                    space_id=space,
                    matched_fields=tuple(sorted(matched)),
                    url=url,
                )
            )
    sightings = tuple(_payload(key, refs[key]) for key in sorted(refs))
    return Aggregation(sightings=sightings, skipped=tuple(skipped))


def merge_sightings(payloads: Iterable[SightingPayload]) -> tuple[SightingPayload, ...]:
    """Combine payloads of the same indicator (e.g. from several pages): the union of their
    alerts, so counts add up for disjoint pages and an alert read twice still counts once."""
    refs: dict[str, list[AlertRef]] = {}
    for payload in payloads:
        refs.setdefault(payload.indicator_id, []).extend(payload.alerts)
    return tuple(_payload(key, refs[key]) for key in sorted(refs))


def format_time(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (the form Kibana writes)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def describe(payload: SightingPayload) -> str:
    """A short human description of a sighting, for the OpenCTI ``description`` field."""
    noun = "alert" if payload.count == 1 else "alerts"
    rules = ", ".join(payload.rules) if payload.rules else "an indicator match rule"
    fields = sorted({field for ref in payload.alerts for field in ref.matched_fields})
    text = (
        f"{payload.count} Elastic Security indicator match {noun} from {rules}, "
        f"{format_time(payload.first_seen)} to {format_time(payload.last_seen)}"
    )
    if fields:
        text += f"; matched on {', '.join(fields)}"
    return text + "."


def kibana_alert_link(
    kibana_url: str,
    space: str,
    alert_id: str,
    timestamp: datetime,
    index: str | None = None,
) -> str:
    """Kibana's alert-details link (``/app/security/alerts/redirect/<id>``, Kibana 8.8+), in the
    alert's space (``/s/<space>``, omitted for the default space)."""
    base = kibana_url.rstrip("/")
    prefix = f"/s/{quote(space, safe='')}" if space and space != DEFAULT_SPACE else ""
    alias = index or f"{ALERTS_ALIAS_PREFIX}{space or DEFAULT_SPACE}"
    return (
        f"{base}{prefix}/app/security/alerts/redirect/{quote(alert_id, safe='')}"
        f"?index={quote(alias, safe='')}&timestamp={quote(format_time(timestamp), safe=':')}"
    )


# --- paging through alerts ------------------------------------------------------------------


class AlertCursor(msgspec.Struct, frozen=True, order=True):
    """Position of the last alert consumed: its sort values (ordered like Elasticsearch does).

    ``timestamp_ms`` is the alert ``@timestamp`` in epoch milliseconds, which is both what
    Elasticsearch returns as the sort value of a ``date`` field and what ``search_after``
    accepts back, so no date text round trip can shift the cursor.
    """

    timestamp_ms: int
    tiebreaker: str

    @property
    def timestamp(self) -> datetime:
        return _EPOCH + self.timestamp_ms * _MILLISECOND


def epoch_millis(moment: datetime) -> int:
    """Milliseconds since the epoch, rounded down (Elasticsearch ``date`` precision)."""
    return (moment - _EPOCH) // _MILLISECOND


def tiebreaker_field(schema: AlertSchema) -> str:
    """The second sort field, unique per alert."""
    return "kibana.alert.uuid" if schema is AlertSchema.ALERTS else "_id"


def schema_for_index(alerts_index: str) -> AlertSchema:
    """Which alert generation an alerts index pattern reads (``.siem-signals-*`` is 7.x)."""
    return AlertSchema.SIGNALS if alerts_index.startswith(".siem-signals") else AlertSchema.ALERTS


SOURCE_FIELDS: Final = (
    "@timestamp",
    "kibana.alert.uuid",
    "kibana.alert.original_time",
    "kibana.alert.rule.name",
    "kibana.alert.rule.uuid",
    "kibana.alert.rule.type",
    "kibana.alert.url",
    "kibana.space_ids",
    "signal.original_time",
    "signal.rule.name",
    "signal.rule.id",
    "signal.rule.type",
    "threat.enrichments.matched.*",
    "threat.enrichments.indicator.id",
    "threat.enrichments.feed.name",
)
"""Everything ``decode_hit`` reads; alerts also carry the whole source event, left behind."""


def search_body(
    cursor: AlertCursor | None,
    page_size: int,
    since: datetime,
    until: datetime | None = None,
    schema: AlertSchema = AlertSchema.ALERTS,
) -> dict[str, object]:
    """The search request for the next page of indicator-match alerts after ``cursor``.

    Without a cursor the read starts at ``since`` (first run: now - initial lookback); with one,
    the cursor wins, so alerts created while the connector was down are still read. ``until``
    (now - a settle delay) keeps alerts that may not be searchable yet out of the page: Kibana
    stamps ``@timestamp`` before the bulk write becomes visible, and the cursor must never pass
    an alert that a later poll could still see appear. To use a point in time, add ``pit`` and
    drop the index from the request; Elasticsearch then appends ``_shard_doc`` to each hit's
    ``sort``, which ``next_cursor`` ignores.
    """
    bounds: dict[str, object] = {
        "gte": cursor.timestamp_ms if cursor is not None else epoch_millis(since),
        "format": "epoch_millis",
    }
    if until is not None:
        bounds["lte"] = epoch_millis(until)
    tiebreak = tiebreaker_field(schema)
    tiebreak_sort: dict[str, object] = {"order": "asc"}
    if schema is AlertSchema.ALERTS:
        tiebreak_sort["unmapped_type"] = "keyword"
    body: dict[str, object] = {
        "size": page_size,
        "track_total_hits": False,
        "_source": list(SOURCE_FIELDS),
        "query": {
            "bool": {
                "filter": [
                    {"range": {"@timestamp": bounds}},
                    {
                        "bool": {
                            "should": [
                                {"term": {"kibana.alert.rule.type": THREAT_MATCH_RULE_TYPE}},
                                {"term": {"signal.rule.type": THREAT_MATCH_RULE_TYPE}},
                            ],
                            "minimum_should_match": 1,
                        }
                    },
                ]
            }
        },
        "sort": [{"@timestamp": {"order": "asc"}}, {tiebreak: tiebreak_sort}],
    }
    if cursor is not None:
        body["search_after"] = [cursor.timestamp_ms, cursor.tiebreaker]
    return body


Hit: TypeAlias = Mapping[str, object] | bytes | str


def _sort_position(sort: object) -> AlertCursor | None:
    if not isinstance(sort, list) or len(sort) < 2:
        return None
    stamp, tiebreak = sort[0], sort[1]
    if not isinstance(tiebreak, str) or isinstance(stamp, bool):
        return None
    if isinstance(stamp, int):
        return AlertCursor(stamp, tiebreak)
    parsed = parse_time(stamp) if isinstance(stamp, str) else None
    return AlertCursor(epoch_millis(parsed), tiebreak) if isinstance(parsed, datetime) else None


def hit_position(hit: Hit) -> AlertCursor | None:
    """Where a hit sits in the alert order: its ``sort`` values when the search returned them,
    else its ``@timestamp`` and alert id; None when it has neither."""
    if isinstance(hit, Mapping):
        position = _sort_position(hit.get("sort"))
        if position is not None:
            return position
    decoded = decode_hit(hit)
    if isinstance(decoded, Failure):
        return None
    alert = decoded.unwrap()
    return AlertCursor(epoch_millis(alert.timestamp), alert.id)


def next_cursor(cursor: AlertCursor | None, hits: Sequence[Hit]) -> AlertCursor | None:
    """The cursor after consuming ``hits``: the furthest hit position, never behind ``cursor``.

    Malformed hits still move the cursor (through their ``sort`` values) so they are reported
    once, not on every poll.
    """
    positions = [position for hit in hits if (position := hit_position(hit)) is not None]
    if cursor is not None:
        positions.append(cursor)
    return max(positions) if positions else None


def cursor_to_state(cursor: AlertCursor) -> dict[str, object]:
    """The cursor as a JSON-ready dict, for the connector state."""
    return {"timestamp_ms": cursor.timestamp_ms, "tiebreaker": cursor.tiebreaker}


def cursor_from_state(value: object) -> Result[AlertCursor | None, AlertError]:
    """Read a cursor back from the connector state (None: never polled)."""
    if value is None:
        return Success(None)
    try:
        return Success(msgspec.convert(value, AlertCursor))
    except msgspec.ValidationError as error:
        return Failure(AlertError(f"invalid alert cursor in state: {error}"))
