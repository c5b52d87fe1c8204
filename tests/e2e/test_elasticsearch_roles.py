"""The documented roles, enforced: the connector works with exactly them, and ``check`` names the
privilege a role lacks.

noida-db enforces no privilege; ``FaultyProxy(role=...)`` answers 403 wherever Elasticsearch
would for the role (``tests/support/es_roles.py``, from Elasticsearch's privilege definitions).
The roles are the JSON blocks of docs/elasticsearch-privileges.md, with the default index name
replaced by the test's.

* Each documented role runs the daemon in ``ecs`` mode (with the role with setup, the daemon
  sets the index up; with the reduced role, an administrator ran ``setup`` first): indicators
  written, an expired one swept, the ``@timestamp`` refresh run, alerts read through a point in
  time and turned into sightings — and not one request refused. Then ``check`` passes, warning
  only that ``GET /`` (``monitor``) is refused.
* A role missing one documented privilege gets the ``check`` line naming that privilege (run
  in-process: the same code as the command, without a process start per case).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import (
    Config,
    ConnectorSettings,
    ElasticsearchSettings,
    OpenCTISettings,
    Secret,
    SightingsSettings,
)
from elastic_connector.core.elastic.privileges import REQUIREMENTS, Need, Target
from elastic_connector.demo.opencti_standin import OpenCTIStandin, make_indicator
from elastic_connector.shell.check import run_check
from elastic_connector.shell.index_setup import ensure_setup
from tests.e2e.harness import ConnectorHarness, doc_id, wait_for
from tests.e2e.test_daemon_ecs import indicator_match_alert, sighting_counts
from tests.support.alerts import AlertIndices
from tests.support.es_roles import Role, roles_in_markdown
from tests.support.faulty_proxy import FaultyProxy, Reply, es_error_body
from tests.test_privileges_docs import DOC, documented_actions

DOCUMENTED_INDEX: Final = "logs-ti_opencti_connector.indicator"
WITH_SETUP: Final = "opencti_connector"
REDUCED: Final = "opencti_connector_reduced"

Harnesses = Callable[..., ConnectorHarness]


def documented_role(name: str, index: str) -> Role:
    return roles_in_markdown(DOC)[name].renamed(DOCUMENTED_INDEX, index)


def check_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[:4] in ("OK  ", "WARN", "FAIL")]


# --- the daemon and check with each documented role -------------------------------------------


@pytest.mark.parametrize("role_name", [WITH_SETUP, REDUCED])
def test_everything_works_with_a_documented_role(
    role_name: str,
    e2e_harness: Harnesses,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    alerts = AlertIndices(es_client, es_prefix)
    alerts.create()
    reduced = role_name == REDUCED
    connector = e2e_harness(
        "ecs",
        env={
            "SIGHTINGS_ALERTS_INDEX": alerts.pattern,
            "SIGHTINGS_POLL_INTERVAL": "0.3",
            # The alert below is stamped minutes in the past: a settle delay shorter than its
            # age lets it be read at once.
            "SIGHTINGS_SETTLE_DELAY": "120",
            "CONNECTOR_EXPIRY_SWEEP_INTERVAL": "0.3",
            "ELASTICSEARCH_REDUCED_PRIVILEGES": "true" if reduced else "false",
        },
    )
    if reduced:
        # The administrator's one-off setup, with their own (unrestricted) credentials.
        setup = connector.run("setup")
        assert setup.returncode == 0, setup.tail()
    proxy = role_proxy(documented_role(role_name, connector.index))
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(proxy.url,))
    daemon = connector.start()

    indicator = make_indicator("[ipv4-addr:value = '198.51.100.23']")
    connector.publish_and_ack("create", indicator)
    assert doc_id(indicator) in connector.documents()

    # An expired indicator (as if OpenCTI had said nothing since): the sweep removes it.
    backing = next(iter(es_client.indices.get_alias(name=connector.index).body))
    expired = {
        "@timestamp": (datetime.now(UTC) - timedelta(days=40)).isoformat(),
        "opencti": {"indicator": {"valid_until": "2020-01-01T00:00:00Z"}},
    }
    es_client.index(index=backing, id="expired-by-now", document=expired, refresh=True)
    connector.wait_for_documents(lambda docs: "expired-by-now" not in docs, what="the sweep")

    alert = indicator_match_alert(
        indicator_doc=doc_id(indicator),
        indicator_index=backing,
        ip="198.51.100.23",
        space=es_prefix,
        age=timedelta(minutes=5),
    )
    es_client.index(index=alerts.alerts, id=str(alert["kibana.alert.uuid"]), document=alert)
    es_client.indices.refresh(index=alerts.alerts)
    wait_for(
        lambda: sighting_counts(connector) == {doc_id(indicator): 1},
        what="the alert to become a sighting",
        context=daemon.tail,
    )
    assert daemon.terminate() == 0

    gate = proxy.gate
    assert gate is not None
    assert gate.denied() == [], daemon.tail()
    performed = gate.actions()
    assert {
        "indices:data/write/delete/byquery",
        "indices:data/write/update/byquery",
        "indices:data/read/open_point_in_time",
        "indices:data/write/index:op_type/index",
    } <= performed
    if not reduced:
        assert "indices:admin/index_template/put" in performed
    assert performed <= documented_actions(), "an action the page does not list"

    check = connector.run("check")
    lines = check_lines(check.output())
    assert check.returncode == 0, check.tail()
    assert [line for line in lines if line.startswith("WARN elasticsearch")] == [
        f"WARN elasticsearch: reached {proxy.url}, credentials accepted; version unknown: GET / "
        "needs the monitor cluster privilege, which the connector does not need (it supports "
        "Elasticsearch 8.x and 9.x)"
    ]
    assert "OK   privileges: the connector's user has every privilege it needs" in lines
    assert f"OK   alerts: {alerts.pattern} is readable through a point in time" in lines
    denied = {d.action for d in gate.denied()}
    assert denied == {"cluster:monitor/main"}


# --- check with a role missing one privilege -------------------------------------------------

_CHECKED_INDEX: Final = "ectest_roles.indicator"
IMPLIED: Final = {(WITH_SETUP, "create_index"), (WITH_SETUP, "view_index_metadata")}
"""Privileges the rest of the role with setup still grants (Elasticsearch compares automata):
``manage`` holds ``indices:admin/*`` (so ``indices:admin/create``), and ``manage`` + ``read``
hold every action of ``view_index_metadata``. Removing one of them loses nothing."""
_ALERTS_BACKING: Final = ".internal.alerts-security.alerts-*"


_CONFIGURED_HERE: Final = (Need.ALWAYS, Need.SETUP, Need.SIGHTINGS)
"""The lookup and dead-letter indices are not configured in these checks."""


def _cases() -> list[tuple[str, str, Target]]:
    """(role, privilege, target) for every privilege of every documented role."""
    cases: list[tuple[str, str, Target]] = []
    for requirement in REQUIREMENTS:
        if requirement.need not in _CONFIGURED_HERE:
            continue
        roles = [WITH_SETUP] if requirement.need is Need.SETUP else [WITH_SETUP, REDUCED]
        cases.extend((name, requirement.privilege, requirement.target) for name in roles)
    return cases


def _without(role: Role, privilege: str, target: Target) -> Role:
    if target is Target.CLUSTER:
        return role.without(privilege)
    if target is Target.INDICATORS:
        return role.without(privilege, names=_CHECKED_INDEX)
    if target is Target.ALERT_BACKING:
        return role.without_name(_ALERTS_BACKING)
    # read on the alert alias alone: keep it on the backing indices.
    return role.without_name(".alerts-security.alerts-*")


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenCTIStandin]:
    with OpenCTIStandin(heartbeat_interval=0.2) as running:
        yield running


@pytest.fixture(scope="module")
def checked_cluster(es_client: Elasticsearch) -> Iterator[AlertIndices]:
    """The connector's index, set up, and one Kibana space's alert indices."""
    space = f"ectest_roles_{uuid.uuid4().hex[:8]}"
    alerts = AlertIndices(es_client, space)
    alerts.create()
    ensure_setup(es_client, index=_CHECKED_INDEX, mappings={"dynamic": False, "properties": {}})
    try:
        yield alerts
    finally:
        for name in (alerts.alerts, f"{_CHECKED_INDEX}-000001"):
            es_client.indices.delete(index=name, ignore_unavailable=True)
        es_client.options(ignore_status=404).indices.delete_index_template(
            name=f"{_CHECKED_INDEX}@elastic-connector"
        )


def _check(
    standin: OpenCTIStandin,
    elasticsearch: FaultyProxy | ElasticsearchSettings,
    alerts: str,
    *,
    setup: bool,
) -> str:
    """``check``'s report (in-process) through a proxy, or with the given settings."""
    settings = (
        ElasticsearchSettings(hosts=(elasticsearch.url,))
        if isinstance(elasticsearch, FaultyProxy)
        else elasticsearch
    )
    config = Config(
        opencti=OpenCTISettings(url=standin.url, token=Secret(standin.token)),
        connector=ConnectorSettings(id=str(uuid.uuid4())),
        elasticsearch=msgspec.structs.replace(
            settings, index=_CHECKED_INDEX, reduced_privileges=not setup
        ),
        sightings=SightingsSettings(alerts_index=alerts),
    )
    out = io.StringIO()
    run_check(config, out)
    return out.getvalue()


@pytest.mark.parametrize(("role_name", "privilege", "target"), _cases())
def test_check_names_the_one_missing_privilege(
    role_name: str,
    privilege: str,
    target: Target,
    standin: OpenCTIStandin,
    checked_cluster: AlertIndices,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    role = _without(documented_role(role_name, _CHECKED_INDEX), privilege, target)
    proxy = role_proxy(role)
    lines = check_lines(
        _check(standin, proxy, checked_cluster.pattern, setup=role_name == WITH_SETUP)
    )
    failed = [line for line in lines if line.startswith("FAIL privileges")]
    if (role_name, privilege) in IMPLIED:
        assert failed == [], lines
        assert "OK   privileges: the connector's user has every privilege it needs" in lines
        return
    names = {
        Target.CLUSTER: "",
        Target.INDICATORS: f" on {_CHECKED_INDEX}, {_CHECKED_INDEX}-*",
        Target.ALERTS: f" on {checked_cluster.pattern}",
        Target.ALERT_BACKING: f" on .internal{checked_cluster.pattern}",
    }[target]
    kind = "cluster" if target is Target.CLUSTER else "index"
    (row,) = [
        r
        for r in REQUIREMENTS
        if (r.privilege, r.target) == (privilege, target) and r.need in _CONFIGURED_HERE
    ]
    assert failed == [
        f"FAIL privileges: missing {kind} privilege {privilege}{names} (needed to {row.purpose})"
    ], lines
    if target is Target.ALERT_BACKING:
        # What the poller would meet: the point in time opens, every search through it is 403.
        (alerts_line,) = [line for line in lines if line.startswith("FAIL alerts")]
        assert alerts_line.startswith(
            f"FAIL alerts: a point in time on {checked_cluster.pattern} opens, but searching "
            f"through it is refused: missing index privilege read on "
            f".internal{checked_cluster.pattern}"
        ), alerts_line


def test_check_reads_alerts_as_the_poller_does(
    standin: OpenCTIStandin,
    checked_cluster: AlertIndices,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    proxy = role_proxy(documented_role(REDUCED, _CHECKED_INDEX))
    _check(standin, proxy, checked_cluster.pattern, setup=False)
    alert_requests = [
        (r.method, r.path.split("?")[0])
        for r in proxy.requests
        if "_pit" in r.path or r.path.startswith("/_search")
    ]
    assert alert_requests == [
        ("POST", f"/{checked_cluster.pattern}/_pit"),
        ("POST", "/_search"),
        ("DELETE", "/_pit"),
    ]


def test_check_without_points_in_time_reads_alerts_as_the_poller_then_does(
    standin: OpenCTIStandin,
    checked_cluster: AlertIndices,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    proxy = role_proxy(documented_role(REDUCED, _CHECKED_INDEX))
    refused = es_error_body(400, "illegal_argument_exception", "point in time not supported")
    proxy.inject(Reply(400, refused), path="/_pit", method="POST")
    lines = check_lines(_check(standin, proxy, checked_cluster.pattern, setup=False))
    (alerts_line,) = [line for line in lines if " alerts:" in line]
    assert alerts_line.startswith(f"WARN alerts: {checked_cluster.pattern} is readable, but "), (
        lines
    )


@pytest.mark.real_cluster
@pytest.mark.parametrize("role_name", [WITH_SETUP, REDUCED])
def test_check_passes_with_an_api_key_of_a_documented_role_on_a_real_cluster(
    role_name: str,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    standin: OpenCTIStandin,
    checked_cluster: AlertIndices,
) -> None:
    role = documented_role(role_name, _CHECKED_INDEX)
    key = es_client.security.create_api_key(
        name=f"ectest-{role_name}",
        role_descriptors={role_name: role.descriptor()},
        expiration="1h",
    ).body
    try:
        settings = msgspec.structs.replace(
            es_settings, username=None, password=None, api_key=Secret(key["encoded"])
        )
        report = _check(standin, settings, checked_cluster.pattern, setup=role_name == WITH_SETUP)
    finally:
        es_client.security.invalidate_api_key(ids=[key["id"]])
    lines = check_lines(report)
    assert not [line for line in lines if line.startswith("FAIL")], lines
    assert "OK   privileges: the connector's user has every privilege it needs" in lines
    assert f"OK   alerts: {checked_cluster.pattern} is readable through a point in time" in lines


# --- the role the docs used to give: read on the alerts alias only --------------------------


def test_alerts_are_read_without_a_point_in_time_when_the_backing_indices_are_refused(
    e2e_harness: Harnesses,
    es_client: Elasticsearch,
    es_settings: ElasticsearchSettings,
    es_prefix: str,
    role_proxy: Callable[[Role], FaultyProxy],
) -> None:
    """With read on ``.alerts-security.alerts-*`` only, a point in time opens but every search
    through it is refused (it names the backing indices): the poller falls back to plain
    ``search_after`` on the alias, says so once, and the alert still becomes a sighting."""
    alerts = AlertIndices(es_client, es_prefix)
    alerts.create()
    connector = e2e_harness(
        "ecs",
        env={
            "SIGHTINGS_ALERTS_INDEX": alerts.pattern,
            "SIGHTINGS_POLL_INTERVAL": "0.3",
            "SIGHTINGS_SETTLE_DELAY": "120",
        },
    )
    role = documented_role(WITH_SETUP, connector.index).without_name(_ALERTS_BACKING)
    proxy = role_proxy(role)
    connector.es_settings = msgspec.structs.replace(es_settings, hosts=(proxy.url,))
    daemon = connector.start()
    indicator = make_indicator("[ipv4-addr:value = '198.51.100.24']")
    connector.publish_and_ack("create", indicator)
    backing = next(iter(es_client.indices.get_alias(name=connector.index).body))
    alert = indicator_match_alert(
        indicator_doc=doc_id(indicator),
        indicator_index=backing,
        ip="198.51.100.24",
        space=es_prefix,
        age=timedelta(minutes=5),
    )
    es_client.index(index=alerts.alerts, id=str(alert["kibana.alert.uuid"]), document=alert)
    es_client.indices.refresh(index=alerts.alerts)
    wait_for(
        lambda: sighting_counts(connector) == {doc_id(indicator): 1},
        what="the alert to become a sighting",
        context=daemon.tail,
    )
    assert daemon.terminate() == 0
    gate = proxy.gate
    assert gate is not None
    assert "indices:data/read/search" in {d.action for d in gate.denied()}, "no PIT search refused"
    warnings = [line for line in daemon.output().splitlines() if "point in time" in line]
    assert len(warnings) == 1, warnings
