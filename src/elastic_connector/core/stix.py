"""Decoding OpenCTI stream events and STIX objects into the typed views of ``stix_objects``,
which this module re-exports (the rest of the connector imports them from here).

Booleans are also read from their usual string spellings (``"False"``, ``"yes"``...), as
OpenCTI and its connectors sometimes write them (``truth``). Decoding never raises: it returns
a ``Result`` whose failure says what was wrong and where (and names the object's id when it has
one); an object whose typed view does not decode, but whose header (``type``, ``id``,
markings, OpenCTI id) does, is still returned, with the reason in ``invalid``.

Wire format (see ``shared/reference/opencti.md``): an SSE frame ``id: <ms>-<seq>``,
``event: create|update|delete|merge``, ``data: {"data": <STIX object>, "context"...}``. The SSE
event name is the only kind there is: the frames a live stream makes itself (the recovery replay,
``origin.referer: init-create``, and the dependencies sent before an event, ``init-dependencies``)
carry only ``{data, message, origin, version}``, and a collection rewrites an update into a
``delete``/``create`` event whose JSON ``type`` still says ``update``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, cast

import msgspec
import msgspec.structs
from returns.result import Failure, Result, Success

from elastic_connector.core import json_scan
from elastic_connector.core.stix_objects import (
    MITRE_EXTENSION,
    OPENCTI_EXTENSION,
    TLP2_EXTENSION,
    DecodeError,
    Envelope,
    EventContext,
    Extensions,
    ExternalReference,
    Flag,
    Identity,
    IdExtensions,
    Indicator,
    JsonObject,
    KillChainPhase,
    KnownObject,
    MarkingDefinition,
    MarkingExtensions,
    MitreExtension,
    OpenCTIExtension,
    OpenCTIId,
    OtherObject,
    StixObject,
    StreamEvent,
    Tlp2Extension,
)

__all__ = [
    "DATA_EVENTS",
    "MITRE_EXTENSION",
    "OPENCTI_EXTENSION",
    "TLP2_EXTENSION",
    "DecodeError",
    "Envelope",
    "EventContext",
    "Extensions",
    "ExternalReference",
    "Flag",
    "IdExtensions",
    "Identity",
    "Indicator",
    "IndicatorFields",
    "JsonObject",
    "KillChainPhase",
    "KnownObject",
    "MarkingDefinition",
    "MarkingExtensions",
    "MitreExtension",
    "OpenCTIExtension",
    "OpenCTIId",
    "OtherObject",
    "StixObject",
    "StreamEvent",
    "Tlp2Extension",
    "decode_event",
    "decode_object",
    "object_id_of",
    "opencti_id_of",
    "read_event",
    "read_object",
    "read_typed_frame",
    "truth",
]

DATA_EVENTS: Final = frozenset({"create", "update", "delete", "merge"})

_TRUE: Final = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0", "off"})


def truth(flag: Flag) -> bool | None:
    """A flag's value; None when it is absent or a string that spells no boolean."""
    if flag is None or isinstance(flag, bool):
        return flag
    word = flag.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


# --- decoding -------------------------------------------------------------------------------

_typed_decoder: Final = msgspec.json.Decoder(KnownObject)
_header_decoder: Final = msgspec.json.Decoder(OtherObject)
_envelope_decoder: Final = msgspec.json.Decoder(Envelope[msgspec.Raw])
_typed_envelope_decoder: Final = msgspec.json.Decoder(Envelope[KnownObject])
_TAGS: Final[dict[type, str]] = {
    cls: str(cls.__struct_config__.tag) for cls in (Indicator, MarkingDefinition, Identity)
}
_TYPED: Final = frozenset(_TAGS.values())
# msgspec's stub declares ``Raw`` a subclass of ``bytes``, which it is not: compiled code that
# sees a value typed ``bytes | Raw`` (what is left once ``str`` is ruled out) checks it as
# ``bytes``, and raises on a ``Raw``. So the text is taken as ``object`` and copied by
# ``bytes`` called as any callable.
_copy_bytes: Final = cast("Callable[[object], bytes]", bytes)


def _bytes_of(data: object, errors: str = "strict") -> bytes:
    """The bytes of JSON text given as ``bytes``, ``str`` or ``msgspec.Raw``."""
    return data.encode("utf-8", errors) if isinstance(data, str) else _copy_bytes(data)


def _relocate(error: msgspec.ValidationError, prefix: str, object_id: str = "") -> DecodeError:
    text = str(error)
    reason, sep, where = text.rpartition(" - at `")
    if sep and where.endswith("`"):
        return DecodeError(reason, prefix + where[1:-1], object_id)
    return DecodeError(text, prefix, object_id)


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
        return _unreadable(error, where, object_id_of(data))


def _unreadable(
    error: UnicodeError | RecursionError, where: str, object_id: str = ""
) -> DecodeError:
    """What msgspec raises instead of ``DecodeError`` for some input, as a ``DecodeError``:
    invalid UTF-8 inside a string, and nesting deeper than the interpreter's recursion limit
    (an exception escaping here would stop the stream on that event, again at every restart).
    """
    if isinstance(error, RecursionError):
        return DecodeError("JSON nested too deeply", where, object_id)
    return DecodeError(f"not valid UTF-8 ({str(error)[:120]})", where, object_id)


def _read_object(data: bytes | str | msgspec.Raw, where: str) -> StixObject | DecodeError:
    text = _bytes_of(data)
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
        return _relocate(error, where, object_id_of(text))
    except msgspec.DecodeError as error:
        return DecodeError(f"invalid JSON: {error}", where, object_id_of(text))
    if header.type not in _TYPED:
        return StixObject(header.type, header.id, header, text)
    try:
        typed = _typed_decoder.decode(text)
    except msgspec.ValidationError as error:
        return StixObject(header.type, header.id, header, text, _relocate(error, where, header.id))
    return StixObject(header.type, header.id, typed, text)


def opencti_id_of(obj: StixObject) -> str:
    """OpenCTI's internal id of ``obj`` from its extension, else its STIX id
    (``StixObject.opencti_id``)."""
    ext = obj.typed.extensions.opencti
    internal_id = ext.id if ext is not None else None
    return internal_id if internal_id else obj.id


_astuple: Final = msgspec.structs.astuple


class IndicatorFields:
    """An ``Indicator``'s fields, read in one call into a compiled object, with those of its
    OpenCTI and MITRE extensions. For compiled code, each read of a Struct's field is a generic
    attribute lookup (about 170 instructions) and each read of these a C struct member: the
    planner, the policy and the document read an indicator through this (docs/performance.md
    §7f). ``indicator`` is the indicator itself, for the checks that need few of its fields."""

    indicator: Indicator
    id: str
    pattern: str
    pattern_type: str
    name: str | None
    description: str | None
    pattern_version: str | None
    indicator_types: tuple[str, ...]
    valid_from: datetime | None
    valid_until: datetime | None
    revoked: Flag
    confidence: int | None
    labels: tuple[str, ...]
    created: datetime | None
    modified: datetime | None
    created_by_ref: str | None
    object_marking_refs: tuple[str, ...]
    kill_chain_phases: tuple[KillChainPhase, ...]
    external_references: tuple[ExternalReference, ...]
    x_opencti_score: int | None
    x_opencti_detection: Flag
    x_mitre_platforms: tuple[str, ...]
    # The OpenCTI extension's fields (all None without the extension) and the MITRE one's.
    internal_id: str | None
    updated_at: datetime | None
    is_inferred: Flag
    score: int | None
    detection: Flag
    main_type: str | None
    """The extension's main observable type, else ``x_opencti_main_observable_type``."""
    mitre_platforms: tuple[str, ...]

    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        extensions: Extensions
        main_type: str | None
        # In ``Indicator``'s field order (``tests/core/test_indicator_fields.py``).
        (
            self.id,
            self.pattern,
            self.pattern_type,
            self.name,
            self.description,
            self.pattern_version,
            self.indicator_types,
            self.valid_from,
            self.valid_until,
            self.revoked,
            self.confidence,
            self.labels,
            self.created,
            self.modified,
            self.created_by_ref,
            self.object_marking_refs,
            self.kill_chain_phases,
            self.external_references,
            extensions,
            self.x_opencti_score,
            self.x_opencti_detection,
            main_type,
            self.x_mitre_platforms,
        ) = _astuple(indicator)
        opencti: OpenCTIExtension | None
        mitre: MitreExtension | None
        opencti, mitre = _astuple(extensions)
        extension_type: str | None = None
        if opencti is None:
            self.internal_id = self.updated_at = self.score = None
            self.is_inferred = self.detection = None
        else:
            (
                self.internal_id,
                self.updated_at,
                self.is_inferred,
                self.score,
                self.detection,
                extension_type,
            ) = _astuple(opencti)
        self.main_type = main_type if extension_type is None else extension_type
        self.mitre_platforms = () if mitre is None else mitre.platforms


def object_id_of(data: bytes | str | msgspec.Raw) -> str:
    """The ``id`` of a JSON object that may not decode (wrong types elsewhere, invalid JSON
    after the id, nested too deeply): to name it in a skip. Empty when there is none."""
    text = _bytes_of(data, "surrogatepass")
    return json_scan.string_member(text, "id") or ""


def decode_event(event_id: str, event: str, data: bytes | str) -> Result[StreamEvent, DecodeError]:
    """Decode the ``data`` of one SSE frame of the stream.

    ``event`` is the SSE event name; only ``create``, ``update``, ``delete`` and ``merge`` are
    data events (heartbeats and the like never reach the core).
    """
    decoded = read_event(event_id, event, data)
    return Failure(decoded) if isinstance(decoded, DecodeError) else Success(decoded)


def read_event(
    event_id: str, event: str, data: bytes | str, *, keep_json: bool = True
) -> StreamEvent | DecodeError:
    """``decode_event`` without the ``Result`` wrapper (the per-event hot path).

    ``keep_json=False``: a typed object (indicator, marking definition, identity) is decoded
    with the envelope, in one pass, and its ``json`` is left empty (what the ``ecs`` modes
    plan from); anything else is decoded as with ``keep_json=True``, which gives the same
    event, ``json`` included.
    """
    try:
        if isinstance(data, bytes) and not data.isascii():
            # msgspec checks only the strings it decodes, but stix mode indexes the whole
            # object: bytes that are not UTF-8 anywhere in the frame make it unusable. (ASCII
            # is UTF-8; checking that allocates nothing.)
            data.decode("utf-8")
        decoded = None if keep_json else _read_typed_event(event_id, event, data)
        if decoded is None:
            decoded = _read_event(event_id, event, data)
    except (UnicodeError, RecursionError) as error:
        decoded = _unreadable(error, "$")
    # The usual outcome first: an isinstance() that fails on a Struct class is costly
    # (``events.plan_frame``).
    if not isinstance(decoded, StreamEvent) and not decoded.object_id:
        # Name the object in the skip whenever its id can be read at all.
        text = _bytes_of(data, "surrogatepass")
        inner = json_scan.member(text, "data", partial=True)
        if inner is not None:
            return msgspec.structs.replace(decoded, object_id=object_id_of(inner))
    return decoded


def _read_typed_event(
    event_id: str, event: str, data: bytes | str
) -> StreamEvent | DecodeError | None:
    """The event when its object has a typed view and the whole frame decodes in one pass;
    None otherwise (the caller then takes the two-pass path, which also says what is wrong)."""
    if event not in DATA_EVENTS:
        return None
    envelope = _typed_envelope(data)
    if envelope is None:
        return None
    typed = envelope.data
    return _stream_event(
        event_id, event, StixObject(_TAGS[type(typed)], typed.id, typed, b""), envelope
    )


def _typed_envelope(data: bytes | str) -> Envelope[KnownObject] | None:
    try:
        return _typed_envelope_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeError, RecursionError):
        return None


def read_typed_frame(data: bytes | str) -> Envelope[KnownObject] | None:
    """The frame decoded in one pass, its object by its typed view, when it needs no other
    reading: ASCII (or text) that decodes. None otherwise, and ``read_event`` reads it (and says
    what is wrong). The planner reads an indicator straight from it (``events.plan_frame``)."""
    if isinstance(data, bytes) and not data.isascii():
        return None  # read_event checks such a frame is UTF-8 throughout
    return _typed_envelope(data)


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
    if not isinstance(decoded, StixObject):
        return decoded
    return _stream_event(event_id, event, decoded, envelope)


def _stream_event(
    event_id: str,
    event: str,
    decoded: StixObject,
    envelope: Envelope[msgspec.Raw] | Envelope[KnownObject],
) -> StreamEvent | DecodeError:
    """The event of ``decoded``, with the objects a merge event names as merged."""
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
    # Positional: keywords cost a name match per argument, for every event.
    return StreamEvent(event_id, event, decoded, sources, envelope.message)
