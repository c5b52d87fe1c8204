"""Reconciliation, the ES|QL lookup index and dead letters under the documented roles.

``test_elasticsearch_roles.py`` proves the stream, sweeps and sightings with each role of
docs/elasticsearch-privileges.md; the features here came later and call other APIs (a point in
time and ``_mget`` on the indicator index, guarded ``create``/``if_seq_no`` writes, ``_mget`` of
every index behind the indicator index, ``_settings`` and writes on the lookup index, the
dead-letter index's setup). Each runs through ``FaultyProxy(role=...)``: not one request
refused, and every action performed is one the page lists.

* ``elastic-connector reconcile`` repairs a missing document, two stale ones and two orphans,
  with the role with setup and with the reduced role (an administrator set the index up), and
  with the outputs role, the lookup rows following the repairs.
* The daemon with ``connector.initial_sync: reconcile`` and the reduced role fills an index an
  administrator set up, rewrites a stale document and deletes an orphan.
* The daemon with the lookup index and dead letters, under the outputs role: rows written and
  deleted, an expired row swept, a refused document dead-lettered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final

import msgspec
import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import ElasticsearchSettings
from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS, row_ids
from elastic_connector.core.events import PlanSettings
from tests.e2e.harness import ConnectorHarness, ConnectorProcess, doc_id, documents_of, wait_for
from tests.e2e.outputs_workload import (
    create_indices,
    dead_letter,
    lookup_domains,
    publish_creates,
    sweep_an_expired_row,
)
from tests.support.es_roles import Role, RoleGate, roles_in_markdown
from tests.support.faulty_proxy import FaultyProxy
from tests.support.reconcile import damage, expected_documents, index_documents, indicator
from tests.test_privileges_docs import (
    DEAD,
    DOC,
    LOOKUP,
    cut_for_reduced_privileges,
    documented_actions,
)

DOCUMENTED_INDEX: Final = "logs-ti_opencti_connector.indicator"
WITH_SETUP: Final = "opencti_connector"
REDUCED: Final = "opencti_connector_reduced"
OUTPUTS: Final = "opencti_connector_outputs"

Harnesses = Callable[..., ConnectorHarness]


def documented_role(name: str, renames: dict[str, str]) -> Role:
    role = roles_in_markdown(DOC)[name]
    for old, new in renames.items():
        role = role.renamed(old, new)
    return role


def through(connector: ConnectorHarness, proxy: FaultyProxy) -> None:
    """The connector's next processes talk to Elasticsearch through ``proxy`` only."""
    connector.es_settings = msgspec.structs.replace(connector.es_settings, hosts=(proxy.url,))


def gate_of(proxy: FaultyProxy) -> RoleGate:
    assert proxy.gate is not None
    return proxy.gate


def assert_documented_and_granted(gate: RoleGate, context: str) -> set[str]:
    assert gate.denied() == [], context
    performed = gate.actions()
    assert performed <= documented_actions(), (
        f"actions the page does not list: {sorted(performed - documented_actions())}"
    )
    return performed


def plan_settings(connector: ConnectorHarness) -> PlanSettings:
    return PlanSettings.from_config(build_config([env_layer(connector.environment())]).unwrap())


def summary(process: ConnectorProcess) -> dict[str, object]:
    (line,) = [line for line in process.lines() if line.startswith('{"opencti_indicators"')]
    decoded = json.loads(line)
    assert isinstance(decoded, dict)
    return decoded


# --- the reconcile command ------------------------------------------------------------------


@pytest.mark.parametrize("role_name", [WITH_SETUP, REDUCED])
def test_the_reconcile_command_repairs_with_a_documented_role(
    role_name: str,
    e2e_harness: Harnesses,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    reduced = role_name == REDUCED
    connector = e2e_harness(
        env={"ELASTICSEARCH_REDUCED_PRIVILEGES": "true" if reduced else "false"}
    )
    indicators = [indicator(n) for n in range(5)]
    connector.standin.publish_many(("create", stix) for stix in indicators)
    # An administrator's run (unrestricted credentials) sets the index up and fills it.
    filled = connector.run("reconcile", ELASTICSEARCH_REDUCED_PRIVILEGES="false")
    assert filled.returncode == 0, filled.tail()
    damaged = damage(connector.standin, connector.es, connector.index, indicators)
    proxy = role_proxy(documented_role(role_name, {DOCUMENTED_INDEX: connector.index}))
    through(connector, proxy)

    run = connector.run("reconcile")

    assert run.returncode == 0, run.tail()
    line = summary(run)
    assert {k: line[k] for k in ("missing", "stale", "orphaned")} == {
        "missing": 1,
        "stale": 2,
        "orphaned": 2,
    }
    assert (line["written"], line["deleted"]) == (2, 3)
    assert index_documents(connector.es, connector.index) == expected_documents(
        damaged.survivors, plan_settings(connector)
    )
    performed = assert_documented_and_granted(gate_of(proxy), run.tail())
    assert {
        "indices:data/read/open_point_in_time",
        "indices:data/read/search",
        "indices:data/read/mget",
        "indices:data/read/mget[shard]",
        "indices:data/write/index:op_type/create",
        "indices:data/write/index:op_type/index",
        "indices:data/write/delete",
    } <= performed
    if reduced:
        assert not {a for a in performed if a.startswith("indices:admin/index_template")}


def test_the_reconcile_command_with_the_lookup_index_and_the_outputs_role(
    e2e_harness: Harnesses,
    es_client: Elasticsearch,
    es_prefix: str,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    """The repairs go through the lookup rows too: their stored versions are read (``_mget``
    of every index behind the indicator alias) before the rows are rewritten or deleted."""
    lookup, dead = f"{es_prefix}-lookup", f"{es_prefix}-dead"
    connector = e2e_harness(
        env={"ELASTICSEARCH_LOOKUP_INDEX": lookup, "ELASTICSEARCH_DEAD_LETTER_INDEX": dead}
    )
    es_client.indices.create(index=lookup, mappings=dict(LOOKUP_MAPPINGS))  # no lookup mode
    indicators = [indicator(n) for n in range(5)]
    connector.standin.publish_many(("create", stix) for stix in indicators)
    filled = connector.run("reconcile")
    assert filled.returncode == 0, filled.tail()
    damaged = damage(connector.standin, connector.es, connector.index, indicators)
    renames = {DOCUMENTED_INDEX: connector.index, LOOKUP: lookup, DEAD: dead}
    proxy = role_proxy(documented_role(OUTPUTS, renames))
    through(connector, proxy)

    run = connector.run("reconcile")

    assert run.returncode == 0, run.tail()
    assert (summary(run)["written"], summary(run)["deleted"]) == (2, 3)
    expected = expected_documents(damaged.survivors, plan_settings(connector))
    assert index_documents(connector.es, connector.index) == expected
    es_client.indices.refresh(index=lookup)
    wanted_rows = {r for doc_id_, doc in expected.items() for r in row_ids(doc_id_, doc)}
    assert set(documents_of(es_client, lookup)) == wanted_rows
    performed = assert_documented_and_granted(gate_of(proxy), run.tail())
    assert {"indices:data/read/mget[shard]", "indices:data/write/delete"} <= performed


# --- the daemon's reconciler ------------------------------------------------------------------


def test_the_daemons_initial_reconciliation_with_the_reduced_role(
    e2e_harness: Harnesses,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    connector = e2e_harness(
        env={"CONNECTOR_INITIAL_SYNC": "reconcile", "ELASTICSEARCH_REDUCED_PRIVILEGES": "true"}
    )
    setup = connector.run("setup")
    assert setup.returncode == 0, setup.tail()
    indicators = [indicator(n) for n in range(3)]
    # Created before the live stream's start: only the reconciliation can index them.
    long_ago = int(time.time() * 1000) - 120_000
    connector.standin.publish_many((("create", s) for s in indicators), start_ms=long_ago)
    expected = expected_documents(indicators, plan_settings(connector))
    stale = {**expected[doc_id(indicators[0])], "tags": ["edited-by-hand"]}
    connector.es.index(index=connector.index, id=doc_id(indicators[0]), document=stale)
    orphan = {"threat": {"indicator": {"type": "ipv4-addr", "ip": "192.0.2.1"}}}
    connector.es.index(index=connector.index, id="an-orphan", document=orphan, refresh=True)
    proxy = role_proxy(documented_role(REDUCED, {DOCUMENTED_INDEX: connector.index}))
    through(connector, proxy)

    daemon = connector.start()

    connector.wait_for_documents(
        lambda found: set(found) == set(expected), what="the initial reconciliation"
    )
    wait_for(
        lambda: daemon.metric("reconcile_runs", trigger="initial", outcome="ok") == 1,
        what="the reconciliation to finish",
        context=daemon.tail,
    )
    assert index_documents(connector.es, connector.index) == expected
    assert daemon.terminate() == 0
    performed = assert_documented_and_granted(gate_of(proxy), daemon.tail())
    assert {
        "indices:data/read/open_point_in_time",
        "indices:data/write/index:op_type/create",
        "indices:data/write/index:op_type/index",
        "indices:data/write/delete",
    } <= performed


# --- the lookup index and dead letters ------------------------------------------------------------


@pytest.mark.parametrize("reduced", [False, True], ids=["with-setup", "reduced"])
def test_lookup_rows_and_dead_letters_with_the_outputs_role(
    reduced: bool,
    e2e_harness: Harnesses,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    lookup, dead = f"{es_prefix}-lookup", f"{es_prefix}-dead"
    connector = e2e_harness(
        env={
            "ELASTICSEARCH_LOOKUP_INDEX": lookup,
            "ELASTICSEARCH_DEAD_LETTER_INDEX": dead,
            "CONNECTOR_EXPIRY_SWEEP_INTERVAL": "0.3",
            "ELASTICSEARCH_REDUCED_PRIVILEGES": "true" if reduced else "false",
        }
    )
    # An administrator made the lookup index beforehand.
    create_indices(es_client, connector, lookup)
    renames = {DOCUMENTED_INDEX: connector.index, LOOKUP: lookup, DEAD: dead}
    role = documented_role(OUTPUTS, renames)
    if reduced:
        # The page's outputs role cut down as it says for reduced_privileges; an
        # administrator ran setup.
        role = cut_for_reduced_privileges(role)
        setup = connector.run("setup", ELASTICSEARCH_REDUCED_PRIVILEGES="false")
        assert setup.returncode == 0, setup.tail()
    proxy = role_proxy(role)
    through(connector, proxy)
    daemon = connector.start()

    published = publish_creates(connector)
    connector.publish("delete", published.gone)
    connector.wait_for_commit(connector.standin.event_ids[-1])
    assert lookup_domains(es_client, lookup) == ["kept.example"]
    assert daemon.metric("dead_letters_written") == 1
    sweep_an_expired_row(es_client, lookup, daemon)
    assert daemon.terminate() == 0
    assert dead_letter(es_client, dead)["id"] == doc_id(published.refused)

    performed = assert_documented_and_granted(gate_of(proxy), daemon.tail())
    assert {
        "indices:data/read/mget[shard]",
        "indices:monitor/settings/get",
        "indices:data/write/delete/byquery",
    } <= performed
    setup_actions = {"indices:admin/mapping/put", "indices:admin/create"}
    if reduced:
        assert not setup_actions & performed
    else:
        assert setup_actions <= performed


# --- a refused write waits for the role to be fixed --------------------------------------------


def test_granting_the_missing_privilege_resumes_the_writes_without_a_restart(
    e2e_harness: Harnesses,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    """What the page says of a 401/403: the daemon keeps the refused batch and tries it again
    every ``retry_max_backoff``; granting the privilege resumes the writes, nothing lost."""
    connector = e2e_harness(
        env={"ELASTICSEARCH_REDUCED_PRIVILEGES": "true", "ELASTICSEARCH_RETRY_MAX_BACKOFF": "0.3"}
    )
    setup = connector.run("setup")
    assert setup.returncode == 0, setup.tail()
    documented = documented_role(REDUCED, {DOCUMENTED_INDEX: connector.index})
    proxy = role_proxy(documented.without("index", names=connector.index))
    through(connector, proxy)
    daemon = connector.start()
    first = indicator(1)
    connector.publish("create", first)
    wait_for(
        lambda: daemon.metric("write_errors") >= 2,
        what="the refused batch to be tried again",
        context=daemon.tail,
    )
    assert doc_id(first) not in connector.documents()
    assert "grant one of the index privileges" in daemon.output()

    gate_of(proxy).role = documented
    second = indicator(2)
    connector.publish_and_ack("create", second)

    assert {doc_id(first), doc_id(second)} <= set(connector.documents())
    assert daemon.terminate() == 0
