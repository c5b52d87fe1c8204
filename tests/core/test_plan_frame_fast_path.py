"""``events.plan_frame`` plans an indicator created or updated straight from its one-pass
decoding in the ``ecs`` modes. The reference is what it did before: ``read_event``, then
``plan_event`` on the ``StreamEvent`` (a ``Skip`` for a frame that does not decode). Checked on
a realistic stream (every template of the benchmark's generator, state threaded through), on
frames with fields of right and wrong types, and on any bytes, in every mode."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from benchmarks.generator import stream_events
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Skip
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_event, plan_frame
from elastic_connector.core.plans import Plan
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.stix import StreamEvent, read_event

from .test_stix_one_pass_decoding import frames

NOW = datetime(2025, 1, 1, tzinfo=UTC)
_SETTINGS = [
    PlanSettings(mode=Mode.ECS_NO_SIGNALS, index="threat-intel"),
    PlanSettings(
        mode=Mode.ECS,
        index="ti",
        opencti_url="https://opencti.example",
        policy=PolicySettings.filters(indicator_ttl=86400.0 * 365, labels_exclude=["x"]),
    ),
    PlanSettings(mode=Mode.STIX, index="stix"),
]
_AUTHORS: Mapping[str, str] = {"identity--0a3c5e0d-1b7f-5b2a-9c4e-7d6f8a9b0c1d": "ACME"}


def _reference(
    event_id: str,
    event: str,
    data: bytes,
    state: PlannerState,
    settings: PlanSettings,
    authors: Mapping[str, str],
) -> Plan:
    decoded = read_event(event_id, event, data, keep_json=settings.mode is Mode.STIX)
    if not isinstance(decoded, StreamEvent):
        return Plan((Skip(event_id, decoded.object_id, "undecodable", str(decoded)),), state)
    return plan_event(decoded, state, settings, NOW, authors)


@pytest.mark.parametrize("settings", _SETTINGS, ids=lambda s: s.mode.value)
@pytest.mark.parametrize("authors", [{}, _AUTHORS], ids=["no authors", "authors"])
def test_a_realistic_stream_is_planned_as_from_its_events(
    settings: PlanSettings, authors: Mapping[str, str]
) -> None:
    state = ours = PlannerState()
    for event in stream_events(600, seed=7):
        expected = _reference(event.id, event.event, event.data, state, settings, authors)
        planned = plan_frame(event.id, event.event, event.data, ours, settings, NOW, authors)
        assert planned == expected
        state, ours = expected.state, planned.state


_EVENTS = st.sampled_from(["create", "update", "delete", "merge", "heartbeat"])


@given(_EVENTS, st.one_of(frames(), st.binary(max_size=60)), st.sampled_from(_SETTINGS))
def test_any_frame_is_planned_as_from_its_event(
    event: str, frame: bytes, settings: PlanSettings
) -> None:
    state = PlannerState()
    planned = plan_frame("1-0", event, frame, state, settings, NOW, _AUTHORS)
    assert planned == _reference("1-0", event, frame, state, settings, _AUTHORS)


_INDICATOR = b'{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = \'1.2.3.4\']"}'


@pytest.mark.parametrize(
    "context",
    [
        b'{"sources": [{"type": "identity"}]}',  # a source that does not decode: a skip
        b'{"sources": [{"type": "indicator", "id": "indicator--2", "pattern": "[a:b = 1]"}]}',
        b'{"patch": [{"op": "replace"}]}',
    ],
)
@pytest.mark.parametrize("event", ["create", "update"])
def test_an_indicator_frame_naming_merged_objects_is_planned_as_from_its_event(
    event: str, context: bytes
) -> None:
    frame = b'{"data": %s, "context": %s}' % (_INDICATOR, context)
    state = PlannerState()
    for settings in _SETTINGS:
        planned = plan_frame("1-0", event, frame, state, settings, NOW, _AUTHORS)
        assert planned == _reference("1-0", event, frame, state, settings, _AUTHORS)
