"""Index setup, privilege check and upkeep sweeps, through the real client against the test
cluster (noida-db unless ``ELASTICSEARCH_TEST_URL`` points at a real one)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.config import CloudSettings, ElasticsearchSettings
from elastic_connector.shell.elastic import build_client
from elastic_connector.shell.index_setup import (
    MANAGED_BY,
    TEMPLATE_PRIORITY,
    SetupError,
    TargetKind,
    build_template,
    check_privileges,
    delete_expired,
    ensure_setup,
    fingerprint,
    index_name_problem,
    target_kind,
    template_name,
    touch_indicators,
)
from tests.support.elasticsearch import real_cluster_url
from tests.support.faulty_proxy import FaultyProxy, Reply, Stall, es_error_body


def indicator_mappings(ip_type: str = "ip") -> dict[str, object]:
    """A small stand-in for the ECS indicator mapping (strict, nested, typed)."""
    return {
        "dynamic": "strict",
        "properties": {
            "@timestamp": {"type": "date"},
            "threat": {
                "properties": {
                    "indicator": {
                        "properties": {
                            "ip": {"type": ip_type},
                            "type": {"type": "keyword"},
                            "description": {"type": "text"},
                        }
                    }
                }
            },
            "opencti": {
                "properties": {
                    "indicator": {
                        "properties": {
                            "valid_until": {"type": "date"},
                            "score": {"type": "long"},
                        }
                    }
                }
            },
        },
    }


MAPPINGS = indicator_mappings()
SETTINGS = {"number_of_shards": 1}


def _with_field(
    mappings: dict[str, object], name: str, spec: dict[str, object]
) -> dict[str, object]:
    changed = copy.deepcopy(mappings)
    properties = changed["properties"]
    assert isinstance(properties, dict)
    properties[name] = spec
    return changed


def _field_type(client: Elasticsearch, index: str, *path: str) -> object:
    body = client.indices.get_mapping(index=index).body
    node: object = body[index]["mappings"]
    for part in path:
        assert isinstance(node, dict)
        node = node["properties"][part]
    assert isinstance(node, dict)
    return node.get("type")


def _state(client: Elasticsearch, index: str) -> str:
    """Everything setup may touch, as one comparable string."""
    template = client.indices.get_index_template(name=template_name(index)).body
    indices = client.indices.get(index=index).body
    for body in indices.values():
        body.get("settings", {}).get("index", {}).pop("creation_date", None)
    return json.dumps({"template": template, "indices": indices}, sort_keys=True)


# --- setup -------------------------------------------------------------------------------------


def test_first_setup_creates_template_index_and_write_alias(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    report = ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)

    assert report.kind is TargetKind.ALIAS
    assert report.require_alias
    assert report.created_index == f"{index}-000001"
    assert report.template_changed
    assert report.changed
    assert report.incompatible == ()

    aliases = es_client.indices.get_alias(name=index).body
    assert aliases == {f"{index}-000001": {"aliases": {index: {"is_write_index": True}}}}
    stored = es_client.indices.get_index_template(name=template_name(index)).body
    (entry,) = stored["index_templates"]
    assert sorted(entry["index_template"]["index_patterns"]) == sorted([f"{index}-*", index])
    assert entry["index_template"]["priority"] == TEMPLATE_PRIORITY
    assert "data_stream" not in entry["index_template"]
    assert _field_type(es_client, f"{index}-000001", "threat", "indicator", "ip") == "ip"


def test_second_setup_changes_nothing(es_client: Elasticsearch, es_prefix: str) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    before = _state(es_client, index)

    again = ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)

    assert not again.changed
    assert again.created_index is None
    assert again.mappings_updated == ()
    assert _state(es_client, index) == before


def test_rolled_over_indices_get_the_mapping_from_the_template(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    # What a rollover does: a new backing index, created without any mapping of its own.
    es_client.indices.create(index=f"{index}-000002")
    assert _field_type(es_client, f"{index}-000002", "threat", "indicator", "ip") == "ip"
    mapping = es_client.indices.get_mapping(index=f"{index}-000002").body
    assert mapping[f"{index}-000002"]["mappings"]["_meta"]["managed_by"] == MANAGED_BY


def test_writes_through_the_alias_land_in_the_first_index(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    written = es_client.index(
        index=index, id="ind-1", document={"threat": {"indicator": {"ip": "192.0.2.1"}}}
    )
    assert written.body["_index"] == f"{index}-000001"
    assert es_client.get(index=index, id="ind-1").body["found"]


@pytest.fixture
def logs_template(es_client: Elasticsearch) -> Iterator[None]:
    """The built-in ``logs`` template of a real cluster; a stand-in where it is missing."""
    try:
        es_client.indices.get_index_template(name="logs")
        yield
        return
    except ApiError as exc:
        if exc.meta.status != 404:
            raise
    es_client.indices.put_index_template(
        name="logs",
        index_patterns=["logs-*-*"],
        priority=100,
        data_stream={},
        template={
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "standin_marker": {"type": "keyword"},
                }
            }
        },
    )
    try:
        yield
    finally:
        es_client.indices.delete_index_template(name="logs")


@pytest.mark.usefixtures("logs_template")
def test_logs_ti_name_is_a_regular_index_not_a_logs_data_stream(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"logs-ti_{es_prefix}.indicator"  # same shape as the default index name
    report = ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)

    assert report.kind is TargetKind.ALIAS
    assert report.notes == (), "our template must outrank logs for the backing indices"
    resolved = es_client.indices.resolve_index(name=f"*{es_prefix}*").body
    assert resolved["data_streams"] == []
    assert [a["name"] for a in resolved["aliases"]] == [index]
    assert [i["name"] for i in resolved["indices"]] == [f"{index}-000001"]

    # A rollover index matches both logs-*-* and ours: ours (300) must win over logs (100).
    simulated = es_client.indices.simulate_index_template(name=f"{index}-000002").body
    meta = simulated["template"]["mappings"]["_meta"]
    assert meta["managed_by"] == MANAGED_BY
    assert "standin_marker" not in simulated["template"]["mappings"].get("properties", {})
    assert "data_stream" not in simulated["template"]
    if real_cluster_url() is None:
        # Control: the stand-in does apply where ours does not, so the check above can fail.
        other = es_client.indices.simulate_index_template(name=f"logs-{es_prefix}-other").body
        assert "standin_marker" in other["template"]["mappings"]["properties"]


def test_compatible_mapping_change_updates_template_and_existing_index(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    changed = _with_field(MAPPINGS, "tags", {"type": "keyword"})

    report = ensure_setup(es_client, index=index, mappings=changed, settings=SETTINGS)

    assert report.template_changed
    assert report.mappings_updated == (f"{index}-000001",)
    assert report.incompatible == ()
    assert _field_type(es_client, f"{index}-000001", "tags") == "keyword"
    assert not ensure_setup(es_client, index=index, mappings=changed, settings=SETTINGS).changed


def test_incompatible_mapping_change_is_reported_not_raised(
    es_client: Elasticsearch, es_prefix: str
) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    conflicting = indicator_mappings(ip_type="keyword")

    report = ensure_setup(es_client, index=index, mappings=conflicting, settings=SETTINGS)

    assert report.template_changed
    assert report.mappings_updated == ()
    (sentence,) = report.incompatible
    assert f"index {index}-000001 keeps its old mapping" in sentence
    assert "ip" in sentence
    assert _field_type(es_client, f"{index}-000001", "threat", "indicator", "ip") == "ip"
    # Still reported on the next start: the index has not changed.
    assert ensure_setup(es_client, index=index, mappings=conflicting).incompatible


def test_existing_plain_index_is_used_as_is(es_client: Elasticsearch, es_prefix: str) -> None:
    index = f"{es_prefix}.plain"
    es_client.indices.create(index=index, mappings={"properties": {"legacy": {"type": "keyword"}}})

    report = ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)

    assert report.kind is TargetKind.INDEX
    assert not report.require_alias
    assert report.created_index is None
    assert report.mappings_updated == (index,)
    assert not es_client.indices.exists(index=f"{index}-000001")
    assert _field_type(es_client, index, "legacy") == "keyword"
    assert _field_type(es_client, index, "threat", "indicator", "ip") == "ip"


def test_target_kind_reads_without_changing(es_client: Elasticsearch, es_prefix: str) -> None:
    alias, plain = f"{es_prefix}.indicator", f"{es_prefix}.plain"
    assert target_kind(es_client, alias) is TargetKind.MISSING
    ensure_setup(es_client, index=alias, mappings=MAPPINGS)
    es_client.indices.create(index=plain)
    assert target_kind(es_client, alias) is TargetKind.ALIAS
    assert target_kind(es_client, plain) is TargetKind.INDEX
    assert target_kind(es_client, f"{alias}-000001") is TargetKind.INDEX


def test_alias_removed_by_hand_is_restored(es_client: Elasticsearch, es_prefix: str) -> None:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    es_client.indices.delete_alias(index=f"{index}-000001", name=index)

    report = ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)

    assert report.alias_added
    assert report.kind is TargetKind.ALIAS
    assert es_client.indices.get_alias(name=index).body == {
        f"{index}-000001": {"aliases": {index: {"is_write_index": True}}}
    }


def test_alias_without_write_index_is_refused(es_client: Elasticsearch, es_prefix: str) -> None:
    index = f"{es_prefix}.indicator"
    for number in (1, 2):
        es_client.indices.create(index=f"{index}-00000{number}", aliases={index: {}})
    with pytest.raises(SetupError, match="has no write index"):
        ensure_setup(es_client, index=index, mappings=MAPPINGS)


def _data_stream_answer(name: str) -> Reply:
    # The shape of GET _resolve/index/<name> on Elasticsearch 8.x for a data stream.
    return Reply(
        200,
        {
            "indices": [],
            "aliases": [],
            "data_streams": [
                {
                    "name": name,
                    "backing_indices": [f".ds-{name}-2024.01.01-000001"],
                    "timestamp_field": "@timestamp",
                }
            ],
        },
    )


def test_data_stream_is_refused_with_an_explanation(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy, es_prefix: str
) -> None:
    index = f"logs-ti_{es_prefix}.indicator"
    faulty_proxy.inject(_data_stream_answer(index), path="/_resolve/index/")
    client = build_client(proxied_settings, CloudSettings())
    with pytest.raises(SetupError, match="is a data stream") as info:
        ensure_setup(client, index=index, mappings=MAPPINGS)
    assert "updated or deleted in place" in info.value.message
    assert not any("_index_template" in r.path for r in faulty_proxy.requests)


@pytest.mark.real_cluster
def test_real_data_stream_is_refused(es_client: Elasticsearch, es_prefix: str) -> None:
    name = f"logs-{es_prefix}-default"
    es_client.indices.put_index_template(
        name=f"{es_prefix}-ds", index_patterns=[name], priority=500, data_stream={}
    )
    es_client.indices.create_data_stream(name=name)
    with pytest.raises(SetupError, match="is a data stream"):
        ensure_setup(es_client, index=name, mappings=MAPPINGS)


def test_invalid_index_name_is_refused_before_any_request(es_client: Elasticsearch) -> None:
    with pytest.raises(SetupError, match="lower case"):
        ensure_setup(es_client, index="Indicators", mappings=MAPPINGS)
    with pytest.raises(SetupError, match="forbids"):
        ensure_setup(es_client, index="ti-*", mappings=MAPPINGS)


@pytest.mark.parametrize("mode", ["ecs", "stix"])
def test_connector_mappings_are_accepted(
    es_client: Elasticsearch, es_prefix: str, mode: str
) -> None:
    from elastic_connector.core.indicators import INDICATOR_MAPPINGS
    from elastic_connector.core.stix_mode import STIX_MAPPINGS

    mappings = INDICATOR_MAPPINGS if mode == "ecs" else STIX_MAPPINGS
    index = f"logs-ti_{es_prefix}.{mode}"
    report = ensure_setup(es_client, index=index, mappings=mappings)
    assert report.created_index == f"{index}-000001"
    assert report.incompatible == ()
    stored = es_client.indices.get_mapping(index=index).body[f"{index}-000001"]["mappings"]
    wanted = mappings["properties"]
    assert isinstance(wanted, dict)
    assert set(stored["properties"]) == set(wanted)
    assert not ensure_setup(es_client, index=index, mappings=mappings).changed


# --- pure helpers ------------------------------------------------------------------------------


def _shuffled(value: object, seed: int) -> object:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        keys = list(value)
        keys = keys[seed % max(len(keys), 1) :] + keys[: seed % max(len(keys), 1)]
        return {k: _shuffled(value[k], seed + 1) for k in reversed(keys)}
    if isinstance(value, list):
        return [_shuffled(v, seed + 1) for v in value]
    return value


_keys = st.text("abcxyz_", max_size=3)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | _keys,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
_json_objects = st.dictionaries(_keys, _json_values, max_size=4)


@given(_json_objects, st.integers(min_value=0, max_value=7))
def test_fingerprint_ignores_key_order(value: dict[str, object], seed: int) -> None:
    assert fingerprint(value) == fingerprint(_shuffled(value, seed))


def _template_print(mappings: dict[str, object]) -> object:
    meta = build_template("ti", mappings)["_meta"]
    assert isinstance(meta, dict)
    return meta["fingerprint"]


@given(_json_objects, _keys, _json_values, _json_objects)
def test_template_fingerprint_changes_with_the_mappings_only(
    mappings: dict[str, object], key: str, value: object, meta: dict[str, object]
) -> None:
    changed = {**mappings, "extra" + key: value} if "extra" + key not in mappings else {}
    if changed:
        assert _template_print(changed) != _template_print(mappings)
    # The _meta section is the connector's bookkeeping: it must not change the fingerprint.
    assert _template_print({**mappings, "_meta": meta}) == _template_print(mappings)


def test_template_is_not_a_data_stream_template() -> None:
    body = build_template("logs-ti_x.indicator", MAPPINGS, SETTINGS)
    assert body["index_patterns"] == ["logs-ti_x.indicator-*", "logs-ti_x.indicator"]
    assert body["priority"] == TEMPLATE_PRIORITY
    assert "data_stream" not in body


_name_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-")


@given(st.text(_name_chars, min_size=1, max_size=60).filter(lambda n: n[0] not in "-_+."))
def test_ordinary_lower_case_names_are_accepted(name: str) -> None:
    assert index_name_problem(name) is None


@given(st.text(max_size=300))
def test_index_name_problem_never_raises(name: str) -> None:
    problem = index_name_problem(name)
    assert problem is None or isinstance(problem, str)
    if any(c in name for c in '*?,/ "<>|\\#:') or name != name.lower():
        assert problem is not None


# --- privileges --------------------------------------------------------------------------------


def test_privileges_unverifiable_without_security_api(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    client = build_client(proxied_settings, CloudSettings())
    # What noida-db (and other compatible servers) answer: no such endpoint.
    no_handler = "no handler found for uri [/_security/user/_has_privileges] and method [POST]"
    faulty_proxy.inject(Reply(400, {"error": no_handler}), path="/_security/")
    check = check_privileges(client, "ti", ".alerts-security.alerts-*", need_setup=True)
    assert not check.verified
    assert check.missing == ()
    assert check.note is not None
    assert "could not be verified" in check.note


def test_privileges_unverifiable_when_security_is_disabled(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    reason = (
        "Security must be explicitly enabled when using a [basic] license. Enable security by "
        "setting [xpack.security.enabled] to [true] in the elasticsearch.yml file and restart "
        "the node."
    )
    faulty_proxy.inject(Reply(500, es_error_body(500, "exception", reason)), times=None)
    client = build_client(proxied_settings, CloudSettings()).options(max_retries=0)
    check = check_privileges(client, "ti", None, need_setup=False)
    assert not check.verified


def test_privileges_on_the_test_cluster(es_client: Elasticsearch) -> None:
    check = check_privileges(es_client, "ti", ".alerts-security.alerts-*", need_setup=True)
    if real_cluster_url() is None:
        assert not check.verified  # noida-db has no security API
    else:
        assert check.verified


def test_missing_privileges_become_sentences(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy
) -> None:
    # The shape of POST _security/user/_has_privileges for a key that may write but not set up
    # and cannot read alerts.
    answer = {
        "username": "connector",
        "has_all_requested": False,
        "cluster": {"manage_index_templates": False},
        "index": {
            "ti": {
                "index": True,
                "delete": True,
                "read": True,
                "view_index_metadata": True,
                "create_index": False,
                "manage": False,
            },
            "ti-*": {
                "index": True,
                "delete": True,
                "read": True,
                "view_index_metadata": True,
                "create_index": False,
                "manage": False,
            },
            ".alerts-security.alerts-*": {"read": True},
            ".internal.alerts-security.alerts-*": {"read": False},
        },
        "application": {},
    }
    faulty_proxy.inject(Reply(200, answer), path="/_security/user/_has_privileges")
    client = build_client(proxied_settings, CloudSettings())
    check = check_privileges(client, "ti", ".alerts-security.alerts-*", need_setup=True)

    assert check.verified
    assert not check.ok
    # One sentence per row of the documented table that is not fully granted.
    assert check.missing == (
        "missing cluster privilege manage_index_templates (needed to install the index template "
        "during setup (_index_template))",
        "missing index privilege create_index on ti, ti-* (needed to create the first index "
        "during setup)",
        "missing index privilege manage on ti, ti-* (needed to add the write alias and update "
        "mappings during setup (_alias, _mapping))",
        "missing index privilege read on .internal.alerts-security.alerts-* (needed to search "
        "the alerts through that point in time, which names the backing indices (_search))",
    )
    sent = json.loads(faulty_proxy.requests[-1].body)
    assert sent["cluster"] == ["manage_index_templates"]
    assert sent["index"] == [
        {
            "names": ["ti", "ti-*"],
            "privileges": [
                "index",
                "delete",
                "read",
                "view_index_metadata",
                "create_index",
                "manage",
            ],
        },
        {"names": [".alerts-security.alerts-*"], "privileges": ["read"]},
        {"names": [".internal.alerts-security.alerts-*"], "privileges": ["read"]},
    ]


@pytest.mark.real_cluster
def test_full_privileges_on_a_real_cluster(es_client: Elasticsearch) -> None:
    check = check_privileges(es_client, "ti", ".alerts-security.alerts-*", need_setup=True)
    assert check.ok, check.missing


# --- upkeep ------------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _doc(timestamp: datetime, valid_until: datetime | None) -> dict[str, object]:
    doc: dict[str, object] = {"@timestamp": timestamp.isoformat()}
    if valid_until is not None:
        doc["opencti"] = {"indicator": {"valid_until": valid_until.isoformat()}}
    return doc


@pytest.fixture
def swept_index(es_client: Elasticsearch, es_prefix: str) -> str:
    index = f"{es_prefix}.indicator"
    ensure_setup(es_client, index=index, mappings=MAPPINGS, settings=SETTINGS)
    old = NOW - timedelta(days=40)
    docs = {
        "expired": _doc(old, NOW - timedelta(days=1)),
        "expires-later": _doc(old, NOW + timedelta(days=10)),
        "never-expires": _doc(old, None),
        "fresh": _doc(NOW - timedelta(hours=1), None),
        "expired-fresh": _doc(NOW - timedelta(hours=1), NOW - timedelta(seconds=1)),
    }
    for doc_id, doc in docs.items():
        es_client.index(index=index, id=doc_id, document=doc)
    es_client.indices.refresh(index=index)
    return index


def _ids(client: Elasticsearch, index: str) -> set[str]:
    client.indices.refresh(index=index)  # the sweep no longer asks for a refresh itself
    hits = client.search(index=index, query={"match_all": {}}, size=100).body["hits"]["hits"]
    return {hit["_id"] for hit in hits}


def test_delete_expired_removes_only_expired_indicators(
    es_client: Elasticsearch, swept_index: str
) -> None:
    assert delete_expired(es_client, swept_index, NOW) == 2
    assert _ids(es_client, swept_index) == {"expires-later", "never-expires", "fresh"}
    assert delete_expired(es_client, swept_index, NOW) == 0


def test_delete_expired_needs_an_aware_time(es_client: Elasticsearch, swept_index: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        delete_expired(es_client, swept_index, datetime(2025, 1, 1))


def test_touch_moves_timestamp_of_old_live_indicators_only(
    es_client: Elasticsearch, swept_index: str
) -> None:
    result = touch_indicators(es_client, swept_index, NOW)
    assert result.supported
    assert result.updated == 2
    es_client.indices.refresh(index=swept_index)
    docs = {
        hit["_id"]: hit["_source"]
        for hit in es_client.search(index=swept_index, size=100).body["hits"]["hits"]
    }
    stamps = {doc_id: datetime.fromisoformat(doc["@timestamp"]) for doc_id, doc in docs.items()}
    assert stamps["expires-later"] == NOW
    assert stamps["never-expires"] == NOW
    assert stamps["expired"] == NOW - timedelta(days=40)
    assert stamps["fresh"] == NOW - timedelta(hours=1)
    assert touch_indicators(es_client, swept_index, NOW).updated == 0


def test_sweep_requests_ask_for_no_refresh(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy, swept_index: str
) -> None:
    # refresh=true runs indices:admin/refresh as the connector: only maintenance/manage grant
    # it, so the reduced role would get 403 on every sweep.
    client = build_client(proxied_settings, CloudSettings())
    delete_expired(client, swept_index, NOW)
    touch_indicators(client, swept_index, NOW)
    by_query = [r.path for r in faulty_proxy.requests if "_by_query" in r.path]
    assert len(by_query) == 2
    assert not [path for path in by_query if "refresh" in path], by_query


@pytest.mark.parametrize("sweep", ["delete", "touch"])
def test_a_sweep_request_that_times_out_is_not_sent_again(
    proxied_settings: ElasticsearchSettings,
    faulty_proxy: FaultyProxy,
    swept_index: str,
    sweep: str,
) -> None:
    # The server keeps running a by-query request the client gave up on; a retry would start a
    # second one over the same documents. (The client's default is to retry on timeout.)
    client = build_client(proxied_settings, CloudSettings())
    faulty_proxy.inject(Stall(30.0), times=None, path="_by_query")

    def run() -> object:
        if sweep == "delete":
            return delete_expired(client, swept_index, NOW, request_timeout=0.3)
        return touch_indicators(client, swept_index, NOW, request_timeout=0.3)

    with pytest.raises(ConnectionTimeout):
        run()
    assert len([r for r in faulty_proxy.requests if "_by_query" in r.path]) == 1


def test_touch_degrades_when_scripts_are_refused(
    proxied_settings: ElasticsearchSettings, faulty_proxy: FaultyProxy, swept_index: str
) -> None:
    reason = "cannot execute [inline] scripts"
    faulty_proxy.inject(
        Reply(400, es_error_body(400, "illegal_argument_exception", reason)),
        path="/_update_by_query",
    )
    client = build_client(proxied_settings, CloudSettings())
    result = touch_indicators(client, swept_index, NOW)
    assert not result.supported
    assert result.updated == 0
    assert result.note is not None
    assert "cannot execute [inline] scripts" in result.note
