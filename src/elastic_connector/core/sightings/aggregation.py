"""Indicator-match alerts -> OpenCTI sighting payloads, and the cursor that pages through alerts.

Counting rule: a sighting's ``count`` is the number of *distinct matches* of the indicator: each
distinct alert counts once (Kibana writes one enrichment per matched field, so an alert that
matched one indicator on ``source.ip`` and ``source.port`` carries it twice and still counts
once), plus, for an alert that stands for suppressed duplicates, its final
``kibana.alert.suppression.docs_count`` (``suppressed_payloads``, written once the alert can no
longer change: ``suppression_final_at``). Closed alerts count only with ``include_closed``;
building-block alerts count like any other (they are real matches that Kibana only hides from
the default alerts table).

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

Pages never cross a minute boundary of ``@timestamp`` (``PAGE_GRID_MS``) and every poll reads up
to such a boundary (``grid_floor``): a page is then a function of where it starts and of the
alerts of its minute only, not of when it was read, so a page read again after a crash is the
same page (same alerts, same sighting id: ``scoped``).
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

from elastic_connector.core.config.model import Config
from elastic_connector.core.sightings.alerts import (
    ENRICHMENT_TYPE_INDICATOR_MATCH,
    THREAT_MATCH_RULE_TYPE,
    Alert,
    AlertError,
    AlertSchema,
    Enrichment,
    decode_hit,
    parse_time,
)

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
    counted: bool = True
    """False for a closed alert (without ``include_closed``): it dates the page, not counted."""


class SightingPayload(msgspec.Struct, frozen=True):
    """What to record in OpenCTI: ``indicator_id`` was sighted ``count`` times."""

    indicator_id: str
    count: int
    """Distinct matches: the counted alerts, or the suppressed matches of ``suppressed_of``."""
    first_seen: datetime
    last_seen: datetime
    alert_ids: tuple[str, ...]
    rules: tuple[str, ...]
    rule_uuids: tuple[str, ...]
    space_ids: tuple[str, ...]
    alerts: tuple[AlertRef, ...]
    """Ordered by (seen, id)."""
    key: str
    """Deterministic identity: a digest of the indicator id and the alert ids, or of the page
    (``scoped``)."""
    detected: datetime | None = None
    """The latest detection these matches stand for (None: the latest alert ``@timestamp``)."""
    suppressed_of: str | None = None
    """Set on the payload of an alert's suppressed matches (``suppressed_payloads``)."""

    @property
    def detection(self) -> datetime:
        if self.detected is not None:
            return self.detected
        return max(ref.timestamp for ref in self.alerts)

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
        count=sum(1 for ref in ordered if ref.counted),
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


def _claims(alert: Alert, ours: OwnershipRule, skipped: list[Skipped]) -> dict[str, set[str]]:
    """Indicator id -> the fields it matched on, for the enrichments of ``alert`` that are ours."""
    fields: dict[str, set[str]] = {}
    for enrichment in alert.enrichments:
        claimed = claim(enrichment, ours)
        if isinstance(claimed, AlertError):
            skipped.append(Skipped(alert.id, claimed.reason))
        elif claimed is not None:
            matched = fields.setdefault(claimed, set())
            if enrichment.matched_field:
                matched.add(enrichment.matched_field)
    return fields


def _ref(
    alert: Alert, matched: set[str], kibana_url: str | None, *, counted: bool = True
) -> AlertRef:
    space = alert.space_ids[0] if alert.space_ids else None
    return AlertRef(
        id=alert.id,
        seen=alert.seen,
        timestamp=alert.timestamp,
        rule_name=alert.rule_name,
        rule_uuid=alert.rule_uuid,
        space_id=space,
        matched_fields=tuple(sorted(matched)),
        url=_alert_url(alert, space, kibana_url),
        counted=counted,
    )


def counts(alert: Alert, include_closed: bool) -> bool:
    """Whether an alert's matches are counted: closed alerts only with ``include_closed``
    (``sightings.include_closed``); building-block alerts always (see the module notes)."""
    return include_closed or not alert.closed


def aggregate(
    alerts: Iterable[Alert],
    ours: OwnershipRule,
    kibana_url: str | None = None,
    *,
    include_closed: bool = True,
) -> Aggregation:
    """Group alerts into one sighting per OpenCTI indicator.

    Only enrichments ``ours`` claims count; each alert counts once per indicator however many
    of its enrichments name that indicator. ``kibana_url`` adds a Kibana link to each 8.x alert.
    An alert that ``counts`` rejects (closed) still dates its page but adds nothing to ``count``.
    """
    refs: dict[str, list[AlertRef]] = {}
    skipped: list[Skipped] = []
    for alert in alerts:
        skipped.extend(Skipped(alert.id, reason) for reason in alert.skipped)
        counted = counts(alert, include_closed)
        for indicator_id, matched in _claims(alert, ours, skipped).items():
            refs.setdefault(indicator_id, []).append(
                _ref(alert, matched, kibana_url, counted=counted)
            )
    sightings = tuple(_payload(key, refs[key]) for key in sorted(refs))
    return Aggregation(sightings=sightings, skipped=tuple(skipped))


def scoped(payload: SightingPayload, scope: str) -> SightingPayload:
    """``payload`` identified by ``scope`` (a page's extent, an alert's suppressed matches)
    instead of its alert ids: the same scope gives the same sighting STIX id whichever alerts
    it holds when it is read again (closed since, for instance)."""
    digest = hashlib.sha256(f"{scope}\n{payload.indicator_id}".encode()).hexdigest()
    return msgspec.structs.replace(payload, key=digest)


# --- alert suppression ----------------------------------------------------------------------

DEFAULT_RULE_INTERVAL: Final = timedelta(minutes=5)
"""Kibana's default rule schedule, when an alert does not say its rule's interval."""


def suppression_final_at(alert: Alert) -> datetime | None:
    """When an alert that stands for suppressed matches can no longer change, or None when it
    is not a suppressed alert.

    Kibana folds a match into an existing alert only while that alert's ``kibana.alert.start``
    is inside the rule's suppression window (``duration``; without one, only within the rule
    execution that created it), and never into a closed alert. A rule execution that started
    inside the window can still write until it ends, at most one rule interval later.
    """
    suppression = alert.suppression
    if suppression is None:
        return None
    anchor = alert.alert_start or alert.timestamp
    window = timedelta(milliseconds=suppression.window_ms or 0)
    interval = (
        timedelta(milliseconds=alert.rule_interval_ms)
        if alert.rule_interval_ms
        else DEFAULT_RULE_INTERVAL
    )
    return anchor + window + interval


def suppressed_payloads(
    alert: Alert, ours: OwnershipRule, kibana_url: str | None = None
) -> tuple[SightingPayload, ...]:
    """The sightings of an alert's suppressed matches (its final ``docs_count``), one per
    indicator it sights, each identified by the alert (written once, never twice)."""
    suppression = alert.suppression
    if suppression is None or suppression.docs_count <= 0:
        return ()
    skipped: list[Skipped] = []
    payloads: list[SightingPayload] = []
    for indicator_id, matched in sorted(_claims(alert, ours, skipped).items()):
        ref = _ref(alert, matched, kibana_url)
        first = suppression.start or alert.seen
        last = max(suppression.end or first, first)
        base = _payload(indicator_id, [ref])
        payload = msgspec.structs.replace(
            base,
            count=suppression.docs_count,
            first_seen=first,
            last_seen=last,
            detected=alert.detected,
            suppressed_of=alert.id,
        )
        payloads.append(scoped(payload, f"suppressed:{alert.id}"))
    return tuple(payloads)


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
    rules = ", ".join(payload.rules) if payload.rules else "an indicator match rule"
    fields = sorted({field for ref in payload.alerts for field in ref.matched_fields})
    if payload.suppressed_of is not None:
        noun = "match" if payload.count == 1 else "matches"
        text = (
            f"{payload.count} more {noun} suppressed into Elastic Security alert "
            f"{payload.suppressed_of} from {rules}, "
            f"{format_time(payload.first_seen)} to {format_time(payload.last_seen)}"
        )
    else:
        noun = "alert" if payload.count == 1 else "alerts"
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


PAGE_GRID_MS: Final = 60_000
"""Pages never cross a boundary of this grid of ``@timestamp`` (see the module notes)."""


def grid_cell(timestamp_ms: int) -> int:
    """The grid cell (minute) of an alert ``@timestamp`` in epoch milliseconds."""
    return timestamp_ms // PAGE_GRID_MS


def grid_floor(moment: datetime) -> datetime:
    """``moment`` rounded down to the page grid: where a poll that may read up to ``moment``
    stops, so that a poll never ends inside a minute that a later poll would read further."""
    return _EPOCH + (epoch_millis(moment) // PAGE_GRID_MS) * PAGE_GRID_MS * _MILLISECOND


SOURCE_FIELDS: Final = (
    "@timestamp",
    "kibana.alert.uuid",
    "kibana.alert.original_time",
    "kibana.alert.start",
    "kibana.alert.last_detected",
    "kibana.alert.workflow_status",
    "kibana.alert.building_block_type",
    "kibana.alert.suppression.*",
    "kibana.alert.rule.interval",
    "kibana.alert.rule.parameters.alert_suppression.*",
    "signal.status",
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
    (exclusive; now - a settle delay, on the page grid) keeps alerts that may not be searchable
    yet out of the page: Kibana stamps ``@timestamp`` before the bulk write becomes visible, and
    the cursor must never pass an alert that a later poll could still see appear. To use a
    point in time, add ``pit`` and drop the index from the request; Elasticsearch then appends
    ``_shard_doc`` to each hit's ``sort``, which ``next_cursor`` ignores.
    """
    bounds: dict[str, object] = {
        "gte": cursor.timestamp_ms if cursor is not None else epoch_millis(since),
        "format": "epoch_millis",
    }
    if until is not None:
        bounds["lt"] = epoch_millis(until)
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


# --- what the platform did with a write -----------------------------------------------------


class StoredSighting(msgspec.Struct, frozen=True):
    """A sighting as OpenCTI holds it (read back after a write)."""

    id: str
    count: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    confidence: int | None = None
    marking_ids: tuple[str, ...] = ()
    """Internal and standard ids of its markings."""
    reference_ids: tuple[str, ...] = ()
    """Internal ids of its external references."""


def count_problem(
    *,
    count: int,
    first_seen: datetime,
    last_seen: datetime,
    after: StoredSighting,
    before: StoredSighting | None,
    confidence: int | None,
) -> str | None:
    """Why the count OpenCTI holds after a write is not what the platform's upsert rules give,
    or None when it is (or cannot be told).

    The rules (``upsert-utils.js``): the write's dates widen the stored ones; the count is
    *added* when a date widened and *replaced* otherwise; nothing but the STIX ids is applied
    when the writer's confidence is below the sighting's. ``before`` is the sighting as last read
    back (None: unknown); ``confidence`` what the connector sends (None: the user's maximum).
    """
    if after.count is None or after.first_seen is None or after.last_seen is None:
        return None
    if after.last_seen < last_seen or after.first_seen > first_seen:
        held = f" ({after.confidence})" if after.confidence is not None else ""
        ours = f"sightings.confidence {confidence}" if confidence is not None else "the user's"
        return (
            f"OpenCTI did not apply the write: the sighting's confidence{held} is above the "
            f"connector's ({ours}), so OpenCTI keeps its dates and its count ({after.count}) "
            f"and the {count} new match(es) are not counted; an analyst probably raised it"
        )
    if (
        before is not None
        and before.id == after.id
        and before.count is not None
        and before.first_seen is not None
        and before.last_seen is not None
    ):
        widened = first_seen < before.first_seen or last_seen > before.last_seen
        expected = before.count + count if widened else count
        if after.count != expected:
            return (
                f"OpenCTI holds {after.count} where its upsert rules give {expected} "
                f"({before.count} before, {count} written): the sighting was changed outside "
                "the connector"
            )
        return None
    if after.count < count:
        return f"OpenCTI holds {after.count} after a write of {count} matches"
    if after.first_seen < first_seen and after.last_seen > last_seen:
        return (
            f"the sighting's dates already covered this write, so OpenCTI replaced its count by "
            f"{count} instead of adding it: the sighting was changed outside the connector"
        )
    return None
