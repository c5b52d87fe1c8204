"""Reconciliation through the real ``elastic-connector reconcile`` and the real daemon: an index
with a document missing, one edited by hand, one whose indicator got TLP:RED while the
connector was down, one of a merged-away indicator and one that was never an indicator's ends
equal to what the stream's planner makes of OpenCTI; a stream gap runs it; the schedule runs
it; a first start can fill the index with it and resumes it after a crash; and neither the
command nor the daemon ever overwrites what the stream wrote after they read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.events import PlanSettings
from elastic_connector.demo.opencti_data import Json, now_iso
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.e2e.harness import (
    ConnectorHarness,
    ConnectorProcess,
    doc_id,
    is_at_or_after,
    wait_for,
)
from tests.support.reconcile import (
    comparable,
    damage,
    expected_documents,
    indicator,
)

Harnesses = Callable[..., ConnectorHarness]


def summary(process: ConnectorProcess) -> dict[str, object]:
    """The command's JSON line."""
    lines = [line for line in process.lines() if line.startswith('{"opencti_indicators"')]
    assert len(lines) == 1, process.tail()
    decoded = json.loads(lines[0])
    assert isinstance(decoded, dict)
    return decoded


def classes(line: dict[str, object]) -> dict[str, object]:
    return {key: line[key] for key in ("missing", "stale", "orphaned")}


def settings(connector: ConnectorHarness) -> PlanSettings:
    return PlanSettings.from_config(build_config([env_layer(connector.environment())]).unwrap())


def index_now(connector: ConnectorHarness) -> dict[str, dict[str, object]]:
    return {key: comparable(value) for key, value in connector.documents().items()}


def indexed(connector: ConnectorHarness, indicators: list[Json]) -> None:
    """Run the daemon until ``indicators`` are indexed from the stream, then stop it."""
    daemon = connector.start()
    for stix in indicators:
        connector.publish("create", stix)
    connector.wait_for_documents(
        lambda found: {doc_id(s) for s in indicators} <= set(found), what="the indicators"
    )
    assert daemon.terminate() == 0


def reconcile_status(process: ConnectorProcess) -> dict[str, object] | None:
    health = process.health()
    part = health[1].get("reconcile") if health is not None else None
    return part if isinstance(part, dict) else None


def last_run(process: ConnectorProcess, trigger: str) -> dict[str, object]:
    """Wait for the daemon's last reconciliation to be one started by ``trigger``."""

    def probe() -> dict[str, object] | None:
        status = reconcile_status(process)
        last = status.get("last") if status is not None else None
        if isinstance(last, dict) and trigger in str(last.get("trigger")):
            return last
        return None

    return wait_for(probe, timeout=30, what=f"a {trigger} reconciliation", context=process.tail)


# --- the command ---------------------------------------------------------------------------------


def test_the_command_repairs_every_class_after_showing_them(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    indicators = [indicator(n) for n in range(6)]
    indexed(connector, indicators)
    damaged = damage(connector.standin, connector.es, connector.index, indicators)
    before = index_now(connector)

    dry = connector.run("reconcile", "--dry-run")

    assert dry.returncode == 0, dry.tail()
    line = summary(dry)
    assert classes(line) == {"missing": 1, "stale": 2, "orphaned": 2}
    assert line["dry_run"] is True
    ids = line["ids"]
    assert isinstance(ids, dict)
    assert {kind: set(found) for kind, found in ids.items()} == damaged.classes
    assert index_now(connector) == before

    run = connector.run("reconcile")

    assert run.returncode == 0, run.tail()
    assert classes(summary(run)) == classes(line)
    assert (summary(run)["written"], summary(run)["deleted"]) == (2, 3)
    assert "Traceback" not in run.output()
    # Its own lines only: no pycti or transport log lines unless -v or debug.
    for process in (dry, run):
        foreign = [
            line
            for line in process.lines()
            if line.strip() and not line.startswith(('{"opencti_indicators"', "elastic-connector"))
        ]
        assert not foreign, process.tail()
    assert index_now(connector) == expected_documents(damaged.survivors, settings(connector))
    again = connector.run("reconcile", "--dry-run")
    assert classes(summary(again)) == {"missing": 0, "stale": 0, "orphaned": 0}


def test_the_command_exits_2_on_a_bad_configuration(e2e_harness: Harnesses) -> None:
    connector = e2e_harness()
    run = connector.run("reconcile", CONNECTOR_RECONCILE_INTERVAL="soon")
    assert run.returncode == 2
    assert "CONNECTOR_RECONCILE_INTERVAL" in run.output()


# --- the daemon ----------------------------------------------------------------------------------


def test_a_stream_gap_runs_a_reconciliation_that_repairs_every_class(
    e2e_harness: Harnesses,
) -> None:
    with OpenCTIStandin(heartbeat_interval=0.2, max_stream_length=4) as standin:
        connector = e2e_harness(standin=standin)
        indicators = [indicator(n) for n in range(6)]
        daemon = connector.start()
        for stix in indicators:  # one at a time: the stream keeps only the last 4 events
            position = connector.publish_and_ack("create", stix)
        connector.wait_for_commit(position)
        assert daemon.terminate() == 0
        damaged = damage(standin, connector.es, connector.index, indicators)
        # More events than the stream keeps: the damage above is trimmed away.
        later = [indicator(20 + n) for n in range(6)]
        standin.publish_many(("create", stix) for stix in later)

        daemon = connector.start()

        last = last_run(daemon, "gap")
        assert last["outcome"] == "ok", last
        counts = last["counts"]
        assert isinstance(counts, dict)
        assert counts["orphaned"] == 2
        expected = expected_documents(damaged.survivors + later, settings(connector))
        connector.wait_for_documents(
            lambda found: set(found) == set(expected), what="the repaired index"
        )
        assert index_now(connector) == expected
        assert daemon.metric("reconcile_runs", trigger="gap", outcome="ok") == 1
        assert daemon.metric("reconcile_last_count", count="orphaned") == 2
        assert daemon.terminate() == 0
        state = connector.saved_state()
        assert state is not None
        assert state["reconcile_pending"] is False


def test_the_schedule_repairs_what_happens_to_the_index_meanwhile(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"CONNECTOR_RECONCILE_INTERVAL": "1s"})
    daemon = connector.start()
    stix = indicator(1)
    connector.publish_and_ack("create", stix)
    connector.es.delete(index=connector.index, id=doc_id(stix), refresh=True)

    connector.wait_for_documents(lambda found: doc_id(stix) in found, what="the repair")

    status = reconcile_status(daemon)
    assert status is not None
    assert status["interval_seconds"] == 1.0
    assert daemon.metric("reconcile_last_success_timestamp_seconds") > 0
    assert daemon.metric("reconcile_runs", trigger="interval", outcome="ok") >= 1
    assert daemon.terminate() == 0


def test_a_first_start_by_reconciliation_survives_a_crash(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(env={"CONNECTOR_INITIAL_SYNC": "reconcile"})
    indicators = [indicator(n) for n in range(5)]
    # Created before the live stream's start (a margin of 60 s before now): only the
    # reconciliation can index them.
    long_ago = int(time.time() * 1000) - 120_000
    connector.standin.publish_many((("create", s) for s in indicators), start_ms=long_ago)
    connector.standin.hold_graphql("indicators")
    crashed = connector.start()
    assert connector.standin.wait_for_graphql_hold("indicators")
    crashed.kill()  # in the middle of the reconciliation
    connector.standin.release_graphql("indicators")
    live = indicator(9)
    connector.publish("create", live)

    daemon = connector.start()

    # A first start again if the crash came before a ping saved the state, else a resume.
    assert last_run(daemon, "")["outcome"] == "ok"
    expected = expected_documents([*indicators, live], settings(connector))
    connector.wait_for_documents(lambda found: set(found) == set(expected), what="everything")
    assert index_now(connector) == expected
    assert all("recover" not in r.query for r in connector.standin.stream_requests)
    assert daemon.terminate() == 0
    assert (connector.saved_state() or {}).get("reconcile_pending") is False


def test_a_reconciliation_left_pending_runs_again_at_start(e2e_harness: Harnesses) -> None:
    """What a crash during a gap or initial reconciliation leaves in the connector state (the
    position went on, the reconciliation did not finish) makes the next start run it again."""
    connector = e2e_harness()
    stix = indicator(1)
    position = connector.standin.publish("create", stix)
    saved = {"start_from": position, "recover_until": False, "reconcile_pending": True}
    connector.standin.set_connector_state(connector.connector_id, json.dumps(saved))

    daemon = connector.start()

    assert last_run(daemon, "resume")["outcome"] == "ok"
    assert doc_id(stix) in connector.documents()  # after the saved position: only reconciled
    assert daemon.terminate() == 0
    assert (connector.saved_state() or {}).get("reconcile_pending") is False


# --- never over the stream's newer writes ---------------------------------------------------------


def test_the_daemon_never_overwrites_what_the_stream_wrote_meanwhile(
    e2e_harness: Harnesses,
) -> None:
    """An initial reconciliation reads OpenCTI, and its answer arrives late: meanwhile the
    stream indexes newer versions of two indicators and revokes a third. The repairs planned
    from the older answer are dropped; the stream's documents stay."""
    connector = e2e_harness(
        env={"CONNECTOR_INITIAL_SYNC": "reconcile", "CONNECTOR_STREAM_HEARTBEAT_MARGIN": "0.5"}
    )
    old = now_iso()
    first, second, third = (indicator(n, modified=old) for n in range(3))
    connector.standin.publish_many(("create", stix) for stix in (first, second, third))
    connector.standin.hold_graphql("indicators")
    daemon = connector.start()
    assert connector.standin.wait_for_graphql_hold("indicators")

    newer = [{**first, "confidence": 90}, {**second, "confidence": 91}]
    for stix in newer:
        connector.publish("update", stix, {"patch": []})
    connector.publish_and_ack("update", {**third, "revoked": True}, {"patch": []})
    connector.standin.release_graphql("indicators")

    run = last_run(daemon, "initial")
    assert run["outcome"] == "ok", run
    counts = run["counts"]
    assert isinstance(counts, dict)
    assert counts["missing"] == 3
    assert counts["superseded"] == 3
    assert index_now(connector) == expected_documents(newer, settings(connector))
    assert daemon.terminate() == 0


def test_the_command_next_to_the_daemon_never_overwrites_the_streams_writes(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness()
    edited, revoked = indicator(1), indicator(2)
    daemon = connector.start()
    connector.publish("create", edited)
    connector.publish_and_ack("create", revoked)
    hand_edit = connector.es.get(index=connector.index, id=doc_id(edited))["_source"]
    hand_edit["tags"] = ["edited-by-hand"]
    connector.es.index(index=connector.index, id=doc_id(edited), document=hand_edit, refresh=True)
    connector.es.delete(index=connector.index, id=doc_id(revoked), refresh=True)
    connector.standin.hold_graphql("indicators")

    command = connector.spawn("reconcile", metrics=False)
    assert connector.standin.wait_for_graphql_hold("indicators")
    newer = {**edited, "confidence": 90}
    connector.publish("update", newer, {"patch": []})
    last = connector.publish("update", {**revoked, "revoked": True}, {"patch": []})
    wait_for(
        lambda: is_at_or_after(daemon.last_ack_id(), last),
        what="the stream's writes",
        context=daemon.tail,
    )
    connector.standin.release_graphql("indicators")

    assert command.wait(60) == 0, command.tail()
    line = summary(command)
    assert (line["stale"], line["missing"]) == (1, 1)
    assert line["superseded"] == 1  # the rewrite lost to the stream's newer document
    assert line["deleted"] == 1  # the create, undone once read again: revoked meanwhile
    assert index_now(connector) == expected_documents([newer], settings(connector))
    assert daemon.terminate() == 0
