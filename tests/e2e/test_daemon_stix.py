"""``stix`` mode: every streamed STIX object becomes one document, whatever its type (known,
OpenCTI-specific or unknown), updates rewrite it, deletes and merges remove it, and the TLP
ceiling still applies."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from elastic_connector.demo.opencti_data import (
    DEFAULT_MARKINGS,
    OPENCTI_EXTENSION,
    Json,
    identity_standard_id,
    make_indicator,
    now_iso,
)
from tests.e2e.harness import ConnectorHarness, dig, doc_id

Harnesses = Callable[..., ConnectorHarness]
TLP_RED = next(m.standard_id for m in DEFAULT_MARKINGS if m.definition == "TLP:RED")


def sdo(stix_type: str, entity_type: str, **properties: object) -> Json:
    """A STIX object as OpenCTI streams it (with its OpenCTI extension and internal id)."""
    stamp = now_iso()
    return {
        "id": f"{stix_type}--{uuid.uuid4()}",
        "type": stix_type,
        "spec_version": "2.1",
        "created": stamp,
        "modified": stamp,
        **properties,
        "extensions": {
            OPENCTI_EXTENSION: {
                "extension_type": "property-extension",
                "id": str(uuid.uuid4()),
                "type": entity_type,
                "created_at": stamp,
                "updated_at": stamp,
                "is_inferred": False,
            }
        },
    }


def test_stix_mode_indexes_every_object_type_and_deletes_on_delete(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness("stix")
    connector.start()

    indicator = make_indicator("[domain-name:value = 'stix-mode.example.com']", score=70)
    identity = sdo("identity", "Organization", name="ACME", identity_class="organization")
    identity["id"] = identity_standard_id("ACME", "organization")
    malware = sdo("malware", "Malware", name="Emotet", is_family=True, labels=["trojan"])
    relationship = sdo(
        "relationship",
        "indicates",
        relationship_type="indicates",
        source_ref=indicator["id"],
        target_ref=malware["id"],
    )
    marking = sdo(
        "marking-definition",
        "Marking-Definition",
        definition_type="statement",
        definition="Copyright ACME",
        name="ACME copyright",
    )
    sighting = sdo(
        "sighting",
        "stix-sighting-relationship",
        sighting_of_ref=indicator["id"],
        where_sighted_refs=[identity["id"]],
        count=3,
    )
    custom: Json = {  # an unknown type, without any OpenCTI extension
        "id": f"x-acme-widget--{uuid.uuid4()}",
        "type": "x-acme-widget",
        "spec_version": "2.1",
        "name": "widget",
        "x_depth": {"a": {"b": [1, 2, {"c": "d"}]}},
    }
    secret = sdo("malware", "Malware", name="Secret", is_family=False)
    secret["object_marking_refs"] = [TLP_RED]
    objects = [indicator, identity, malware, relationship, marking, sighting, custom]
    for stix in [*objects, secret]:
        connector.publish("create", stix)
    connector.wait_for_ack(connector.standin.event_ids[-1])

    documents = connector.documents()
    # The platform sends the TLP:RED marking definition before `secret`, as a dependency under
    # its id: that object carries no marking, so it is indexed (`secret` is not).
    assert sorted(documents) == sorted([*(doc_id(o) for o in objects), TLP_RED])
    assert doc_id(custom) == custom["id"]
    for stix in objects:
        document = documents[doc_id(stix)]
        assert document["id"] == stix["id"]
        assert document["type"] == stix["type"]
        assert document["stix"] == stix, f"{stix['type']} not kept as streamed"
    assert dig(documents[doc_id(indicator)], "opencti.score") == 70
    assert dig(documents[doc_id(malware)], "opencti.type") == "Malware"
    assert documents[doc_id(malware)]["labels"] == ["trojan"]

    # Updates rewrite in place; deletes (and merges) remove.
    renamed = {**identity, "name": "ACME Corp", "modified": now_iso()}
    connector.publish("update", renamed, {"patch": [], "reverse_patch": []})
    connector.publish("delete", malware)
    connector.publish("delete", relationship)
    connector.publish("delete", custom)
    connector.wait_for_ack(connector.standin.event_ids[-1])

    documents = connector.documents()
    remaining = [indicator, identity, marking, sighting]
    assert sorted(documents) == sorted([*(doc_id(o) for o in remaining), TLP_RED])
    assert documents[doc_id(identity)]["name"] == "ACME Corp"

    survivor = sdo("identity", "Organization", name="Merged org", identity_class="organization")
    connector.publish("create", survivor)
    connector.publish("merge", survivor, {"sources": [identity], "patch": []})
    connector.wait_for_ack(connector.standin.event_ids[-1])

    documents = connector.documents()
    kept = [indicator, marking, sighting, survivor]
    assert sorted(documents) == sorted([*(doc_id(o) for o in kept), TLP_RED])
    assert connector.daemon.running
