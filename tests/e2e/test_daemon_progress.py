"""A first sync says how far it is (issue 18): the real daemon replays a knowledge base of a few
thousand indicators, most of them withheld (expired, revoked, TLP:RED), and logs progress lines
whose totals add up, no line per withheld object at INFO, one line when the replay ends with
its totals; ``/metrics`` shows the phase, ``/healthz`` and ``elastic-connector status`` the same
figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final

from elasticsearch import Elasticsearch

from elastic_connector.demo.opencti_data import DEFAULT_MARKINGS, Json, iso_ms, make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id, wait_for

Harnesses = Callable[..., ConnectorHarness]

TLP_RED: Final = next(m.standard_id for m in DEFAULT_MARKINGS if m.definition == "TLP:RED")
EXPORTED, EXPIRED, REVOKED, RED = 200, 2400, 300, 100
TOTAL: Final = EXPORTED + EXPIRED + REVOKED + RED
COUNTED: Final = ("written", "deleted", "other")


def knowledge_base(now_ms: int) -> list[tuple[Json, int]]:
    """Every indicator with its update time, one a second over the last ``TOTAL`` seconds."""
    objects: list[tuple[Json, int]] = []
    for number in range(TOTAL):
        kind = _kind(number)
        pattern = f"[ipv4-addr:value = '10.{number // 62500}.{number // 250 % 250}.{number % 250}']"
        stix = make_indicator(
            pattern,
            valid_from="1970-01-01T00:00:00.000Z" if kind == "expired" else None,
            valid_until=iso_ms(1_000_000) if kind == "expired" else None,
            revoked=kind == "revoked",
            markings=(TLP_RED,) if kind == "red" else (),
        )
        objects.append((stix, now_ms - (TOTAL - number) * 1000))
    return objects


def _kind(number: int) -> str:
    """Interleaved: of every 30 indicators, 2 exported, 24 expired, 3 revoked, 1 TLP:RED."""
    slot = number % 30
    if slot < 2:
        return "exported"
    if slot < 26:
        return "expired"
    return "revoked" if slot < 29 else "red"


def records(lines: list[str]) -> list[dict[str, object]]:
    found = []
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict), line
        found.append(record)
    return found


def figures(record: dict[str, object], key: str) -> dict[str, object]:
    value = record[key]
    assert isinstance(value, dict)
    return value


def total(value: object) -> int:
    assert isinstance(value, dict)
    return sum(int(n) for n in value.values())


def test_a_first_sync_says_how_far_it_is_and_when_it_is_done(e2e_harness: Harnesses) -> None:
    connector = e2e_harness(
        env={"CONNECTOR_PROGRESS_INTERVAL": "0.5", "CONNECTOR_LOG_FORMAT": "json"}
    )
    indicators = knowledge_base(int(time.time() * 1000))
    for stix, at_ms in indicators:
        connector.standin.publish("create", stix, at_ms=at_ms)
    time.sleep(1.1)  # the recovery date has a one-second resolution: keep it after them
    # About 2 ms an object (the platform's own pace on a large knowledge base is slower): the
    # replay lasts a few seconds, long enough for the progress lines and the phase to be seen.
    connector.standin.set_event_delay(0.002)
    daemon = connector.start()
    wait_for(
        lambda: daemon.metric("phase", phase="replay") == 1,
        what="the replay phase in /metrics",
        context=daemon.tail,
    )
    done = daemon.wait_for_line("knowledge base replay done", timeout=60)
    assert done is not None
    connector.standin.set_event_delay(0)
    wait_for(
        lambda: daemon.metric("phase", phase="live") == 1,
        what="the live phase in /metrics",
        context=daemon.tail,
    )
    assert daemon.metric("phase", phase="replay") == 0

    # /healthz and `status` say the same.
    health = daemon.health()
    assert health is not None
    assert health[1]["phase"] == "live"
    progress = figures(health[1], "progress")
    assert progress["written"] == EXPORTED
    status = connector.run(
        "status",
        CONNECTOR_METRICS_PORT=str(daemon.metrics_port),
        CONNECTOR_METRICS_HOST="127.0.0.1",
    )
    assert status.returncode == 0, status.tail()
    shown = status.lines()
    assert shown[0].startswith("OK   healthy")
    assert shown[1].startswith("     phase:      live for ")
    assert shown[2].startswith("     position:   at ")
    assert shown[4].startswith("     last write: ")
    assert shown[5] == "     last error: -"
    assert daemon.terminate() == 0

    logged = records(daemon.lines())
    # The end of the replay: its totals, exactly what the knowledge base holds.
    (end,) = [r for r in logged if "replay_done" in r]
    assert end["level"] == "info"
    replay = figures(end, "replay_done")
    assert replay["written"] == EXPORTED
    assert replay["withheld"] == {"expired": EXPIRED, "revoked": REVOKED, "tlp": RED}
    assert replay["skipped"] == {}
    assert replay["deleted"] == 0
    # Other events: the TLP:RED marking definition, sent once before the first object using it.
    other = int(str(replay["other"]))
    assert replay["events"] == TOTAL + other
    assert other <= 1
    assert len(connector.documents()) == EXPORTED

    # Progress lines during the replay, whose totals add up and only grow.
    lines = [figures(r, "progress") for r in logged if "progress" in r]
    replaying = [line for line in lines if line["phase"] == "replay"]
    assert replaying, "no progress line during the replay"
    previous = 0
    for line in lines:
        events = int(str(line["events"]))
        outcomes = sum(int(str(line[key])) for key in COUNTED)
        assert events == outcomes + total(line["withheld"]) + total(line["skipped"]), line
        assert events >= previous
        previous = events
        assert events <= TOTAL + 1
        examples = line.get("examples") or {}
        assert isinstance(examples, dict)
        for code, named in examples.items():
            assert 1 <= len(named) <= 3, (code, named)
    assert any(line["share_done"] is not None for line in replaying)
    assert all(0 <= float(str(line["share_done"] or 0)) <= 1 for line in replaying)
    assert str(next(r["message"] for r in logged if "progress" in r)).startswith("replay: ")

    # No line per object at INFO: indicator ids show up only as a few examples in progress
    # lines, and the number of INFO lines does not grow with the knowledge base.
    ids = {doc_id(stix) for stix, _ in indicators} | {str(stix["id"]) for stix, _ in indicators}
    info = [r for r in logged if r["level"] == "info" and "progress" not in r]
    assert not [r for r in info if any(i in str(r["message"]) for i in ids)]
    assert len(info) < 60, [r["message"] for r in info]
    warnings = [r for r in logged if r["level"] in ("warning", "error")]
    assert warnings == [], warnings


def test_refused_documents_stay_warnings_each_held_to_a_budget(
    e2e_harness: Harnesses, es_client: Elasticsearch
) -> None:
    """An operator must act on documents Elasticsearch refuses: each is a warning, but a feed
    of them is held to ten lines a minute, the rest summed up (here at shutdown)."""
    connector = e2e_harness()
    # An index made by someone else, where `threat.indicator.name` is a number.
    es_client.indices.create(
        index=connector.index,
        mappings={
            "properties": {
                "threat": {"properties": {"indicator": {"properties": {"name": {"type": "long"}}}}}
            }
        },
    )
    daemon = connector.start()
    refused = [
        make_indicator(f"[ipv4-addr:value = '192.0.2.{n}']", name=f"not a number {n}")
        for n in range(1, 26)
    ]
    for stix in refused:
        connector.publish("create", stix)
    connector.wait_for_ack(connector.standin.event_ids[-1])
    assert daemon.metric("documents_rejected") == len(refused)
    assert daemon.terminate() == 0

    lines = [line for line in daemon.lines() if "rejected the upsert" in line]
    assert len(lines) == 11, lines
    assert all(" WARNING " in line for line in lines)
    assert "(15 more like this in the last " in lines[-1]
    assert (
        f"the last: Elasticsearch rejected the upsert of document {doc_id(refused[-1])}"
        in (lines[-1])
    )
