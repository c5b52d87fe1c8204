"""What the daemon writes to its log: one JSON object per line in ``json`` format (its own
records and pycti's, in one schema, at every level), skip reasons with their event ids, and
never a secret."""

from __future__ import annotations

import json
from collections.abc import Callable

from elastic_connector.demo.opencti_data import make_indicator
from tests.e2e.harness import ConnectorHarness, doc_id

Harnesses = Callable[..., ConnectorHarness]

TOKEN = "e2e-log-token-2b7f0c9d41"


def test_json_logs_are_one_object_per_line_in_one_schema_without_secrets(
    e2e_harness: Harnesses,
) -> None:
    connector = e2e_harness(
        env={"CONNECTOR_LOG_FORMAT": "json", "OPENCTI_TOKEN": TOKEN, "CONNECTOR_LOG_LEVEL": "debug"}
    )
    connector.standin.add_user(TOKEN, name="connector", capabilities=["BYPASS"])
    daemon = connector.start()
    malformed = connector.standin.publish_raw("create", b'{"type": "create", "data": ')
    unmappable = make_indicator("[ipv4-addr:value = '300.1.2.3']")
    connector.publish("create", unmappable)
    connector.publish_and_ack("create", make_indicator("[ipv4-addr:value = '192.0.2.200']"))
    assert daemon.terminate() == 0

    records = []
    for line in daemon.lines():
        record = json.loads(line)  # every line, pycti's included
        assert isinstance(record, dict), line
        records.append(record)
    for record in records:
        assert set(record) >= {"timestamp", "level", "logger", "message"}, record
        assert record["level"] in {"debug", "info", "warning", "error", "critical"}, record
    loggers = {record["logger"] for record in records}
    assert {"elastic_connector.shell.daemon", "api"} <= loggers
    skipped = [r for r in records if r.get("event_id") == malformed]
    assert len(skipped) == 1
    assert skipped[0]["code"] == "undecodable"
    assert skipped[0]["level"] == "warning"
    withheld = [r for r in records if r.get("object_id") == doc_id(unmappable)]
    assert [r["code"] for r in withheld] == ["unmappable"]
    assert withheld[0]["level"] == "debug"  # policy, not a problem: counted in progress lines
    assert TOKEN not in daemon.output()
