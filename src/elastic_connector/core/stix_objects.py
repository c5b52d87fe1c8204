"""Typed STIX 2.1 objects and the OpenCTI stream-event envelope: the types ``stix`` decodes
into (and re-exports; import them from there).

Only what the connector reads is typed; everything else in an object is ignored by the typed
view and kept verbatim in ``raw`` (``stix`` mode indexes the raw object), so a field the
connector does not read can never make an object fail. An object whose typed view does not
decode, but whose header (``type``, ``id``, markings, OpenCTI id) does, keeps the reason in
``invalid``: ``stix`` mode indexes it, ``ecs`` mode skips it.

Decoded objects are immutable and built from their parts (untyped fields hold plain decoded
JSON), so they cannot be in a reference cycle: their classes are not tracked by the garbage
collector (``gc=False``), which spares the collector the dozen objects every event decodes to.

msgspec Structs, kept apart from the decoding functions so that those can be compiled
(``setup.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Generic, TypeAlias, TypeVar

import msgspec

OPENCTI_EXTENSION: Final = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
"""OpenCTI's property extension: internal id, score, detection flag, main observable type."""

MITRE_EXTENSION: Final = "extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b"
"""OpenCTI's MITRE ATT&CK extension: platforms, detection text."""

TLP2_EXTENSION: Final = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
"""OASIS's TLP 2.0 marking extension (``{"tlp_2_0": "amber+strict"}``)."""

JsonObject: TypeAlias = dict[str, object]

Flag: TypeAlias = bool | str | None
"""A boolean as producers write it: ``true``, or a string such as ``"False"``; read with
``truth``."""

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
    """The object's JSON text exactly as received; empty when the reader was told not to keep
    it (``stix.read_event(..., keep_json=False)``: the ``ecs`` modes never read it)."""
    invalid: DecodeError | None = None
    """Why the typed view of a known type did not decode (``typed`` is then the header)."""

    def raw(self) -> JsonObject:
        """The whole object as a JSON dict (decoded on demand: only ``stix`` mode needs it)."""
        return _raw_decoder.decode(self.json)

    @property
    def opencti_id(self) -> str:
        """OpenCTI internal id from the extension, else the STIX id (``stix.opencti_id_of``)."""
        # Imported here: ``stix`` imports this module. The function is compiled, this
        # property is not (the planner calls the function for every event).
        from elastic_connector.core.stix import opencti_id_of

        return opencti_id_of(self)


# --- the stream envelope --------------------------------------------------------------------


class EventContext(msgspec.Struct, frozen=True, gc=False):
    # RFC 6902 patches (JSON arrays), kept undecoded. Not ``Raw | None``: msgspec reads that
    # union as "null only", which made every real update event undecodable.
    patch: msgspec.Raw = msgspec.Raw(b"null")
    reverse_patch: msgspec.Raw = msgspec.Raw(b"null")
    # merge: the STIX objects that were merged into ``data`` and no longer exist.
    sources: tuple[msgspec.Raw, ...] = ()


Data = TypeVar("Data")


class Envelope(msgspec.Struct, Generic[Data], frozen=True, gc=False):
    """The JSON of one stream event: ``Envelope[msgspec.Raw]`` keeps the object's text,
    ``Envelope[KnownObject]`` decodes it in the same pass."""

    # Everything but ``data`` is optional: frames the platform builds itself (recovery,
    # dependencies) have no ``type``/``scope``/``context`` (sseMiddleware.js). The kind is
    # the SSE event name, never ``type``.
    data: Data
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


_raw_decoder: Final = msgspec.json.Decoder(JsonObject)
