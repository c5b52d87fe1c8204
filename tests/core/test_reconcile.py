"""Reconciliation's pure part (``core/reconcile.py``): GraphQL answers decoded, indicators planned
exactly as the stream plans them, the difference with the index and its guards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from returns.result import Failure, Success

from elastic_connector.core.actions import Delete, Guard, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.reconcile import (
    INVALID_DIGEST,
    MISSING,
    ORPHANED,
    PENDING_KEY,
    STALE,
    Counts,
    IndexedDocument,
    IndicatorNode,
    NodeProblem,
    Page,
    Planned,
    ReadOutcome,
    Sample,
    Unplanned,
    collection_filters,
    compare,
    content_digest,
    document_digest,
    live_start_position,
    orphan,
    orphans_withheld,
    plan_node,
    read_node,
    read_page,
    reconcile_pending,
    summary_line,
)
from elastic_connector.core.stix import OPENCTI_EXTENSION, Indicator
from tests.core.indicators.indicator_strategies import indicators
from tests.core.pattern.pattern_strategies import pattern_texts

NOW = datetime(2025, 6, 1, tzinfo=UTC)
INDEX = "logs-ti_test.indicator"
ECS = PlanSettings(mode=Mode.ECS, index=INDEX)
RED = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"

_encode = msgspec.json.encode


def stix(number: int = 1, **fields: object) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "name": f"indicator {number}",
        "pattern": f"[ipv4-addr:value = '198.51.100.{number % 250}']",
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        "extensions": {OPENCTI_EXTENSION: {"id": f"internal-{number}", "score": 50}},
    }
    obj.update(fields)
    return obj


def node(obj: dict[str, object], **fields: object) -> IndicatorNode:
    ext = obj.get("extensions")
    internal = ext.get(OPENCTI_EXTENSION, {}).get("id") if isinstance(ext, dict) else None
    defaults: dict[str, object] = {
        "id": internal or obj["id"],
        "standard_id": obj["id"],
        "stix": _encode(obj).decode(),
    }
    defaults.update(fields)
    return msgspec.convert(defaults, IndicatorNode)


def planned(obj: dict[str, object], settings: PlanSettings = ECS) -> Upsert | Delete:
    outcome = plan_node(node(obj), PlannerState(), settings, NOW, {}, with_inferences=False)
    assert isinstance(outcome, Planned), outcome
    return outcome.action


# --- digests ---------------------------------------------------------------------------------


def test_the_digest_ignores_key_order_whitespace_and_timestamp() -> None:
    one = b'{"@timestamp":"2025-01-01T00:00:00Z","a":1,"b":{"c":[1,2],"d":"x"}}'
    two = b'{ "b": {"d": "x", "c": [1, 2]}, "a": 1, "@timestamp": "2030-01-01T00:00:00Z" }'
    assert document_digest(one) == document_digest(two)
    assert document_digest(one) == content_digest({"a": 1, "b": {"c": [1, 2], "d": "x"}})


def test_the_digest_tells_any_content_change() -> None:
    base = document_digest(b'{"a":1,"b":{"c":[1,2]}}')
    assert document_digest(b'{"a":2,"b":{"c":[1,2]}}') != base
    assert document_digest(b'{"a":1,"b":{"c":[2,1]}}') != base
    assert document_digest(b'{"a":1,"b":{"c":[1,2]},"extra":null}') != base


def test_text_that_is_not_json_has_the_invalid_digest() -> None:
    assert document_digest(b"{not json") == INVALID_DIGEST
    assert document_digest(b'{"a":1}') != INVALID_DIGEST


# --- GraphQL answers -----------------------------------------------------------------------


def test_a_page_gives_its_nodes_and_where_the_next_starts() -> None:
    answer = {
        "data": {
            "indicators": {
                "edges": [{"node": {"id": "a"}}, {"node": {"id": "b"}}],
                "pageInfo": {"endCursor": "c2", "hasNextPage": True, "globalCount": 5},
            }
        }
    }
    assert read_page(answer, "indicators") == Page(({"id": "a"}, {"id": "b"}), "c2", True, 5)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"data": None}, "holds no indicators"),
        ({"data": {"indicators": None}}, "holds no indicators"),
        ({"data": {"indicators": {"edges": []}}}, "malformed"),
        (
            {"data": {"indicators": {"edges": [], "pageInfo": {"hasNextPage": "yes"}}}},
            "malformed",
        ),
        (
            {"data": {"indicators": {"edges": [], "pageInfo": {"hasNextPage": True}}}},
            "gives no cursor",
        ),
        ("not an object", "holds no indicators"),
    ],
)
def test_an_unusable_page_says_why(answer: object, problem: str) -> None:
    result = read_page(answer, "indicators")
    assert isinstance(result, str)
    assert problem in result


def test_a_node_gives_its_ids_stix_and_author() -> None:
    raw = {
        "id": "internal-1",
        "standard_id": "indicator--1",
        "toStix": "{}",
        "createdBy": {"id": "x", "standard_id": "identity--1", "name": " ACME "},
    }
    assert read_node(raw) == IndicatorNode(
        "internal-1", "indicator--1", "{}", ("identity--1", "ACME")
    )


@pytest.mark.parametrize(
    ("raw", "ids", "reason"),
    [
        ({"id": "i", "standard_id": "s"}, ("i", "s"), "no toStix"),
        ({"id": "i", "standard_id": "s", "toStix": ""}, ("i", "s"), "no toStix"),
        ({"id": "i", "toStix": {"type": "indicator"}}, ("i",), "malformed node"),
        ({"id": 42, "standard_id": "s", "toStix": "{}"}, ("s",), "malformed node"),
        ({"toStix": "{}"}, (), "no id"),
        ("text", (), "malformed node"),
        (None, (), "malformed node"),
    ],
)
def test_a_hostile_node_is_a_problem_naming_what_ids_it_has(
    raw: object, ids: tuple[str, ...], reason: str
) -> None:
    problem = read_node(raw)
    assert isinstance(problem, NodeProblem)
    assert problem.ids == ids
    assert reason in problem.reason


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text(), st.integers() | st.text() | st.none()),
    )
)
def test_reading_any_node_never_raises(raw: object) -> None:
    assert isinstance(read_node(raw), IndicatorNode | NodeProblem)


# --- planning: the stream's own planner ------------------------------------------------------


MARKINGS = [
    RED,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",  # TLP:GREEN
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",  # TLP:AMBER
    "marking-definition--custom-amber",
    "marking-definition--custom-pap",
    "marking-definition--never-defined",
]
KNOWN: dict[str, Tlp | None] = {
    "marking-definition--custom-amber": Tlp.AMBER,
    "marking-definition--custom-pap": None,
}


LABELS = ["Phishing", "c2", "APT28"]
label_lists = st.lists(st.sampled_from(LABELS + [label.upper() for label in LABELS]), max_size=2)
some_labels = st.lists(st.sampled_from(LABELS), min_size=1, max_size=2)
observable_types = st.sampled_from(["IPv4-Addr", "StixFile", "Domain-Name", "Url", "file", "url"])
near_thresholds = st.none() | st.integers(-5, 105)
DATES = [None, NOW - timedelta(days=400), NOW - timedelta(days=2)]


@st.composite
def exported_or_not(draw: st.DrawFn) -> Indicator:
    """Indicators with patterns that map, markings of every kind, authors known or not, and
    what the export filters read (score, confidence, labels, main observable type, dates for
    the default lifetime) near their thresholds, or as ``indicators`` draws them."""
    indicator = draw(indicators(pattern_texts()))
    opencti = indicator.extensions.opencti
    if opencti is not None:
        opencti = msgspec.structs.replace(
            opencti,
            score=draw(near_thresholds | st.just(opencti.score)),
            main_observable_type=draw(st.none() | observable_types),
        )
    return msgspec.structs.replace(
        indicator,
        pattern_type=draw(st.sampled_from(["stix", "stix", "stix", "yara"])),
        object_marking_refs=tuple(draw(st.lists(st.sampled_from(MARKINGS), max_size=2))),
        created_by_ref=draw(st.sampled_from([None, "identity--acme", "identity--unknown"])),
        revoked=draw(st.sampled_from([False, False, False, False, True, "false"])),
        valid_until=draw(st.sampled_from([None, None, datetime(2030, 1, 1, tzinfo=UTC), NOW])),
        valid_from=draw(st.sampled_from(DATES)),
        created=draw(st.sampled_from(DATES)),
        confidence=draw(near_thresholds | st.just(indicator.confidence)),
        labels=draw(label_lists.map(tuple) | st.just(indicator.labels)),
        extensions=msgspec.structs.replace(indicator.extensions, opencti=opencti),
        x_opencti_score=draw(near_thresholds | st.just(indicator.x_opencti_score)),
        x_opencti_main_observable_type=draw(st.none() | observable_types),
    )


@st.composite
def policies(draw: st.DrawFn) -> PolicySettings:
    """Every policy setting, the export filters and the default lifetime included, each often
    unset (configuration values, read as the configuration reads them)."""
    return PolicySettings.filters(
        max_tlp=draw(st.sampled_from([level for level in Tlp if level is not Tlp.WHITE])),
        require_detection=draw(st.booleans()),
        min_score=draw(st.none() | st.integers(0, 100)),
        min_confidence=draw(st.none() | st.integers(0, 100)),
        labels_include=draw(st.just([]) | some_labels),
        labels_exclude=draw(st.just([]) | some_labels),
        indicator_types=draw(st.just([]) | st.lists(observable_types, min_size=1, max_size=2)),
        indicator_ttl=draw(st.sampled_from([None, None, 3600.0, 90 * 86400.0, 3650 * 86400.0])),
    )


# CI once drew this: the escape the platform writes for a lone surrogate in a pattern.
LONE_SURROGATE = msgspec.convert(stix(pattern="[artifact:'\ud800' = '']"), Indicator)


@given(
    exported_or_not(),
    st.sampled_from([Mode.ECS, Mode.ECS_NO_SIGNALS, Mode.STIX]),
    policies(),
)
@example(LONE_SURROGATE, Mode.ECS, PolicySettings())
def test_an_indicator_is_planned_exactly_as_a_streamed_create_of_it(
    indicator: Indicator, mode: Mode, policy: PolicySettings
) -> None:
    """Whatever the indicator and the policy (filters and lifetime included), reconciliation
    plans what the stream plans."""
    assert_planned_as_streamed(indicator, PlanSettings(mode=mode, index=INDEX, policy=policy))


@given(
    exported_or_not(),
    st.sampled_from([Mode.ECS, Mode.ECS_NO_SIGNALS]),
    policies(),
)
def test_the_export_filters_plan_as_on_the_stream(
    indicator: Indicator, mode: Mode, policy: PolicySettings
) -> None:
    """The same, for indicators nothing but the export filters can withhold (usable STIX, not
    revoked or expired, unmarked, detection on): every example reaches the filters."""
    exportable = msgspec.structs.replace(
        indicator,
        pattern_type="stix",
        revoked=False,
        valid_until=None,
        object_marking_refs=(),
        x_opencti_detection=True,
    )
    if exportable.extensions.opencti is not None:
        opencti = msgspec.structs.replace(exportable.extensions.opencti, detection=True)
        exportable = msgspec.structs.replace(
            exportable, extensions=msgspec.structs.replace(exportable.extensions, opencti=opencti)
        )
    filters = msgspec.structs.replace(policy, indicator_ttl=None)
    assert_planned_as_streamed(exportable, PlanSettings(mode=mode, index=INDEX, policy=filters))


def _wire_json(indicator: Indicator) -> bytes:
    """The indicator as the platform sends it. A lone surrogate (the pattern strategies draw
    them) has no UTF-8 form: the platform's JSON.stringify writes it as a ``\\ud800`` escape,
    which both paths must then refuse alike."""
    try:
        return _encode(indicator)
    except UnicodeEncodeError:
        return json.dumps(msgspec.to_builtins(indicator)).encode()


def assert_planned_as_streamed(indicator: Indicator, settings: PlanSettings) -> None:
    state = PlannerState(KNOWN)
    authors = {"identity--acme": "ACME"}
    text = _wire_json(indicator)
    frame = b'{"data":' + text + b"}"
    streamed = plan_frame("1-0", "create", frame, state, settings, NOW, authors)
    read = IndicatorNode("node-id", "", text.decode())
    outcome = plan_node(read, state, settings, NOW, authors, with_inferences=True)
    if isinstance(outcome, Planned):
        action = outcome.action
        event(f"{type(action).__name__} {action.code if isinstance(action, Delete) else ''}")
        assert streamed.actions == (action,)
    else:
        event("unplanned")
        assert outcome.skip is not None
        assert [a.__class__.__name__ for a in streamed.actions] == ["Skip"]


def test_author_names_and_markings_reach_the_document_as_on_the_stream() -> None:
    obj = stix(created_by_ref="identity--acme", object_marking_refs=["marking-definition--x"])
    state = PlannerState({"marking-definition--x": Tlp.GREEN})
    outcome = plan_node(
        node(obj), state, ECS, NOW, {"identity--acme": "ACME"}, with_inferences=False
    )
    assert isinstance(outcome, Planned)
    assert isinstance(outcome.action, Upsert)
    document = msgspec.json.decode(outcome.action.document)
    assert document["threat"]["indicator"]["provider"] == "ACME"
    assert document["threat"]["indicator"]["marking"]["tlp"] == "GREEN"


def test_a_withheld_indicator_plans_its_removal() -> None:
    action = planned(stix(object_marking_refs=[RED]))
    assert isinstance(action, Delete)
    assert (action.id, action.code) == ("internal-1", "tlp")


def test_a_stix_form_that_does_not_decode_is_skipped_with_the_node_id() -> None:
    outcome = plan_node(
        IndicatorNode("internal-9", "indicator--9", "{not json"),
        PlannerState(),
        ECS,
        NOW,
        {},
        with_inferences=False,
    )
    assert isinstance(outcome, Unplanned)
    assert outcome.ids == ("internal-9",)
    assert outcome.skip is not None
    assert outcome.skip.object_id == "internal-9"
    assert outcome.skip.code == "undecodable"


def test_a_wrong_type_names_the_object_and_field() -> None:
    outcome = plan_node(node(stix(pattern=42)), PlannerState(), ECS, NOW, {}, with_inferences=False)
    assert isinstance(outcome, Unplanned)
    assert outcome.skip is not None
    assert outcome.skip.object_id == "indicator--00000000-0000-4000-8000-000000000001"
    assert "pattern" in outcome.skip.reason


def test_an_object_that_is_not_an_indicator_is_skipped() -> None:
    malware = {"type": "malware", "id": "malware--1", "name": "x"}
    outcome = plan_node(
        IndicatorNode("i", "malware--1", _encode(malware).decode()),
        PlannerState(),
        ECS,
        NOW,
        {},
        with_inferences=False,
    )
    assert isinstance(outcome, Unplanned)
    assert outcome.skip is not None
    assert "not an indicator" in outcome.skip.reason


def test_an_inferred_indicator_counts_only_with_inferences() -> None:
    obj = stix(extensions={OPENCTI_EXTENSION: {"id": "internal-1", "is_inferred": True}})
    hidden = plan_node(node(obj), PlannerState(), ECS, NOW, {}, with_inferences=False)
    assert hidden == Unplanned((), None)
    shown = plan_node(node(obj), PlannerState(), ECS, NOW, {}, with_inferences=True)
    assert isinstance(shown, Planned)


def test_a_node_id_other_than_the_documents_is_also_accounted_for() -> None:
    outcome = plan_node(
        node(stix(), id="other"), PlannerState(), ECS, NOW, {}, with_inferences=False
    )
    assert isinstance(outcome, Planned)
    assert outcome.ids == ("other", "internal-1")


# --- the difference ---------------------------------------------------------------------------


def indexed(document: bytes, seq_no: int = 7, term: int = 2) -> IndexedDocument:
    return IndexedDocument(document_digest(document), seq_no, term)


def test_a_document_the_index_lacks_is_missing_and_created_only_if_still_absent() -> None:
    action = planned(stix())
    difference = compare(action, None)
    assert difference is not None
    assert difference.kind == MISSING
    assert difference.action.guard == Guard()


def test_the_same_document_needs_nothing_whatever_its_timestamp() -> None:
    action = planned(stix())
    assert isinstance(action, Upsert)
    stored = msgspec.json.decode(action.document)
    stored["@timestamp"] = "2020-01-01T00:00:00Z"
    assert compare(action, indexed(_encode(stored))) is None


def test_a_different_document_is_stale_and_guarded_by_the_version_read() -> None:
    action = planned(stix())
    assert isinstance(action, Upsert)
    edited = msgspec.json.decode(action.document)
    edited["threat"]["indicator"]["confidence"] = "None"
    difference = compare(action, indexed(_encode(edited), seq_no=11, term=3))
    assert difference is not None
    assert difference.kind == STALE
    assert difference.action == msgspec.structs.replace(action, guard=Guard(11, 3))


def test_a_withheld_indicator_with_a_document_is_stale_and_its_removal_guarded() -> None:
    action = planned(stix(object_marking_refs=[RED]))
    difference = compare(action, indexed(b"{}", seq_no=4, term=1))
    assert difference is not None
    assert difference.kind == STALE
    assert isinstance(difference.action, Delete)
    assert difference.action.guard == Guard(4, 1)
    assert compare(action, None) is None


def test_an_orphan_is_deleted_guarded() -> None:
    difference = orphan(INDEX, "gone", IndexedDocument(b"x", 5, 1))
    assert difference.kind == ORPHANED
    action = difference.action
    assert isinstance(action, Delete)
    assert (action.index, action.id, action.code) == (INDEX, "gone", "orphaned")
    assert action.guard == Guard(5, 1)


@given(
    st.dictionaries(st.integers(0, 40), st.integers(0, 3), max_size=25),
    st.dictionaries(st.integers(0, 40), st.integers(0, 3), max_size=25),
)
def test_applying_the_difference_makes_the_index_what_opencti_plans(
    opencti: dict[int, int], index: dict[int, int]
) -> None:
    """Index and OpenCTI in any state (a number's variant: 0 withheld, 1..3 three contents):
    after the repairs, comparing again finds nothing, and the index holds exactly the
    documents OpenCTI plans."""
    plans = {n: planned(variant(n, v)) for n, v in opencti.items()}
    stored: dict[str, bytes] = {}
    for n, v in index.items():
        action = planned(variant(n, max(v, 1)))
        assert isinstance(action, Upsert)
        stored[action.id] = action.document if v else b'{"hand":"made"}'
    snapshot = {key: indexed(document) for key, document in stored.items()}
    for action in plans.values():
        difference = compare(action, snapshot.pop(action.id, None))
        if difference is not None:
            apply(stored, difference.action)
    for doc_id, current in snapshot.items():
        apply(stored, orphan(INDEX, doc_id, current).action)
    expected = {a.id: a.document for a in plans.values() if isinstance(a, Upsert)}
    assert {k: document_digest(v) for k, v in stored.items()} == {
        k: document_digest(v) for k, v in expected.items()
    }
    for action in plans.values():
        now_stored = stored.get(action.id)
        assert compare(action, None if now_stored is None else indexed(now_stored)) is None


def variant(number: int, version: int) -> dict[str, object]:
    if version == 0:
        return stix(number, revoked=True)
    return stix(number, confidence=version * 10)


def apply(index: dict[str, bytes], action: Upsert | Delete) -> None:
    if isinstance(action, Upsert):
        index[action.id] = action.document
    else:
        index.pop(action.id, None)


# --- when orphans may go -------------------------------------------------------------------


def test_orphans_go_only_after_a_complete_read_of_identified_nodes() -> None:
    assert orphans_withheld(ReadOutcome(complete=True)) is None
    incomplete = orphans_withheld(ReadOutcome(complete=False, failure="page 3: timeout"))
    assert incomplete is not None
    assert "page 3: timeout" in incomplete
    unnamed = orphans_withheld(ReadOutcome(complete=True, unidentified=2))
    assert unnamed is not None
    assert "2 indicator(s)" in unnamed


# --- collections, positions, state, output --------------------------------------------------


def test_a_collections_filters_are_used_as_they_are() -> None:
    group = {
        "mode": "and",
        "filters": [{"key": "entity_type", "values": ["Indicator"]}],
        "filterGroups": [],
    }
    assert collection_filters(msgspec.json.encode(group).decode()) == Success(group)
    assert collection_filters(None) == Success(None)
    assert collection_filters("") == Success(None)
    assert collection_filters('{"mode":"and","filters":[],"filterGroups":[]}') == Success(None)


@pytest.mark.parametrize("raw", ["{", "[1]", '{"mode":"and"}', 12])
def test_filters_that_are_not_a_filter_group_are_refused(raw: object) -> None:
    assert isinstance(collection_filters(raw), Failure)


def test_the_live_stream_is_followed_from_a_margin_before_now_without_replay() -> None:
    position = live_start_position(NOW, 60.0)
    assert position.recover_until is None
    assert position.start_from == f"{int(NOW.timestamp() * 1000) - 60_000}-0"


def test_a_pending_reconciliation_is_read_from_the_state() -> None:
    assert reconcile_pending({PENDING_KEY: True})
    assert not reconcile_pending({PENDING_KEY: False})
    assert not reconcile_pending({"start_from": "1-0"})
    assert not reconcile_pending(None)


def test_the_summary_line_has_the_counts_and_with_samples_the_ids() -> None:
    counts = Counts(opencti_indicators=3, index_documents=2, missing=1, written=1)
    line = msgspec.json.decode(summary_line(counts, dry_run=False, samples=None))
    assert list(line)[:8] == [
        "opencti_indicators",
        "index_documents",
        "missing",
        "stale",
        "orphaned",
        "written",
        "deleted",
        "skipped",
    ]
    assert line["dry_run"] is False
    assert "ids" not in line
    samples = {
        "missing": Sample(("a",), 4),
        "stale": Sample((), 0),
        "orphaned": Sample(("z",), 0),
    }
    dry = msgspec.json.decode(summary_line(counts, dry_run=True, samples=samples))
    assert dry["ids"] == {"missing": ["a"], "stale": [], "orphaned": ["z"]}
    assert dry["more"] == {"missing": 4, "stale": 0, "orphaned": 0}
