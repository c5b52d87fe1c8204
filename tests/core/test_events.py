"""The planner: one stream event in, Elasticsearch actions out (``core/events.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import OPENCTI_EXTENSION, Indicator
from tests.core.indicators.indicator_strategies import indicators

NOW = datetime(2025, 6, 1, tzinfo=UTC)
INDEX = "logs-ti_test.indicator"
ECS = PlanSettings(mode=Mode.ECS, index=INDEX)
STIX = PlanSettings(mode=Mode.STIX, index="opencti-stix")
AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
CUSTOM = "marking-definition--aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

_encode = msgspec.json.encode


def indicator(
    number: int = 1,
    pattern: str = "[ipv4-addr:value = '198.51.100.7']",
    **fields: object,
) -> dict[str, object]:
    """An indicator as OpenCTI streams it; ``fields`` override or add properties."""
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "name": f"indicator {number}",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        "extensions": {OPENCTI_EXTENSION: {"id": f"internal-{number}", "score": 50}},
    }
    obj.update(fields)
    return obj


def frame(kind: str, obj: Mapping[str, object], **context: object) -> bytes:
    payload: dict[str, object] = {"type": kind, "data": obj}
    if context:
        payload["context"] = context
    return _encode(payload)


def plan(
    kind: str,
    obj: Mapping[str, object],
    settings: PlanSettings = ECS,
    state: PlannerState | None = None,
    **context: object,
) -> tuple[Action, ...]:
    result = plan_frame(
        "1-0", kind, frame(kind, obj, **context), state or PlannerState(), settings, NOW
    )
    return result.actions


def only(actions: tuple[Action, ...]) -> Action:
    assert len(actions) == 1, actions
    return actions[0]


# --- examples ---------------------------------------------------------------------------------


def test_create_upserts_under_the_opencti_internal_id() -> None:
    action = only(plan("create", indicator()))
    assert isinstance(action, Upsert)
    assert (action.index, action.id) == (INDEX, "internal-1")
    document = msgspec.json.decode(action.document)
    assert document["threat"]["indicator"]["ip"] == ["198.51.100.7"]
    assert document["@timestamp"] == "2025-06-01T00:00:00Z"


def test_without_the_opencti_extension_the_stix_id_is_the_document_id() -> None:
    obj = indicator()
    del obj["extensions"]
    action = only(plan("create", obj))
    assert isinstance(action, Upsert)
    assert action.id == obj["id"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"revoked": True}, "revoked"),
        ({"valid_until": "2025-05-31T23:59:59Z"}, "expired"),
        ({"valid_until": "2025-06-01T00:00:00Z"}, "expired"),
        ({"object_marking_refs": [RED]}, "tlp"),
        ({"pattern_type": "sigma", "pattern": "title: x"}, "pattern_type"),
        ({"pattern": "[ipv4-addr:value = '1.2.3.4'"}, "invalid_pattern"),
        ({"pattern": "[file:name MATCHES '^evil']"}, "unmappable"),
    ],
)
@pytest.mark.parametrize("kind", ["create", "update"])
def test_unexportable_indicators_are_deleted_with_the_reason(
    kind: str, fields: dict[str, object], code: str
) -> None:
    action = only(plan(kind, {**indicator(), **fields}))
    assert isinstance(action, Delete)
    assert (action.index, action.id, action.code) == (INDEX, "internal-1", code)
    assert action.reason


def test_tlp_at_the_ceiling_is_exported_and_above_is_not() -> None:
    amber = only(plan("create", indicator(object_marking_refs=[AMBER])))
    assert isinstance(amber, Upsert)
    strict = PlanSettings(mode=Mode.ECS, index=INDEX, policy=PolicySettings(max_tlp=Tlp.GREEN))
    withheld = only(plan("create", indicator(object_marking_refs=[AMBER]), strict))
    assert isinstance(withheld, Delete)
    assert withheld.code == "tlp"


def test_a_custom_tlp_marking_seen_on_the_stream_applies_to_later_indicators() -> None:
    marking = {
        "type": "marking-definition",
        "id": CUSTOM,
        "definition_type": "TLP",
        "name": "TLP:RED",
        "definition": "TLP:RED",
    }
    learnt = plan_frame("1-0", "create", frame("create", marking), PlannerState(), ECS, NOW)
    assert learnt.actions == ()
    assert learnt.state.markings == {CUSTOM: Tlp.RED}
    red = plan("create", indicator(object_marking_refs=[CUSTOM]), state=learnt.state)
    assert isinstance(only(red), Delete)
    forgotten = plan_frame("2-0", "delete", frame("delete", marking), learnt.state, ECS, NOW)
    assert forgotten.state.markings == {}


def test_an_unknown_marking_withholds_the_object_until_it_is_known() -> None:
    # It could be a custom TLP:RED: fail closed, and say which marking the shell should read.
    for settings in (ECS, STIX):
        obj = indicator(object_marking_refs=[AMBER, CUSTOM])
        action = only(plan("create", obj, settings))
        assert isinstance(action, Delete)
        assert (action.code, action.subject) == ("unknown_marking", CUSTOM)
    pap = PlannerState({CUSTOM: None})  # known, and not a TLP marking (PAP, statement...)
    assert isinstance(
        only(plan("create", indicator(object_marking_refs=[CUSTOM]), state=pap)), Upsert
    )
    assert PlannerState().with_markings({CUSTOM: Tlp.GREEN}).markings == {CUSTOM: Tlp.GREEN}


def test_non_tlp_marking_definitions_on_the_stream_are_known_markings() -> None:
    pap = {"type": "marking-definition", "id": CUSTOM, "definition_type": "PAP", "name": "PAP:RED"}
    learnt = plan_frame("1-0", "create", frame("create", pap), PlannerState(), ECS, NOW)
    assert learnt.state.markings == {CUSTOM: None}
    assert isinstance(
        only(plan("create", indicator(object_marking_refs=[CUSTOM]), state=learnt.state)), Upsert
    )


def test_detection_flag_is_required_only_when_configured() -> None:
    obj = indicator(extensions={OPENCTI_EXTENSION: {"id": "internal-1", "detection": False}})
    assert isinstance(only(plan("create", obj)), Upsert)
    strict = PlanSettings(mode=Mode.ECS, index=INDEX, policy=PolicySettings(require_detection=True))
    action = only(plan("create", obj, strict))
    assert isinstance(action, Delete)
    assert action.code == "detection"


def test_delete_removes_the_document() -> None:
    assert plan("delete", indicator()) == (
        Delete(INDEX, "internal-1", "deleted", "deleted in OpenCTI"),
    )


def test_merge_deletes_the_merged_away_sources_and_upserts_the_target() -> None:
    sources = [indicator(2), indicator(3)]
    actions = plan("merge", indicator(1), sources=sources)
    assert [type(a) for a in actions] == [Delete, Delete, Upsert]
    assert [(a.id, a.code) for a in actions[:2] if isinstance(a, Delete)] == [
        ("internal-2", "merged"),
        ("internal-3", "merged"),
    ]
    target = actions[2]
    assert isinstance(target, Upsert)
    assert target.id == "internal-1"


def test_ecs_mode_ignores_objects_that_are_not_indicators() -> None:
    malware = {"type": "malware", "id": "malware--1", "name": "x", "is_family": True}
    assert plan("create", malware) == ()
    assert plan("delete", malware) == ()


def test_stix_mode_indexes_any_object_and_deletes_on_delete() -> None:
    malware = {"type": "malware", "id": "malware--1", "name": "x", "is_family": True}
    upsert = only(plan("create", malware, STIX))
    assert isinstance(upsert, Upsert)
    assert (upsert.index, upsert.id) == ("opencti-stix", "malware--1")
    assert msgspec.json.decode(upsert.document)["stix"]["name"] == "x"
    assert plan("delete", malware, STIX) == (
        Delete("opencti-stix", "malware--1", "deleted", "deleted in OpenCTI"),
    )


def test_stix_mode_still_withholds_objects_above_max_tlp() -> None:
    report = {"type": "report", "id": "report--1", "object_marking_refs": [RED]}
    action = only(plan("create", report, STIX))
    assert isinstance(action, Delete)
    assert action.code == "tlp"


def platform_frame(obj: Mapping[str, object], referer: str) -> bytes:
    """A frame the live stream builds itself: ``{data, message, origin, version}`` only
    (sseMiddleware.js: the recovery replay and the dependencies sent before an event)."""
    return _encode(
        {"data": obj, "message": "creates", "origin": {"referer": referer}, "version": "4"}
    )


@pytest.mark.parametrize("referer", ["init-create", "init-dependencies"])
def test_frames_without_type_or_scope_are_planned_by_their_sse_event_name(referer: str) -> None:
    result = plan_frame(
        "9-0", "create", platform_frame(indicator(), referer), PlannerState(), ECS, NOW
    )
    action = only(result.actions)
    assert isinstance(action, Upsert), action
    assert action.id == "internal-1"


def test_a_marking_sent_as_a_dependency_is_learnt() -> None:
    marking = {
        "type": "marking-definition",
        "id": CUSTOM,
        "definition_type": "TLP",
        "name": "TLP:RED",
    }
    state = plan_frame(
        "9-0", "create", platform_frame(marking, "init-dependencies"), PlannerState(), ECS, NOW
    ).state
    assert state.markings == {CUSTOM: Tlp.RED}


def test_a_collection_rewritten_update_follows_the_event_name_not_the_json_type() -> None:
    # A collection whose filters the object left sends ``event: delete`` with the update's
    # JSON (``"type": "update"``); one it entered sends ``event: create``.
    data = frame("update", indicator())
    deleted = only(plan_frame("9-0", "delete", data, PlannerState(), ECS, NOW).actions)
    assert isinstance(deleted, Delete)
    assert deleted.code == "deleted"
    created = only(plan_frame("9-0", "create", data, PlannerState(), ECS, NOW).actions)
    assert isinstance(created, Upsert)


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("create", b"{not json"),
        ("create", b'{"type": "create", "data": {"type": "indicator"}}'),
        ("update", b'{"type": "update", "data": {"type": "indicator", "id": "x", "pattern": 5}}'),
        ("heartbeat", b'"2024-01-01T00:00:00Z"'),
    ],
)
def test_undecodable_frames_are_skipped_with_the_reason(event: str, data: bytes) -> None:
    result = plan_frame("7-1", event, data, PlannerState(), ECS, NOW)
    action = only(result.actions)
    assert isinstance(action, Skip)
    assert action.event_id == "7-1"
    assert action.code == "undecodable"
    assert action.reason


def test_settings_from_config_use_the_mode_index_and_policy() -> None:
    from elastic_connector.core.config.load import Layer, build_config

    config = build_config(
        [
            Layer(
                "test",
                {
                    "opencti": {"url": "https://opencti.example.org/", "token": "t0ken-value"},
                    "connector": {
                        "id": "5f0ba3bb-5ab3-4c2c-9c0b-1c3f1a5e6f7a",
                        "mode": "stix",
                        "max_tlp": "TLP:GREEN",
                        "require_detection": True,
                    },
                },
            )
        ]
    ).unwrap()
    settings = PlanSettings.from_config(config)
    assert settings.mode is Mode.STIX
    assert settings.index == "opencti-stix"
    assert settings.policy == PolicySettings(max_tlp=Tlp.GREEN, require_detection=True)
    assert settings.opencti_url == "https://opencti.example.org"
    assert settings.feed_name == "OpenCTI"


# --- properties -------------------------------------------------------------------------------

_event_names = st.sampled_from(["create", "update", "delete", "merge", "heartbeat", "x"])
_settings = st.sampled_from([ECS, STIX])


@given(event=_event_names, data=st.binary(max_size=300), settings=_settings)
def test_planning_never_raises_on_arbitrary_bytes(
    event: str, data: bytes, settings: PlanSettings
) -> None:
    result = plan_frame("1-0", event, data, PlannerState(), settings, NOW)
    assert all(isinstance(a, Upsert | Delete | Skip) for a in result.actions)


def _indicator_json(value: Indicator) -> dict[str, object]:
    decoded = msgspec.json.decode(msgspec.json.encode(value))
    assert isinstance(decoded, dict)
    return decoded


@given(
    value=indicators(),
    kind=st.sampled_from(["create", "update", "delete", "merge"]),
    settings=_settings,
)
def test_a_plan_names_the_stix_id_of_its_object(
    value: Indicator, kind: str, settings: PlanSettings
) -> None:
    result = plan_frame(
        "1-0", kind, frame(kind, _indicator_json(value)), PlannerState(), settings, NOW
    )
    assert result.object_id == value.id


@given(data=st.binary(max_size=200))
def test_a_frame_that_does_not_decode_names_no_object(data: bytes) -> None:
    result = plan_frame("1-0", "create", data, PlannerState(), ECS, NOW)
    if any(isinstance(a, Skip) and a.code == "undecodable" for a in result.actions):
        assert result.object_id == ""


@given(value=indicators(), kind=st.sampled_from(["create", "update", "merge"]), settings=_settings)
def test_planning_is_deterministic_and_idempotent(
    value: Indicator, kind: str, settings: PlanSettings
) -> None:
    data = frame(kind, _indicator_json(value))
    first = plan_frame("1-0", kind, data, PlannerState(), settings, NOW)
    again = plan_frame("1-0", kind, data, first.state, settings, NOW)
    assert again.actions == first.actions
    assert again.state == first.state


@given(value=indicators(), kind=st.sampled_from(["create", "update"]))
def test_exactly_one_action_for_the_indicator_and_only_when_allowed(
    value: Indicator, kind: str
) -> None:
    actions = plan_frame(
        "1-0", kind, frame(kind, _indicator_json(value)), PlannerState(), ECS, NOW
    ).actions
    action = only(actions)
    expected_id = (
        value.extensions.opencti.id
        if value.extensions.opencti is not None and value.extensions.opencti.id
        else value.id
    )
    assert isinstance(action, Upsert | Delete)
    assert action.id == expected_id
    if isinstance(action, Upsert):
        # The security invariants: nothing revoked, expired or above max_tlp is ever written.
        assert not value.revoked
        until = value.valid_until
        if until is not None:
            assert (until if until.tzinfo else until.replace(tzinfo=UTC)) > NOW
        for ref in value.object_marking_refs:
            assert ref != RED


@given(value=indicators())
def test_a_red_marking_is_never_exported_whatever_else_the_indicator_says(value: Indicator) -> None:
    obj = _indicator_json(value)
    obj["object_marking_refs"] = [*value.object_marking_refs, RED]
    for settings in (ECS, STIX):
        for action in plan_frame(
            "1-0", "update", frame("update", obj), PlannerState(), settings, NOW
        ).actions:
            assert not isinstance(action, Upsert)


@given(days=st.integers(min_value=-3000, max_value=3000))
def test_expiry_is_decided_against_the_given_now(days: int) -> None:
    until = NOW + timedelta(days=days)
    obj = indicator(valid_until=until.isoformat().replace("+00:00", "Z"))
    action = only(plan("create", obj))
    assert isinstance(action, Upsert) == (days > 0)


# --- authors: threat.indicator.provider (issue 12, item 5) -------------------------------------

AUTHOR = "identity--7d6b1a2c-1c55-4b8e-9c1b-6a1f0d8e9a01"


def test_an_identity_is_reported_for_the_shells_cache_in_both_modes() -> None:
    identity = {"type": "identity", "id": AUTHOR, "name": " ACME CERT ", "identity_class": 5}
    for settings in (ECS, STIX):
        result = plan_frame(
            "1-0", "create", frame("create", identity), PlannerState(), settings, NOW
        )
        assert result.authors == ((AUTHOR, "ACME CERT"),)
    deleted = plan_frame("1-0", "delete", frame("delete", identity), PlannerState(), ECS, NOW)
    assert deleted.authors == ()
    nameless = {"type": "identity", "id": AUTHOR, "name": " "}
    assert (
        plan_frame("1-0", "create", frame("create", nameless), PlannerState(), ECS, NOW).authors
        == ()
    )


def test_the_provider_is_the_name_the_caller_knows() -> None:
    obj = indicator(created_by_ref=AUTHOR)
    known = plan_frame(
        "1-0", "create", frame("create", obj), PlannerState(), ECS, NOW, {AUTHOR: "ACME CERT"}
    )
    (action,) = known.actions
    assert isinstance(action, Upsert)
    assert msgspec.json.decode(action.document)["threat"]["indicator"]["provider"] == "ACME CERT"
    assert known.missing_authors == ()


def test_an_unknown_author_of_an_exported_indicator_is_reported_missing() -> None:
    obj = indicator(created_by_ref=AUTHOR)
    unknown = plan_frame("1-0", "create", frame("create", obj), PlannerState(), ECS, NOW)
    (action,) = unknown.actions
    assert isinstance(action, Upsert)
    assert "provider" not in msgspec.json.decode(action.document)["threat"]["indicator"]
    assert unknown.missing_authors == (AUTHOR,)
    # Nothing to look up for an indicator that is not exported, or in stix mode.
    revoked = indicator(created_by_ref=AUTHOR, revoked=True)
    assert (
        plan_frame(
            "1-0", "create", frame("create", revoked), PlannerState(), ECS, NOW
        ).missing_authors
        == ()
    )
    assert (
        plan_frame("1-0", "create", frame("create", obj), PlannerState(), STIX, NOW).missing_authors
        == ()
    )
