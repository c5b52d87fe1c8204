"""Hostile events on the live stream do not stop the daemon, nor the events that follow them.

Each poison event is published between good ones: the good ones are indexed, the poison is
reported (log line with the event id and the reason, ``skips`` metric) and the stream position
moves past it — so a restart does not meet it again. Covered: invalid UTF-8, JSON nested 100k
levels deep, a 10 MB event, a 10 MB pattern and a pattern of 10k nested parentheses, in both
document modes (``stix`` mode indexes whole objects, so it reads every byte of them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id

Harnesses = Callable[..., ConnectorHarness]

MB = 1024 * 1024


def good(number: int) -> dict[str, object]:
    return make_indicator(f"[ipv4-addr:value = '192.0.2.{number}']")


@pytest.mark.parametrize("mode", ["ecs_no_signals", "stix"])
def test_poison_events_are_skipped_and_the_stream_goes_on(
    e2e_harness: Harnesses, mode: str
) -> None:
    # Debug: why an indicator is withheld ("not exported: ...") is a debug line.
    connector = e2e_harness(mode, env={"CONNECTOR_LOG_LEVEL": "debug"})
    daemon = connector.start()
    standin = connector.standin
    undecodable_before = daemon.metric("skips", code="undecodable")

    goods = [good(n) for n in range(1, 7)]
    huge_event = make_indicator(
        "[ipv4-addr:value = '192.0.2.100']", name="huge", labels=["x" * 1000] * 10
    )
    huge_event["description"] = "d" * (10 * MB)
    huge_pattern = make_indicator("[domain-name:value = '" + "a" * (10 * MB) + ".example.org']")
    parens = make_indicator("(" * 10_000 + "[ipv4-addr:value = '192.0.2.101']" + ")" * 10_000)

    connector.publish("create", goods[0])
    utf8 = standin.publish_raw(
        "create",
        b'{"type":"create","data":{"type":"indicator","id":"indicator--1","name":"\xff\xfe",'
        b'"pattern":"[ipv4-addr:value = \'192.0.2.250\']","valid_from":"2025-01-01T00:00:00Z"}}',
    )
    connector.publish("create", goods[1])
    deep = standin.publish_raw(
        "create",
        b'{"type":"create","data":{"type":"indicator","id":"indicator--2","x":'
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}}",
    )
    connector.publish("create", goods[2])
    connector.publish("create", huge_event)
    connector.publish("create", goods[3])
    connector.publish("create", huge_pattern)
    connector.publish("create", goods[4])
    connector.publish("create", parens)
    last = connector.publish("create", goods[5])
    connector.wait_for_ack(last, timeout=60)

    documents = connector.documents()
    output = daemon.output()
    assert {doc_id(stix) for stix in goods} <= set(documents)
    assert doc_id(huge_pattern) in documents or f"not exported: {doc_id(huge_pattern)} (" in output
    assert doc_id(parens) not in documents or mode == "stix"
    assert f"skipped event {utf8}: not valid UTF-8" in output
    assert f"skipped event {deep}: JSON nested too deeply" in output
    # Each skip names its object, whose id is readable though the object is not.
    assert "object_id=indicator--1 " in output
    assert "object_id=indicator--2 " in output
    assert daemon.metric("skips", code="undecodable") == undecodable_before + 2
    if mode == "ecs_no_signals":
        assert f"not exported: {doc_id(parens)} (pattern does not parse" in output
    # The 10 MB document travels alone in its bulk request: indexed, or refused on its own.
    assert doc_id(huge_event) in documents or (
        f"rejected the upsert of document {doc_id(huge_event)}" in output
    )
    assert "Traceback" not in output
    assert daemon.running
    assert daemon.terminate() == 0
    state = connector.saved_state()
    assert state is not None
    assert state["start_from"] == last  # the position moved past every poison event
