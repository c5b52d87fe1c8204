"""STIX objects and stream events to what the connector writes to Elasticsearch, or why not:
the planning ``elastic-connector map`` and the daemon run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Final, Literal, TypeAlias

import msgspec

from elastic_connector.api.failures import InputError, type_name
from elastic_connector.api.settings import resolve_config
from elastic_connector.core import json_scan
from elastic_connector.core.actions import Action, Delete, Upsert
from elastic_connector.core.config import Config, Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.stix_input import BadItem, Frame, InputItem, Unreadable, read_frames

_REMOVALS: Final = frozenset({"deleted", "merged"})
_encoder: Final = msgspec.json.Encoder(decimal_format="number")
"""Decimals (``json.load(..., parse_float=Decimal)``) are the numbers they stand for."""
_document: Final = msgspec.json.Decoder(dict[str, object])


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
        return InputError(f"related must be a list of STIX objects, not {type_name(related)}")
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
        return InputError(f"now must be a datetime, not {type_name(now)}")
    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    chosen = resolve_config(config)
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
        f"not {type_name(data)}"
    )


def _plain(data: Mapping[object, object] | Sequence[object]) -> object:
    return dict(data) if isinstance(data, Mapping) else list(data)


def _flatten(value: Mapping[str, object], prefix: str, flat: dict[str, object]) -> None:
    for key, item in value.items():
        if isinstance(item, dict):
            _flatten(item, f"{prefix}{key}.", flat)
        else:
            flat[f"{prefix}{key}"] = item
