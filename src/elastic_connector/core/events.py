"""One stream event in, the Elasticsearch actions it calls for out.

``plan_frame(event id, event name, data, state, settings, now)`` is the whole core of the
indicator pipeline: decode, apply the export policy, map to a document, and say what to write or
delete. It never raises; an event it cannot understand becomes a ``Skip`` with the reason.

The only state carried from event to event is what TLP level custom marking definitions stand
for (learnt from marking-definition objects on the stream), threaded through ``PlannerState``.
Author names (``threat.indicator.provider``) come in as an argument, ``authors``: the shell
keeps a bounded cache of them, fills it from the identities each ``Plan`` reports seeing
(``Plan.authors``) and, where it can, reads the ones a plan lacked (``Plan.missing_authors``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from elastic_connector.core import stix_mode as stix_documents
from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.config.model import Mode
from elastic_connector.core.indicators import document as indicators
from elastic_connector.core.indicators import ecs
from elastic_connector.core.memo import Latest
from elastic_connector.core.pattern.parser import read_pattern
from elastic_connector.core.pattern.tree import Pattern
from elastic_connector.core.plans import Plan, PlannerState, PlanSettings
from elastic_connector.core.policy.lifetime import expiry
from elastic_connector.core.policy.markings import resolve_markings
from elastic_connector.core.policy.rules import fields_withheld, tlp_allowed
from elastic_connector.core.policy.settings import PolicySettings
from elastic_connector.core.stix import (
    DecodeError,
    Identity,
    Indicator,
    IndicatorFields,
    StixObject,
    StreamEvent,
    opencti_id_of,
    read_event,
    read_typed_frame,
)

__all__ = [
    "CACHEABLE_PATTERN_CHARS",
    "PATTERN_CACHE_SIZE",
    "Plan",
    "PlanSettings",
    "PlannerState",
    "plan_event",
    "plan_frame",
]

PATTERN_CACHE_SIZE: Final = 4096
"""Parsed patterns kept for reuse: an update re-sends the pattern of the indicator it changes."""
CACHEABLE_PATTERN_CHARS: Final = 4096
"""Longer patterns are parsed every time: cached, a feed of huge patterns (megabytes each)
would keep thousands of them, and their trees, in memory (the cache holds at most ~50 MB)."""

# Parsing is pure and its results are immutable, so a parse can be shared by every event with
# the same pattern text.
_parse: Final = functools.lru_cache(maxsize=PATTERN_CACHE_SIZE)(read_pattern)


_NO_AUTHORS: Final[Mapping[str, str]] = {}

# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d). A compiled module's functions need
# none: they are called directly.
_encode_document: Final = ecs.encode_document
_StreamEvent: Final = StreamEvent
_Indicator: Final = Indicator
_Pattern: Final = Pattern
_IndicatorDocument: Final = ecs.IndicatorDocument
_Plan: Final = Plan
_Upsert: Final = Upsert
_STIX: Final = Mode.STIX
_UPSERT_EVENTS: Final = ("create", "update")


class _Planning:
    """What planning reads from the settings for every event, read once per settings object:
    for compiled code, each read of a Struct's field is a generic attribute lookup, and this
    class's are members of a C struct (docs/performance.md §7f)."""

    def __init__(self, settings: PlanSettings) -> None:
        self.stix: bool = settings.mode is _STIX
        self.index: str = settings.index
        self.policy: PolicySettings = settings.policy
        self.indicator_ttl: timedelta | None = settings.policy.indicator_ttl
        self.feed_name: str = settings.feed_name
        self.opencti_url: str | None = settings.opencti_url


_plannings: Final = Latest(_Planning)


def plan_frame(
    event_id: str,
    event: str,
    data: bytes | str,
    state: PlannerState,
    settings: PlanSettings,
    now: datetime,
    authors: Mapping[str, str] = _NO_AUTHORS,
) -> Plan:
    """Decode one SSE data frame and plan it; undecodable frames become a ``Skip`` naming the
    object when its id can be read. ``authors``: identity id -> name, known to the caller."""
    planning = _plannings.of(settings)
    # The ecs modes never read an object's JSON text: their events decode in one pass.
    keep_json = planning.stix
    if not keep_json and event in _UPSERT_EVENTS:
        # The ecs modes' usual event, an indicator created or updated, is planned from the
        # one-pass decoding itself: the same plan as ``plan_event`` makes from the
        # ``StreamEvent`` (``tests/core/test_plan_frame_fast_path.py``), without building that
        # event and reading it back (docs/performance.md §7f).
        envelope = read_typed_frame(data)
        if envelope is not None:
            typed = envelope.data
            context = envelope.context
            if type(typed) is _Indicator and (context is None or not context.sources):
                try:
                    return _indicator_plan(typed, typed.id, state, planning, now, authors)
                except RecursionError:
                    return _too_deep(event_id, typed.id, state)
        # Any other frame is read by read_event; one the one-pass reading refused, in two
        # passes at once (the JSON text it keeps is not read).
        keep_json = envelope is None
    decoded = read_event(event_id, event, data, keep_json=keep_json)
    # Checks name the usual outcome first: isinstance() is cheap when it holds, but one that
    # fails on a msgspec Struct class costs about a thousand instructions (CPython looks up
    # and calls ``StructMeta.__instancecheck__``).
    if not isinstance(decoded, _StreamEvent):
        return Plan((Skip(event_id, decoded.object_id, "undecodable", str(decoded)),), state)
    try:
        return plan_event(decoded, state, settings, now, authors)
    except RecursionError:
        return _too_deep(event_id, decoded.object.id, state)


def _too_deep(event_id: str, object_id: str, state: PlannerState) -> Plan:
    # An object the decoder accepted can still be too deep for the document builders, which
    # recurse over it (stix mode): the event is unusable, never a crash.
    return Plan((Skip(event_id, object_id, "undecodable", "JSON nested too deeply"),), state)


def plan_event(
    event: StreamEvent,
    state: PlannerState,
    settings: PlanSettings,
    now: datetime,
    authors: Mapping[str, str] = _NO_AUTHORS,
) -> Plan:
    """The actions one decoded stream event calls for, and the state after it."""
    # Each field is read once and passed on: for compiled code, a Struct's field is a generic
    # attribute lookup at every read (docs/performance.md §7e).
    obj = event.object
    kind = event.kind
    object_type = obj.type
    if object_type == "marking-definition":
        # The only objects that change the state: the others skip the call (``PlannerState``
        # is a Struct, so ``learn`` is interpreted code).
        state = state.learn(obj, kind == "delete")
    seen = _author_of(obj) if object_type == "identity" and kind != "delete" else ()
    planning = _plannings.of(settings)
    if planning.stix:
        planned = _plan_stix(event, state, settings, now)
        return _Plan(tuple(planned), state, seen, object_id=obj.id)
    if object_type != "indicator":
        # Only indicators become ECS documents; the rest of the knowledge graph is not exported.
        return _Plan((), state, seen, object_id=obj.id)
    if kind == "delete":
        deleted = Delete(planning.index, opencti_id_of(obj), "deleted", "deleted in OpenCTI")
        return _Plan((deleted,), state, seen, object_id=obj.id)
    typed = obj.typed
    before = tuple(_merged_away(event, settings)) if kind == "merge" else ()
    if not isinstance(typed, _Indicator):
        problem = obj.invalid or DecodeError("not an indicator", object_id=obj.id)
        skipped = Skip(event.event_id, obj.id, "undecodable", str(problem))
        return _Plan((*before, skipped), state, seen, object_id=obj.id)
    return _indicator_plan(typed, obj.id, state, planning, now, authors, seen, before)


def _indicator_plan(
    indicator: Indicator,
    object_id: str,
    state: PlannerState,
    planning: _Planning,
    now: datetime,
    authors: Mapping[str, str],
    seen: tuple[tuple[str, str], ...] = (),
    before: tuple[Action, ...] = (),
) -> Plan:
    """The plan of an indicator created, updated or merged (``before``: the deletes of the
    objects merged into it), whose object id is ``object_id``."""
    fields = IndicatorFields(indicator)
    author = fields.created_by_ref
    action = _indicator_action(fields, object_id, state, planning, now, authors)
    actions = (*before, action) if before else (action,)
    if author and type(action) is _Upsert and author not in authors:
        return _Plan(actions, state, seen, (author,), object_id=object_id)
    return _Plan(actions, state, seen, object_id=object_id)


def _author_of(obj: StixObject) -> tuple[tuple[str, str], ...]:
    typed = obj.typed
    if isinstance(typed, Identity) and typed.name and typed.name.strip():
        return ((typed.id, typed.name.strip()),)
    return ()


def _merged_away(event: StreamEvent, settings: PlanSettings) -> list[Action]:
    target = opencti_id_of(event.object)
    return [
        Delete(settings.index, opencti_id_of(source), "merged", f"merged into {target}")
        for source in event.merged_sources
        if opencti_id_of(source) != target
    ]


def _indicator_action(
    fields: IndicatorFields,
    object_id: str,
    state: PlannerState,
    planning: _Planning,
    now: datetime,
    authors: Mapping[str, str],
) -> Action:
    # The document's id: OpenCTI's internal id, else the STIX id (``opencti_id_of``).
    internal_id = fields.internal_id
    target = internal_id if internal_id else object_id
    # Whatever makes an indicator unexportable also removes an earlier export of it: a create
    # can be the replay of an indicator that was exported before it changed.
    markings = resolve_markings(fields.object_marking_refs, state.markings)
    withheld = fields_withheld(fields, markings, planning.policy, now)
    if withheld is not None:
        return Delete(planning.index, target, withheld.code, withheld.reason, withheld.subject)
    text = fields.pattern
    # Only text is cacheable; anything else (a hand-built indicator) gets parse's own answer.
    cacheable = type(text) is str and len(text) <= CACHEABLE_PATTERN_CHARS
    parsed = _parse(text) if cacheable else read_pattern(text)
    if not isinstance(parsed, _Pattern):
        return Delete(
            planning.index,
            target,
            "invalid_pattern",
            f"pattern does not parse: {parsed}",
        )
    author = fields.created_by_ref
    ttl = planning.indicator_ttl
    mapped = indicators.document_from(
        fields,
        parsed,
        now=now,
        tlp=markings.tlp,
        feed_name=planning.feed_name,
        opencti_url=planning.opencti_url,
        provider=authors.get(author) if author else None,
        # Only a default lifetime is computed; a valid_until is written as valid_until.
        expires_at=None if ttl is None or fields.valid_until else expiry(fields.indicator, ttl),
    )
    if not isinstance(mapped, _IndicatorDocument):
        return Delete(planning.index, target, "unmappable", mapped.reason)
    return _Upsert(planning.index, target, _encode_document(mapped))


def _plan_stix(
    event: StreamEvent, state: PlannerState, settings: PlanSettings, now: datetime
) -> list[Action]:
    obj = event.object
    if event.kind == "delete":
        return [Delete(settings.index, opencti_id_of(obj), "deleted", "deleted in OpenCTI")]
    actions = _merged_away(event, settings) if event.kind == "merge" else []
    refs = obj.typed.object_marking_refs
    denied = tlp_allowed(resolve_markings(refs, state.markings), settings.policy)
    if denied is not None:
        actions.append(
            Delete(settings.index, opencti_id_of(obj), denied.code, denied.reason, denied.subject)
        )
    else:
        actions.append(
            Upsert(settings.index, opencti_id_of(obj), stix_documents.stix_document(obj, now))
        )
    return actions
