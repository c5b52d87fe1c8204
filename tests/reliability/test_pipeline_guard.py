"""A bug in the planner costs one event, never the connector.

The core promises that planning never raises, and ``test_bad_input.py`` holds it to that. If a
future bug breaks the promise anyway, the writer thread must not die on it: a dead thread stops
the connector, whose position was not saved, so the next start meets the same event and dies
again — forever. The pipeline turns the exception into a skip (logged as an error with the event
id and the exception, its traceback at debug; counted as ``internal_error``) and goes on. The
same holds in the planning process (``tests/shell/test_planning.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import pytest
from elasticsearch import Elasticsearch

from elastic_connector.core.config import Mode
from elastic_connector.core.events import Plan, PlannerState, PlanSettings, plan_frame
from elastic_connector.core.indicators import INDICATOR_MAPPINGS
from tests.e2e.harness import documents_of
from tests.reliability.expected_index import assert_index_matches, expected_documents
from tests.reliability.pipeline_run import run_pipeline
from tests.reliability.workload import envelope, generate


def test_a_planner_exception_skips_that_event_and_the_rest_is_written(
    es_client: Elasticsearch,
    es_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = f"{es_prefix}-guard"
    es_client.indices.create(index=index, mappings=dict(INDICATOR_MAPPINGS))
    events = generate(5, 60, tag="guard", population=20)
    poisoned = events[10]

    def buggy(
        event_id: str,
        event: str,
        data: bytes | str,
        state: PlannerState,
        settings: PlanSettings,
        now: datetime,
        authors: Mapping[str, str],
    ) -> Plan:
        if data == envelope(poisoned):
            raise ValueError("a planner bug")
        return plan_frame(event_id, event, data, state, settings, now, authors)

    monkeypatch.setattr("elastic_connector.shell.pipeline.plan_frame", buggy)
    settings = PlanSettings(mode=Mode.ECS_NO_SIGNALS, index=index)
    with caplog.at_level(logging.DEBUG, logger="elastic_connector.shell.pipeline"):
        pipeline, metrics, store, ids = run_pipeline(events, es_client, settings, batch=7)

    assert pipeline.status.last_ack_id == ids[-1]
    assert store.state is not None
    # The position moved past the event (up to the last id but one: no frame came after the
    # last, which may still be a group arriving).
    assert store.state["start_from"] == ids[-2]
    skips = metrics.registry.get_sample_value(
        "elastic_connector_skips_total", {"code": "internal_error"}
    )
    assert skips == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"planning event {ids[10]} raised (a bug), skipping it: ValueError: a planner bug"
    ]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("Traceback" in text and "a planner bug" in text for text in debug)
    survivors = [event for event in events if event is not poisoned]
    assert_index_matches(documents_of(es_client, index), expected_documents(survivors, settings))
