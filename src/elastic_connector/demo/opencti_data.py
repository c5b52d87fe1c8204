"""OpenCTI-shaped data for the stand-in, the demo and tests: ids derived the way the platform
derives them, its default TLP markings, and STIX indicators exactly as its stream sends them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple, TypeAlias

from elastic_connector.core.stix import DATA_EVENTS

__all__ = [
    "ADMIN_USER_ID",
    "DATA_EVENTS",
    "DEFAULT_MARKINGS",
    "MITRE_EXTENSION",
    "NAMESPACE",
    "OPENCTI_EXTENSION",
    "Json",
    "Marking",
    "external_reference_standard_id",
    "identity_standard_id",
    "indicator_standard_id",
    "internal_id",
    "iso_ms",
    "make_indicator",
    "now_iso",
    "sighting_standard_id",
]

Json: TypeAlias = dict[str, object]

OPENCTI_EXTENSION: Final = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
MITRE_EXTENSION: Final = "extension-definition--322b8f77-262a-4cb8-a915-1e441e00329b"
NAMESPACE: Final = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")  # OpenCTI's id namespace
ADMIN_USER_ID: Final = "88ec0c6a-13ce-5e39-b486-354fe4a7084f"


def _canonical(data: Mapping[str, object]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _generated_id(prefix: str, data: Mapping[str, object]) -> str:
    return f"{prefix}--{uuid.uuid5(NAMESPACE, _canonical(data))}"


def identity_standard_id(name: str, identity_class: str) -> str:
    """The STIX id OpenCTI gives an identity (pycti ``Identity.generate_id``)."""
    return _generated_id(
        "identity", {"name": name.lower().strip(), "identity_class": identity_class.lower()}
    )


def external_reference_standard_id(
    url: str | None, source_name: str | None, external_id: str | None
) -> str | None:
    """The STIX id OpenCTI gives an external reference (pycti ``ExternalReference.generate_id``):
    from its URL, else from its source name and external id; None without either."""
    if url is not None:
        return _generated_id("external-reference", {"url": url})
    if source_name is not None and external_id is not None:
        return _generated_id(
            "external-reference", {"source_name": source_name, "external_id": external_id}
        )
    return None


def indicator_standard_id(pattern: str) -> str:
    """The STIX id OpenCTI gives an indicator (pycti ``Indicator.generate_id``)."""
    return _generated_id("indicator", {"pattern": pattern.strip()})


def sighting_standard_id(
    sighting_of_ref: str,
    where_sighted_refs: Sequence[str],
    first_seen: str | None,
    last_seen: str | None,
) -> str:
    """pycti's ``StixSightingRelationship.generate_id``."""
    data: Json = {"type": "sighting", "sighting_of_ref": sighting_of_ref}
    data["where_sighted_refs"] = list(where_sighted_refs)
    if first_seen is not None:
        data["first_seen"] = first_seen
        if last_seen is not None:
            data["last_seen"] = last_seen
    return _generated_id("sighting", data)


def internal_id(standard_id: str) -> str:
    """A stable platform-internal id (uuid) for a standard id."""
    return str(uuid.uuid5(NAMESPACE, "internal:" + standard_id))


class Marking(NamedTuple):
    """A marking definition every platform has."""

    standard_id: str
    definition_type: str
    definition: str
    order: int
    color: str


DEFAULT_MARKINGS: Final = (
    Marking(
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9", "TLP", "TLP:CLEAR", 1, "#ffffff"
    ),
    Marking(
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da", "TLP", "TLP:GREEN", 2, "#2e7d32"
    ),
    Marking(
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", "TLP", "TLP:AMBER", 3, "#d84315"
    ),
    Marking(
        "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
        "TLP",
        "TLP:AMBER+STRICT",
        3,
        "#d84315",
    ),
    Marking(
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "TLP", "TLP:RED", 4, "#c62828"
    ),
)
"""The TLP markings every OpenCTI platform has, with OpenCTI's fixed ids."""


def now_iso() -> str:
    """The current UTC time as OpenCTI writes it (``2024-01-01T00:00:00.000Z``)."""
    return iso_ms(int(time.time() * 1000))


def iso_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_indicator(
    pattern: str,
    *,
    name: str | None = None,
    score: int | None = 50,
    detection: bool | None = True,
    main_observable_type: str | None = None,
    markings: Sequence[str] = (),
    valid_from: str | None = None,
    valid_until: str | None = None,
    revoked: bool = False,
    confidence: int | None = 75,
    labels: Sequence[str] = (),
    created_by_ref: str | None = None,
    kill_chain_phases: Sequence[Mapping[str, str]] = (),
    platforms: Sequence[str] = (),
    pattern_type: str = "stix",
    updated_at: str | None = None,
) -> Json:
    """A STIX indicator shaped exactly as the OpenCTI stream sends it (ids derived from the
    pattern as OpenCTI derives them)."""
    standard_id = indicator_standard_id(pattern)
    stamp = updated_at or now_iso()
    extension: Json = {
        "extension_type": "property-extension",
        "id": internal_id(standard_id),
        "type": "Indicator",
        "created_at": stamp,
        "updated_at": stamp,
        "is_inferred": False,
        "labels_ids": [],
    }
    if score is not None:
        extension["score"] = score
    if detection is not None:
        extension["detection"] = detection
    if main_observable_type is not None:
        extension["main_observable_type"] = main_observable_type
    extensions: Json = {OPENCTI_EXTENSION: extension}
    if platforms:
        extensions[MITRE_EXTENSION] = {"platforms": list(platforms)}
    stix: Json = {
        "id": standard_id,
        "spec_version": "2.1",
        "type": "indicator",
        "name": name or pattern,
        "pattern": pattern,
        "pattern_type": pattern_type,
        "valid_from": valid_from or stamp,
        "revoked": revoked,
        "created": stamp,
        "modified": stamp,
        "extensions": extensions,
    }
    if valid_until is not None:
        stix["valid_until"] = valid_until
    if confidence is not None:
        stix["confidence"] = confidence
    if labels:
        stix["labels"] = list(labels)
    if markings:
        stix["object_marking_refs"] = list(markings)
    if created_by_ref is not None:
        stix["created_by_ref"] = created_by_ref
    if kill_chain_phases:
        stix["kill_chain_phases"] = [dict(phase) for phase in kill_chain_phases]
    return stix
