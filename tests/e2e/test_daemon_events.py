"""The running daemon (``ecs_no_signals``) turns each kind of stream event into the right index
state: create, updates (pattern, confidence, marking), delete, merge, revoke, expiry (at create
and by the sweep), TLP ceilings (standard and custom markings), poison events, and the health
and metrics endpoints that report it.

One daemon serves the whole module (a start costs ~2.5 s, mostly importing pycti); every test
publishes indicators of its own and asserts on exactly those documents. Waiting is on the
daemon's acknowledgement of a given event (``/healthz``), so an event that changes nothing
visible (a delete of an absent document, a withheld create) is known to be processed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.demo.opencti_data import (
    DEFAULT_MARKINGS,
    OPENCTI_EXTENSION,
    Json,
    iso_ms,
    make_indicator,
    now_iso,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.demo.standin_stream import StreamSwitches
from tests.e2e.harness import (
    ConnectorHarness,
    dig,
    doc_id,
    is_at_or_after,
    module_index_cleanup,
    updated,
    wait_for,
)

TLP = {marking.definition: marking.standard_id for marking in DEFAULT_MARKINGS}
TLP_GREEN = TLP["TLP:GREEN"]
TLP_AMBER = TLP["TLP:AMBER"]
TLP_RED = TLP["TLP:RED"]
SWEEP_INTERVAL = 0.5


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
) -> Iterator[ConnectorHarness]:
    prefix = f"ectest_{uuid.uuid4().hex[:12]}"
    try:
        with (
            OpenCTIStandin(heartbeat_interval=0.2) as standin,
            ConnectorHarness(
                standin=standin,
                es_client=es_client,
                es_settings=es_settings,
                index=f"{prefix}-events",
                workdir=tmp_path_factory.mktemp("events"),
                # Debug: why each indicator is withheld is a debug line ("not exported: ..."),
                # and these tests read it.
                env={
                    "CONNECTOR_EXPIRY_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
                    "CONNECTOR_LOG_LEVEL": "debug",
                },
            ) as harness,
        ):
            harness.start()
            yield harness
    finally:
        module_index_cleanup(es_client, prefix)


@pytest.fixture
def connector(deployment: ConnectorHarness) -> Iterator[ConnectorHarness]:
    """The module's deployment; each test also checks that the daemon survived it."""
    yield deployment
    assert deployment.daemon.running, f"the daemon died\n{deployment.tail()}"


def unique_ip() -> str:
    """A fresh address, so each indicator (and its ids) is new to the module's index."""
    raw = uuid.uuid4().int
    return f"10.{raw % 250}.{(raw >> 8) % 250}.{(raw >> 16) % 250 + 1}"


def ip_indicator(
    ip: str | None = None,
    *,
    confidence: int | None = 75,
    markings: Sequence[str] = (),
    labels: Sequence[str] = (),
    score: int = 50,
    valid_from: str | None = None,
    valid_until: str | None = None,
) -> Json:
    address = ip or unique_ip()
    return make_indicator(
        f"[ipv4-addr:value = '{address}']",
        confidence=confidence,
        markings=markings,
        labels=labels,
        score=score,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def patch(path: str, value: object) -> dict[str, object]:
    return {"patch": [{"op": "replace", "path": path, "value": value}], "reverse_patch": []}


def only(connector: ConnectorHarness, *objects: Mapping[str, object]) -> dict[str, Json]:
    """The documents of these objects that are in the index (others' are ignored)."""
    wanted = {doc_id(o) for o in objects}
    return {key: value for key, value in connector.documents().items() if key in wanted}


# --- create / update / delete ----------------------------------------------------------------


def test_create_indexes_one_ecs_document(connector: ConnectorHarness) -> None:
    indicator = ip_indicator(
        "198.51.100.7", confidence=80, markings=[TLP_GREEN], labels=["c2", "botnet"], score=90
    )
    connector.publish_and_ack("create", indicator)

    documents = only(connector, indicator)
    assert list(documents) == [doc_id(indicator)]
    document = documents[doc_id(indicator)]
    assert dig(document, "threat.indicator.type") == "ipv4-addr"
    assert dig(document, "threat.indicator.ip") == ["198.51.100.7"]
    assert dig(document, "threat.indicator.confidence") == "High"
    assert dig(document, "threat.indicator.marking.tlp") == "GREEN"
    assert dig(document, "threat.indicator.id") == [doc_id(indicator), indicator["id"]]
    assert dig(document, "opencti.indicator.pattern") == "[ipv4-addr:value = '198.51.100.7']"
    assert dig(document, "opencti.indicator.score") == 90
    assert dig(document, "event.kind") == "enrichment"
    assert dig(document, "threat.feed.name") == "OpenCTI"
    tags = dig(document, "tags")
    assert isinstance(tags, list)
    assert sorted(tags) == ["botnet", "c2"]


def test_pattern_update_rewrites_the_document_in_place(connector: ConnectorHarness) -> None:
    old_ip, new_ip = unique_ip(), unique_ip()
    indicator = ip_indicator(old_ip)
    connector.publish_and_ack("create", indicator)
    assert dig(only(connector, indicator)[doc_id(indicator)], "threat.indicator.ip") == [old_ip]

    new_pattern = f"[ipv4-addr:value = '{new_ip}']"
    changed = updated(indicator, pattern=new_pattern, name=new_ip)
    connector.publish_and_ack("update", changed, patch("/pattern", new_pattern))

    documents = only(connector, indicator)
    assert list(documents) == [doc_id(indicator)]
    document = documents[doc_id(indicator)]
    assert dig(document, "threat.indicator.ip") == [new_ip]
    assert dig(document, "opencti.indicator.pattern") == new_pattern
    assert dig(document, "threat.indicator.name") == new_ip


def test_pattern_update_to_another_observable_type(connector: ConnectorHarness) -> None:
    indicator = ip_indicator()
    connector.publish_and_ack("create", indicator)
    domain = f"{uuid.uuid4().hex[:10]}.example.org"
    new_pattern = f"[domain-name:value = '{domain}']"
    connector.publish_and_ack("update", updated(indicator, pattern=new_pattern), patch("/p", 1))

    document = only(connector, indicator)[doc_id(indicator)]
    assert dig(document, "threat.indicator.type") == "domain-name"
    assert dig(document, "threat.indicator.url.domain") == [domain]
    assert dig(document, "threat.indicator.ip") is None


def test_confidence_update(connector: ConnectorHarness) -> None:
    indicator = ip_indicator(confidence=85)
    connector.publish_and_ack("create", indicator)
    assert dig(only(connector, indicator)[doc_id(indicator)], "threat.indicator.confidence") == (
        "High"
    )

    connector.publish_and_ack("update", updated(indicator, confidence=20), patch("/c", 20))

    document = only(connector, indicator)[doc_id(indicator)]
    assert dig(document, "threat.indicator.confidence") == "Low"
    assert dig(document, "opencti.indicator.confidence") == 20


def test_marking_update(connector: ConnectorHarness) -> None:
    indicator = ip_indicator(markings=[TLP_GREEN])
    connector.publish_and_ack("create", indicator)
    assert dig(only(connector, indicator)[doc_id(indicator)], "threat.indicator.marking.tlp") == (
        "GREEN"
    )

    amber = updated(indicator, object_marking_refs=[TLP_AMBER])
    connector.publish_and_ack("update", amber, patch("/object_marking_refs", [TLP_AMBER]))

    documents = only(connector, indicator)
    assert list(documents) == [doc_id(indicator)]
    assert dig(documents[doc_id(indicator)], "threat.indicator.marking.tlp") == "AMBER"


def test_delete_removes_the_document(connector: ConnectorHarness) -> None:
    kept, deleted = ip_indicator(), ip_indicator()
    connector.publish("create", kept)
    connector.publish_and_ack("create", deleted)
    assert set(only(connector, kept, deleted)) == {doc_id(kept), doc_id(deleted)}

    connector.publish_and_ack("delete", deleted)

    assert set(only(connector, kept, deleted)) == {doc_id(kept)}


def test_delete_of_an_indicator_never_exported_is_harmless(connector: ConnectorHarness) -> None:
    never = ip_indicator()
    after = ip_indicator()
    connector.publish("delete", never)
    connector.publish_and_ack("create", after)

    assert set(only(connector, never, after)) == {doc_id(after)}


def test_merge_deletes_the_sources_and_upserts_the_target(connector: ConnectorHarness) -> None:
    first, second, target, bystander = (ip_indicator() for _ in range(4))
    for indicator in (first, second, target, bystander):
        connector.publish("create", indicator)
    connector.wait_for_ack(connector.standin.event_ids[-1])
    assert len(only(connector, first, second, target, bystander)) == 4

    merged = updated(target, labels=["merged"], confidence=95)
    connector.publish_and_ack("merge", merged, {"sources": [first, second]})

    documents = only(connector, first, second, target, bystander)
    assert set(documents) == {doc_id(target), doc_id(bystander)}
    assert dig(documents[doc_id(target)], "tags") == ["merged"]
    assert dig(documents[doc_id(target)], "opencti.indicator.confidence") == 95


def test_revoke_removes_the_document(connector: ConnectorHarness) -> None:
    indicator = ip_indicator()
    connector.publish_and_ack("create", indicator)
    assert doc_id(indicator) in only(connector, indicator)

    connector.publish_and_ack("update", updated(indicator, revoked=True), patch("/revoked", True))

    assert only(connector, indicator) == {}
    assert f"not exported: {doc_id(indicator)} (revoked in OpenCTI)" in connector.daemon.output()


def test_create_with_a_past_valid_until_is_not_exported(connector: ConnectorHarness) -> None:
    expired = ip_indicator(valid_from="2020-01-01T00:00:00.000Z", valid_until=iso_ms(1_000))
    valid = ip_indicator(valid_until=iso_ms(int((time.time() + 86_400) * 1000)))
    connector.publish("create", expired)
    connector.publish_and_ack("create", valid)

    assert set(only(connector, expired, valid)) == {doc_id(valid)}
    assert f"not exported: {doc_id(expired)} (valid_until" in connector.daemon.output()


def test_sweep_removes_an_indicator_once_its_valid_until_passes(
    connector: ConnectorHarness,
) -> None:
    expires_at = time.time() + 2.5
    short = ip_indicator(valid_until=iso_ms(int(expires_at * 1000)))
    long_lived = ip_indicator(valid_until=iso_ms(int((time.time() + 86_400) * 1000)))
    unbounded = ip_indicator()
    swept_before = connector.daemon.metric("expired_deleted")
    for indicator in (short, long_lived, unbounded):
        connector.publish("create", indicator)
    connector.wait_for_ack(connector.standin.event_ids[-1])
    assert time.time() < expires_at, "the test machine is too slow for this timing"
    assert len(only(connector, short, long_lived, unbounded)) == 3

    # No event arrives about `short`: only the sweep can remove it.
    connector.wait_for_documents(
        lambda documents: doc_id(short) not in documents,
        timeout=10,
        what="the expiry sweep to remove the expired indicator",
    )

    assert time.time() >= expires_at
    assert set(only(connector, short, long_lived, unbounded)) == {
        doc_id(long_lived),
        doc_id(unbounded),
    }
    wait_for(
        lambda: connector.daemon.metric("expired_deleted") >= swept_before + 1,
        what="the expired_deleted counter",
    )


# --- TLP --------------------------------------------------------------------------------------


def test_update_raising_an_indicator_to_tlp_red_deletes_it(connector: ConnectorHarness) -> None:
    indicator = ip_indicator(markings=[TLP_GREEN])
    connector.publish_and_ack("create", indicator)
    assert doc_id(indicator) in only(connector, indicator)

    red = updated(indicator, object_marking_refs=[TLP_RED])
    connector.publish_and_ack("update", red, patch("/object_marking_refs", [TLP_RED]))

    assert only(connector, indicator) == {}
    assert f"not exported: {doc_id(indicator)} (marked TLP:RED" in connector.daemon.output()


def custom_marking(name: str) -> Json:
    """A TLP marking definition the platform's admin created (not one of the standard ids)."""
    marking_id = f"marking-definition--{uuid.uuid4()}"
    stamp = now_iso()
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "definition_type": "TLP",
        "definition": name,
        "name": name,
        "created": stamp,
        "modified": stamp,
        "extensions": {
            OPENCTI_EXTENSION: {
                "extension_type": "property-extension",
                "id": str(uuid.uuid4()),
                "type": "Marking-Definition",
            }
        },
    }


def test_custom_tlp_markings_are_learnt_from_the_stream(connector: ConnectorHarness) -> None:
    custom_red = custom_marking("TLP:RED")
    custom_green = custom_marking("TLP:GREEN")
    connector.publish("create", custom_red)
    connector.publish("create", custom_green)
    secret = ip_indicator(markings=[str(custom_red["id"])])
    shared = ip_indicator(markings=[str(custom_green["id"])])
    connector.publish("create", secret)
    connector.publish_and_ack("create", shared)

    documents = only(connector, secret, shared)
    assert set(documents) == {doc_id(shared)}
    assert dig(documents[doc_id(shared)], "threat.indicator.marking.tlp") == "GREEN"
    # ecs mode indexes indicators only: the marking objects are not documents.
    assert only(connector, custom_red, custom_green) == {}


def test_unknown_markings_fail_closed_and_are_read_from_the_platform(
    connector: ConnectorHarness,
) -> None:
    # Created in OpenCTI after the daemon started and never sent on the stream (what a live
    # stream with no-dependencies or a filter does): the daemon reads the marking definitions
    # again when an indicator refers to one it does not know.
    custom_red = custom_marking("TLP:RED")
    custom_green = custom_marking("TLP:GREEN")
    connector.standin.store_only(custom_red)
    connector.standin.store_only(custom_green)
    secret = ip_indicator(markings=[str(custom_red["id"])])
    shared = ip_indicator(markings=[str(custom_green["id"])])
    connector.publish("create", secret)
    connector.publish_and_ack("create", shared)
    documents = only(connector, secret, shared)
    assert set(documents) == {doc_id(shared)}
    assert dig(documents[doc_id(shared)], "threat.indicator.marking.tlp") == "GREEN"

    # A marking the platform does not know either (the user may not see it): withheld.
    hidden = ip_indicator(markings=["marking-definition--00000000-0000-4000-8000-00000000dead"])
    connector.publish_and_ack("create", hidden)
    assert only(connector, hidden) == {}
    assert "marking-definition--00000000-0000-4000-8000-00000000dead" in connector.daemon.output()


def test_tlp_markings_whose_level_cannot_be_read_fail_closed(connector: ConnectorHarness) -> None:
    """Issue 12: a TLP marking is never taken for "no TLP" because its level is written in a
    shape or a spelling the connector does not read."""
    level_in_definition_only = custom_marking("x")
    del level_in_definition_only["name"]
    level_in_definition_only["definition"] = {"TLP": "TLP:RED"}
    test_level = custom_marking("TLP:TEST")
    internal_red = custom_marking("TLP:RED-INTERNAL")  # created in OpenCTI, never streamed
    connector.publish("create", level_in_definition_only)
    connector.publish("create", test_level)
    connector.standin.store_only(internal_red)
    red = ip_indicator(markings=[str(level_in_definition_only["id"])])
    unreadable = ip_indicator(markings=[str(test_level["id"])])
    unreadable_read = ip_indicator(markings=[str(internal_red["id"])])
    connector.publish("create", red)
    connector.publish("create", unreadable)
    connector.publish_and_ack("create", unreadable_read)

    assert only(connector, red, unreadable, unreadable_read) == {}
    output = connector.daemon.output()
    assert f"not exported: {doc_id(red)} (marked TLP:RED" in output
    for indicator, marking in ((unreadable, test_level), (unreadable_read, internal_red)):
        assert f"not exported: {doc_id(indicator)} (carries marking {marking['id']}" in output


def author(name: str) -> Json:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{uuid.uuid4()}",
        "name": name,
        "identity_class": "organization",
    }


def test_provider_is_the_name_of_the_author(e2e_harness: Callable[..., ConnectorHarness]) -> None:
    connector = e2e_harness()
    # A live stream sends an event's author first as a dependency frame; the raw `/stream`
    # (no live stream id) sends no dependencies, so there the author must be read from OpenCTI.
    connector.standin.switches = StreamSwitches(dependencies=False)
    connector.start()
    streamed = author("CERT-Streamed")
    known_to_the_platform = author("CERT-Platform")  # never sent on the stream
    connector.publish("create", streamed)
    connector.standin.store_only(known_to_the_platform)
    first = make_indicator(
        f"[ipv4-addr:value = '{unique_ip()}']", created_by_ref=str(streamed["id"])
    )
    second = make_indicator(
        f"[ipv4-addr:value = '{unique_ip()}']", created_by_ref=str(known_to_the_platform["id"])
    )
    third = make_indicator(
        f"[ipv4-addr:value = '{unique_ip()}']", created_by_ref=str(known_to_the_platform["id"])
    )
    connector.publish("create", first)
    connector.publish_and_ack("create", second)
    connector.publish_and_ack("create", third)

    documents = only(connector, first, second, third)
    assert dig(documents[doc_id(first)], "threat.indicator.provider") == "CERT-Streamed"
    assert dig(documents[doc_id(second)], "threat.indicator.provider") == "CERT-Platform"
    assert dig(documents[doc_id(third)], "threat.indicator.provider") == "CERT-Platform"
    reads = [
        r
        for r in connector.standin.graphql_requests
        if r.fields == ("identity",) and r.variables.get("id") == known_to_the_platform["id"]
    ]
    assert len(reads) == 1  # read once, then cached
    streamed_reads = [r for r in connector.standin.graphql_requests if r.fields == ("identity",)]
    assert all(r.variables.get("id") != streamed["id"] for r in streamed_reads)


# --- bad input ----------------------------------------------------------------------------------


def test_poison_events_are_skipped_and_the_stream_goes_on(connector: ConnectorHarness) -> None:
    daemon = connector.daemon
    undecodable_before = daemon.metric("skips", code="undecodable")
    malformed = connector.standin.publish_raw("create", b'{"type":"create","data":{"id": tru')
    wrong_shape = connector.standin.publish_raw("update", b'{"type":"update","data":[1,2]}')
    bad_pattern = make_indicator("[ipv4-addr:value = '10.9.9.9'")
    connector.publish("create", bad_pattern)
    after = ip_indicator()
    connector.publish_and_ack("create", after)

    assert set(only(connector, bad_pattern, after)) == {doc_id(after)}
    output = daemon.output()
    assert f"skipped event {malformed}:" in output
    assert f"skipped event {wrong_shape}:" in output
    assert f"not exported: {doc_id(bad_pattern)} (pattern does not parse" in output
    assert daemon.metric("skips", code="undecodable") == undecodable_before + 2
    assert daemon.running


# --- health and metrics -----------------------------------------------------------------------


def test_healthz_and_metrics_report_position_ack_and_counters(
    connector: ConnectorHarness,
) -> None:
    daemon = connector.daemon
    before = daemon.metrics()
    started = time.time()
    created = [ip_indicator(), ip_indicator()]
    for indicator in created:
        connector.publish("create", indicator)
    # Separately acknowledged: in one batch, the delete would supersede the create.
    connector.wait_for_ack(connector.standin.event_ids[-1])
    last = connector.publish_and_ack("delete", created[0])

    # Once the stream is quiet, heartbeats (ids from the platform's clock) show that no more
    # frame carries the last event's id: it is saved.
    def settled() -> dict[str, object] | None:
        health = daemon.health()
        assert health is not None
        stream, elastic = health[1]["stream"], health[1]["elasticsearch"]
        assert isinstance(stream, dict)
        assert isinstance(elastic, dict)
        # A heartbeat frame may sit in the queue for an instant: wait for a moment without one.
        if (
            stream["committed_position"] == last
            and is_at_or_after(elastic["last_ack_id"], last)
            and health[1]["queue_depth"] == 0
        ):
            return health[1]
        return None

    body = wait_for(settled, what="the saved position to reach the last event")
    status, _ = daemon.health() or (0, {})
    assert status == 200
    assert body["status"] == "ok"
    assert body["phase"] == "live"
    stream = body["stream"]
    assert isinstance(stream, dict)
    assert is_at_or_after(str(stream.pop("last_event_id")), last)
    # What the platform said of its event stream when the connection opened.
    platform = stream.pop("platform")
    assert isinstance(platform, dict)
    assert set(platform) == {"first_event_id", "last_event_id", "size"}
    assert stream == {
        "connected": True,
        "committed_position": last,
        "recovering": False,
        "consecutive_failures": 0,
        "last_error": None,
        "gaps": 0,
        "last_gap": None,
    }
    elastic = body["elasticsearch"]
    assert isinstance(elastic, dict)
    assert elastic["last_error"] is None
    assert 0 <= float(elastic["last_ack_age_seconds"]) < 10
    assert body["queue_depth"] == 0

    after = daemon.metrics()

    def delta(series: str) -> float:
        return after.get(series, 0) - before.get(series, 0)

    assert delta('elastic_connector_events_total{event="create"}') == 2
    assert delta('elastic_connector_events_total{event="delete"}') == 1
    assert delta("elastic_connector_documents_written_total") == 2
    assert delta('elastic_connector_documents_deleted_total{code="deleted"}') == 1
    # The connection gauge is refreshed by the daemon's once-a-second watch.
    wait_for(
        lambda: daemon.metrics().get("elastic_connector_stream_connected") == 1,
        what="the stream_connected gauge",
    )
    assert after["elastic_connector_last_ack_timestamp_seconds"] >= started
    assert after["elastic_connector_documents_rejected_total"] == 0
