"""Typed STIX 2.1 objects and the OpenCTI stream-event envelope.

Only what the connector reads is typed; everything else in an object is ignored by the typed
view and kept verbatim in ``raw`` (``stix`` mode indexes the raw object). Decoding never raises:
it returns a ``Result`` whose failure says what was wrong and where.

Wire format (see ``shared/reference/opencti.md``): an SSE frame ``id: <ms>-<seq>``,
``event: create|update|delete|merge``, ``data: {"data": <STIX object>, "context"...}``. The SSE
event name is the only kind there is: the frames a live stream makes itself (the recovery replay,
``origin.referer: init-create``, and the dependencies sent before an event, ``init-dependencies``)
carry only ``{data, message, origin, version}``, and a collection rewrites an update into a
``delete``/``create`` event whose JSON ``type`` still says ``update``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

OPENCTI_EXTENSION: Final = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
"""OpenCTI's property extension: internal id, score, detection flag, main observable type."""

MITRE_EXTENSION: Final = "extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b"
"""OpenCTI's MITRE ATT&CK extension: platforms, detection text."""

DATA_EVENTS: Final = frozenset({"create", "update", "delete", "merge"})

JsonObject: TypeAlias = dict[str, object]


# --- shared pieces --------------------------------------------------------------------------


class KillChainPhase(msgspec.Struct, frozen=True):
    kill_chain_name: str
    phase_name: str


class ExternalReference(msgspec.Struct, frozen=True):
    source_name: str | None = None
    url: str | None = None
    external_id: str | None = None
    description: str | None = None


class OpenCTIExtension(msgspec.Struct, frozen=True):
    """Fields OpenCTI adds to every object it streams."""

    id: str | None = None
    type: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    is_inferred: bool | None = None
    score: int | None = None
    detection: bool | None = None
    main_observable_type: str | None = None


class MitreExtension(msgspec.Struct, frozen=True):
    platforms: tuple[str, ...] = ()


class Extensions(msgspec.Struct, frozen=True):
    opencti: OpenCTIExtension | None = msgspec.field(default=None, name=OPENCTI_EXTENSION)
    mitre: MitreExtension | None = msgspec.field(default=None, name=MITRE_EXTENSION)


# --- the STIX objects the connector understands ----------------------------------------------


class Indicator(msgspec.Struct, frozen=True, tag="indicator", tag_field="type"):
    id: str
    pattern: str
    pattern_type: str = "stix"
    spec_version: str | None = None
    name: str | None = None
    description: str | None = None
    pattern_version: str | None = None
    indicator_types: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked: bool = False
    confidence: int | None = None
    labels: tuple[str, ...] = ()
    created: datetime | None = None
    modified: datetime | None = None
    created_by_ref: str | None = None
    object_marking_refs: tuple[str, ...] = ()
    kill_chain_phases: tuple[KillChainPhase, ...] = ()
    external_references: tuple[ExternalReference, ...] = ()
    extensions: Extensions = Extensions()
    # Names used by older platforms and by GraphQL reads instead of the extension.
    x_opencti_score: int | None = None
    x_opencti_detection: bool | None = None
    x_opencti_main_observable_type: str | None = None
    x_mitre_platforms: tuple[str, ...] = ()


class MarkingDefinition(msgspec.Struct, frozen=True, tag="marking-definition", tag_field="type"):
    id: str
    name: str | None = None
    definition_type: str | None = None
    # STIX 2.0 form: {"tlp": "amber"} or {"statement": "..."}; OpenCTI also sends a string.
    definition: dict[str, str] | str | None = None
    x_opencti_order: int | None = None
    object_marking_refs: tuple[str, ...] = ()
    extensions: Extensions = Extensions()


class Identity(msgspec.Struct, frozen=True, tag="identity", tag_field="type"):
    id: str
    name: str | None = None
    identity_class: str | None = None
    object_marking_refs: tuple[str, ...] = ()
    extensions: Extensions = Extensions()


class Sighting(msgspec.Struct, frozen=True, tag="sighting", tag_field="type"):
    id: str
    sighting_of_ref: str | None = None
    where_sighted_refs: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int | None = None
    object_marking_refs: tuple[str, ...] = ()
    extensions: Extensions = Extensions()


KnownObject: TypeAlias = Indicator | MarkingDefinition | Identity | Sighting


class OtherObject(msgspec.Struct, frozen=True):
    """Any STIX object without a typed view (still indexed in ``stix`` mode)."""

    type: str
    id: str
    object_marking_refs: tuple[str, ...] = ()
    extensions: Extensions = Extensions()


class StixObject(msgspec.Struct, frozen=True):
    """A decoded STIX object: the typed view (when its type has one) and the raw JSON."""

    type: str
    id: str
    typed: KnownObject | OtherObject
    json: bytes
    """The object's JSON text exactly as received."""

    def raw(self) -> JsonObject:
        """The whole object as a JSON dict (decoded on demand: only ``stix`` mode needs it)."""
        return _raw_decoder.decode(self.json)

    @property
    def opencti_id(self) -> str:
        """OpenCTI internal id from the extension, else the STIX id."""
        ext = self.typed.extensions.opencti
        return ext.id if ext is not None and ext.id else self.id


# --- the stream envelope --------------------------------------------------------------------


class EventContext(msgspec.Struct, frozen=True):
    # RFC 6902 patches (JSON arrays), kept undecoded. Not ``Raw | None``: msgspec reads that
    # union as "null only", which made every real update event undecodable.
    patch: msgspec.Raw = msgspec.Raw(b"null")
    reverse_patch: msgspec.Raw = msgspec.Raw(b"null")
    # merge: the STIX objects that were merged into ``data`` and no longer exist.
    sources: tuple[msgspec.Raw, ...] = ()


class _Envelope(msgspec.Struct, frozen=True):
    # Everything but ``data`` is optional: frames the platform builds itself (recovery,
    # dependencies) have no ``type``/``scope``/``context`` (sseMiddleware.js). The kind is
    # the SSE event name, never ``type``.
    data: msgspec.Raw
    type: str | None = None
    version: str | None = None
    scope: str | None = None
    message: str | None = None
    context: EventContext | None = None


class StreamEvent(msgspec.Struct, frozen=True):
    """One data event of the OpenCTI live stream, fully decoded."""

    event_id: str
    kind: str
    """``create``, ``update``, ``delete`` or ``merge``."""
    object: StixObject
    merged_sources: tuple[StixObject, ...] = ()
    message: str | None = None


class DecodeError(msgspec.Struct, frozen=True):
    """Why some bytes are not a usable event or object. ``where`` is a JSON path (``$.data.id``)."""

    reason: str
    where: str = "$"

    def __str__(self) -> str:
        return f"{self.reason} (at {self.where})" if self.where != "$" else self.reason


# --- decoding -------------------------------------------------------------------------------

_typed_decoder: Final = msgspec.json.Decoder(KnownObject)
_header_decoder: Final = msgspec.json.Decoder(OtherObject)
_raw_decoder: Final = msgspec.json.Decoder(JsonObject)
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_TAGS: Final[dict[type, str]] = {
    cls: str(cls.__struct_config__.tag)
    for cls in (Indicator, MarkingDefinition, Identity, Sighting)
}
_TYPED: Final = frozenset(_TAGS.values())


def _relocate(error: msgspec.ValidationError, prefix: str) -> DecodeError:
    text = str(error)
    reason, sep, where = text.rpartition(" - at `")
    if sep and where.endswith("`"):
        return DecodeError(reason, prefix + where[1:-1])
    return DecodeError(text, prefix)


def decode_object(
    data: bytes | str | msgspec.Raw, where: str = "$"
) -> Result[StixObject, DecodeError]:
    """Decode one STIX object (JSON text). ``where`` prefixes error paths."""
    decoded = read_object(data, where)
    return Failure(decoded) if isinstance(decoded, DecodeError) else Success(decoded)


def read_object(data: bytes | str | msgspec.Raw, where: str = "$") -> StixObject | DecodeError:
    """``decode_object`` without the ``Result`` wrapper (the per-event hot path)."""
    try:
        return _read_object(data, where)
    except (UnicodeError, RecursionError) as error:
        return _unreadable(error, where)


def _unreadable(error: UnicodeError | RecursionError, where: str) -> DecodeError:
    """What msgspec raises instead of ``DecodeError`` for some input, as a ``DecodeError``:
    invalid UTF-8 inside a string, and nesting deeper than the interpreter's recursion limit
    (an exception escaping here would stop the stream on that event, again at every restart).
    """
    if isinstance(error, RecursionError):
        return DecodeError("JSON nested too deeply", where)
    return DecodeError(f"not valid UTF-8 ({str(error)[:120]})", where)


def _read_object(data: bytes | str | msgspec.Raw, where: str) -> StixObject | DecodeError:
    text = data.encode() if isinstance(data, str) else bytes(data)
    try:
        # Most streamed objects have a typed view: one pass gives it. A success implies the
        # header would decode too (same fields, same types; every ``type`` key equals the tag,
        # the last ``id`` wins in both); any failure takes the two-pass path below, so what
        # fails, and how it is reported, is unchanged.
        typed = _typed_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    else:
        return StixObject(_TAGS[type(typed)], typed.id, typed, text)
    try:
        header = _header_decoder.decode(text)
    except msgspec.ValidationError as error:
        return _relocate(error, where)
    except msgspec.DecodeError as error:
        return DecodeError(f"invalid JSON: {error}", where)
    if header.type not in _TYPED:
        return StixObject(header.type, header.id, header, text)
    try:
        typed = _typed_decoder.decode(text)
    except msgspec.ValidationError as error:
        return _relocate(error, where)
    return StixObject(header.type, header.id, typed, text)


def decode_event(event_id: str, event: str, data: bytes | str) -> Result[StreamEvent, DecodeError]:
    """Decode the ``data`` of one SSE frame of the stream.

    ``event`` is the SSE event name; only ``create``, ``update``, ``delete`` and ``merge`` are
    data events (heartbeats and the like never reach the core).
    """
    decoded = read_event(event_id, event, data)
    return Failure(decoded) if isinstance(decoded, DecodeError) else Success(decoded)


def read_event(event_id: str, event: str, data: bytes | str) -> StreamEvent | DecodeError:
    """``decode_event`` without the ``Result`` wrapper (the per-event hot path)."""
    try:
        if isinstance(data, bytes):
            # msgspec checks only the strings it decodes, but stix mode indexes the whole
            # object: bytes that are not UTF-8 anywhere in the frame make it unusable.
            data.decode("utf-8")
        return _read_event(event_id, event, data)
    except (UnicodeError, RecursionError) as error:
        return _unreadable(error, "$")


def _read_event(event_id: str, event: str, data: bytes | str) -> StreamEvent | DecodeError:
    if event not in DATA_EVENTS:
        return DecodeError(f"not a data event: {event[:40]!r}")
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.ValidationError as error:
        return _relocate(error, "$")
    except msgspec.DecodeError as error:
        return DecodeError(f"invalid JSON: {error}")
    decoded = read_object(envelope.data, "$.data")
    if isinstance(decoded, DecodeError):
        return decoded
    sources: tuple[StixObject, ...] = ()
    context = envelope.context
    if context is not None and context.sources:
        merged: list[StixObject] = []
        for index, raw in enumerate(context.sources):
            source = read_object(raw, f"$.context.sources[{index}]")
            if isinstance(source, DecodeError):
                return source
            merged.append(source)
        sources = tuple(merged)
    return StreamEvent(
        event_id=event_id,
        kind=event,
        object=decoded,
        merged_sources=sources,
        message=envelope.message,
    )
