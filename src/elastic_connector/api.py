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
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Final, Literal, TypeAlias, cast

import msgspec
from returns.result import Failure

from elastic_connector.core import json_scan
from elastic_connector.core.actions import Action, Delete, Upsert
from elastic_connector.core.config import Config, Mode, build_config
from elastic_connector.core.config.load import Layer
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.pattern import ComparisonSite, comparisons, parse, render
from elastic_connector.core.pattern.parser import render_literal, render_path
from elastic_connector.core.pattern.tree import Comparison
from elastic_connector.core.sightings import Alert, aggregate, decode_hit, ownership_for
from elastic_connector.core.sightings.aggregation import (
    SightingPayload,
    counts,
    format_time,
    suppressed_payloads,
)
from elastic_connector.core.sightings.alert_input import alert_records
from elastic_connector.core.stix_input import BadItem, Frame, InputItem, Unreadable, read_frames

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

_CONFIG_SOURCE: Final = "config"
_REMOVALS: Final = frozenset({"deleted", "merged"})
_encoder: Final = msgspec.json.Encoder(decimal_format="number")
"""Decimals (``json.load(..., parse_float=Decimal)``) are the numbers they stand for."""
_document: Final = msgspec.json.Decoder(dict[str, object])


# --- failures -------------------------------------------------------------------------------


class InputError(msgspec.Struct, frozen=True):
    """The input (or ``now``, or ``config``) could not be used at all: ``reason`` says why;
    ``problems`` lists every invalid setting of a ``config``."""

    reason: str
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "; ".join((self.reason, *self.problems))

    def to_dict(self) -> dict[str, object]:
        return {"error": self.reason, "problems": list(self.problems)}


class InvalidPattern(msgspec.Struct, frozen=True, kw_only=True):
    """Why a text is not a STIX 2.1 pattern: ``position`` (0-based character offset),
    ``expected`` there, the offending text ``found`` (empty at the end of the text)."""

    message: str
    position: int
    expected: tuple[str, ...] = ()
    found: str = ""

    def __str__(self) -> str:
        return f"{self.message} at position {self.position}"

    def to_dict(self) -> dict[str, object]:
        return {
            "error": self.message,
            "position": self.position,
            "expected": list(self.expected),
            "found": self.found,
        }


# --- configuration --------------------------------------------------------------------------


def make_config(settings: Mapping[str, object] | None = None) -> Config | InputError:
    """A ``Config`` from a mapping shaped like ``config.yml`` (``{"connector": {"mode":
    "stix"}}``) over the defaults, validated as the commands validate it; the connection
    settings the offline commands do not need may be left out. Every problem is reported."""
    if settings is None:
        return _defaults()
    if not isinstance(cast(object, settings), Mapping):  # a notebook passes anything
        return InputError(f"config must be a mapping like config.yml, not {_kind(settings)}")
    built = build_config([Layer(_CONFIG_SOURCE, settings)], offline=True)
    if isinstance(built, Failure):
        return InputError("invalid configuration", tuple(str(e) for e in built.failure()))
    return built.unwrap()


@functools.cache
def _defaults() -> Config:
    return build_config([], offline=True).unwrap()


def _config(config: Config | Mapping[str, object] | None) -> Config | InputError:
    if isinstance(config, Config):
        return config
    return make_config(config)


# --- patterns -------------------------------------------------------------------------------


class PatternComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One comparison (or ``EXISTS`` test) of a pattern, in canonical text: ``path`` (e.g.
    ``file:hashes.'SHA-256'``), ``operator`` (``=``, ``IN``, ``MATCHES``..., ``EXISTS``),
    ``value`` (a STIX literal such as ``'198.51.100.7'``; None for ``EXISTS``), ``negated``
    (``NOT``), and ``observation``: which ``[...]`` it sits in, from 0."""

    observation: int
    path: str
    operator: str
    value: str | None
    negated: bool = False

    def to_dict(self) -> dict[str, object]:
        return msgspec.structs.asdict(self)


class ParsedPattern(msgspec.Struct, frozen=True, kw_only=True):
    """A STIX pattern, parsed: ``pattern`` is its canonical text (``str()`` gives it too), which
    parses back to the same pattern; ``comparisons`` in text order."""

    pattern: str
    comparisons: tuple[PatternComparison, ...]

    def __str__(self) -> str:
        return self.pattern

    def to_dict(self) -> dict[str, object]:
        return {"pattern": self.pattern, "comparisons": [c.to_dict() for c in self.comparisons]}


def parse_pattern(text: str) -> ParsedPattern | InvalidPattern:
    """Parse a STIX 2.1 pattern (the parser the mapping uses), or say where and why it is not
    one."""
    parsed = parse(text)
    if isinstance(parsed, Failure):
        error = parsed.failure()
        return InvalidPattern(
            message=error.message,
            position=error.position,
            expected=error.expected,
            found=error.found,
        )
    tree = parsed.unwrap()
    return ParsedPattern(
        pattern=render(tree), comparisons=tuple(_comparison(site) for site in comparisons(tree))
    )


def _comparison(site: ComparisonSite) -> PatternComparison:
    test = site.test
    if isinstance(test, Comparison):
        operator, value = test.op.value, render_literal(test.value)
    else:
        operator, value = "EXISTS", None
    return PatternComparison(
        observation=site.observation,
        path=render_path(test.path),
        operator=operator,
        value=value,
        negated=test.negated,
    )


# --- STIX to Elasticsearch ------------------------------------------------------------------


def _action_line(kind: str, index: str, document_id: str) -> bytes:
    return _encoder.encode({kind: {"_index": index, "_id": document_id}}) + b"\n"


class Exported(msgspec.Struct, frozen=True, kw_only=True):
    """The object is exported: ``source`` (the document's JSON, byte for byte what is written)
    goes to ``index`` with ``_id`` ``id`` (the OpenCTI id, else the STIX id); ``stix_id`` is the
    object's STIX id."""

    outcome: ClassVar[Literal["exported"]] = "exported"
    index: str
    id: str
    stix_id: str = ""
    source: bytes

    @property
    def document(self) -> dict[str, object]:
        """The document, decoded (a new dict on every call)."""
        return _document.decode(self.source)

    def fields(self) -> dict[str, object]:
        """The document flattened to dotted field names (``threat.indicator.ip``), as Kibana's
        Discover shows them; lists stay lists."""
        flat: dict[str, object] = {}
        _flatten(self.document, "", flat)
        return flat

    def bulk_lines(self) -> bytes:
        """Its ``_bulk`` NDJSON: the ``index`` action line, then the document."""
        return _action_line("index", self.index, self.id) + self.source + b"\n"

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "index": self.index,
            "id": self.id,
            "stix_id": self.stix_id,
            "document": self.document,
        }


class Withheld(msgspec.Struct, frozen=True, kw_only=True):
    """The export policy keeps the object out of Elasticsearch (and deletes an earlier export
    of it): ``code`` (``revoked``, ``expired``, ``tlp``, ``unknown_marking``,
    ``unreadable_marking``, ``pattern_type``, ``detection``, ``invalid_pattern``,
    ``unmappable``...), ``reason`` in words, ``subject`` what the code is about (the unknown
    marking's id) when there is one. ``id`` is the document's (the OpenCTI id, else the STIX
    id), ``stix_id`` the object's."""

    outcome: ClassVar[Literal["withheld"]] = "withheld"
    index: str
    id: str
    stix_id: str = ""
    code: str
    reason: str
    subject: str = ""

    def bulk_lines(self) -> bytes:
        """Its ``_bulk`` NDJSON: a ``delete`` action line."""
        return _action_line("delete", self.index, self.id)

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, **msgspec.structs.asdict(self)}


class Deleted(msgspec.Struct, frozen=True, kw_only=True):
    """The object was deleted in OpenCTI (``code`` ``deleted``) or merged into another
    (``merged``): its document (``id``) is deleted. ``stix_id`` is the object's (empty for
    the objects a merge removed: the event names only their OpenCTI ids)."""

    outcome: ClassVar[Literal["deleted"]] = "deleted"
    index: str
    id: str
    stix_id: str = ""
    code: str
    reason: str

    def bulk_lines(self) -> bytes:
        """Its ``_bulk`` NDJSON: a ``delete`` action line."""
        return _action_line("delete", self.index, self.id)

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, **msgspec.structs.asdict(self)}


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """Nothing is written for this object or event: it could not be understood. ``id`` is the
    object's id, else where it sits in the input (``line-3``, ``bundle-2``); ``code`` is
    ``undecodable``, ``not_a_stream_event``, ``not_an_indicator`` or ``internal_error``."""

    outcome: ClassVar[Literal["skipped"]] = "skipped"
    id: str
    code: str
    reason: str

    def bulk_lines(self) -> bytes:
        """Nothing: a skip writes nothing."""
        return b""

    def to_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, **msgspec.structs.asdict(self)}


Outcome: TypeAlias = Exported | Withheld | Deleted | Skipped
"""What became of one object or event of the input."""


class MapResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the input became, in input order (a bundle's marking definitions and
    identities first, as the planner reads them), and ``error`` when the input, or what
    followed the outcomes, could not be read at all."""

    outcomes: tuple[Outcome, ...]
    error: InputError | None = None

    @property
    def exported(self) -> tuple[Exported, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Exported))

    @property
    def withheld(self) -> tuple[Withheld, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Withheld))

    @property
    def deleted(self) -> tuple[Deleted, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Deleted))

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Skipped))

    def bulk(self) -> bytes:
        """The ``_bulk`` NDJSON body, exactly what ``elastic-connector map`` prints."""
        return b"".join(o.bulk_lines() for o in self.outcomes)

    def to_dict(self) -> dict[str, object]:
        return {
            "outcomes": [o.to_dict() for o in self.outcomes],
            "error": None if self.error is None else self.error.to_dict(),
        }


def bundle_to_actions(
    bundle: bytes | str | Mapping[str, object] | Sequence[Mapping[str, object]],
    *,
    now: datetime,
    config: Config | Mapping[str, object] | None = None,
) -> MapResult:
    """What ``elastic-connector map`` makes of ``bundle``: the documents to write, the
    deletions, what the policy withheld and what was skipped, with why.

    ``bundle``: a STIX bundle, a list of STIX objects, one object, or OpenCTI stream events
    (``{"id", "event", "data"}``), as dicts or as JSON text or bytes in any layout, NDJSON
    included. ``now`` decides expiry and is every document's ``@timestamp`` (naive means UTC).
    The mode (``connector.mode``), ``max_tlp``, ``require_detection`` and every other policy
    option of ``config`` apply as in the daemon."""
    outcomes: list[Outcome] = []
    for item in iter_bundle_actions(bundle, now=now, config=config):
        if isinstance(item, InputError):
            return MapResult(outcomes=tuple(outcomes), error=item)
        outcomes.append(item)
    return MapResult(outcomes=tuple(outcomes))


def iter_bundle_actions(
    bundle: bytes | str | Mapping[str, object] | Sequence[Mapping[str, object]],
    *,
    now: datetime,
    config: Config | Mapping[str, object] | None = None,
) -> Iterator[Outcome | InputError]:
    """``bundle_to_actions`` one outcome at a time, for inputs too large to hold every
    document; an ``InputError``, if any, comes last."""
    start = _start(now, config, ecs_only=False)
    if isinstance(start, InputError):
        yield start
        return
    text = _stix_bytes(bundle)
    if isinstance(text, InputError):
        yield text
        return
    yield from start.plan(read_frames(text))


def indicator_to_ecs(
    indicator: bytes | str | Mapping[str, object],
    *,
    now: datetime,
    config: Config | Mapping[str, object] | None = None,
    related: Iterable[Mapping[str, object]] = (),
) -> Outcome | InputError:
    """One STIX indicator (or one stream event carrying it) as its ECS threat-indicator
    document, or why it is not exported (``Withheld``) or cannot be read (``Skipped``).

    ``related``: STIX objects it refers to, e.g. the rest of its bundle: marking definitions
    (a custom TLP marking must be known, or the indicator is withheld) and identities (the
    author's name is ``threat.indicator.provider``); other objects are ignored. The mapping is
    ECS whatever ``connector.mode`` says; the policy options of ``config`` apply."""
    start = _start(now, config, ecs_only=True)
    if isinstance(start, InputError):
        return start
    if isinstance(related, str | bytes | Mapping) or not isinstance(related, Iterable):
        return InputError(f"related must be a list of STIX objects, not {_kind(related)}")
    context = _stix_bytes([obj for obj in related if _is_context(obj)])
    if isinstance(context, InputError):
        return InputError(f"related: {context.reason}")
    text = _stix_bytes(indicator)
    if isinstance(text, InputError):
        return text
    for _ in start.plan(read_frames(context)):
        pass  # only what the planner learns from them matters
    items = list(read_frames(text))
    if len(items) != 1:
        return InputError(f"expected one STIX object or stream event, got {len(items)}")
    outcomes = list(start.plan(items))
    if outcomes:
        return outcomes[-1]  # a merge's own outcome comes after the deletions of the merged
    # Only a frame can come to nothing (a bad item is a skip, the unreadable an error).
    item = items[0]
    return Skipped(
        id=(_object_id(item) or item.id) if isinstance(item, Frame) else "item-1",
        code="not_an_indicator",
        reason="not an indicator: only indicators become ECS documents",
    )


def _is_context(obj: object) -> bool:
    return isinstance(obj, Mapping) and obj.get("type") in ("marking-definition", "identity")


def _object_id(frame: Frame) -> str | None:
    envelope = dict(json_scan.members(frame.data))
    return json_scan.string_member(envelope.get("data", b""), "id")


class _Planner:
    """The planner's state across one input: the marking definitions and author names seen."""

    def __init__(self, settings: PlanSettings, now: datetime) -> None:
        self.settings = settings
        self.now = now
        self.state = PlannerState()
        self.authors: dict[str, str] = {}

    def plan(self, items: Iterable[InputItem]) -> Iterator[Outcome | InputError]:
        for item in items:
            if isinstance(item, Unreadable):
                yield InputError(item.reason)
                return
            if isinstance(item, BadItem):
                reason = f"not a stream event: {item.reason}"
                yield Skipped(id=item.where, code="not_a_stream_event", reason=reason)
                continue
            try:
                plan = plan_frame(
                    item.id,
                    item.event,
                    item.data,
                    self.state,
                    self.settings,
                    self.now,
                    self.authors,
                )
            except Exception as error:
                # As in the daemon: a bug in planning costs this event, reported, not the run.
                reason = f"internal error while planning (a bug): {error!r}"
                yield Skipped(id=item.id, code="internal_error", reason=reason)
                continue
            self.state = plan.state
            self.authors.update(plan.authors)
            for action in plan.actions:
                yield _outcome(action, plan.object_id)


def _outcome(action: Action, stix_id: str) -> Outcome:
    if isinstance(action, Upsert):
        return Exported(index=action.index, id=action.id, stix_id=stix_id, source=action.document)
    if isinstance(action, Delete):
        if action.code in _REMOVALS:
            return Deleted(
                index=action.index,
                id=action.id,
                # A merge also deletes the documents of the objects merged away, not this one.
                stix_id=stix_id if action.code != "merged" else "",
                code=action.code,
                reason=action.reason,
            )
        return Withheld(
            index=action.index,
            id=action.id,
            stix_id=stix_id,
            code=action.code,
            reason=action.reason,
            subject=action.subject,
        )
    return Skipped(id=action.object_id or action.event_id, code=action.code, reason=action.reason)


def _start(
    now: object, config: Config | Mapping[str, object] | None, *, ecs_only: bool
) -> _Planner | InputError:
    if not isinstance(now, datetime):
        return InputError(f"now must be a datetime, not {_kind(now)}")
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    chosen = _config(config)
    if isinstance(chosen, InputError):
        return chosen
    if ecs_only and chosen.connector.mode is Mode.STIX:
        connector = msgspec.structs.replace(chosen.connector, mode=Mode.ECS)
        chosen = msgspec.structs.replace(chosen, connector=connector)
    return _Planner(PlanSettings.from_config(chosen), moment)


def _stix_bytes(data: object) -> bytes | InputError:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    if isinstance(data, Mapping | Sequence):
        try:
            return _encoder.encode(data if isinstance(data, dict | list) else _plain(data))
        except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as error:
            return InputError(f"not JSON data: {error}")
    return InputError(
        "expected a STIX bundle, STIX objects or stream events (dicts, or JSON text or bytes), "
        f"not {_kind(data)}"
    )


def _plain(data: Mapping[object, object] | Sequence[object]) -> object:
    return dict(data) if isinstance(data, Mapping) else list(data)


def _flatten(value: Mapping[str, object], prefix: str, flat: dict[str, object]) -> None:
    for key, item in value.items():
        if isinstance(item, dict):
            _flatten(item, f"{prefix}{key}.", flat)
        else:
            flat[f"{prefix}{key}"] = item


def _kind(value: object) -> str:
    return type(value).__name__


# --- alerts to sightings --------------------------------------------------------------------


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
    chosen = _config(config)
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
            reason = f"not an alert object (got {_kind(item)})"
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
        f"not {_kind(alerts)}"
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
