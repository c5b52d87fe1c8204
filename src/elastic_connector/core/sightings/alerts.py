"""Elastic Security detection alerts, typed: what the sighting loop reads from each alert.

Two generations of documents are read:

* 8.x/9.x alerts (``.alerts-security.alerts-<space>``): Kibana writes the ``kibana.alert.*``,
  ``kibana.space_ids`` and ``event.*`` fields as flattened dotted keys at the top of ``_source``
  (``"kibana.alert.original_time": "..."``) while the source event keeps its nested objects and
  ``threat.enrichments`` is a nested array;
* 7.x signals (``.siem-signals-<space>-*``): ``signal.rule.*`` and ``signal.original_time`` as
  nested objects.

Kibana also *updates* alerts in place (``kibana.alert.workflow_status`` when an analyst closes
one; ``kibana.alert.suppression.docs_count``, ``kibana.alert.suppression.end`` and
``kibana.alert.last_detected`` when alert suppression folds another match into an existing alert,
``@timestamp`` untouched). The fields that say how long an alert can still change are read into
``Suppression`` (see ``core.sightings.aggregation.suppression_final_at``).

Any document may mix both writings (an ingest pipeline, a reindex or a test fixture can rewrite
one into the other), so every field is read with ``get_path``, which accepts any split of a path
into dotted keys and nested objects.

An indicator-match alert carries one ``threat.enrichments[]`` entry per *matched field*:
Kibana does not merge them, so one indicator document can appear several times in one alert.
Deciding which enrichments are ours, and counting, happens in ``core.sightings``.

Decoding never raises: a hit that is not a usable alert is a ``Failure(AlertError)`` naming the
field and the reason; a malformed enrichment inside a good alert is dropped and its reason kept in
``Alert.skipped``.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

ENRICHMENT_TYPE_INDICATOR_MATCH: Final = "indicator_match_rule"
"""``matched.type`` of an enrichment written by an indicator-match rule."""

THREAT_MATCH_RULE_TYPE: Final = "threat_match"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Alias or backing index (rollover suffix: six digits). Space ids may hold hyphens and digits.
_SIGNALS_INDEX: Final = re.compile(r"^\.siem-signals-(?P<space>.+?)(?:-\d{6})?$")
_ALERTS_INDEX: Final = re.compile(
    r"^(?:\.internal)?\.alerts-security\.alerts-(?P<space>.+?)(?:-\d{6})?$"
)


class AlertSchema(enum.Enum):
    """Which generation of Kibana wrote the alert; it decides the sort tiebreaker and links."""

    ALERTS = "alerts"
    """8.x/9.x ``.alerts-security.alerts-<space>``: ``kibana.alert.*`` fields."""
    SIGNALS = "signals"
    """7.x ``.siem-signals-<space>-*``: ``signal.*`` fields."""


class AlertError(msgspec.Struct, frozen=True):
    """Why a hit is not a usable alert: ``reason`` names the field; ``alert_id`` when known."""

    reason: str
    alert_id: str | None = None

    def __str__(self) -> str:
        return f"alert {self.alert_id}: {self.reason}" if self.alert_id else self.reason


class Enrichment(msgspec.Struct, frozen=True):
    """One ``threat.enrichments[]`` entry: one indicator document matched on one field."""

    position: int
    """Index in ``threat.enrichments`` (for messages)."""
    matched_id: str | None = None
    """``matched.id``: the ``_id`` of the indicator document that matched."""
    matched_index: str | None = None
    """``matched.index``: the concrete index that document lives in."""
    matched_field: str | None = None
    """``matched.field``: the field of the source event that matched (``source.ip``)."""
    matched_atomic: str | None = None
    """``matched.atomic``: the matched value, as text (Kibana stores numbers for ports)."""
    matched_type: str | None = None
    indicator_ids: tuple[str, ...] = ()
    """``indicator.id``: Kibana's copy of the indicator's ``threat.indicator.id`` (ECS 8.16)."""
    feed_name: str | None = None


class Suppression(msgspec.Struct, frozen=True):
    """Alert suppression on an alert (Kibana 8.6+, rule setting "suppress alerts by").

    The alert stands for ``1 + docs_count`` matches. While the rule's suppression window is open,
    Kibana folds later matches of the same group into this alert *in place*: ``docs_count`` grows
    by one per folded match (``existing + new.docs_count + 1``), ``end`` and the alert's
    ``kibana.alert.last_detected`` move, ``@timestamp`` does not.
    """

    docs_count: int
    """``kibana.alert.suppression.docs_count``: matches folded into this alert so far."""
    start: datetime | None = None
    """``kibana.alert.suppression.start``: the earliest suppressed event."""
    end: datetime | None = None
    """``kibana.alert.suppression.end``: the latest suppressed event."""
    window_ms: int | None = None
    """The rule's suppression window (``kibana.alert.rule.parameters.alert_suppression.duration``);
    None: suppression per rule execution only."""


class Alert(msgspec.Struct, frozen=True):
    """The parts of one detection alert the sighting loop uses."""

    id: str
    """``kibana.alert.uuid`` (8.x; equal to the document ``_id``), else the document ``_id``."""
    timestamp: datetime
    """``@timestamp``: when Kibana created the alert (UTC)."""
    schema: AlertSchema
    original_time: datetime | None = None
    """When the source event happened: ``kibana.alert.original_time`` / ``signal.original_time``."""
    index: str | None = None
    rule_name: str | None = None
    rule_uuid: str | None = None
    rule_type: str | None = None
    space_ids: tuple[str, ...] = ()
    url: str | None = None
    """``kibana.alert.url``: Kibana's own link, present when its ``publicBaseUrl`` is set."""
    enrichments: tuple[Enrichment, ...] = ()
    skipped: tuple[str, ...] = ()
    """Why some enrichments (or the suppression fields) were dropped (one reason each)."""
    workflow_status: str | None = None
    """``kibana.alert.workflow_status`` (7.x ``signal.status``): ``open``, ``acknowledged`` or
    ``closed``, as the analysts last set it."""
    building_block_type: str | None = None
    """``kibana.alert.building_block_type``: set on the alerts of a building-block rule."""
    alert_start: datetime | None = None
    """``kibana.alert.start``: when the alert was created (the suppression window's anchor)."""
    last_detected: datetime | None = None
    """``kibana.alert.last_detected``: the latest detection this alert stands for."""
    rule_interval_ms: int | None = None
    """``kibana.alert.rule.interval`` (``5m``): how often the rule runs."""
    suppression: Suppression | None = None

    @property
    def closed(self) -> bool:
        return self.workflow_status == "closed"

    @property
    def detected(self) -> datetime:
        """The latest detection: ``last_detected`` (moved by suppression), else ``@timestamp``."""
        if self.last_detected is not None and self.last_detected > self.timestamp:
            return self.last_detected
        return self.timestamp

    @property
    def seen(self) -> datetime:
        """When the matched activity was seen: the event's time, else the alert's creation."""
        return self.original_time if self.original_time is not None else self.timestamp


# --- reading fields -------------------------------------------------------------------------


def get_path(source: Mapping[str, object], path: str) -> object | None:
    """The value at ``path`` (``a.b.c``) under any split into dotted keys and nested objects.

    ``{"a.b.c": v}``, ``{"a": {"b": {"c": v}}}`` and ``{"a": {"b.c": v}}`` all give ``v``.
    A JSON ``null`` counts as absent, as in Elasticsearch. When several writings coexist the
    longest dotted key wins (Kibana's flattened form); lists are never traversed.
    """
    return _get_parts(source, path.split("."))


def _get_parts(source: Mapping[str, object], parts: list[str]) -> object | None:
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key not in source:
            continue
        value = source[key]
        if cut == len(parts):
            if value is not None:
                return value
            continue
        if isinstance(value, Mapping):
            found = _get_parts(value, parts[cut:])
            if found is not None:
                return found
    return None


def _kind(value: object) -> str:
    """A JSON type name for messages (never the value: alerts can carry sensitive data)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class _FieldError(Exception):
    """Internal control flow of this module only; never escapes a public function."""


def _string(source: Mapping[str, object], path: str) -> str | None:
    value = get_path(source, path)
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise _FieldError(f"{path} is not a string (got {_kind(value)})")
    return value or None


def _strings(source: Mapping[str, object], path: str) -> tuple[str, ...]:
    value = get_path(source, path)
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise _FieldError(f"{path} is not a string or a list of strings")
    return tuple(item for item in items if isinstance(item, str) and item)


def parse_time(value: object) -> datetime | str:
    """An Elasticsearch ``date`` value (ISO 8601 text or epoch milliseconds) as an aware UTC
    datetime, or the reason it is not one. Text without an offset is UTC, as in Elasticsearch."""
    if isinstance(value, bool):
        return f"not a date (got {_kind(value)})"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return "not a date (not a finite number)"
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            return "epoch milliseconds out of range"
    if not isinstance(value, str):
        return f"not a date (got {_kind(value)})"
    text = value.strip()
    if text.isascii() and text.isdigit() and 8 < len(text) <= 19:
        # Elasticsearch's default date format ends with ``epoch_millis``.
        return parse_time(int(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return f"not an ISO 8601 date: {text[:40]!r}"
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return "date out of range"


def _time(source: Mapping[str, object], path: str) -> datetime | None:
    value = get_path(source, path)
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    parsed = parse_time(value)
    if isinstance(parsed, str):
        raise _FieldError(f"{path} is {parsed}")
    return parsed


def _atomic(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(item if isinstance(item, str) else json.dumps(item) for item in value)
    raise _FieldError(f"matched.atomic is not a value (got {_kind(value)})")


_DURATION: Final = re.compile(r"^\s*(\d{1,9})\s*([smhd])\s*$")
_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_interval(value: object) -> int | None:
    """A Kibana interval (``"5m"``, ``"30s"``, ``"1h"``) in milliseconds, or None."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    return int(match.group(1)) * _UNIT_MS[match.group(2)] if match else None


def _window_ms(source: Mapping[str, object]) -> int | None:
    """The rule's suppression duration ``{"value": 5, "unit": "m"}`` in milliseconds."""
    duration = get_path(source, "kibana.alert.rule.parameters.alert_suppression.duration")
    if not isinstance(duration, Mapping):
        return None
    value, unit = duration.get("value"), duration.get("unit")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value * _UNIT_MS[unit] if isinstance(unit, str) and unit in _UNIT_MS else None


def _suppression(source: Mapping[str, object]) -> Suppression | None:
    count = get_path(source, "kibana.alert.suppression.docs_count")
    if count is None:
        return None
    if isinstance(count, list) and len(count) == 1:
        count = count[0]
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _FieldError(
            f"kibana.alert.suppression.docs_count is not a count (got {_kind(count)})"
        )
    return Suppression(
        docs_count=count,
        start=_time(source, "kibana.alert.suppression.start"),
        end=_time(source, "kibana.alert.suppression.end"),
        window_ms=_window_ms(source),
    )


# --- decoding -------------------------------------------------------------------------------


def space_from_index(index: str) -> str | None:
    """The Kibana space of an alerts index name (``.siem-signals-<space>-000001`` and the 8.x
    ``.internal.alerts-security.alerts-<space>-000001``), or None."""
    for pattern in (_SIGNALS_INDEX, _ALERTS_INDEX):
        match = pattern.match(index)
        if match:
            return match.group("space")
    return None


def _decode_enrichment(position: int, value: object) -> Enrichment | str:
    where = f"threat.enrichments[{position}]"
    if not isinstance(value, Mapping):
        return f"{where} is not an object (got {_kind(value)})"
    try:
        return Enrichment(
            position=position,
            matched_id=_string(value, "matched.id"),
            matched_index=_string(value, "matched.index"),
            matched_field=_string(value, "matched.field"),
            matched_atomic=_atomic(get_path(value, "matched.atomic")),
            matched_type=_string(value, "matched.type"),
            indicator_ids=_strings(value, "indicator.id"),
            feed_name=_string(value, "feed.name"),
        )
    except _FieldError as error:
        return f"{where}: {error}"


def _first(source: Mapping[str, object], *paths: str) -> tuple[str | None, str | None]:
    """The first present string among ``paths``, and the path it came from."""
    for path in paths:
        value = _string(source, path)
        if value is not None:
            return value, path
    return None, None


def _decode_source(
    source: Mapping[str, object], doc_id: str | None, index: str | None
) -> Result[Alert, AlertError]:
    try:
        uuid = _string(source, "kibana.alert.uuid")
    except _FieldError as error:
        return Failure(AlertError(str(error), doc_id))
    alert_id = uuid or doc_id
    if alert_id is None:
        return Failure(AlertError("no alert id (neither _id nor kibana.alert.uuid)"))
    try:
        timestamp = _time(source, "@timestamp")
        if timestamp is None:
            return Failure(AlertError("no @timestamp", alert_id))
        original_time = _time(source, "kibana.alert.original_time")
        if original_time is None:
            original_time = _time(source, "signal.original_time")
        rule_name, name_from = _first(source, "kibana.alert.rule.name", "signal.rule.name")
        rule_uuid, _ = _first(source, "kibana.alert.rule.uuid", "signal.rule.id")
        rule_type, type_from = _first(source, "kibana.alert.rule.type", "signal.rule.type")
        space_ids = _strings(source, "kibana.space_ids")
        url = _string(source, "kibana.alert.url")
        workflow_status, _ = _first(source, "kibana.alert.workflow_status", "signal.status")
        building_block_type = _string(source, "kibana.alert.building_block_type")
    except _FieldError as error:
        return Failure(AlertError(str(error), alert_id))
    # Read without failing the alert: an alert whose suppression fields cannot be read still
    # counts once (the reason is reported).
    skipped: list[str] = []
    try:
        alert_start = _time(source, "kibana.alert.start")
        last_detected = _time(source, "kibana.alert.last_detected")
        suppression = _suppression(source)
    except _FieldError as error:
        skipped.append(str(error))
        alert_start = last_detected = suppression = None
    rule_interval = parse_interval(get_path(source, "kibana.alert.rule.interval"))

    # 8.x keeps legacy ``signal.*`` names only as mapping aliases, never in ``_source``.
    legacy = uuid is None and (
        (index is not None and _SIGNALS_INDEX.match(index) is not None)
        or name_from == "signal.rule.name"
        or type_from == "signal.rule.type"
    )
    if not space_ids and index is not None:
        space = space_from_index(index)
        space_ids = (space,) if space else ()

    raw_enrichments = get_path(source, "threat.enrichments")
    if raw_enrichments is None:
        raw_enrichments = []
    if not isinstance(raw_enrichments, list):
        return Failure(
            AlertError(f"threat.enrichments is not a list (got {_kind(raw_enrichments)})", alert_id)
        )
    enrichments: list[Enrichment] = []
    for position, raw in enumerate(raw_enrichments):
        decoded = _decode_enrichment(position, raw)
        if isinstance(decoded, str):
            skipped.append(decoded)
        else:
            enrichments.append(decoded)
    return Success(
        Alert(
            id=alert_id,
            timestamp=timestamp,
            schema=AlertSchema.SIGNALS if legacy else AlertSchema.ALERTS,
            original_time=original_time,
            index=index,
            rule_name=rule_name,
            rule_uuid=rule_uuid,
            rule_type=rule_type,
            space_ids=space_ids,
            url=url,
            enrichments=tuple(enrichments),
            skipped=tuple(skipped),
            workflow_status=workflow_status,
            building_block_type=building_block_type,
            alert_start=alert_start,
            last_detected=last_detected,
            rule_interval_ms=rule_interval,
            suppression=suppression,
        )
    )


def _load(hit: bytes | str | Mapping[str, object]) -> Mapping[str, object] | AlertError:
    if isinstance(hit, Mapping):
        return hit
    try:
        value: object = msgspec.json.decode(hit)
    except (msgspec.DecodeError, RecursionError, ValueError) as error:
        return AlertError(f"invalid JSON: {str(error)[:120]}")
    if not isinstance(value, Mapping):
        return AlertError(f"not a JSON object (got {_kind(value)})")
    return value


def decode_hit(hit: bytes | str | Mapping[str, object]) -> Result[Alert, AlertError]:
    """Decode one alert: a search hit ``{"_index", "_id", "_source", "sort"?}`` or a bare
    ``_source``, as JSON text or an already decoded object. Never raises."""
    loaded = _load(hit)
    if isinstance(loaded, AlertError):
        return Failure(loaded)
    try:
        if "_source" not in loaded:
            return _decode_source(loaded, None, None)
        source, doc_id, index = loaded["_source"], loaded.get("_id"), loaded.get("_index")
        if not isinstance(source, Mapping):
            return Failure(AlertError(f"_source is not an object (got {_kind(source)})"))
        for name, value in (("_id", doc_id), ("_index", index)):
            if value is not None and not isinstance(value, str):
                return Failure(AlertError(f"{name} is not a string (got {_kind(value)})"))
        return _decode_source(
            source,
            doc_id if isinstance(doc_id, str) and doc_id else None,
            index if isinstance(index, str) and index else None,
        )
    except RecursionError:
        return Failure(AlertError("document nested too deeply"))
