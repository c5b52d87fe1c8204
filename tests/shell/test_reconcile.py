"""Reconciliation against Elasticsearch (noida-db) and the OpenCTI stand-in, in process: every
class repaired, a dry run changing nothing, hostile answers, failures of either platform in the
middle of a run, live stream filters, ``stix`` mode, and the races with the stream."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Config, ElasticsearchSettings
from elastic_connector.core.events import PlanSettings
from elastic_connector.demo.opencti_data import Json
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.demo.standin_indicators import label_id
from elastic_connector.reconcile_command import run_reconcile
from elastic_connector.shell.bulk import BulkWriter
from elastic_connector.shell.daemon import index_mappings
from elastic_connector.shell.index_setup import ensure_setup
from elastic_connector.shell.reconcile import (
    BoundedWriter,
    Progress,
    ReconcileFailed,
    ReconcileSettings,
    Reconciliation,
)
from elastic_connector.shell.write_gate import WriteGate
from tests.e2e.harness import doc_id
from tests.support.faulty_proxy import FaultyProxy, Reply

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient
from tests.support.reconcile import (
    config_for,
    damage,
    expected_documents,
    index_documents,
    indicator,
)


@pytest.fixture
def index(es_prefix: str) -> str:
    return f"logs-ti_{es_prefix}.indicator"


class Run:
    """``run_reconcile`` in process: exit code, the JSON line, stderr lines."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.lines = out.splitlines()
        self.err = err
        self.summary: dict[str, object] = json.loads(self.lines[-1]) if self.lines else {}

    def skips(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.err.splitlines() if line.startswith('{"skip"')]


def reconcile(config: Config, *, dry_run: bool = False) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = run_reconcile(config, out, err, dry_run=dry_run, progress=False)
    return Run(code, out.getvalue(), err.getvalue())


def counts(run: Run) -> dict[str, object]:
    keys = ("opencti_indicators", "index_documents", "missing", "stale", "orphaned")
    return {key: run.summary[key] for key in keys}


def refresh(client: Elasticsearch, index: str) -> None:
    client.indices.refresh(index=index)


def filled(
    standin: OpenCTIStandin, es_client: Elasticsearch, config: Config, count: int = 8
) -> list[Json]:
    """``count`` indicators in OpenCTI, their documents in the index (by a first run)."""
    indicators = [indicator(n) for n in range(count)]
    standin.publish_many(("create", stix) for stix in indicators)
    first = reconcile(config)
    assert first.code == 0, first.err
    assert first.summary["written"] == count
    refresh(es_client, config.index)
    return indicators


# --- every class -------------------------------------------------------------------------------


def test_a_dry_run_names_every_class_then_a_run_repairs_them(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    indicators = filled(opencti_standin, es_client, config)
    damaged = damage(opencti_standin, es_client, index, indicators)
    before = index_documents(es_client, index)

    dry = reconcile(config, dry_run=True)

    assert dry.code == 0, dry.err
    assert counts(dry) == {
        "opencti_indicators": 7,
        "index_documents": 8,
        "missing": 1,
        "stale": 2,
        "orphaned": 2,
    }
    assert dry.summary["written"] == dry.summary["deleted"] == 0
    assert dry.summary["dry_run"] is True
    ids = dry.summary["ids"]
    assert isinstance(ids, dict)
    assert {kind: set(found) for kind, found in ids.items()} == damaged.classes
    assert dry.summary["more"] == {"missing": 0, "stale": 0, "orphaned": 0}
    refresh(es_client, index)
    assert index_documents(es_client, index) == before, "a dry run changed the index"

    repaired = reconcile(config)

    assert repaired.code == 0, repaired.err
    assert counts(repaired) == counts(dry)
    assert repaired.summary["written"] == 2  # the missing one and the edited one
    assert repaired.summary["deleted"] == 3  # TLP raised, merged away, never an indicator's
    assert "ids" not in repaired.summary
    refresh(es_client, index)
    settings = PlanSettings.from_config(config)
    assert index_documents(es_client, index) == expected_documents(damaged.survivors, settings)
    again = reconcile(config, dry_run=True)
    assert counts(again) == {
        "opencti_indicators": 7,
        "index_documents": 6,
        "missing": 0,
        "stale": 0,
        "orphaned": 0,
    }


def test_a_dry_run_shows_a_bounded_number_of_ids(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    opencti_standin.publish_many(("create", indicator(n)) for n in range(25))
    dry = reconcile(config_for(opencti_standin, es_settings, index), dry_run=True)
    ids = dry.summary["ids"]
    assert isinstance(ids, dict)
    assert len(ids["missing"]) == 20
    assert dry.summary["more"] == {"missing": 5, "stale": 0, "orphaned": 0}


# --- hostile answers ---------------------------------------------------------------------------


def test_hostile_nodes_are_skipped_with_their_id_and_reason(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    indicators = filled(opencti_standin, es_client, config, count=6)
    es_client.index(index=index, id="orphan", document={"a": 1}, refresh=True)
    broken = {doc_id(stix): n for n, stix in enumerate(indicators[:4])}

    def hostile(node: Json) -> object:
        number = broken.get(str(node["id"]))
        if number == 0:
            return {**node, "toStix": None}
        if number == 1:
            return {**node, "toStix": {"type": "indicator"}}  # an object, not a string
        if number == 2:
            return {**node, "toStix": '{"type": "indicator", "id": "indicator--x", "pattern": 7}'}
        if number == 3:
            return {**node, "toStix": "{truncated"}
        return node

    opencti_standin.rewrite_indicator_nodes(hostile)
    run = reconcile(config)

    assert run.code == 0, run.err
    assert run.summary["skipped"] == 4
    skips = {str(skip["id"]): str(skip["skip"]) for skip in run.skips()}
    assert set(skips) == {doc_id(s) for s in indicators[:2]} | {
        "indicator--x",
        doc_id(indicators[3]),
    }
    assert "no toStix" in skips[doc_id(indicators[0])]
    assert "malformed node" in skips[doc_id(indicators[1])]
    assert "pattern" in skips["indicator--x"]
    assert "invalid JSON" in skips[doc_id(indicators[3])]
    assert run.summary["orphaned"] == 1
    refresh(es_client, index)
    documents = index_documents(es_client, index)
    assert "orphan" not in documents
    # A skipped indicator's document is left as it was, never deleted as an orphan.
    assert {doc_id(stix) for stix in indicators} <= set(documents)


def test_a_node_without_any_id_keeps_every_orphan(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    indicators = filled(opencti_standin, es_client, config, count=3)
    es_client.index(index=index, id="orphan", document={"a": 1}, refresh=True)
    nameless = doc_id(indicators[0])
    opencti_standin.rewrite_indicator_nodes(
        lambda node: {"toStix": "{"} if node["id"] == nameless else node
    )

    run = reconcile(config)

    assert run.code == 0, run.err
    assert run.summary["skipped"] == 1
    assert run.summary["deleted"] == 0
    assert "came without any id" in run.err
    refresh(es_client, index)
    assert "orphan" in index_documents(es_client, index)


# --- failures in the middle of a run ----------------------------------------------------------


def settings_for_run(config: Config, **changes: object) -> ReconcileSettings:
    settings = ReconcileSettings.from_config(config, recheck_creates=True)
    return msgspec.structs.replace(settings, attempts=3, max_backoff=0.05, **changes)


def test_opencti_failing_mid_run_deletes_nothing_and_says_what_failed(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    indicators = filled(opencti_standin, es_client, config, count=6)
    es_client.index(index=index, id="orphan", document={"a": 1}, refresh=True)
    es_client.delete(index=index, id=doc_id(indicators[0]), refresh=True)
    opencti_standin.fail_graphql(fields={"indicators"}, after=1, times=None, status=502)
    stop = threading.Event()
    run = Reconciliation(
        settings_for_run(config, page_size=3),
        api=_api(opencti_standin),
        client=es_client,
        write=BoundedWriter(es_client, config.elasticsearch, require_alias=True, stop=stop),
        clock=_now,
        stop=stop,
    )

    with pytest.raises(ReconcileFailed) as failed:
        run.run()

    assert "reading indicators (page 2)" in failed.value.message
    assert "gave up after 3 attempts" in failed.value.message
    assert failed.value.counts.orphaned == 0
    refresh(es_client, index)
    documents = index_documents(es_client, index)
    assert "orphan" in documents, "an orphan was deleted after a partial read"
    # What the complete first page planned was repaired.
    assert doc_id(indicators[0]) in documents or failed.value.counts.missing == 0


def test_the_command_exits_1_naming_the_platform_that_failed(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    filled(opencti_standin, es_client, config, count=2)
    es_client.index(index=index, id="orphan", document={"a": 1}, refresh=True)
    opencti_standin.fail_graphql(
        fields={"indicators"}, times=None, status=None, code="DATABASE_ERROR"
    )

    run = reconcile(config)

    assert run.code == 1
    assert "failed: reading indicators (page 1): DATABASE_ERROR" in run.err
    assert "gave up after 8 attempts" in run.err
    assert "nothing was deleted as orphaned" in run.err
    assert "Traceback" not in run.err
    assert run.summary["index_documents"] == 3  # the counts so far, still one JSON line
    refresh(es_client, index)
    assert "orphan" in index_documents(es_client, index)


def test_a_refusal_that_retrying_cannot_fix_fails_at_once(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    opencti_standin.add_user("reader", name="reader", capabilities=["TAXIIAPI"])
    config = config_for(opencti_standin, es_settings, index, OPENCTI_TOKEN="reader")
    run = reconcile(config, dry_run=True)
    assert run.code == 1
    assert "OpenCTI refused: FORBIDDEN_ACCESS" in run.err
    assert len([r for r in opencti_standin.graphql_requests if "indicators" in r.fields]) == 1


def test_elasticsearch_failing_mid_run_deletes_nothing_and_says_what_failed(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    index: str,
) -> None:
    config = config_for(opencti_standin, es_settings, index)
    indicators = filled(opencti_standin, es_client, config, count=4)
    es_client.index(index=index, id="orphan", document={"a": 1}, refresh=True)
    es_client.delete(index=index, id=doc_id(indicators[0]), refresh=True)
    proxied = config_for(
        opencti_standin,
        msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,)),
        index,
    )
    faulty_proxy.inject(Reply(503), times=None, path="/_bulk")

    run = reconcile(proxied)

    assert run.code == 1
    assert f"failed: writing to {index}: gave up after 8 attempts" in run.err
    assert "503" in run.err
    assert "Traceback" not in run.err
    refresh(es_client, index)
    assert "orphan" in index_documents(es_client, index)


def test_an_index_that_cannot_be_read_fails_after_retries(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    index: str,
) -> None:
    proxied = config_for(
        opencti_standin,
        msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,)),
        index,
    )
    opencti_standin.publish("create", indicator(1))
    faulty_proxy.inject(Reply(503), times=None, path="/_pit")

    run = reconcile(proxied, dry_run=True)

    assert run.code == 1
    assert f"failed: reading {index}" in run.err
    assert "gave up after 8 attempts" in run.err


def test_a_create_that_cannot_be_read_back_fails_the_run(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    index: str,
) -> None:
    """An ``_mget`` item that failed (a shard refused for lack of ``read``, or unavailable) is
    neither found nor absent: the run cannot check its creates, and says so."""
    proxied = config_for(
        opencti_standin,
        msgspec.structs.replace(es_settings, hosts=(faulty_proxy.url,)),
        index,
    )
    stix = indicator(1)
    opencti_standin.publish("create", stix)
    reason = "action [indices:data/read/mget[shard]] is unauthorized for user [connector]"
    error = {"type": "security_exception", "reason": reason}
    item = {"_index": f"{index}-000001", "_id": doc_id(stix), "error": error}
    faulty_proxy.inject(Reply(200, {"docs": [item]}), times=None, path="/_mget")

    run = reconcile(proxied)

    assert run.code == 1
    assert f"failed: reading {index}: document {doc_id(stix)}: security_exception: " in run.err
    assert "Traceback" not in run.err


# --- what the stream would show ---------------------------------------------------------------


def test_a_live_stream_collection_limits_what_is_reconciled(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    c2 = [indicator(n, labels=["c2"]) for n in range(3)]
    other = [indicator(10 + n, labels=["spam"]) for n in range(2)]
    opencti_standin.publish_many(("create", stix) for stix in c2 + other)
    everything = config_for(opencti_standin, es_settings, index)
    assert reconcile(everything).summary["written"] == 5
    refresh(es_client, index)
    group = {
        "mode": "and",
        "filters": [{"key": ["objectLabel"], "values": [label_id("c2")], "operator": "eq"}],
        "filterGroups": [],
    }
    opencti_standin.add_stream_collection("c2-only", filter_group=group)

    run = reconcile(
        config_for(opencti_standin, es_settings, index, CONNECTOR_LIVE_STREAM_ID="c2-only")
    )

    assert run.code == 0, run.err
    assert counts(run) == {
        "opencti_indicators": 3,
        "index_documents": 5,
        "missing": 0,
        "stale": 0,
        "orphaned": 2,
    }
    refresh(es_client, index)
    assert set(index_documents(es_client, index)) == {doc_id(stix) for stix in c2}


def test_a_collection_whose_filters_cannot_be_read_is_never_read_whole(
    opencti_standin: OpenCTIStandin,
    es_settings: ElasticsearchSettings,
    index: str,
) -> None:
    opencti_standin.add_stream_collection("opaque", filters=lambda stix: True)
    unknown = reconcile(
        config_for(opencti_standin, es_settings, index, CONNECTOR_LIVE_STREAM_ID="nope"),
        dry_run=True,
    )
    assert unknown.code == 1
    assert "knows no such live stream" in unknown.err
    opaque = reconcile(
        config_for(opencti_standin, es_settings, index, CONNECTOR_LIVE_STREAM_ID="opaque"),
        dry_run=True,
    )
    assert opaque.code == 1
    assert "live stream 'opaque'" in opaque.err
    requests = opencti_standin.graphql_requests
    assert not [r for r in requests if "indicators" in r.fields]


def test_stix_mode_reconciles_indicator_documents_only(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
) -> None:
    index = f"{es_prefix}-stix"
    config = config_for(opencti_standin, es_settings, index, CONNECTOR_MODE="stix")
    filled(opencti_standin, es_client, config, count=2)
    identity = {"id": "identity--x", "type": "identity", "name": "ACME"}
    es_client.index(index=index, id="identity-doc", document=identity, refresh=True)
    es_client.index(
        index=index, id="stray", document={"id": "indicator--y", "type": "indicator"}, refresh=True
    )

    run = reconcile(config)

    assert run.code == 0, run.err
    assert counts(run) == {
        "opencti_indicators": 2,
        "index_documents": 3,
        "missing": 0,
        "stale": 0,
        "orphaned": 1,
    }
    refresh(es_client, index)
    assert "identity-doc" in index_documents(es_client, index)


# --- races with the stream ---------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _api(standin: OpenCTIStandin) -> OpenCTIApiClient:
    from pycti import OpenCTIApiClient

    return OpenCTIApiClient(standin.url, standin.token, perform_health_check=False)


@pytest.fixture
def stream_writer(es_client: Elasticsearch) -> BulkWriter:
    """A writer standing for the daemon's pipeline."""
    return BulkWriter(es_client, require_alias=True, refresh=True)


def run_with(
    standin: OpenCTIStandin,
    es_client: Elasticsearch,
    config: Config,
    meanwhile: Callable[[], None],
    *,
    gate: WriteGate | None = None,
    recheck: bool = True,
) -> Reconciliation:
    """A reconciliation that calls ``meanwhile`` once it has read everything and before it
    writes a single repair: what the stream does then is newer than what it read."""
    stop = threading.Event()
    settings = msgspec.structs.replace(
        settings_for_run(config), recheck_creates=recheck, write_batch=10_000
    )
    done = threading.Event()

    def progress(step: Progress) -> None:
        if step.phase == "opencti" and not done.is_set():
            done.set()
            meanwhile()

    return Reconciliation(
        settings,
        api=_api(standin),
        client=es_client,
        write=BoundedWriter(es_client, config.elasticsearch, require_alias=True, stop=stop),
        gate=gate,
        clock=_now,
        stop=stop,
        progress=progress,
    )


def stream(
    writer: BulkWriter,
    config: Config,
    kind: str,
    stix: Json,
    gate: WriteGate | None = None,
) -> None:
    """What the daemon does with one stream event: plan it and write it (through the gate)."""
    from elastic_connector.core.events import PlannerState, plan_frame

    frame = json.dumps({"data": stix}).encode()
    plan = plan_frame("1-0", kind, frame, PlannerState(), PlanSettings.from_config(config), _now())
    writes = [a for a in plan.actions if isinstance(a, Upsert | Delete)]
    if gate is None:
        writer.write(writes)
        return
    with gate.stream_write(writes):
        writer.write(writes)


def confidence(documents: dict[str, dict[str, object]], key: str) -> object:
    document = documents[key]
    opencti = document["opencti"]
    assert isinstance(opencti, dict)
    indicator_part = opencti["indicator"]
    assert isinstance(indicator_part, dict)
    return indicator_part.get("confidence")


def test_a_repair_never_overwrites_what_the_stream_wrote_after_the_index_was_read(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
    stream_writer: BulkWriter,
) -> None:
    """Three repairs planned from a state the stream then replaces: a rewrite of an edited
    document, the removal of an indicator withheld when read, and an orphan the stream then
    writes. Each is refused by Elasticsearch (the version read is gone): the stream's wins."""
    config = config_for(opencti_standin, es_settings, index)
    edited, withheld, survivor = (indicator(n) for n in range(3))
    opencti_standin.publish_many(("create", s) for s in (edited, withheld, survivor))
    assert reconcile(config).code == 0
    refresh(es_client, index)
    hand_edit = es_client.get(index=index, id=doc_id(edited))["_source"]
    hand_edit["tags"] = ["edited-by-hand"]
    es_client.index(index=index, id=doc_id(edited), document=hand_edit, refresh=True)
    opencti_standin.publish("update", {**withheld, "revoked": True}, {"patch": []})
    late = indicator(9)
    es_client.index(index=index, id=doc_id(late), document={"a": "stale"}, refresh=True)

    def meanwhile() -> None:  # OpenCTI changes again, and the stream writes it first
        newer = {**edited, "confidence": 90}
        opencti_standin.publish("update", newer, {"patch": []})
        stream(stream_writer, config, "update", newer)
        back = {**withheld, "revoked": False, "confidence": 91}
        opencti_standin.publish("update", back, {"patch": []})
        stream(stream_writer, config, "update", back)
        opencti_standin.publish("create", {**late, "confidence": 92})
        stream(stream_writer, config, "create", {**late, "confidence": 92})

    report = run_with(opencti_standin, es_client, config, meanwhile).run()

    assert (report.counts.stale, report.counts.orphaned) == (2, 1)
    assert report.counts.superseded == 3
    assert report.counts.written == report.counts.deleted == 0
    refresh(es_client, index)
    documents = index_documents(es_client, index)
    assert confidence(documents, doc_id(edited)) == 90
    assert confidence(documents, doc_id(withheld)) == 91
    assert confidence(documents, doc_id(late)) == 92


@pytest.mark.parametrize("protection", ["recheck", "gate"])
def test_a_create_never_brings_back_what_the_stream_removed_meanwhile(
    opencti_standin: OpenCTIStandin,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    index: str,
    stream_writer: BulkWriter,
    protection: str,
) -> None:
    """A create has no version to check: an indicator missing from the index when it was
    read, and revoked (the stream removing its document) before the create lands, must not
    come back. The command reads its creates again; the daemon's gate drops them."""
    config = config_for(opencti_standin, es_settings, index)
    ensure_setup(es_client, index=index, mappings=index_mappings(config.connector.mode))
    kept, revoked = indicator(1), indicator(2)
    opencti_standin.publish_many(("create", s) for s in (kept, revoked))
    gate = WriteGate() if protection == "gate" else None

    def meanwhile() -> None:
        gone = {**revoked, "revoked": True}
        opencti_standin.publish("update", gone, {"patch": []})
        stream(stream_writer, config, "update", gone, gate)

    run = run_with(opencti_standin, es_client, config, meanwhile, gate=gate, recheck=gate is None)
    report = run.run()

    assert report.counts.missing == 2
    refresh(es_client, index)
    documents = index_documents(es_client, index)
    assert set(documents) == {doc_id(kept)}, "a revoked indicator came back"
    if gate is not None:
        assert report.counts.superseded == 1
        assert report.counts.written == 1
