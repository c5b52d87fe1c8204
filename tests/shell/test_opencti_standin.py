"""The real, unmodified pycti against the OpenCTI stand-in: every call the connector makes
works as it does against the platform (same GraphQL, same answers, same errors)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest
import urllib3
from hypothesis import example, given
from hypothesis import strategies as st
from pycti import (
    Identity,
    Indicator,
    MarkingDefinition,
    OpenCTIApiClient,
    StixSightingRelationship,
)
from pycti.connector.opencti_connector_helper import PingAlive

from elastic_connector.demo.graphql_lite import GraphQLSyntaxError, parse_operation, project
from elastic_connector.demo.opencti_standin import (
    DEFAULT_MARKINGS,
    OPENCTI_EXTENSION,
    OpenCTIStandin,
    identity_standard_id,
    indicator_standard_id,
    make_indicator,
    sighting_standard_id,
)
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from tests.support.opencti import HelperFactory


IdentityType = Literal["Organization", "Individual", "System", "SecurityPlatform", "Sector"]
TLP_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
TLP_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _internal_id(stix: dict[str, object]) -> str:
    extensions = stix["extensions"]
    assert isinstance(extensions, dict)
    return str(extensions[OPENCTI_EXTENSION]["id"])


def _fields(standin: OpenCTIStandin) -> list[str]:
    return [name for request in standin.graphql_requests for name in request.fields]


# --- helper construction, registration and ping -----------------------------------------------


def test_helper_registers_a_stream_connector_and_pings_at_once(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    connector_id = str(uuid.uuid4())
    helper = pycti_helper(connector_id=connector_id, name="Elastic test")

    assert helper.connector_id == connector_id
    assert opencti_standin.connector_registered(connector_id)
    assert _fields(opencti_standin)[:3] == ["about", "about", "registerConnector"]
    register = next(
        r for r in opencti_standin.graphql_requests if r.fields == ("registerConnector",)
    )
    sent = register.variables["input"]
    assert isinstance(sent, dict)
    assert (sent["id"], sent["type"], sent["name"], sent["scope"]) == (
        connector_id,
        "STREAM",
        "Elastic test",
        ["elastic"],
    )
    assert helper.get_state() is None
    wait_until(lambda: opencti_standin.ping_count(connector_id) >= 1, what="the first ping")
    assert opencti_standin.connector_state(connector_id) == "null"


def test_ping_stores_the_state_the_helper_sends(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    state: dict[str, object] = {"start_from": "1704067200000-3", "recover_until": False}
    helper.set_state(state)
    helper.force_ping()

    assert opencti_standin.connector_state(helper.connector_id) == json.dumps(state)


def test_a_restarted_connector_gets_its_saved_state_back(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    connector_id = str(uuid.uuid4())
    saved = {"start_from": "1704067200000-0", "recover_until": "2024-01-01T00:00:00Z"}
    opencti_standin.set_connector_state(connector_id, json.dumps(saved))

    helper = pycti_helper(connector_id=connector_id)

    assert helper.get_state() == saved


def test_state_reset_in_the_ui_is_adopted_by_the_ping_thread(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    helper.set_state({"start_from": "1704067200000-9", "recover_until": False})
    helper.force_ping()
    opencti_standin.reset_connector_state(helper.connector_id)
    pings = opencti_standin.ping_count(helper.connector_id)

    # A second PingAlive pings at once (the helper's own waits 40 s between pings).
    ping = PingAlive(
        helper.connector_logger,
        helper.connector_id,
        helper.api,
        helper.get_state,
        helper.set_state,
        helper.metric,
        helper.connector_info,
    )
    ping.start()
    try:
        wait_until(lambda: opencti_standin.ping_count(helper.connector_id) > pings)
        wait_until(lambda: helper.get_state() is None, what="the reset state to be adopted")
    finally:
        ping.stop()
        ping.join(5)
    # The reset answers once; the next ping stores what the helper sends again.
    helper.set_state({"start_from": "0-0", "recover_until": False})
    helper.force_ping()
    assert opencti_standin.connector_state(helper.connector_id) == json.dumps(
        {"start_from": "0-0", "recover_until": False}
    )


def test_helper_stop_deletes_the_connector_and_its_state(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    helper.set_state({"start_from": "5-0"})
    helper.force_ping()

    helper.stop()
    helper.ping.join(5)

    assert not helper.ping.is_alive()
    assert not opencti_standin.connector_registered(helper.connector_id)
    assert opencti_standin.connector_state(helper.connector_id) is None


def test_a_bad_token_is_refused_like_the_platform_does(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    with pytest.raises(ValueError, match="not reachable"):
        pycti_helper(token="not-a-token")

    client = OpenCTIApiClient(
        opencti_standin.url, "not-a-token", log_level="error", perform_health_check=False
    )
    with pytest.raises(ValueError, match="AUTH_REQUIRED"):
        client.query("query { about { version } }")


def test_capabilities_are_enforced(opencti_standin: OpenCTIStandin) -> None:
    opencti_standin.add_user("reader-token", name="reader", capabilities=["KNOWLEDGE"])
    client = OpenCTIApiClient(opencti_standin.url, "reader-token", log_level="error")

    me = client.query("query { me { name capabilities { name } } }")
    assert me == {"data": {"me": {"name": "reader", "capabilities": [{"name": "KNOWLEDGE"}]}}}
    with pytest.raises(ValueError, match="FORBIDDEN_ACCESS"):
        client.identity.create(type="Organization", name="ACME")


# --- identities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity_type", "mutation", "identity_class"),
    [
        ("Organization", "organizationAdd", "organization"),
        ("System", "systemAdd", "system"),
        ("SecurityPlatform", "securityPlatformAdd", "securityplatform"),
        ("Individual", "individualAdd", "individual"),
        ("Sector", "identityAdd", "class"),
    ],
)
def test_identity_create_upserts_by_name_and_class(
    opencti_standin: OpenCTIStandin,
    pycti_helper: HelperFactory,
    identity_type: IdentityType,
    mutation: str,
    identity_class: str,
) -> None:
    helper = pycti_helper()
    create = helper.api.identity.create

    first = create(type=identity_type, name="Elastic Security", description="SIEM")
    again = create(type=identity_type, name="elastic security ")

    assert first is not None
    assert again is not None
    assert first == again
    assert first["entity_type"] == identity_type
    assert first["standard_id"] == Identity.generate_id("Elastic Security", identity_class)
    assert mutation in _fields(opencti_standin)


def test_same_name_in_another_class_is_another_identity(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    system = helper.api.identity.create(type="System", name="Elastic")
    organization = helper.api.identity.create(type="Organization", name="Elastic")

    assert system is not None
    assert organization is not None
    assert system["id"] != organization["id"]


# --- sightings ------------------------------------------------------------------------------


def test_sighting_create_sends_exactly_these_variables(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '198.51.100.7']", markings=[TLP_AMBER])
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="SecurityPlatform", name="Elastic Security")
    assert where is not None
    stix_id = StixSightingRelationship.generate_id(
        str(indicator["id"]),
        [where["standard_id"]],
        "2024-01-01T00:00:00.000Z",
        "2024-01-02T00:00:00.000Z",
    )

    created = helper.api.stix_sighting_relationship.create(
        fromId=_internal_id(indicator),
        toId=where["id"],
        stix_id=stix_id,
        first_seen="2024-01-01T00:00:00.000Z",
        last_seen="2024-01-02T00:00:00.000Z",
        count=3,
        confidence=80,
        description="3 alerts in Elastic Security",
        createdBy=where["id"],
        objectMarking=[TLP_AMBER],
        externalReferences=None,
        x_opencti_negative=False,
    )

    assert opencti_standin.sighting_inputs == [
        {
            "fromId": _internal_id(indicator),
            "toId": where["id"],
            "stix_id": stix_id,
            "description": "3 alerts in Elastic Security",
            "first_seen": "2024-01-01T00:00:00.000Z",
            "last_seen": "2024-01-02T00:00:00.000Z",
            "attribute_count": 3,
            "x_opencti_negative": False,
            "created": None,
            "modified": None,
            "confidence": 80,
            "createdBy": where["id"],
            "objectMarking": [TLP_AMBER],
            "objectLabel": None,
            "externalReferences": None,
            "x_opencti_stix_ids": None,
            "x_opencti_workflow_id": None,
            "x_opencti_modified_at": None,
            "objectOrganization": None,
            "update": False,
            "upsertOperations": None,
            "customFieldValues": None,
        }
    ]
    assert created["standard_id"] == stix_id
    assert created["entity_type"] == "stix-sighting-relationship"
    stored = opencti_standin.sightings
    assert [(s["standard_id"], s["attribute_count"]) for s in stored] == [(stix_id, 3)]


def test_sighting_by_standard_id_derives_the_platform_id(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[domain-name:value = 'example.org']")
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="System", name="SIEM")
    assert where is not None

    created = helper.api.stix_sighting_relationship.create(
        fromId=str(indicator["id"]),
        toId=where["standard_id"],
        first_seen="2024-05-01T10:00:00Z",
        last_seen="2024-05-01T11:00:00Z",
        count=1,
    )

    assert created["standard_id"] == StixSightingRelationship.generate_id(
        str(indicator["id"]),
        [where["standard_id"]],
        "2024-05-01T10:00:00Z",
        "2024-05-01T11:00:00Z",
    )


def test_sighting_of_a_deleted_indicator_is_a_missing_reference(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[url:value = 'http://bad.example/']")
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="SecurityPlatform", name="Elastic Security")
    assert where is not None
    opencti_standin.forget_object(str(indicator["id"]))

    with pytest.raises(ValueError, match="MISSING_REFERENCE_ERROR") as raised:
        helper.api.stix_sighting_relationship.create(
            fromId=str(indicator["id"]), toId=where["id"], count=1
        )

    assert str(indicator["id"]) in str(raised.value)
    assert len(opencti_standin.sighting_inputs) == 1  # received, refused
    assert opencti_standin.sightings == []


def test_sighting_with_an_unknown_marking_is_stored_without_it(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    """The platform drops references it cannot resolve (other than from/to) for an API caller
    instead of refusing the write (``inputResolveRefs``); more in test_standin_sightings.py."""
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '203.0.113.1']")
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="SecurityPlatform", name="Elastic Security")
    assert where is not None

    helper.api.stix_sighting_relationship.create(
        fromId=str(indicator["id"]), toId=where["id"], objectMarking=["TLP:AMBER"]
    )

    [stored] = opencti_standin.sightings
    assert stored["objectMarking"] == []


def test_sightings_and_identities_appear_on_the_stream(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '192.0.2.9']")
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="SecurityPlatform", name="Elastic Security")
    assert where is not None
    helper.api.stix_sighting_relationship.create(
        fromId=str(indicator["id"]), toId=where["id"], count=2
    )

    frames = _read_stream(opencti_standin, "/stream", last_event_id="0-0", events=3)

    assert [event for event, _ in frames] == ["create", "create", "create"]
    kinds = [json.loads(data)["data"]["type"] for _, data in frames]
    assert kinds == ["indicator", "identity", "sighting"]


# --- reads ----------------------------------------------------------------------------------


def test_marking_definitions_list_the_tlp_markings(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()

    markings = helper.api.marking_definition.list()
    tlp = helper.api.marking_definition.list(
        filters={
            "mode": "and",
            "filters": [{"key": "definition", "values": ["TLP:AMBER", "TLP:GREEN"]}],
            "filterGroups": [],
        }
    )

    assert {(m["standard_id"], m["definition"]) for m in markings} == {
        (m.standard_id, m.definition) for m in DEFAULT_MARKINGS
    }
    assert {(m["standard_id"], m["definition_type"]) for m in tlp} == {
        (TLP_AMBER, "TLP"),
        (TLP_GREEN, "TLP"),
    }


def test_indicator_read_by_either_id(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator(
        "[file:hashes.'SHA-256' = 'aa']",
        score=80,
        main_observable_type="StixFile",
        markings=[TLP_GREEN],
        platforms=["windows"],
    )
    opencti_standin.publish("create", indicator)

    by_stix = helper.api.indicator.read(id=str(indicator["id"]))
    by_internal = helper.api.indicator.read(id=_internal_id(indicator))

    assert by_stix is not None
    assert by_stix == by_internal
    assert by_stix["id"] == _internal_id(indicator)
    assert by_stix["standard_id"] == indicator["id"]
    assert by_stix["pattern"] == indicator["pattern"]
    assert by_stix["x_opencti_score"] == 80
    assert by_stix["x_opencti_main_observable_type"] == "StixFile"
    assert by_stix["x_mitre_platforms"] == ["windows"]
    assert [m["standard_id"] for m in by_stix["objectMarking"]] == [TLP_GREEN]
    assert by_stix["objectMarkingIds"] == [by_stix["objectMarking"][0]["id"]]


def test_indicator_read_of_an_unknown_or_deleted_id_is_none(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '192.0.2.1']")
    opencti_standin.publish("create", indicator)
    opencti_standin.publish("delete", indicator)

    assert helper.api.indicator.read(id=str(indicator["id"])) is None
    assert helper.api.indicator.read(id="indicator--00000000-0000-4000-8000-000000000000") is None


def test_answers_carry_only_the_selected_fields(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '192.0.2.2']")
    opencti_standin.publish("create", indicator)

    answer = helper.api.query(
        "query Q($id: String!) { indicator(id: $id) { id alias: pattern } }",
        {"id": indicator["id"]},
    )

    assert answer == {
        "data": {"indicator": {"id": _internal_id(indicator), "alias": indicator["pattern"]}}
    }


# --- errors and injected faults ---------------------------------------------------------------


def test_unknown_root_field_is_a_graphql_error(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    with pytest.raises(ValueError, match="Cannot query field"):
        helper.api.query("query { noSuchThing { id } }")


def test_injected_http_failures_then_recovery(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    opencti_standin.fail_graphql(status=502, times=2, fields=["organizationAdd"])

    for _ in range(2):
        with pytest.raises(ValueError, match="502"):
            helper.api.identity.create(type="Organization", name="ACME")
    created = helper.api.identity.create(type="Organization", name="ACME")

    assert created is not None


def test_injected_platform_error_until_cleared(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    opencti_standin.fail_graphql(status=None, times=None, code="LOCK_ERROR", fields=["indicator"])

    for _ in range(3):
        with pytest.raises(ValueError, match="LOCK_ERROR"):
            helper.api.indicator.read(id="indicator--x")
    opencti_standin.clear_graphql_failures()

    assert helper.api.indicator.read(id="indicator--x") is None


def test_invalid_dates_are_refused(
    opencti_standin: OpenCTIStandin, pycti_helper: HelperFactory
) -> None:
    helper = pycti_helper()
    indicator = make_indicator("[ipv4-addr:value = '192.0.2.3']")
    opencti_standin.publish("create", indicator)
    where = helper.api.identity.create(type="System", name="SIEM")
    assert where is not None

    with pytest.raises(ValueError, match="DateTime"):
        helper.api.stix_sighting_relationship.create(
            fromId=str(indicator["id"]), toId=where["id"], first_seen="yesterday"
        )
    with pytest.raises(ValueError, match="first_seen"):
        helper.api.stix_sighting_relationship.create(
            fromId=str(indicator["id"]),
            toId=where["id"],
            first_seen="2024-02-01T00:00:00Z",
            last_seen="2024-01-01T00:00:00Z",
        )


# --- the mini GraphQL parser ----------------------------------------------------------------


def test_graphql_parser_handles_fragments_literals_and_aliases() -> None:
    operation = parse_operation(
        """
        query Q($n: Int = 5, $name: String) {
          first: markingDefinitions(
            first: $n, filters: {mode: and, filters: [{key: "x", values: ["a"]}]}
          ) {
            edges { node { ...F ... on MarkingDefinition { definition } } }
          }
          me { name @include(if: true) }
        }
        fragment F on MarkingDefinition { id standard_id }
        """,
        {"name": None},
    )

    first, me = operation.fields
    assert (first.alias, first.name, me.name) == ("first", "markingDefinitions", "me")
    assert first.arguments == {
        "first": 5,
        "filters": {"mode": "and", "filters": [{"key": "x", "values": ["a"]}]},
    }
    value = {"edges": [{"node": {"id": "1", "standard_id": "s", "definition": "d", "extra": 1}}]}
    assert project(value, first.selections) == {
        "edges": [{"node": {"id": "1", "standard_id": "s", "definition": "d"}}]
    }


graphql_tokens = st.sampled_from(
    [*"{}()[]:$@!=.,#\n", "query", "mutation", "fragment", "on", "a", "...", "1", '"x"', "true"]
)


@given(st.lists(graphql_tokens, max_size=30).map(" ".join))
@example("{ }")
@example("query { a(x: [[[")
def test_graphql_parser_refuses_what_it_cannot_parse_with_one_error(document: str) -> None:
    try:
        operation = parse_operation(document, {"a": 1})
    except GraphQLSyntaxError:
        return
    assert operation.fields


# --- the SSE endpoint, read raw -----------------------------------------------------------------


def _read_stream(
    standin: OpenCTIStandin,
    path: str,
    *,
    token: str | None = None,
    events: int,
    skip_heartbeats: bool = True,
    **headers: str,
) -> list[tuple[str, str]]:
    """The first ``events`` (event, data) frames with an id on ``path``."""
    http = urllib3.PoolManager()
    sent = {"authorization": f"Bearer {token or standin.token}"}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    response = http.request(
        "GET", standin.url + path, headers=sent, preload_content=False, timeout=5.0
    )
    assert response.status == 200
    frames: list[tuple[str, str]] = []
    buffer = b""
    try:
        while len(frames) < events:
            chunk = response.read1(65536)
            assert chunk, "the stream ended early"
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for block in complete:
                fields = dict(
                    line.decode().split(": ", 1) for line in block.split(b"\n") if b": " in line
                )
                if "id" not in fields:
                    continue
                if skip_heartbeats and fields.get("event") == "heartbeat":
                    continue
                frames.append((fields["event"], fields.get("data", "")))
    finally:
        response.close()
    return frames[:events]


def _status(standin: OpenCTIStandin, path: str, token: str | None = None) -> int:
    http = urllib3.PoolManager()
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = http.request("GET", standin.url + path, headers=headers, preload_content=False)
    response.close()
    return response.status


def test_stream_access_rules(opencti_standin: OpenCTIStandin) -> None:
    opencti_standin.add_user("taxii", name="taxii", capabilities=["TAXIIAPI"])
    opencti_standin.add_stream_collection("c1")
    opencti_standin.add_stream_collection("open", public=True)
    opencti_standin.add_stream_collection("stopped", live=False)

    assert _status(opencti_standin, "/stream") == 401
    assert _status(opencti_standin, "/stream", "wrong") == 401
    assert _status(opencti_standin, "/stream/live", "taxii") == 401
    assert _status(opencti_standin, "/stream/unknown", opencti_standin.token) == 401
    assert _status(opencti_standin, "/stream/stopped", opencti_standin.token) == 410
    assert _status(opencti_standin, "/stream/open") == 200
    assert _status(opencti_standin, "/stream/c1", "taxii") == 200
    assert _status(opencti_standin, "/stream/live", opencti_standin.token) == 200
    opencti_standin.fail_stream(500)
    assert _status(opencti_standin, "/stream/live", opencti_standin.token) == 500
    assert _status(opencti_standin, "/stream/live", opencti_standin.token) == 200


def test_stream_resumes_after_the_given_id_comparing_numbers(
    opencti_standin: OpenCTIStandin,
) -> None:
    ids = [
        opencti_standin.publish(
            "create", make_indicator(f"[ipv4-addr:value = '10.0.0.{n}']"), at_ms=ms
        )
        for n, ms in enumerate((999, 999, 1000, 10000))
    ]
    assert ids == ["999-0", "999-1", "1000-0", "10000-0"]

    by_header = _read_stream(opencti_standin, "/stream", events=2, last_event_id="999-1")
    by_query = _read_stream(opencti_standin, "/stream?from=999-1", events=2)

    patterns = [json.loads(data)["data"]["pattern"] for _, data in by_header]
    assert patterns == ["[ipv4-addr:value = '10.0.0.2']", "[ipv4-addr:value = '10.0.0.3']"]
    assert by_query == by_header


def test_heartbeats_carry_the_last_id_even_past_filtered_deletes(
    opencti_standin: OpenCTIStandin,
) -> None:
    indicator = make_indicator("[ipv4-addr:value = '10.1.1.1']")
    opencti_standin.publish("create", indicator, at_ms=5000)
    deleted = opencti_standin.publish("delete", indicator, at_ms=6000)

    frames = _read_stream(
        opencti_standin,
        "/stream/live",
        events=2,
        skip_heartbeats=False,
        last_event_id="0-0",
        listen_delete="false",
    )

    assert frames[0][0] == "create"
    assert frames[1] == ("heartbeat", json.dumps("1970-01-01T00:00:06.000Z"))
    assert deleted == "6000-0"


def test_first_run_recovery_replays_the_knowledge_base_then_goes_live(
    opencti_standin: OpenCTIStandin,
) -> None:
    kept = make_indicator("[ipv4-addr:value = '10.2.2.2']")
    gone = make_indicator("[ipv4-addr:value = '10.3.3.3']")
    opencti_standin.publish("create", kept, at_ms=1000)
    opencti_standin.publish("update", kept, {"patch": [], "reverse_patch": []}, at_ms=2000)
    opencti_standin.publish("create", gone, at_ms=2500)
    opencti_standin.publish("delete", gone, at_ms=2600)
    later = make_indicator("[ipv4-addr:value = '10.4.4.4']")
    opencti_standin.publish("create", later, at_ms=4000)

    frames = _read_stream(
        opencti_standin,
        "/stream/live?recover=1970-01-01T00:00:03Z",
        events=2,
        last_event_id="0-0",
    )

    first, second = (json.loads(data) for _, data in frames)
    assert (first["origin"]["referer"], first["data"]["id"]) == ("init-create", kept["id"])
    assert (second["type"], second["data"]["id"]) == ("create", later["id"])


def test_pyctis_own_sse_client_reads_the_stream(opencti_standin: OpenCTIStandin) -> None:
    from filigran_sseclient import SSEClient  # type: ignore[import-untyped]  # untyped; the client pycti's ListenStream uses

    ids = [
        opencti_standin.publish("create", make_indicator(f"[ipv4-addr:value = '10.9.{n}.1']"))
        for n in range(3)
    ]
    client = SSEClient(
        opencti_standin.url + "/stream/live?recover=1970-01-01T00:00:00Z",
        ids[0],
        headers={
            "authorization": f"Bearer {opencti_standin.token}",
            "listen-delete": "true",
            "no-dependencies": "true",
            "with-inferences": "false",
        },
        verify=False,
    )
    seen: list[tuple[str, str]] = []
    try:
        for message in client:
            if message.id is not None and message.event != "heartbeat":
                seen.append((str(message.id), str(message.event)))
            if len(seen) == 2:
                break
    finally:
        client.resp.close()

    assert seen == [(ids[1], "create"), (ids[2], "create")]


def test_command_line_serves_a_bundle(clean_opencti_env: None, tmp_path: Path) -> None:
    indicator = make_indicator("[ipv4-addr:value = '198.51.100.1']")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [indicator]}))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "elastic_connector.demo.opencti_standin",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--bundle",
            str(bundle),
            "--heartbeat",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client = OpenCTIApiClient(url, "cli-token", log_level="error")
        read = client.indicator.read(id=str(indicator["id"]))
        assert read is not None
        assert read["pattern"] == indicator["pattern"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


# --- ids derived as pycti derives them ----------------------------------------------------------

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
identity_classes = st.sampled_from(["organization", "system", "securityplatform", "class"])
dates = st.none() | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00.000Z"])


@given(texts, identity_classes, texts, dates, dates)
def test_standard_ids_are_the_ones_pycti_computes(
    name: str, identity_class: str, pattern: str, first_seen: str | None, last_seen: str | None
) -> None:
    assert identity_standard_id(name, identity_class) == Identity.generate_id(name, identity_class)
    assert indicator_standard_id(pattern) == Indicator.generate_id(pattern)
    sighted = indicator_standard_id(pattern)
    where = [identity_standard_id(name, identity_class)]
    assert sighting_standard_id(
        sighted, where, first_seen, last_seen
    ) == StixSightingRelationship.generate_id(sighted, where, first_seen, last_seen)
    for marking in DEFAULT_MARKINGS:
        assert MarkingDefinition.generate_id("TLP", marking.definition) == marking.standard_id
