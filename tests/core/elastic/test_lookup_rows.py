"""Rows of the ES|QL lookup index: one per exact value, always in step with the documents.

The store model applies ``sync_rows`` the way Elasticsearch applies the bulk actions (deletes
of missing rows are no-ops, upserts replace); whatever the sequence of document versions, the
rows stored are exactly those of the last version, and each row is joinable: one key field,
single-valued, mapped with the type the join needs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.elastic.lookup_rows import (
    ID_FIELD,
    KEY_FIELDS,
    LOOKUP_MAPPINGS,
    key_values,
    row_id,
    row_ids,
    rows,
    sync_rows,
    union_of,
)
from elastic_connector.core.indicators import ecs
from tests.support.flat import flat_fields

NOW = datetime(2025, 6, 1, tzinfo=UTC)
IPS = ["198.51.100.7", "2001:db8::1", "203.0.113.9"]
DOMAINS = ["evil.example", "c2.example.org"]
HASHES = ["d41d8cd98f00b204e9800998ecf8427e", "D41D8CD98F00B204E9800998ECF8427E"]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    """Indicator documents as the mapping writes them (the fields rows read)."""
    indicator: dict[str, object] = {
        "id": ["opencti-id", "indicator--x"],
        "confidence": draw(st.sampled_from(["High", "Low"])),
        "type": draw(st.sampled_from(["ipv4-addr", "domain-name", "file"])),
        "ip": draw(st.lists(st.sampled_from(IPS), unique=True)),
        "url": {
            "domain": draw(st.lists(st.sampled_from(DOMAINS), unique=True)),
            "full": draw(st.lists(st.just("http://evil.example/a"), max_size=1)),
        },
        "file": {"hash": {"md5": draw(st.lists(st.sampled_from(HASHES), unique=True))}},
        "marking": {"tlp": draw(st.sampled_from(["GREEN", "AMBER"])), "tlp_version": "2.0"},
    }
    name = draw(st.none() | st.sampled_from(["one", "two"]))
    if name is not None:
        indicator["name"] = name
    opencti = {"score": draw(st.integers(0, 100)), "valid_until": "2026-01-01T00:00:00Z"}
    return {"@timestamp": "2025-06-01T00:00:00Z", "threat": {"indicator": indicator},
            "opencti": {"indicator": opencti}, "event": {"kind": "enrichment"}}  # fmt: skip


def _apply(store: dict[str, bytes], actions: list[Upsert | Delete]) -> None:
    for action in actions:
        if isinstance(action, Upsert):
            store[action.id] = action.document
        else:
            store.pop(action.id, None)


@given(versions=st.lists(st.none() | documents(), min_size=1, max_size=6))
def test_rows_follow_any_sequence_of_versions(versions: list[dict[str, object] | None]) -> None:
    store: dict[str, bytes] = {}
    stored: dict[str, object] | None = None
    for version in versions:
        _apply(store, sync_rows("lookup", "opencti-id", stored, version))
        stored = version
        assert store == ({} if version is None else rows("opencti-id", version))


@given(before=st.none() | documents(), after=st.none() | documents())
def test_a_refused_update_is_undone_by_syncing_back(
    before: dict[str, object] | None, after: dict[str, object] | None
) -> None:
    store: dict[str, bytes] = {} if before is None else rows("opencti-id", before)
    _apply(store, sync_rows("lookup", "opencti-id", before, after))
    _apply(store, sync_rows("lookup", "opencti-id", after, before))
    assert store == ({} if before is None else rows("opencti-id", before))


@given(document=documents())
def test_each_row_has_one_single_valued_key_and_no_event_field(document: dict[str, object]) -> None:
    values = key_values(document)
    built = rows("opencti-id", document)
    assert set(built) == {row_id("opencti-id", field, value) for field, value in values}
    mapped = ecs.field_types(LOOKUP_MAPPINGS)
    for row in built.values():
        flat = flat_fields(msgspec.json.decode(row))
        keys = [field for field in KEY_FIELDS if field in flat]
        assert len(keys) == 1
        assert isinstance(flat[keys[0]], str)
        assert flat[ID_FIELD] == "opencti-id"
        # Only indicator fields: a lookup column replaces an event column of the same name.
        assert all(path.startswith(("threat.indicator.", "opencti.indicator.")) for path in flat)
        assert set(flat) <= set(mapped)


def test_rows_types_are_the_join_types_and_the_indicator_index_types() -> None:
    row_types = ecs.field_types(LOOKUP_MAPPINGS)
    main_types = ecs.field_types(ecs.INDICATOR_MAPPINGS)
    assert row_types["threat.indicator.ip"] == "ip"
    for field in KEY_FIELDS:
        # ES|QL joins keyword with keyword (and the events' wildcard or text); ip with ip.
        assert row_types[field] == ("ip" if field.endswith(".ip") else "keyword")
    for field, es_type in row_types.items():
        if field not in KEY_FIELDS and field != ID_FIELD:
            assert main_types[field] == es_type, field


def test_a_mapped_indicator_gives_one_row_per_exact_value() -> None:
    from elastic_connector.core.config import Mode
    from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame

    stix = {
        "type": "indicator",
        "id": "indicator--5e0b3b57-0b3f-4d4b-9c55-35e6d1d5f3a1",
        "name": "mixed",
        "pattern": "[ipv4-addr:value = '198.51.100.7'] OR [domain-name:value = 'evil.example']"
        " OR [file:hashes.MD5 = 'D41D8CD98F00B204E9800998ECF8427E']"
        " OR [url:value = 'http://evil.example/a'] OR [email-addr:value = 'x@evil.example']",
        "pattern_type": "stix",
        "object_marking_refs": ["marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"],
    }
    plan = plan_frame(
        "1-0", "create", msgspec.json.encode({"data": stix}), PlannerState(),
        PlanSettings(mode=Mode.ECS, index="ti"), NOW,
    )  # fmt: skip
    (upsert,) = plan.actions
    assert isinstance(upsert, Upsert)
    document = msgspec.json.decode(upsert.document)
    assert key_values(document) == [
        ("threat.indicator.ip", "198.51.100.7"),
        ("threat.indicator.url.full", "http://evil.example/a"),
        ("threat.indicator.url.domain", "evil.example"),
        ("threat.indicator.email.address", "x@evil.example"),
        ("threat.indicator.file.hash.md5", "D41D8CD98F00B204E9800998ECF8427E"),
        ("threat.indicator.file.hash.md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ]
    row = msgspec.json.decode(
        rows(upsert.id, document)[row_id(upsert.id, *key_values(document)[0])]
    )
    assert row["threat"]["indicator"]["marking"] == {"tlp": "GREEN"}
    assert row["threat"]["indicator"]["name"] == "mixed"
    assert "@timestamp" not in row


def test_a_deleted_or_retracted_indicator_loses_every_row() -> None:
    document = {"threat": {"indicator": {"ip": ["198.51.100.7"], "url": {"domain": ["a.b"]}}}}
    actions = sync_rows("lookup", "id-1", document, None, reason="marked TLP:RED")
    assert sorted(a.id for a in actions) == sorted(rows("id-1", document))
    assert all(isinstance(a, Delete) and a.reason == "marked TLP:RED" for a in actions)


def test_values_a_stored_document_holds_in_odd_shapes_are_read_or_skipped() -> None:
    odd = {"threat": {"indicator": {"ip": "198.51.100.7", "url": {"domain": [1, "", None, "x"]}}}}
    assert key_values(odd) == [
        ("threat.indicator.ip", "198.51.100.7"),
        ("threat.indicator.url.domain", "x"),
    ]
    assert key_values({"threat": "not an object"}) == []
    assert key_values({"threat": {"indicator": {"url": {"full": ["u" * 9000]}}}}) == []


@given(copies=st.lists(documents(), min_size=1, max_size=3))
def test_the_union_of_copies_names_every_row_any_copy_has(
    copies: list[dict[str, object]],
) -> None:
    union = union_of(copies)
    assert set(row_ids("x", union)) == {row for copy in copies for row in row_ids("x", copy)}
    # Brought back to a single stored copy, the rows are that copy's own, payload included.
    (last,) = copies[-1:]
    if len(copies) == 1:
        assert rows("x", union) == rows("x", last)
