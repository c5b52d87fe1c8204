"""The ECS threat-indicator documents the connector writes, and their Elasticsearch mapping.

Every field of a document is a Struct field whose annotation carries its Elasticsearch type
(``Keyword``, ``Ip``, ``Date``...). ``INDICATOR_MAPPINGS`` is derived from those annotations, so
the documents and the index mapping cannot drift apart: a field the core writes is a field the
index maps, with the type the value was validated for.

Layout (ECS 8.x):

- ``threat.indicator.*`` and ``threat.feed.*`` exactly as ECS defines them;
- ``event.kind: enrichment``, ``event.category: [threat]``, ``event.type: [indicator]``,
  ``event.module``/``event.dataset`` (``ti_opencti_connector``: the prebuilt indicator-match
  rules require ``event.module: ti_*``), ``ecs.version``, ``@timestamp`` and ``tags``, as
  Elastic's threat-intel integrations write them;
- ``opencti.indicator.*``: indicator properties ECS has no field for (names follow Elastic's own
  OpenCTI integration);
- ``opencti.observable.<stix type>.<property>``: pattern values ECS has no threat field for
  (mutexes, processes, user accounts...), again following Elastic's OpenCTI integration.

Values that are lists in STIX or may repeat in a pattern are arrays (tuples); absent values are
omitted from the JSON, never written as ``null``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Final

import msgspec
import msgspec.inspect as mi

from elastic_connector.core.indicators.field_values import LONG_MAX, LONG_MIN

ECS_VERSION: Final = "8.17.0"
"""ECS release the documents follow (``threat.indicator.id`` needs 8.16 or later)."""

# --- field types ----------------------------------------------------------------------------


def _es(es_type: str, **options: object) -> msgspec.Meta:
    return msgspec.Meta(extra={"es": {"type": es_type, **options}})


_TEXT: Final = {"text": {"type": "match_only_text"}}

Keyword = Annotated[str, _es("keyword", ignore_above=1024)]
"""ECS ``keyword``; values longer than 1024 characters are kept in ``_source`` but not indexed."""
KeywordText = Annotated[str, _es("keyword", ignore_above=1024, fields=_TEXT)]
"""``keyword`` with ECS's ``.text`` (``match_only_text``) multi-field."""
Wildcard = Annotated[str, _es("wildcard")]
"""ECS ``wildcard`` (``url.full``, ``registry.data.strings``...): no length limit."""
WildcardText = Annotated[str, _es("wildcard", fields=_TEXT)]
Ip = Annotated[str, _es("ip")]
"""One IPv4 or IPv6 address (never a CIDR: Elasticsearch rejects it in an ``ip`` field)."""
IpRange = Annotated[str, _es("ip_range")]
"""A CIDR block (``10.0.0.0/8``)."""
Long = Annotated[int, msgspec.Meta(ge=LONG_MIN, le=LONG_MAX), _es("long")]
UnindexedLong = Annotated[int, msgspec.Meta(ge=LONG_MIN, le=LONG_MAX), _es("long", index=False)]
"""A ``long`` ECS keeps in ``_source`` and doc values but does not index (``index: false``)."""
Port = Annotated[int, msgspec.Meta(ge=0, le=65535), _es("long")]
Date = Annotated[datetime, msgspec.Meta(tz=True), _es("date")]
"""Always UTC; encoded as RFC 3339 (``2024-01-31T12:00:00Z``)."""
Bool = Annotated[bool, _es("boolean")]


class _Doc(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Base of every document part: immutable, and absent values are left out of the JSON.

    Not tracked by the garbage collector (``gc=False``): a part holds only strings, numbers,
    dates, tuples of them and other parts, all built before it and frozen, so it can never be
    in a reference cycle, and the parts of thousands of documents a second do not make the
    collector run."""


# --- threat.indicator -----------------------------------------------------------------------


class FileHash(_Doc, frozen=True, kw_only=True):
    md5: tuple[Keyword, ...] = ()
    sha1: tuple[Keyword, ...] = ()
    sha256: tuple[Keyword, ...] = ()
    sha384: tuple[Keyword, ...] = ()
    sha512: tuple[Keyword, ...] = ()
    ssdeep: tuple[Keyword, ...] = ()
    tlsh: tuple[Keyword, ...] = ()


class FilePe(_Doc, frozen=True, kw_only=True):
    imphash: tuple[Keyword, ...] = ()
    pehash: tuple[Keyword, ...] = ()


class FileElf(_Doc, frozen=True, kw_only=True):
    telfhash: tuple[Keyword, ...] = ()


class IndicatorFile(_Doc, frozen=True, kw_only=True):
    name: tuple[Keyword, ...] = ()
    directory: tuple[Keyword, ...] = ()
    path: tuple[KeywordText, ...] = ()
    size: tuple[Long, ...] = ()
    mime_type: tuple[Keyword, ...] = ()
    hash: FileHash | None = None
    pe: FilePe | None = None
    elf: FileElf | None = None


class IndicatorUrl(_Doc, frozen=True, kw_only=True):
    full: tuple[WildcardText, ...] = ()
    original: tuple[WildcardText, ...] = ()
    scheme: tuple[Keyword, ...] = ()
    domain: tuple[Keyword, ...] = ()
    port: tuple[Port, ...] = ()
    path: tuple[Wildcard, ...] = ()
    query: tuple[Keyword, ...] = ()
    fragment: tuple[Keyword, ...] = ()
    extension: tuple[Keyword, ...] = ()


class RegistryData(_Doc, frozen=True, kw_only=True):
    strings: tuple[Wildcard, ...] = ()
    type: tuple[Keyword, ...] = ()


class IndicatorRegistry(_Doc, frozen=True, kw_only=True):
    hive: tuple[Keyword, ...] = ()
    key: tuple[Keyword, ...] = ()
    path: tuple[Keyword, ...] = ()
    value: tuple[Keyword, ...] = ()
    data: RegistryData | None = None


class X509Name(_Doc, frozen=True, kw_only=True):
    distinguished_name: tuple[Keyword, ...] = ()
    common_name: tuple[Keyword, ...] = ()
    organization: tuple[Keyword, ...] = ()
    organizational_unit: tuple[Keyword, ...] = ()
    country: tuple[Keyword, ...] = ()
    locality: tuple[Keyword, ...] = ()
    state_or_province: tuple[Keyword, ...] = ()


class X509(_Doc, frozen=True, kw_only=True):
    serial_number: tuple[Keyword, ...] = ()
    issuer: X509Name | None = None
    subject: X509Name | None = None
    not_before: tuple[Date, ...] = ()
    not_after: tuple[Date, ...] = ()
    alternative_names: tuple[Keyword, ...] = ()
    signature_algorithm: tuple[Keyword, ...] = ()
    public_key_algorithm: tuple[Keyword, ...] = ()
    public_key_exponent: tuple[UnindexedLong, ...] = ()
    version_number: tuple[Keyword, ...] = ()


class AsOrganization(_Doc, frozen=True, kw_only=True):
    name: tuple[KeywordText, ...] = ()


class AutonomousSystem(_Doc, frozen=True, kw_only=True):
    number: tuple[Long, ...] = ()
    organization: AsOrganization | None = None


class IndicatorEmail(_Doc, frozen=True, kw_only=True):
    address: tuple[Keyword, ...] = ()


class Marking(_Doc, frozen=True, kw_only=True):
    tlp: Keyword
    tlp_version: Keyword


class ThreatIndicator(_Doc, frozen=True, kw_only=True):
    confidence: Keyword
    """``Not Specified``, ``None``, ``Low``, ``Medium`` or ``High`` (STIX 2.1 appendix A)."""
    id: tuple[Keyword, ...] = ()
    type: Keyword | None = None
    name: Keyword | None = None
    description: Keyword | None = None
    provider: Keyword | None = None
    reference: Keyword | None = None
    first_seen: Date | None = None
    modified_at: Date | None = None
    marking: Marking | None = None
    ip: tuple[Ip, ...] = ()
    port: tuple[Port, ...] = ()
    email: IndicatorEmail | None = None
    file: IndicatorFile | None = None
    url: IndicatorUrl | None = None
    registry: IndicatorRegistry | None = None
    x509: X509 | None = None
    as_: AutonomousSystem | None = msgspec.field(default=None, name="as")


class Feed(_Doc, frozen=True, kw_only=True):
    name: Keyword
    reference: Keyword | None = None


class Threat(_Doc, frozen=True, kw_only=True):
    indicator: ThreatIndicator
    feed: Feed


# --- opencti.* ------------------------------------------------------------------------------


class ExternalReference(_Doc, frozen=True, kw_only=True):
    source_name: Keyword | None = None
    url: Keyword | None = None
    external_id: Keyword | None = None


class OpenCTIIndicator(_Doc, frozen=True, kw_only=True):
    id: Keyword | None = None
    """OpenCTI internal id."""
    standard_id: Keyword | None = None
    """STIX id."""
    pattern: Wildcard | None = None
    pattern_type: Keyword | None = None
    pattern_version: Keyword | None = None
    ip_range: tuple[IpRange, ...] = ()
    """CIDR blocks wider than one address (ECS has no range-typed threat field)."""
    score: Long | None = None
    confidence: Long | None = None
    detection: Bool | None = None
    revoked: Bool | None = None
    is_inferred: Bool | None = None
    valid_from: Date | None = None
    valid_until: Date | None = None
    expires_at: Date | None = None
    """When ``connector.indicator_ttl`` makes an indicator without ``valid_until`` expire."""
    created: Date | None = None
    modified: Date | None = None
    created_by_ref: Keyword | None = None
    main_observable_type: Keyword | None = None
    indicator_types: tuple[Keyword, ...] = ()
    mitre_platforms: tuple[Keyword, ...] = ()
    kill_chain_phase: tuple[Keyword, ...] = ()
    """``[kill chain name] phase name``, as Elastic's OpenCTI integration writes it."""
    external_reference: tuple[ExternalReference, ...] = ()


class ExtraHash(_Doc, frozen=True, kw_only=True):
    """Certificate hashes (ECS ``x509`` has no hash fields)."""

    md5: tuple[Keyword, ...] = ()
    sha1: tuple[Keyword, ...] = ()
    sha256: tuple[Keyword, ...] = ()
    sha384: tuple[Keyword, ...] = ()
    sha512: tuple[Keyword, ...] = ()
    sha3_256: tuple[Keyword, ...] = ()
    sha3_512: tuple[Keyword, ...] = ()
    ssdeep: tuple[Keyword, ...] = ()
    tlsh: tuple[Keyword, ...] = ()


class Sha3Hash(_Doc, frozen=True, kw_only=True):
    """File hash algorithms ECS has no ``file.hash.*`` field for."""

    sha3_256: tuple[Keyword, ...] = ()
    sha3_512: tuple[Keyword, ...] = ()


class ObservedFile(_Doc, frozen=True, kw_only=True):
    hash: Sha3Hash | None = None


class ObservedX509(_Doc, frozen=True, kw_only=True):
    hash: ExtraHash | None = None


class ObservedMac(_Doc, frozen=True, kw_only=True):
    value: tuple[Keyword, ...] = ()


class ObservedMutex(_Doc, frozen=True, kw_only=True):
    name: tuple[Keyword, ...] = ()


class ObservedProcess(_Doc, frozen=True, kw_only=True):
    name: tuple[Keyword, ...] = ()
    pid: tuple[Long, ...] = ()
    command_line: tuple[Wildcard, ...] = ()
    cwd: tuple[Keyword, ...] = ()


class ObservedUserAccount(_Doc, frozen=True, kw_only=True):
    user_id: tuple[Keyword, ...] = ()
    account_login: tuple[Keyword, ...] = ()
    display_name: tuple[Keyword, ...] = ()


class ObservedSoftware(_Doc, frozen=True, kw_only=True):
    name: tuple[Keyword, ...] = ()
    vendor: tuple[Keyword, ...] = ()
    version: tuple[Keyword, ...] = ()
    cpe: tuple[Keyword, ...] = ()
    swid: tuple[Keyword, ...] = ()


class ObservedNetworkTraffic(_Doc, frozen=True, kw_only=True):
    protocols: tuple[Keyword, ...] = ()


class ObservedEmailMessage(_Doc, frozen=True, kw_only=True):
    subject: tuple[Keyword, ...] = ()


class ObservedValue(_Doc, frozen=True, kw_only=True):
    """OpenCTI's own observable types whose only property is ``value``."""

    value: tuple[Keyword, ...] = ()


class Observable(_Doc, frozen=True, kw_only=True):
    file: ObservedFile | None = None
    x509_certificate: ObservedX509 | None = None
    mac_addr: ObservedMac | None = None
    mutex: ObservedMutex | None = None
    process: ObservedProcess | None = None
    user_account: ObservedUserAccount | None = None
    software: ObservedSoftware | None = None
    network_traffic: ObservedNetworkTraffic | None = None
    email_message: ObservedEmailMessage | None = None
    user_agent: ObservedValue | None = None
    cryptocurrency_wallet: ObservedValue | None = None
    phone_number: ObservedValue | None = None
    bank_account: ObservedValue | None = None
    credential: ObservedValue | None = None
    tracking_number: ObservedValue | None = None
    text: ObservedValue | None = None


class OpenCTI(_Doc, frozen=True, kw_only=True):
    indicator: OpenCTIIndicator
    observable: Observable | None = None


# --- the document ---------------------------------------------------------------------------


class EcsInfo(_Doc, frozen=True, kw_only=True):
    version: Keyword


class Event(_Doc, frozen=True, kw_only=True):
    kind: Keyword
    category: tuple[Keyword, ...]
    type: tuple[Keyword, ...]
    module: Keyword
    dataset: Keyword


EVENT_MODULE: Final = "ti_opencti_connector"
"""Elastic's prebuilt indicator-match rules only read indicators whose ``event.module`` matches
``threatintel or ti_*``; the name is ours, not that of Elastic's own OpenCTI integration."""

ECS_INFO: Final = EcsInfo(version=ECS_VERSION)
INDICATOR_EVENT: Final = Event(
    kind="enrichment",
    category=("threat",),
    type=("indicator",),
    module=EVENT_MODULE,
    dataset=f"{EVENT_MODULE}.indicator",
)


class IndicatorDocument(_Doc, frozen=True, kw_only=True):
    """One OpenCTI indicator as an ECS threat-indicator document (``_source``)."""

    timestamp: Date = msgspec.field(name="@timestamp")
    ecs: EcsInfo
    event: Event
    threat: Threat
    opencti: OpenCTI
    tags: tuple[Keyword, ...] = ()


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(IndicatorDocument)


encode_document: Final[Callable[[IndicatorDocument], bytes]] = _encoder.encode
"""The document's JSON (``_source`` of the bulk request). The encoder's own method, not a
function calling it: the planner encodes every document, and a function defined here (a Struct
module, so interpreted) would add a Python frame to each."""


def decode_document(data: bytes) -> IndicatorDocument:
    """Read back a document written by ``encode_document`` (tests, tools)."""
    return _decoder.decode(data)


# --- the mapping, derived from the annotations ----------------------------------------------


class MappingError(Exception):
    """A document Struct has a field without an Elasticsearch type (a programming error)."""


def _leaf(info: mi.Type, where: str) -> dict[str, object]:
    if isinstance(info, mi.Metadata) and isinstance(info.extra, dict) and "es" in info.extra:
        spec = info.extra["es"]
        if isinstance(spec, dict):
            return dict(spec)
    if isinstance(info, mi.StructType):
        return {"properties": _properties(info, where)}
    if isinstance(info, mi.UnionType):
        options = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(options) == 1:
            return _leaf(options[0], where)
    if isinstance(info, mi.VarTupleType):
        return _leaf(info.item_type, where)
    raise MappingError(f"{where}: no Elasticsearch type for {info!r}")


def _properties(info: mi.StructType, where: str) -> dict[str, object]:
    return {
        field.encode_name: _leaf(field.type, f"{where}.{field.encode_name}".lstrip("."))
        for field in info.fields
    }


def mapping_of(struct: type[msgspec.Struct]) -> dict[str, object]:
    """The ``properties`` of an Elasticsearch mapping for a document Struct."""
    info = mi.type_info(struct)
    if not isinstance(info, mi.StructType):  # pragma: no cover - callers pass Structs
        raise MappingError(f"{struct!r} is not a Struct")
    return _properties(info, "")


INDICATOR_MAPPINGS: Final[dict[str, object]] = {
    # Unknown fields (a newer connector, a hand-made edit) are kept in _source but never
    # indexed: no document is ever rejected for them, and no dynamic mapping guesses a type.
    "dynamic": False,
    "properties": mapping_of(IndicatorDocument),
}
"""The ``mappings`` body of the indicator index template."""


def field_types(mappings: dict[str, object]) -> dict[str, str]:
    """Flatten a mapping to ``{"threat.indicator.ip": "ip", ...}`` (tests, docs, checks)."""
    flat: dict[str, str] = {}

    def walk(properties: object, prefix: str) -> None:
        if not isinstance(properties, dict):
            return
        for name, spec in properties.items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            if "properties" in spec:
                walk(spec["properties"], path + ".")
            elif isinstance(spec.get("type"), str):
                flat[path] = spec["type"]

    walk(mappings.get("properties"), "")
    return flat
