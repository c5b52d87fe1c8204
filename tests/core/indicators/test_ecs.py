"""The ECS document Structs and the index mapping derived from their annotations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.indicators import ecs, field_values
from tests.core.indicators.es_field_checks import problems

FIELDS = ecs.field_types(ecs.INDICATOR_MAPPINGS)

# Types as the ECS 8.x field reference (generated/csv/fields.csv) gives them.
ECS_TYPES = {
    "@timestamp": "date",
    "tags": "keyword",
    "ecs.version": "keyword",
    "event.kind": "keyword",
    "event.module": "keyword",
    "event.dataset": "keyword",
    "event.category": "keyword",
    "event.type": "keyword",
    "threat.feed.name": "keyword",
    "threat.feed.reference": "keyword",
    "threat.indicator.id": "keyword",
    "threat.indicator.type": "keyword",
    "threat.indicator.name": "keyword",
    "threat.indicator.description": "keyword",
    "threat.indicator.confidence": "keyword",
    "threat.indicator.provider": "keyword",
    "threat.indicator.reference": "keyword",
    "threat.indicator.first_seen": "date",
    "threat.indicator.modified_at": "date",
    "threat.indicator.marking.tlp": "keyword",
    "threat.indicator.marking.tlp_version": "keyword",
    "threat.indicator.ip": "ip",
    "threat.indicator.port": "long",
    "threat.indicator.email.address": "keyword",
    "threat.indicator.file.name": "keyword",
    "threat.indicator.file.directory": "keyword",
    "threat.indicator.file.path": "keyword",
    "threat.indicator.file.size": "long",
    "threat.indicator.file.mime_type": "keyword",
    "threat.indicator.file.hash.md5": "keyword",
    "threat.indicator.file.hash.sha1": "keyword",
    "threat.indicator.file.hash.sha256": "keyword",
    "threat.indicator.file.hash.sha384": "keyword",
    "threat.indicator.file.hash.sha512": "keyword",
    "threat.indicator.file.hash.ssdeep": "keyword",
    "threat.indicator.file.hash.tlsh": "keyword",
    "threat.indicator.file.pe.imphash": "keyword",
    "threat.indicator.file.pe.pehash": "keyword",
    "threat.indicator.file.elf.telfhash": "keyword",
    "threat.indicator.url.full": "wildcard",
    "threat.indicator.url.original": "wildcard",
    "threat.indicator.url.scheme": "keyword",
    "threat.indicator.url.domain": "keyword",
    "threat.indicator.url.port": "long",
    "threat.indicator.url.path": "wildcard",
    "threat.indicator.url.query": "keyword",
    "threat.indicator.url.fragment": "keyword",
    "threat.indicator.url.extension": "keyword",
    "threat.indicator.registry.hive": "keyword",
    "threat.indicator.registry.key": "keyword",
    "threat.indicator.registry.path": "keyword",
    "threat.indicator.registry.value": "keyword",
    "threat.indicator.registry.data.strings": "wildcard",
    "threat.indicator.registry.data.type": "keyword",
    "threat.indicator.x509.serial_number": "keyword",
    "threat.indicator.x509.issuer.distinguished_name": "keyword",
    "threat.indicator.x509.issuer.common_name": "keyword",
    "threat.indicator.x509.subject.common_name": "keyword",
    "threat.indicator.x509.not_before": "date",
    "threat.indicator.x509.not_after": "date",
    "threat.indicator.x509.alternative_names": "keyword",
    "threat.indicator.x509.signature_algorithm": "keyword",
    "threat.indicator.x509.public_key_algorithm": "keyword",
    "threat.indicator.x509.public_key_exponent": "long",
    "threat.indicator.x509.version_number": "keyword",
    "threat.indicator.as.number": "long",
    "threat.indicator.as.organization.name": "keyword",
}


@pytest.mark.parametrize(("field", "es_type"), sorted(ECS_TYPES.items()))
def test_ecs_fields_have_their_ecs_type(field: str, es_type: str) -> None:
    assert FIELDS[field] == es_type


def test_only_ecs_and_vendor_namespaces_are_used() -> None:
    for field in FIELDS:
        if field.startswith("threat.indicator."):
            # Custom values never go under an ECS namespace.
            assert field in ECS_TYPES or field.startswith(
                ("threat.indicator.x509.issuer.", "threat.indicator.x509.subject.")
            ), field
        else:
            assert field in ECS_TYPES or field.startswith("opencti."), field


def test_ranges_and_vendor_fields() -> None:
    assert FIELDS["opencti.indicator.ip_range"] == "ip_range"
    assert FIELDS["opencti.indicator.score"] == "long"
    assert FIELDS["opencti.indicator.valid_until"] == "date"
    assert FIELDS["opencti.indicator.detection"] == "boolean"
    assert FIELDS["opencti.observable.process.pid"] == "long"
    assert FIELDS["opencti.observable.mac_addr.value"] == "keyword"


def test_mapping_is_explicit_and_never_dynamic() -> None:
    assert ecs.INDICATOR_MAPPINGS["dynamic"] is False

    def keywords(properties: object) -> list[dict[str, object]]:
        found = []
        if isinstance(properties, dict):
            for spec in properties.values():
                if isinstance(spec, dict):
                    if spec.get("type") == "keyword":
                        found.append(spec)
                    found.extend(keywords(spec.get("properties")))
        return found

    # Keywords longer than Lucene's term limit would reject the document: none is indexed.
    assert all(
        spec["ignore_above"] == 1024 for spec in keywords(ecs.INDICATOR_MAPPINGS["properties"])
    )


def test_mapping_is_deterministic_json() -> None:
    once = json.dumps(ecs.mapping_of(ecs.IndicatorDocument))
    assert json.dumps(ecs.mapping_of(ecs.IndicatorDocument)) == once
    assert json.dumps(ecs.INDICATOR_MAPPINGS["properties"]) == once


def test_a_field_without_elasticsearch_type_is_a_programming_error() -> None:
    class Broken(msgspec.Struct):
        untyped: str

    with pytest.raises(ecs.MappingError, match="untyped"):
        ecs.mapping_of(Broken)


def _full_document() -> ecs.IndicatorDocument:
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    return ecs.IndicatorDocument(
        timestamp=moment,
        ecs=ecs.ECS_INFO,
        event=ecs.INDICATOR_EVENT,
        threat=ecs.Threat(
            indicator=ecs.ThreatIndicator(
                confidence="High",
                id=("a", "indicator--b"),
                type="ipv4-addr",
                first_seen=moment,
                marking=ecs.Marking(tlp="RED", tlp_version="2.0"),
                ip=("1.2.3.4", "::1"),
                port=(0, 65535),
                x509=ecs.X509(not_before=(moment,), issuer=ecs.X509Name(common_name=("CA",))),
                as_=ecs.AutonomousSystem(number=(4294967295,)),
            ),
            feed=ecs.Feed(name="OpenCTI"),
        ),
        opencti=ecs.OpenCTI(
            indicator=ecs.OpenCTIIndicator(ip_range=("10.0.0.0/8",), score=-(2**63)),
            observable=ecs.Observable(process=ecs.ObservedProcess(pid=(4,))),
        ),
        tags=("x",),
    )


def test_encoding_writes_ecs_names_and_omits_absent_values() -> None:
    doc = json.loads(ecs.encode_document(_full_document()))
    assert doc["@timestamp"] == "2024-01-02T03:04:05Z"
    assert doc["threat"]["indicator"]["as"] == {"number": [4294967295]}
    assert doc["event"] == {
        "kind": "enrichment",
        "category": ["threat"],
        "type": ["indicator"],
        "module": "ti_opencti_connector",
        "dataset": "ti_opencti_connector.indicator",
    }
    assert "description" not in doc["threat"]["indicator"]
    assert "null" not in ecs.encode_document(_full_document()).decode()
    assert problems(doc, ecs.INDICATOR_MAPPINGS) == []


def test_round_trip_of_a_full_document() -> None:
    document = _full_document()
    assert ecs.decode_document(ecs.encode_document(document)) == document


# --- value checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a", "a"), ("", None), ("é", "é"), ("\ud800", None), (None, None), (3, None)],
)
def test_keyword_value(value: object, expected: str | None) -> None:
    assert field_values.keyword_value(value) == expected


_EDGES = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**62 - 1, 2**62, -(2**62), -(2**62) - 1]


@given(
    st.one_of(
        st.integers(), st.sampled_from(_EDGES), st.booleans(), st.floats(), st.none(), st.text()
    )
)
def test_long_value_accepts_exactly_the_ints_in_range(value: object) -> None:
    in_range = type(value) is int and -(2**63) <= value <= 2**63 - 1
    assert field_values.long_value(value) == (value if in_range else None)
    in_port_range = type(value) is int and 0 <= value <= 65535
    assert field_values.long_value(value, 0, 65535) == (value if in_port_range else None)


_OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(timezones=st.none() | _OFFSETS))
def test_date_value_is_utc_or_none(moment: datetime) -> None:
    result = field_values.date_value(moment)
    if result is None:
        # Only an instant outside UTC years 1-9999 has no value.
        offset = moment.utcoffset() or timedelta(0)
        assert moment.year in (1, 9999)
        assert offset != timedelta(0)
    else:
        assert result.tzinfo is UTC
        assert result == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T12:00:00Z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T14:00:00+02:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),
        ("0001-01-01T00:00:00+01:00", None),
        ("yesterday", None),
        (20240131, None),
    ],
)
def test_date_text_value(text: object, expected: datetime | None) -> None:
    assert field_values.date_text_value(text) == expected


def test_offsets_are_converted_not_dropped() -> None:
    moment = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert field_values.date_value(moment) == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
