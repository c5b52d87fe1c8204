"""The sighting writer: real pycti against the OpenCTI stand-in, and the date planning that keeps
counts exact under the platform's upsert rules (model and stand-in in ``merge_sightings`` mode).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycti import MarkingDefinition, OpenCTIApiClient

from elastic_connector.core.config import KibanaSettings, SightingsSettings
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.sightings import decode_hit
from elastic_connector.core.sightings.aggregation import (
    OwnershipRule,
    SightingPayload,
    aggregate,
    describe,
    epoch_millis,
    format_time,
)
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.shell.sightings_writer import (
    CODE_INDICATOR_MISSING,
    CODE_REJECTED,
    IDENTITY_DESCRIPTION,
    LINK_SOURCE_NAME,
    MAX_ALERT_LINKS,
    Accepted,
    Failed,
    Refused,
    SightingPlan,
    SightingWriter,
    describe_opencti_error,
    marking_id,
    plan_sightings,
    prune_watermarks,
)
from tests.core.sightings.alert_strategies import (
    OUR_INDEX,
    AlertSpec,
    alert_specs,
    build_alert_specs,
    json_values,
    millis_times,
    render_8x,
)
from tests.support.alerts import (
    add_indicators,
    counts_by_indicator,
    expected_counts,
    same_millisecond_specs,
)

KIBANA = "https://kibana.example:5601"
OURS = OwnershipRule(indices=(OUR_INDEX,))
START = datetime(2024, 5, 1, tzinfo=UTC)
AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def merging_standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    """A stand-in that merges and counts sightings as the platform does."""
    with OpenCTIStandin(heartbeat_interval=0.2, merge_sightings=True) as standin:
        yield standin


def api_for(standin: OpenCTIStandin, token: str | None = None) -> OpenCTIApiClient:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return OpenCTIApiClient(
            standin.url, token or standin.token, log_level="error", ssl_verify=False
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def writer_for(
    standin: OpenCTIStandin,
    kibana_url: str | None = None,
    token: str | None = None,
    **settings: object,
) -> SightingWriter:
    sightings = SightingsSettings(**settings)  # type: ignore[arg-type]  # test keyword overrides
    return SightingWriter(api_for(standin, token), sightings, KibanaSettings(url=kibana_url))


def payloads_of(
    specs: Sequence[AlertSpec], kibana_url: str | None = None
) -> tuple[SightingPayload, ...]:
    alerts = [decode_hit(render_8x(spec)).unwrap() for spec in specs]
    return aggregate(alerts, OURS, kibana_url).sightings


def plan_pages(
    pages: Sequence[Sequence[AlertSpec]], watermarks: dict[str, int] | None = None
) -> list[SightingPlan]:
    """Plans for ``pages`` in order, threading the watermarks as the poller does."""
    marks = dict(watermarks or {})
    plans: list[SightingPlan] = []
    for page in pages:
        planned, marks = plan_sightings(payloads_of(page), marks)
        plans.extend(planned)
    return plans


def pages_of(specs: Sequence[AlertSpec], size: int) -> list[list[AlertSpec]]:
    ordered = sorted(specs, key=lambda s: (s.timestamp, s.uuid))
    return [ordered[n : n + size] for n in range(0, len(ordered), size)]


def merge_model(plans: Sequence[SightingPlan]) -> dict[str, int]:
    """OpenCTI's sighting upsert (``upsertElement``) for writes that all fall in one
    deduplication window: dates widen; counts add when they widened, else are replaced."""
    held: dict[str, tuple[datetime, datetime, int]] = {}
    for plan in plans:
        key, count = plan.payload.indicator_id, plan.payload.count
        if key not in held:
            held[key] = (plan.first_seen, plan.last_seen, count)
            continue
        first, last, total = held[key]
        widened = plan.first_seen < first or plan.last_seen > last
        held[key] = (
            min(first, plan.first_seen),
            max(last, plan.last_seen),
            total + count if widened else count,
        )
    return {key: value[2] for key, value in held.items()}


# --- pure: markings, planning, error reading ------------------------------------------------


@pytest.mark.parametrize("level", list(Tlp))
def test_marking_ids_are_the_ones_opencti_gives_its_tlp_markings(level: Tlp) -> None:
    assert marking_id(level) == MarkingDefinition.generate_id("TLP", level.label)


@st.composite
def ordered_pages(draw: st.DrawFn) -> list[list[AlertSpec]]:
    """Alerts (ties on @timestamp likely) cut into pages in the poller's reading order."""
    times = millis_times(1_714_521_600_000, 1_714_521_600_040)
    specs = draw(
        st.lists(alert_specs(kinds=("ours",), times=times), max_size=20, unique_by=lambda s: s.uuid)
    )
    return pages_of(specs, draw(st.integers(1, 8)))


@given(ordered_pages())
def test_planned_dates_make_the_platform_add_every_page(pages: list[list[AlertSpec]]) -> None:
    """Three invariants on one input (generating pages of alerts is the costly part):
    each write for an indicator is later than its last one (so a merge always widens), the
    platform's merge rules then add every count, and pruned watermarks plan the same writes."""
    last_written: dict[str, datetime] = {}
    totals: dict[str, int] = {}
    plans: list[SightingPlan] = []
    marks: dict[str, int] = {}
    pruned: dict[str, int] = {}
    for page in pages:
        payloads = payloads_of(page)
        planned, marks = plan_sightings(payloads, marks)
        with_pruned, pruned = plan_sightings(payloads, pruned)
        assert with_pruned == planned
        cursor_ms = max(spec.timestamp_ms for spec in page)
        pruned = prune_watermarks(pruned, cursor_ms)
        assert pruned == {k: v for k, v in marks.items() if v >= cursor_ms}
        for plan in planned:
            key = plan.payload.indicator_id
            detected = max(ref.timestamp for ref in plan.payload.alerts)
            if key in last_written:
                assert plan.last_seen > last_written[key]
                expected = max(detected, last_written[key] + timedelta(milliseconds=1))
                assert plan.last_seen == expected
            else:
                assert plan.last_seen == detected
            assert plan.first_seen == min(plan.payload.first_seen, plan.last_seen)
            assert marks[key] == epoch_millis(plan.last_seen)
            last_written[key] = plan.last_seen
            totals[key] = totals.get(key, 0) + plan.payload.count
        plans.extend(planned)
    assert merge_model(plans) == totals


def test_planning_is_deterministic_and_keeps_at_most_the_latest_links() -> None:
    specs = build_alert_specs(8, indicators=("d5113544-3fa4-50c6-8dcf-e37e81c7ef71",))
    payloads = payloads_of(specs, KIBANA)
    first, marks = plan_sightings(payloads, {})
    again, marks_again = plan_sightings(payloads, {})
    assert (first, marks) == (again, marks_again)
    [plan] = first
    assert len(plan.links) == MAX_ALERT_LINKS
    assert [link.alert_id for link in plan.links] == [spec.uuid for spec in specs[-5:]]


def test_event_time_dates_would_lose_counts_under_the_platform_rules() -> None:
    """Why last_seen is the detection time: with the matched events' times, a page whose
    events are not later than the stored window replaces the count instead of adding to it."""
    specs = same_millisecond_specs(
        build_alert_specs(60, indicators=("i-1", "i-2"), foreign_every=0),
        group=25,
        start=START,
        step=timedelta(seconds=1),
    )
    naive = [
        SightingPlan(payload, payload.first_seen, payload.last_seen)
        for page in pages_of(specs, 10)
        for payload in payloads_of(page)
    ]
    assert merge_model(naive) != expected_counts(specs)
    assert merge_model(plan_pages(pages_of(specs, 10))) == expected_counts(specs)


_ERROR_KEYS = ("name", "error_message", "message", "unresolvedIds", "extensions", "data", "errors")
pycti_error_details = st.one_of(
    st.dictionaries(st.sampled_from(_ERROR_KEYS), json_values, max_size=4),
    st.text(max_size=40),
    st.text(max_size=40).map(lambda text: json.dumps({"errors": [{"message": text}]})),
    json_values,
)


@given(pycti_error_details)
def test_reading_any_pycti_error_never_raises(detail: object) -> None:
    for error in (ValueError(detail), OSError(str(detail)), KeyError(detail), TypeError()):
        described = describe_opencti_error(error)
        assert described.code
        assert len(described.message) <= 300


def test_reading_pycti_errors() -> None:
    missing = describe_opencti_error(
        ValueError(
            {
                "name": "MISSING_REFERENCE_ERROR",
                "error_message": "Element(s) not found",
                "unresolvedIds": ["abc"],
                "http_status": 404,
            }
        )
    )
    assert (missing.code, missing.unresolved, missing.maybe_applied) == (
        "MISSING_REFERENCE_ERROR",
        ("abc",),
        False,
    )
    # Apollo answers validation errors with HTTP 400 and a JSON body: pycti raises the text.
    schema = describe_opencti_error(
        ValueError(
            '{"errors":[{"message":"Cannot query field \\"securityPlatformAdd\\" on type '
            '\\"Mutation\\".","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}'
        )
    )
    assert (schema.code, schema.maybe_applied) == ("GRAPHQL_VALIDATION_FAILED", False)
    proxy = describe_opencti_error(ValueError("<html><body>502 Bad Gateway</body></html>"))
    assert (proxy.code, proxy.maybe_applied) == ("HTTP", True)
    refused = describe_opencti_error(ConnectionRefusedError(111, "Connection refused"))
    assert (refused.code, refused.maybe_applied) == ("CONNECTION", False)
    reset = describe_opencti_error(ConnectionResetError(104, "Connection reset by peer"))
    assert (reset.code, reset.maybe_applied) == ("CONNECTION", True)


# --- through pycti and the stand-in ---------------------------------------------------------


def test_sends_exactly_these_variables(opencti_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    specs = build_alert_specs(3, indicators=(indicator,), start=START)
    [payload] = payloads_of(specs, KIBANA)
    [plan], _ = plan_sightings([payload], {})
    writer = writer_for(opencti_standin, KIBANA, confidence=60, tlp=Tlp.AMBER)

    outcome = writer.write(plan)

    assert isinstance(outcome, Accepted)
    [identity] = opencti_standin.identities
    assert (identity["entity_type"], identity["name"], identity["description"]) == (
        "SecurityPlatform",
        "Elastic Security",
        IDENTITY_DESCRIPTION,
    )
    links = {str(ref["external_id"]): ref for ref in opencti_standin.external_references}
    assert set(links) == {spec.uuid for spec in specs}
    for spec in specs:
        link = links[spec.uuid]
        assert link["source_name"] == LINK_SOURCE_NAME
        assert link["url"] == (
            f"{KIBANA}/app/security/alerts/redirect/{spec.uuid}"
            f"?index=.alerts-security.alerts-default&timestamp={format_time(spec.timestamp)}"
        )
    assert opencti_standin.sighting_inputs == [
        {
            "fromId": indicator,
            "toId": identity["id"],
            "stix_id": payload.stix_id,
            "description": describe(payload),
            "first_seen": "2024-04-30T23:59:30.000Z",  # the first matched event
            "last_seen": "2024-05-01T00:00:00.500Z",  # the last alert's creation
            "attribute_count": 3,
            "x_opencti_negative": False,
            "created": None,
            "modified": None,
            "confidence": 60,
            "createdBy": None,
            "objectMarking": [AMBER],
            "objectLabel": None,
            "externalReferences": [links[spec.uuid]["id"] for spec in specs],
            "x_opencti_stix_ids": None,
            "x_opencti_workflow_id": None,
            "x_opencti_modified_at": None,
            "objectOrganization": None,
            "update": True,
            "upsertOperations": None,
            "customFieldValues": None,
        }
    ]
    [stored] = opencti_standin.sightings
    assert (stored["attribute_count"], stored["fromId"]) == (3, indicator)


def test_without_configured_confidence_or_links_none_is_sent(
    opencti_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(2, indicators=(indicator,))), {})

    assert isinstance(writer_for(opencti_standin, tlp=Tlp.RED).write(plan), Accepted)

    [sent] = opencti_standin.sighting_inputs
    assert (sent["confidence"], sent["externalReferences"], sent["objectMarking"]) == (
        None,
        None,
        [marking_id(Tlp.RED)],
    )
    assert opencti_standin.external_references == []


def test_the_identity_is_created_once(opencti_standin: OpenCTIStandin) -> None:
    indicators = add_indicators(opencti_standin, 3)
    writer = writer_for(opencti_standin)
    plans, _ = plan_sightings(payloads_of(build_alert_specs(6, indicators=tuple(indicators))), {})

    assert all(isinstance(writer.write(plan), Accepted) for plan in plans)

    names = [request.fields for request in opencti_standin.graphql_requests]
    assert names.count(("securityPlatformAdd",)) == 1
    assert names.count(("stixSightingRelationshipAdd",)) == 3
    assert writer.identity_type == "SecurityPlatform"


@pytest.mark.parametrize(
    ("refused", "used"),
    [
        (("securityPlatformAdd",), "System"),
        (("securityPlatformAdd", "systemAdd"), "Organization"),
    ],
)
def test_identity_type_falls_back_on_older_platforms(
    opencti_standin: OpenCTIStandin, refused: tuple[str, ...], used: str
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    for mutation in refused:
        opencti_standin.fail_graphql(
            status=None,
            times=None,
            fields=[mutation],
            code="GRAPHQL_VALIDATION_FAILED",
            message=f'Cannot query field "{mutation}" on type "Mutation".',
        )
    writer = writer_for(opencti_standin)
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})

    assert isinstance(writer.write(plan), Accepted)
    assert isinstance(writer.write(plan), Accepted)

    [identity] = opencti_standin.identities
    assert identity["entity_type"] == used
    assert writer.identity_type == used
    tried = [r.fields[0] for r in opencti_standin.graphql_requests if r.fields[0].endswith("Add")]
    assert tried[: len(refused) + 1] == [*refused, f"{used[0].lower()}{used[1:]}Add"]
    assert tried.count("stixSightingRelationshipAdd") == 2


def test_a_configured_identity_type_is_used_without_fallback(
    opencti_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    opencti_standin.fail_graphql(
        status=None, times=None, fields=["organizationAdd"], code="FORBIDDEN_ACCESS"
    )
    writer = writer_for(opencti_standin, identity_type="Organization", identity_name="SOC")
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})

    outcome = writer.write(plan)

    assert isinstance(outcome, Failed)
    assert "cannot create the identity 'SOC' (Organization): FORBIDDEN_ACCESS" in outcome.reason
    assert opencti_standin.sighting_inputs == []
    opencti_standin.clear_graphql_failures()
    assert isinstance(writer.write(plan), Accepted)
    assert [i["entity_type"] for i in opencti_standin.identities] == ["Organization"]


def test_a_deleted_indicator_is_refused_for_good(opencti_standin: OpenCTIStandin) -> None:
    kept, deleted = add_indicators(opencti_standin, 2)
    opencti_standin.forget_object(deleted)
    writer = writer_for(opencti_standin)
    plans, _ = plan_sightings(payloads_of(build_alert_specs(4, indicators=(kept, deleted))), {})

    outcomes = {plan.payload.indicator_id: writer.write(plan) for plan in plans}

    assert isinstance(outcomes[kept], Accepted)
    refused = outcomes[deleted]
    assert isinstance(refused, Refused)
    assert refused.code == CODE_INDICATOR_MISSING
    assert deleted in refused.reason
    assert "no longer exists" in refused.reason
    assert counts_by_indicator(opencti_standin) == {kept: 2}


def test_invalid_data_is_refused(opencti_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    opencti_standin.fail_graphql(
        status=None,
        fields=["stixSightingRelationshipAdd"],
        code="VALIDATION_ERROR",
        message="Validation error",
    )
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})

    outcome = writer_for(opencti_standin).write(plan)

    assert isinstance(outcome, Refused)
    assert outcome.code == CODE_REJECTED


@pytest.mark.parametrize(
    ("status", "code", "maybe_applied"),
    [
        (500, "DATABASE_ERROR", False),  # HTTP 500 with a GraphQL error body
        (None, "LOCK_ERROR", False),  # HTTP 200 with errors
        (None, "FORBIDDEN_ACCESS", False),  # rights are fixed by an administrator: wait
        (502, "HTTP", True),  # a proxy's page: the platform may have done it
    ],
)
def test_transient_failures_are_retried_later(
    opencti_standin: OpenCTIStandin, status: int | None, code: str, maybe_applied: bool
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    writer = writer_for(opencti_standin)
    writer.identity_id()
    opencti_standin.fail_graphql(
        status=status, fields=["stixSightingRelationshipAdd"], code=code, message=code
    )
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(2, indicators=(indicator,))), {})

    outcome = writer.write(plan)

    assert isinstance(outcome, Failed)
    assert outcome.maybe_applied is maybe_applied
    assert isinstance(writer.write(plan, verify=outcome.maybe_applied), Accepted)
    assert counts_by_indicator(opencti_standin) == {indicator: 2}


def test_an_unreachable_platform_is_a_failure_not_a_crash(
    opencti_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    writer = writer_for(opencti_standin)
    writer.identity_id()
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})
    opencti_standin.stop()
    try:
        outcome = writer.write(plan)
    finally:
        opencti_standin.start()

    assert isinstance(outcome, Failed)
    assert "CONNECTION" in outcome.reason
    assert outcome.maybe_applied is False
    assert isinstance(writer.write(plan), Accepted)


def test_a_deleted_identity_is_created_again(opencti_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    writer = writer_for(opencti_standin)
    opencti_standin.forget_object(writer.identity_id())
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})

    outcome = writer.write(plan)

    assert isinstance(outcome, Failed)
    assert "deleted" in outcome.reason
    assert isinstance(writer.write(plan), Accepted)
    assert len(opencti_standin.identities) == 1


def test_a_missing_marking_is_waited_for_not_skipped(opencti_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    opencti_standin.forget_object(marking_id(Tlp.AMBER))
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(1, indicators=(indicator,))), {})

    outcome = writer_for(opencti_standin).write(plan)

    assert isinstance(outcome, Failed)
    assert "no marking TLP:AMBER" in outcome.reason


def test_links_are_dropped_when_the_platform_refuses_them(
    opencti_standin: OpenCTIStandin, caplog: pytest.LogCaptureFixture
) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    opencti_standin.fail_graphql(
        status=None, times=None, fields=["externalReferenceAdd"], code="FORBIDDEN_ACCESS"
    )
    writer = writer_for(opencti_standin, KIBANA)
    plans, _ = plan_sightings(
        payloads_of(build_alert_specs(3, indicators=(indicator,)), KIBANA), {}
    )

    with caplog.at_level(logging.WARNING, logger="elastic_connector"):
        assert isinstance(writer.write(plans[0]), Accepted)
        assert isinstance(writer.write(plans[0]), Accepted)

    assert [s["externalReferences"] for s in opencti_standin.sighting_inputs] == [None, None]
    refusals = [r for r in caplog.records if "external reference" in r.getMessage()]
    assert len(refusals) == 1


def test_verify_finds_a_sighting_already_written(opencti_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(opencti_standin, 1)
    writer = writer_for(opencti_standin)
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(2, indicators=(indicator,))), {})
    assert writer.already_written(plan) is False
    assert isinstance(writer.write(plan), Accepted)

    outcome = writer.write(plan, verify=True)

    assert isinstance(outcome, Accepted)
    assert outcome.already
    [stored] = opencti_standin.sightings
    assert outcome.sighting_id == stored["id"]
    assert outcome.stored is not None
    assert outcome.stored.count == 2
    assert len(opencti_standin.sighting_inputs) == 1


# --- with the platform's merge rules --------------------------------------------------------


def test_pages_merged_by_the_platform_add_up(merging_standin: OpenCTIStandin) -> None:
    indicators = add_indicators(merging_standin, 2)
    specs = same_millisecond_specs(
        build_alert_specs(60, indicators=tuple(indicators), foreign_every=0),
        group=25,  # a rule run with more alerts than a page: pages inside one millisecond
        start=START,
        step=timedelta(seconds=1),
    )
    writer = writer_for(merging_standin)

    for plan in plan_pages(pages_of(specs, 10)):
        outcome = writer.write(plan)
        assert isinstance(outcome, Accepted)
        assert outcome.problem is None  # the count read back is what the upsert rules give

    assert counts_by_indicator(merging_standin) == expected_counts(specs)
    assert len(merging_standin.sightings) == 2  # one per indicator: every write was merged


def test_a_write_applied_twice_would_reset_the_count_so_it_is_verified_first(
    merging_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(merging_standin, 1)
    specs = build_alert_specs(5, indicators=(indicator,), start=START)
    first, second = plan_pages([specs[:3], specs[3:]])
    writer = writer_for(merging_standin)
    assert isinstance(writer.write(first), Accepted)
    assert isinstance(writer.write(second), Accepted)
    assert counts_by_indicator(merging_standin) == {indicator: 5}

    # The answer to `second` was lost: re-sending it after a check changes nothing...
    again = writer.write(second, verify=True)
    assert isinstance(again, Accepted)
    assert again.already
    assert counts_by_indicator(merging_standin) == {indicator: 5}
    # ...while a blind re-send does not widen the dates, and the platform replaces the count.
    assert isinstance(writer.write(second), Accepted)
    assert counts_by_indicator(merging_standin) == {indicator: 2}


# --- what the platform does that a kinder stand-in hid ---------------------------------------


def test_a_write_whose_lookup_gets_no_answer_is_not_sent_again(
    merging_standin: OpenCTIStandin,
) -> None:
    """When "was it already written?" cannot be answered the write waits: a blind re-send
    would not widen the dates and OpenCTI would replace the count with the re-sent one."""
    [indicator] = add_indicators(merging_standin, 1)
    specs = build_alert_specs(5, indicators=(indicator,), start=START)
    first, second = plan_pages([specs[:3], specs[3:]])
    writer = writer_for(merging_standin)
    assert isinstance(writer.write(first), Accepted)
    assert isinstance(writer.write(second), Accepted)
    merging_standin.fail_graphql(status=502, times=1, fields=["stixSightingRelationship"])

    undecided = writer.write(second, verify=True)

    assert isinstance(undecided, Failed)
    assert undecided.maybe_applied  # still to be checked before any send
    assert "cannot tell whether" in undecided.reason
    assert len(merging_standin.sighting_inputs) == 2
    assert counts_by_indicator(merging_standin) == {indicator: 5}
    again = writer.write(second, verify=True)
    assert isinstance(again, Accepted)
    assert again.already
    assert counts_by_indicator(merging_standin) == {indicator: 5}


def test_a_marking_the_user_may_not_use_is_an_error_naming_sightings_tlp(
    merging_standin: OpenCTIStandin,
) -> None:
    """MISSING_REFERENCE_ERROR without unresolvedIds is the platform refusing a marking, not
    a deleted indicator: the sighting waits (never skipped) and the error says what to fix."""
    [indicator] = add_indicators(merging_standin, 1)
    merging_standin.add_user(
        "green-only",
        name="connector",
        capabilities=("KNOWLEDGE_KNUPDATE",),
        allowed_markings=[marking_id(Tlp.GREEN)],
    )
    writer = writer_for(merging_standin, token="green-only", tlp=Tlp.AMBER)
    [plan], _ = plan_sightings(payloads_of(build_alert_specs(2, indicators=(indicator,))), {})

    outcome = writer.write(plan)

    assert isinstance(outcome, Failed)
    assert "sightings.tlp" in outcome.reason
    assert "TLP:AMBER" in outcome.reason
    assert merging_standin.sightings == []
    green = writer_for(merging_standin, token="green-only", tlp=Tlp.GREEN)
    assert isinstance(green.write(plan), Accepted)


def test_kibana_links_dropped_at_creation_are_attached_by_a_second_call(
    merging_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(merging_standin, 1)
    merging_standin.sighting_references_at_creation(kept=False)
    writer = writer_for(merging_standin, KIBANA)
    [plan], _ = plan_sightings(
        payloads_of(build_alert_specs(3, indicators=(indicator,)), KIBANA), {}
    )

    outcome = writer.write(plan)

    assert isinstance(outcome, Accepted)
    [stored] = merging_standin.sightings
    links = {str(ref["id"]) for ref in merging_standin.external_references}
    assert len(links) == 3
    assert isinstance(stored["externalReferences"], list)
    assert set(stored["externalReferences"]) == links
    edits = [
        r for r in merging_standin.graphql_requests if r.fields == ("stixSightingRelationshipEdit",)
    ]
    assert len(edits) == 3
    assert outcome.stored is not None
    assert set(outcome.stored.reference_ids) >= links


def test_kept_links_need_no_second_call(merging_standin: OpenCTIStandin) -> None:
    [indicator] = add_indicators(merging_standin, 1)
    writer = writer_for(merging_standin, KIBANA)
    [plan], _ = plan_sightings(
        payloads_of(build_alert_specs(2, indicators=(indicator,)), KIBANA), {}
    )
    assert isinstance(writer.write(plan), Accepted)
    assert not [
        r for r in merging_standin.graphql_requests if r.fields == ("stixSightingRelationshipEdit",)
    ]


def test_a_sighting_whose_confidence_an_analyst_raised_keeps_its_count_and_says_why(
    merging_standin: OpenCTIStandin,
) -> None:
    [indicator] = add_indicators(merging_standin, 1)
    specs = build_alert_specs(5, indicators=(indicator,), start=START)
    first, second = plan_pages([specs[:3], specs[3:]])
    writer = writer_for(merging_standin, confidence=50)
    created = writer.write(first)
    assert isinstance(created, Accepted)
    merging_standin.set_sighting_confidence(created.sighting_id, 90)

    outcome = writer.write(second)

    assert isinstance(outcome, Accepted)
    assert outcome.problem is not None
    assert "confidence (90)" in outcome.problem
    assert "sightings.confidence 50" in outcome.problem
    assert counts_by_indicator(merging_standin) == {indicator: 3}  # frozen


def test_a_count_changed_outside_the_connector_is_reported(
    merging_standin: OpenCTIStandin,
) -> None:
    """A second writer re-sending an identical sighting replaces the count (no date widens):
    the connector's next read-back does not match the upsert rules any more."""
    [indicator] = add_indicators(merging_standin, 1)
    specs = build_alert_specs(9, indicators=(indicator,), start=START)
    one, two, three = plan_pages([specs[:3], specs[3:6], specs[6:]])
    writer = writer_for(merging_standin)
    assert isinstance(writer.write(one), Accepted)
    assert isinstance(writer.write(two), Accepted)
    other = writer_for(merging_standin)
    assert isinstance(other.write(two), Accepted)  # someone else re-sends: count now 3

    outcome = writer.write(three)

    assert isinstance(outcome, Accepted)
    assert outcome.problem is not None
    assert "holds 6 where its upsert rules give 9" in outcome.problem
