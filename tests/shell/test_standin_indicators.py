"""The stand-in's ``indicators`` listing as the platform answers it
(``demo/standin_indicators.py``), read through pycti's own client: ``toStix`` is the object
the stream sends, pages follow ``search_after`` cursors in standard-id order, at most 5000 per
page, unknown arguments refused, FilterGroups applied — and a collection streams exactly what
its filters list."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from elastic_connector.demo.opencti_data import make_indicator
from elastic_connector.demo.opencti_standin import OpenCTIStandin
from elastic_connector.demo.standin_indicators import label_id
from tests.shell.test_standin_stream import data_frames, read_frames, stix_of

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient

GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


@pytest.fixture
def standin(clean_opencti_env: None) -> Iterator[OpenCTIStandin]:
    with OpenCTIStandin(heartbeat_interval=0.1) as running:
        yield running


@pytest.fixture
def api(standin: OpenCTIStandin) -> OpenCTIApiClient:
    from pycti import OpenCTIApiClient

    return OpenCTIApiClient(standin.url, standin.token, perform_health_check=False)


def indicator(number: int, **fields: object) -> dict[str, object]:
    return make_indicator(f"[ipv4-addr:value = '10.55.0.{number}']", **fields)  # type: ignore[arg-type]  # test data: keyword arguments of make_indicator


def test_pycti_lists_every_indicator_in_stix_as_the_stream_sends_it(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    published = [indicator(n, markings=[GREEN]) for n in range(7)]
    standin.publish_many(("create", stix) for stix in published)

    listed = api.indicator.list(toStix=True, getAll=True, first=3)

    assert [json.loads(str(node["toStix"])) for node in listed] == sorted(
        published, key=lambda stix: str(stix["id"])
    )
    request = standin.graphql_requests[-1]
    assert request.fields == ("indicators",)
    assert request.variables["toStix"] is True


def test_pages_follow_a_cursor_that_creations_and_deletions_do_not_shift(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    first = [indicator(n) for n in range(6)]
    standin.publish_many(("create", stix) for stix in first)
    page = api.indicator.list(toStix=True, first=3, withPagination=True)
    seen = [json.loads(str(node["toStix"]))["id"] for node in page["entities"]]
    # Meanwhile: every id sorting before the cursor is deleted, and new ones are created.
    for stix in first:
        if str(stix["id"]) <= seen[-1]:
            standin.publish("delete", stix)
    standin.publish_many(("create", indicator(100 + n)) for n in range(4))
    rest = api.indicator.list(
        toStix=True, first=100, after=page["pagination"]["endCursor"], withPagination=True
    )
    later = [json.loads(str(node["toStix"]))["id"] for node in rest["entities"]]
    assert set(seen).isdisjoint(later)
    assert {str(stix["id"]) for stix in first} <= set(seen) | set(later)
    assert later == sorted(later)
    assert page["pagination"]["globalCount"] == 6


@pytest.mark.parametrize(
    ("first", "after", "error"),
    [
        (5001, None, "You cannot ask for more than 5000 results"),
        (1, "not-a-cursor", "Invalid cursor"),
    ],
)
def test_the_platforms_refusals(
    standin: OpenCTIStandin, api: OpenCTIApiClient, first: int, after: str | None, error: str
) -> None:
    standin.publish("create", indicator(1))
    with pytest.raises(ValueError, match=error):
        api.indicator.list(toStix=True, first=first, after=after)


def test_an_argument_the_schema_does_not_declare_is_refused(api: OpenCTIApiClient) -> None:
    with pytest.raises(ValueError, match='Unknown argument "typo"'):
        api.query("query { indicators(typo: 1) { edges { node { id } } } }")


def test_filters_select_by_label_marking_and_any_id(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    labelled = indicator(1, labels=["c2"])
    marked = indicator(2, markings=[GREEN])
    plain = indicator(3)
    standin.publish_many(("create", stix) for stix in (labelled, marked, plain))

    def listed(*filters: dict[str, object]) -> set[str]:
        group = {"mode": "and", "filters": list(filters), "filterGroups": []}
        return {str(n["standard_id"]) for n in api.indicator.list(filters=group, getAll=True)}

    assert listed({"key": "objectLabel", "values": [label_id("c2")]}) == {labelled["id"]}
    # A marking filter names the marking's internal id, as the platform's filters do.
    green_id = next(m["id"] for m in api.marking_definition.list() if m["standard_id"] == GREEN)
    assert listed({"key": "objectMarking", "values": [green_id]}) == {marked["id"]}
    assert listed({"key": "ids", "values": [str(plain["id"])]}) == {plain["id"]}
    assert listed({"key": "objectLabel", "values": [label_id("c2")], "operator": "not_eq"}) == {
        marked["id"],
        plain["id"],
    }


def test_a_collection_streams_exactly_what_its_filters_list(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    group = {
        "mode": "and",
        "filters": [{"key": ["objectLabel"], "values": [label_id("c2")], "operator": "eq"}],
        "filterGroups": [],
    }
    standin.add_stream_collection("c2-only", filter_group=group)
    shown = [indicator(n, labels=["c2"]) for n in range(3)]
    hidden = [indicator(10 + n, labels=["spam"]) for n in range(2)]
    standin.publish_many(("create", stix) for stix in shown + hidden)

    answer = api.query(
        "query StreamCollection($id: String!) { streamCollection(id: $id) { id filters } }",
        {"id": "c2-only"},
    )
    data = answer["data"]
    assert isinstance(data, dict)
    collection = data["streamCollection"]
    assert isinstance(collection, dict)
    filters = json.loads(collection["filters"])
    listed = {str(n["standard_id"]) for n in api.indicator.list(filters=filters, getAll=True)}
    _, frames = read_frames(standin, "/stream/c2-only", 4, heartbeats=False)
    streamed = {str(stix_of(d)["id"]) for _, _, d in data_frames(frames)}
    assert listed == streamed == {str(stix["id"]) for stix in shown}


def test_a_collection_filtered_by_a_predicate_does_not_pretend_to_have_no_filters(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    standin.add_stream_collection("opaque", filters=lambda stix: True)
    with pytest.raises(ValueError, match="Python predicate"):
        api.query('query { streamCollection(id: "opaque") { filters } }')


def test_an_answer_can_be_held_after_it_was_computed(
    standin: OpenCTIStandin, api: OpenCTIApiClient
) -> None:
    before = indicator(1)
    standin.publish("create", before)
    standin.hold_graphql("indicators")
    answers: list[object] = []
    reader = threading.Thread(
        target=lambda: answers.append(api.indicator.list(toStix=True, getAll=True))
    )
    reader.start()
    assert standin.wait_for_graphql_hold("indicators")
    standin.publish("update", {**before, "confidence": 1}, {"patch": []})
    standin.release_graphql("indicators")
    reader.join(10)
    [listed] = answers
    assert isinstance(listed, list)
    assert json.loads(str(listed[0]["toStix"]))["confidence"] == before["confidence"]
