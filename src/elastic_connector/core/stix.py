"""Typed STIX 2.1 objects and the OpenCTI stream-event envelope.

Only what the connector reads is typed; everything else in an object is ignored by the typed
view and kept verbatim in ``raw`` (``stix`` mode indexes the raw object), so a field the
connector does not read can never make an object fail. Booleans are also read from their usual
string spellings (``"False"``, ``"yes"``...), as OpenCTI and its connectors sometimes write them.
Decoding never raises: it returns a ``Result`` whose failure says what was wrong and where (and
names the object's id when it has one); an object whose typed view does not decode, but whose
header (``type``, ``id``, markings, OpenCTI id) does, is still returned, with the reason in
``invalid``: ``stix`` mode indexes it, ``ecs`` mode skips it.

Decoded objects are immutable and built from their parts (untyped fields hold plain decoded
JSON), so they cannot be in a reference cycle: their classes are not tracked by the garbage
collector (``gc=False``), which spares the collector the dozen objects every event decodes to.

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
import msgspec.structs
from returns.result import Failure, Result, Success

from elastic_connector.core import json_scan

OPENCTI_EXTENSION: Final = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
"""OpenCTI's property extension: internal id, score, detection flag, main observable type."""

MITRE_EXTENSION: Final = "extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b"
"""OpenCTI's MITRE ATT&CK extension: platforms, detection text."""

TLP2_EXTENSION: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
"""OASIS's TLP 2.0 marking extension (``{"tlp_2_0": "amber+strict"}``)."""

DATA_EVENTS: Final = frozenset({"create", "update", "delete", "merge"})

JsonObject: TypeAlias = dict[str, object]

Flag: TypeAlias = bool | str | None
"""A boolean as producers write it: ``true``, or a string such as ``"False"``; read with
``truth``."""

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


# --- shared pieces --------------------------------------------------------------------------


class KillChainPhase(msgspec.Struct, frozen=True, gc=False):
    kill_chain_name: str | None = None
    phase_name: str | None = None


class ExternalReference(msgspec.Struct, frozen=True, gc=False):
    source_name: str | None = None
    url: str | None = None
    external_id: str | None = None


class OpenCTIExtension(msgspec.Struct, frozen=True, gc=False):
    """Fields OpenCTI adds to every object it streams (those the mapping reads)."""

    id: str | None = None
    updated_at: datetime | None = None
    is_inferred: Flag = None
    score: int | None = None
    detection: Flag = None
    main_observable_type: str | None = None


class MitreExtension(msgspec.Struct, frozen=True, gc=False):
    platforms: tuple[str, ...] = ()


class Extensions(msgspec.Struct, frozen=True, gc=False):
    opencti: OpenCTIExtension | None = msgspec.field(default=None, name=OPENCTI_EXTENSION)
    mitre: MitreExtension | None = msgspec.field(default=None, name=MITRE_EXTENSION)


class OpenCTIId(msgspec.Struct, frozen=True, gc=False):
    """Only the OpenCTI internal id of the extension (objects that are not mapped field by
    field: nothing else in the extension can make them fail)."""

    id: str | None = None


class IdExtensions(msgspec.Struct, frozen=True, gc=False):
    opencti: OpenCTIId | None = msgspec.field(default=None, name=OPENCTI_EXTENSION)


class Tlp2Extension(msgspec.Struct, frozen=True, gc=False):
    tlp_2_0: object = None


class MarkingExtensions(msgspec.Struct, frozen=True, gc=False):
    opencti: OpenCTIId | None = msgspec.field(default=None, name=OPENCTI_EXTENSION)
    tlp2: Tlp2Extension | None = msgspec.field(default=None, name=TLP2_EXTENSION)


# --- the STIX objects the connector understands ----------------------------------------------


class Indicator(msgspec.Struct, frozen=True, gc=False, tag="indicator", tag_field="type"):
    id: str
    pattern: str
    pattern_type: str = "stix"
    name: str | None = None
    description: str | None = None
    pattern_version: str | None = None
    indicator_types: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    revoked: Flag = False
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
    x_opencti_detection: Flag = None
    x_opencti_main_observable_type: str | None = None
    x_mitre_platforms: tuple[str, ...] = ()


class MarkingDefinition(
    msgspec.Struct, frozen=True, gc=False, tag="marking-definition", tag_field="type"
):
    """Every shape producers give a marking's level is read (``markings.tlp_of_marking``); the
    fields are untyped so a wrong type makes the level unreadable (withheld), never the object
    undecodable."""

    id: str
    name: object = None
    definition_type: object = None
    # STIX 2.0 form: {"tlp": "amber"} or {"statement": "..."}; OpenCTI's GraphQL gives a string.
    definition: object = None
    # pycti's export form: the platform's own type and text ("TLP", "TLP:RED").
    x_opencti_definition_type: object = None
    x_opencti_definition: object = None
    object_marking_refs: tuple[str, ...] = ()
    extensions: MarkingExtensions = MarkingExtensions()


class Identity(msgspec.Struct, frozen=True, gc=False, tag="identity", tag_field="type"):
    """An author (``created_by_ref``): its name becomes ``threat.indicator.provider``."""

    id: str
    name: str | None = None
    object_marking_refs: tuple[str, ...] = ()
    extensions: IdExtensions = IdExtensions()


KnownObject: TypeAlias = Indicator | MarkingDefinition | Identity


class OtherObject(msgspec.Struct, frozen=True, gc=False):
    """Any STIX object without a typed view, or whose typed view does not decode: the header
    ``stix`` mode and the policy need (still indexed in ``stix`` mode)."""

    type: str
    id: str
    object_marking_refs: tuple[str, ...] = ()
    extensions: IdExtensions = IdExtensions()


class DecodeError(msgspec.Struct, frozen=True, gc=False):
    """Why some bytes are not a usable event or object. ``where`` is a JSON path (``$.data.id``);
    ``object_id`` is the STIX id of the object concerned, when it could be read."""

    reason: str
    where: str = "$"
    object_id: str = ""

    def __str__(self) -> str:
        return f"{self.reason} (at {self.where})" if self.where != "$" else self.reason


class StixObject(msgspec.Struct, frozen=True, gc=False):
    """A decoded STIX object: the typed view (when its type has one) and the raw JSON."""

    type: str
    id: str
    typed: KnownObject | OtherObject
    json: bytes
    """The object's JSON text exactly as received."""
    invalid: DecodeError | None = None
    """Why the typed view of a known type did not decode (``typed`` is then the header)."""

    def raw(self) -> JsonObject:
        """The whole object as a JSON dict (decoded on demand: only ``stix`` mode needs it)."""
        return _raw_decoder.decode(self.json)

    @property
    def opencti_id(self) -> str:
        """OpenCTI internal id from the extension, else the STIX id."""
        ext = self.typed.extensions.opencti
        return ext.id if ext is not None and ext.id else self.id


# --- the stream envelope --------------------------------------------------------------------


class EventContext(msgspec.Struct, frozen=True, gc=False):
    # RFC 6902 patches (JSON arrays), kept undecoded. Not ``Raw | None``: msgspec reads that
    # union as "null only", which made every real update event undecodable.
    patch: msgspec.Raw = msgspec.Raw(b"null")
    reverse_patch: msgspec.Raw = msgspec.Raw(b"null")
    # merge: the STIX objects that were merged into ``data`` and no longer exist.
    sources: tuple[msgspec.Raw, ...] = ()


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    # Everything but ``data`` is optional: frames the platform builds itself (recovery,
    # dependencies) have no ``type``/``scope``/``context`` (sseMiddleware.js). The kind is
    # the SSE event name, never ``type``.
    data: msgspec.Raw
    type: str | None = None
    version: str | None = None
    scope: str | None = None
    message: str | None = None
    context: EventContext | None = None


class StreamEvent(msgspec.Struct, frozen=True, gc=False):
    """One data event of the OpenCTI live stream, fully decoded."""

    event_id: str
    kind: str
    """``create``, ``update``, ``delete`` or ``merge``."""
    object: StixObject
    merged_sources: tuple[StixObject, ...] = ()
    message: str | None = None


# --- decoding -------------------------------------------------------------------------------

_typed_decoder: Final = msgspec.json.Decoder(KnownObject)
_header_decoder: Final = msgspec.json.Decoder(OtherObject)
_raw_decoder: Final = msgspec.json.Decoder(JsonObject)
_envelope_decoder: Final = msgspec.json.Decoder(_Envelope)
_TAGS: Final[dict[type, str]] = {
    cls: str(cls.__struct_config__.tag) for cls in (Indicator, MarkingDefinition, Identity)
}
_TYPED: Final = frozenset(_TAGS.values())


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


def object_id_of(data: bytes | str | msgspec.Raw) -> str:
    """The ``id`` of a JSON object that may not decode (wrong types elsewhere, invalid JSON
    after the id, nested too deeply): to name it in a skip. Empty when there is none."""
    text = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    return json_scan.string_member(text, "id") or ""


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
        if isinstance(data, bytes) and not data.isascii():
            # msgspec checks only the strings it decodes, but stix mode indexes the whole
            # object: bytes that are not UTF-8 anywhere in the frame make it unusable. (ASCII
            # is UTF-8; checking that allocates nothing.)
            data.decode("utf-8")
        decoded = _read_event(event_id, event, data)
    except (UnicodeError, RecursionError) as error:
        decoded = _unreadable(error, "$")
    # The usual outcome first: an isinstance() that fails on a Struct class is costly
    # (``events.plan_frame``).
    if not isinstance(decoded, StreamEvent) and not decoded.object_id:
        # Name the object in the skip whenever its id can be read at all.
        text = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        inner = json_scan.member(text, "data", partial=True)
        if inner is not None:
            return msgspec.structs.replace(decoded, object_id=object_id_of(inner))
    return decoded


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
