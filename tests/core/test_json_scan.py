"""``core.json_scan``: the top level of a JSON text without decoding (or recursing into) it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core import json_scan

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    members=st.dictionaries(st.text(max_size=6), json_values, max_size=6),
    indent=st.sampled_from([None, 2]),
)
def test_members_are_those_a_decoder_sees(members: dict[str, object], indent: int | None) -> None:
    text = json.dumps(members, indent=indent).encode()
    assert {name: json.loads(raw) for name, raw in json_scan.members(text)} == members
    for name, value in members.items():
        raw = json_scan.member(text, name)
        assert raw is not None
        assert json.loads(raw) == value
        assert json_scan.string_member(text, name) == (value if isinstance(value, str) else None)


@given(items=st.lists(json_values, max_size=6), indent=st.sampled_from([None, 1]))
def test_elements_are_those_a_decoder_sees(items: list[object], indent: int | None) -> None:
    text = json.dumps(items, indent=indent).encode()
    elements, end = json_scan.elements(text)
    assert [json.loads(raw) for raw in elements] == items
    assert end == len(text)
    assert json_scan.value_end(text, 0) == len(text)


@given(st.binary(max_size=300))
def test_any_bytes_give_an_answer_never_an_exception(data: bytes) -> None:
    list(json_scan.members(data))
    json_scan.elements(data)
    json_scan.value_end(data, 0)
    json_scan.string_member(data, "id")


@given(text=st.text(max_size=200), cut=st.integers(min_value=0, max_value=400))
def test_truncated_json_gives_what_was_read_before_the_cut(text: str, cut: int) -> None:
    whole = json.dumps([{"id": text}, {"id": "b"}, [1, 2]]).encode()
    elements, end = json_scan.elements(whole[: cut % (len(whole) + 1)])
    assert all(json.loads(raw) in ({"id": text}, {"id": "b"}, [1, 2]) for raw in elements)
    assert end is None or end == len(whole)


def test_nesting_costs_no_recursion() -> None:
    depth = 200_000
    deep = b'{"id":"x","deep":' + b"[" * depth + b"]" * depth + b',"after":1}'
    assert json_scan.string_member(deep, "id") == "x"
    assert json_scan.member(deep, "after") == b"1"
    assert json_scan.value_end(b"[" * depth + b"]" * depth, 0) == 2 * depth


@pytest.mark.parametrize(
    "text",
    [b"", b"[", b"[1,", b"[1 2]", b'{"a" 1}', b'{"a":', b'{"a":1 "b":2}', b"{1:2}", b'"open', b"@"],
)
def test_malformed_input_stops_where_it_breaks(text: bytes) -> None:
    assert json_scan.elements(text)[1] is None or text == b""
    assert json_scan.member(text, "b") is None


def test_a_cut_value_can_be_read_as_far_as_it_goes() -> None:
    cut = b'{"type":"create","data":{"id":"indicator--1","pattern":"[a'
    assert json_scan.member(cut, "data") is None
    inner = json_scan.member(cut, "data", partial=True)
    assert inner == b'{"id":"indicator--1","pattern":"[a'
    assert json_scan.string_member(inner, "id") == "indicator--1"
