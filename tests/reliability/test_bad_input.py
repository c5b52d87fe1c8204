"""Hostile stream input, straight into the pure core (``core.events.plan_frame``).

Whatever the bytes — not JSON, truncated, wrong types, invalid UTF-8, nested thousands deep,
unknown STIX types and extensions, 10 MB patterns, 10k nested parentheses — planning returns
actions and never raises: a ``Skip`` with a code and a reason, a policy ``Delete`` with a code
and a reason, or an ``Upsert`` whose document is one line of valid UTF-8 JSON (anything else
would break the ``_bulk`` framing of the whole request). Big inputs stay within a time and a
memory budget, and what the planner keeps between events (its pattern cache) stays bounded.

The same inputs through the running daemon: ``test_bad_input_daemon.py``.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.stix import MITRE_EXTENSION, OPENCTI_EXTENSION
from elastic_connector.core.stream import SseDecoder, SseFrame, feed

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ECS = PlanSettings(mode=Mode.ECS, index="logs-ti_test.indicator")
STIX = PlanSettings(mode=Mode.STIX, index="opencti-stix")
MODES = pytest.mark.parametrize("plan_settings", [ECS, STIX], ids=["ecs", "stix"])
EVENT_ID = "1700000000000-0"

SECONDS_BUDGET = 10.0
"""Generous on purpose (a loaded 2-core CI machine): the point is "bounded", not "fast"."""
MEGABYTES_BUDGET = 200.0
MB = 1024 * 1024

_encode = msgspec.json.encode


# --- helpers --------------------------------------------------------------------------------


def indicator(
    pattern: str = "[ipv4-addr:value = '198.51.100.7']", **fields: object
) -> dict[str, object]:
    obj: dict[str, object] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--6d5b1a2c-1c55-4b8e-9c1b-6a1f0d8e9a01",
        "name": "bad input",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2025-01-01T00:00:00Z",
        "extensions": {OPENCTI_EXTENSION: {"id": "9a7f3b52-8f0e-4c61-b6a9-1d2e3f4a5b6c"}},
    }
    obj.update(fields)
    return obj


def frame(obj: object, kind: str = "create") -> bytes:
    return _encode({"type": kind, "data": obj})


def checked(action: Action) -> Action:
    """``action`` after checking it is one of the three allowed, well-formed outcomes."""
    if isinstance(action, Skip):
        assert action.event_id == EVENT_ID
        assert action.code
        assert action.reason.strip()
    elif isinstance(action, Delete):
        assert action.code
        assert action.reason.strip()
        assert action.id
    else:
        assert isinstance(action, Upsert), action
        assert action.id
        assert b"\n" not in action.document
        assert b"\r" not in action.document
        text = action.document.decode("utf-8")  # valid UTF-8, or this raises
        assert text.startswith("{")
        assert text.endswith("}")
        try:
            decoded = json.loads(text)
        except RecursionError:
            return action  # deeper than this checker can follow; the bytes are still sound
        assert isinstance(decoded, dict)
    return action


def plan(data: bytes, plan_settings: PlanSettings, event: str = "create") -> tuple[Action, ...]:
    """Plan one frame with a fresh planner state; every action is checked."""
    result = plan_frame(EVENT_ID, event, data, PlannerState(), plan_settings, NOW)
    return tuple(checked(action) for action in result.actions)


def one_skip(actions: tuple[Action, ...]) -> Skip:
    assert len(actions) == 1, actions
    (action,) = actions
    assert isinstance(action, Skip), action
    assert action.code == "undecodable"
    return action


@dataclass
class Cost:
    seconds: float = 0.0
    peak_mb: float = 0.0


@contextmanager
def measured() -> Iterator[Cost]:
    """Wall time and peak traced allocation of the block (tracing slows allocation-heavy code,
    so callers measure time in a separate, untraced run)."""
    cost = Cost()
    gc.collect()
    tracemalloc.start()
    began = time.perf_counter()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - began
        cost.peak_mb = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()


def within_budget(run: Callable[[], tuple[Action, ...]]) -> tuple[Action, ...]:
    """Run twice: untraced for the time budget, traced for the memory budget."""
    began = time.perf_counter()
    actions = run()
    elapsed = time.perf_counter() - began
    assert elapsed < SECONDS_BUDGET, f"took {elapsed:.1f} s"
    with measured() as cost:
        again = run()
    assert cost.peak_mb < MEGABYTES_BUDGET, f"peak {cost.peak_mb:.0f} MB"
    assert again == actions  # planning is deterministic
    return actions


# --- strategies -----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
event_names = st.sampled_from(["create", "update", "delete", "merge"])
plan_modes = st.sampled_from([ECS, STIX])

# Per typed indicator field, values of a JSON type it can never take.
_NOT_TEXT: st.SearchStrategy[object] = (
    st.integers() | st.booleans() | st.lists(st.integers(), max_size=2) | st.just({})
)
_NOT_LIST: st.SearchStrategy[object] = (
    st.integers() | st.booleans() | st.text(min_size=1, max_size=5) | st.just({})
)
_NOT_DATE: st.SearchStrategy[object] = (
    st.integers() | st.booleans() | st.just([]) | st.sampled_from(["yesterday", "2025-13-01"])
)
_NOT_INT: st.SearchStrategy[object] = (
    st.text(max_size=5)
    | st.just([])
    | st.just({})
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
)
WRONG_TYPES: Mapping[str, st.SearchStrategy[object]] = {
    "id": _NOT_TEXT,
    "pattern": _NOT_TEXT,
    "pattern_type": _NOT_TEXT,
    "name": _NOT_TEXT,
    "description": _NOT_TEXT,
    "labels": _NOT_LIST,
    "object_marking_refs": _NOT_LIST,
    "kill_chain_phases": _NOT_LIST,
    "external_references": _NOT_LIST,
    "valid_from": _NOT_DATE,
    "valid_until": _NOT_DATE,
    "modified": _NOT_DATE,
    "revoked": st.integers(min_value=2) | st.just([]) | st.just({}),
    "confidence": _NOT_INT,
    "extensions": st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
}

# Byte sequences that are never valid UTF-8: a lone continuation byte, bytes that never occur,
# an overlong encoding, a truncated multi-byte sequence, an encoded surrogate.
INVALID_UTF8 = st.sampled_from(
    [
        b"\x80",
        b"\xbf",
        b"\xff",
        b"\xfe",
        b"\xc0\xaf",
        b"\xc3",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
    ]
)


# --- arbitrary input never raises -----------------------------------------------------------


@given(event=event_names, data=st.binary(max_size=4096), plan_settings=plan_modes)
def test_arbitrary_bytes_give_skips_never_an_exception(
    event: str, data: bytes, plan_settings: PlanSettings
) -> None:
    actions = plan(data, plan_settings, event)
    assert all(isinstance(a, Skip) for a in actions) or actions == ()


@given(event=event_names, data=json_values, plan_settings=plan_modes)
def test_any_json_in_place_of_the_stix_object(
    event: str, data: object, plan_settings: PlanSettings
) -> None:
    actions = plan(frame(data, event), plan_settings, event)
    if not isinstance(data, dict):
        one_skip(actions)


HEADER_FIELDS = frozenset({"id", "object_marking_refs", "extensions"})
"""What every mode needs (the document id, the export policy): a wrong type there skips the
object in both modes. Elsewhere only ``ecs`` mode, which maps the field, skips it; ``stix`` mode
indexes the object (its typed fields only where the value fits), and a delete needs the id only.
"""


@given(
    event=event_names,
    field=st.sampled_from(sorted(WRONG_TYPES)),
    data=st.data(),
    plan_settings=plan_modes,
)
def test_a_wrong_type_in_an_indicator_field_is_skipped_naming_the_field_and_the_object(
    event: str, field: str, data: st.DataObject, plan_settings: PlanSettings
) -> None:
    value = data.draw(WRONG_TYPES[field], label=field)
    obj = indicator()
    obj[field] = value
    actions = plan(frame(obj, event), plan_settings, event)
    if field in HEADER_FIELDS or (plan_settings is ECS and event != "delete"):
        skip = one_skip(actions)
        assert f"$.data.{field}" in skip.reason
        assert skip.object_id == ("" if field == "id" else obj["id"])
    else:
        assert not any(isinstance(a, Skip) for a in actions), actions
        kinds = {type(a) for a in actions}
        assert kinds == ({Delete} if event == "delete" else {Upsert}), actions


@pytest.mark.parametrize(
    ("spelling", "revoked"),
    [
        ("true", True),
        ("True", True),
        ("YES", True),
        ("1", True),
        ("False", False),
        ("false", False),
        ("no", False),
        ("0", False),
        (" off ", False),
    ],
)
def test_booleans_spelled_as_strings_are_read(spelling: str, revoked: bool) -> None:
    ext = {"id": "9a7f3b52-8f0e-4c61-b6a9-1d2e3f4a5b6c", "is_inferred": spelling}
    obj = indicator(revoked=spelling, extensions={OPENCTI_EXTENSION: ext})
    (action,) = plan(frame(obj), ECS)
    if revoked:
        assert isinstance(action, Delete)
        assert action.code == "revoked"
    else:
        assert isinstance(action, Upsert)
        assert json.loads(action.document)["opencti"]["indicator"]["is_inferred"] is False


def test_a_revoked_flag_that_spells_no_boolean_is_withheld() -> None:
    (action,) = plan(frame(indicator(revoked="maybe")), ECS)
    assert isinstance(action, Delete)
    assert action.code == "revoked"
    assert "'maybe'" in action.reason


@MODES
def test_fields_the_mapping_does_not_use_never_make_an_object_fail(
    plan_settings: PlanSettings,
) -> None:
    """OpenCTI-extension fields spelled oddly, STIX properties of any type the mapping does not
    read: the object is planned as if they were absent."""
    ext = {
        "id": "9a7f3b52-8f0e-4c61-b6a9-1d2e3f4a5b6c",
        "type": 7,
        "created_at": "not a date",
        "is_inferred": "False",
        "labels_ids": "x",
        "workflow_id": {"a": [1]},
    }
    odd = indicator(
        spec_version=2.1,
        lang=["en"],
        external_references=[{"source_name": "s", "description": 5, "hashes": "x"}],
        kill_chain_phases=[{"kill_chain_name": "mitre-attack"}],
        extensions={OPENCTI_EXTENSION: ext, MITRE_EXTENSION: {"detection": 3, "platforms": []}},
    )
    actions = plan(frame(odd), plan_settings)
    assert [type(a) for a in actions] == [Upsert]


@given(
    cut=st.integers(min_value=0, max_value=10_000),
    event=event_names,
    plan_settings=plan_modes,
)
def test_truncated_frames_are_skipped(cut: int, event: str, plan_settings: PlanSettings) -> None:
    whole = frame(indicator(labels=["a", "b"]), event)
    one_skip(plan(whole[: cut % len(whole)], plan_settings, event))


@given(
    invalid=INVALID_UTF8,
    where=st.integers(min_value=0, max_value=10_000),
    event=event_names,
    plan_settings=plan_modes,
)
def test_invalid_utf8_anywhere_is_skipped(
    invalid: bytes, where: int, event: str, plan_settings: PlanSettings
) -> None:
    whole = frame(indicator(x_note="note", labels=["label"]), event)
    position = where % (len(whole) + 1)
    skip = one_skip(plan(whole[:position] + invalid + whole[position:], plan_settings, event))
    assert "UTF-8" in skip.reason or "JSON" in skip.reason


@MODES
@pytest.mark.parametrize("field", ["name", "x_note", "description", "pattern"])
def test_invalid_utf8_inside_a_string_is_skipped_in_every_mode(
    plan_settings: PlanSettings, field: str
) -> None:
    # msgspec only checks the strings it decodes: bytes in a property the typed view ignores
    # would otherwise reach a stix-mode document (or crash its raw decoding).
    marker = "@@MARK@@"
    whole = frame(indicator(**{field: marker}))
    skip = one_skip(plan(whole.replace(marker.encode(), b"ok\xff\xfeok"), plan_settings))
    assert "UTF-8" in skip.reason


# --- deep nesting ---------------------------------------------------------------------------

DEPTHS = [10, 200, 600, 999, 1000, 5_000, 100_000]
"""Where the decoder gives up depends on the stack in use (msgspec guards its recursion with
Python's limit): at 5000 levels it always has, at 200 never."""


def nested(depth: int, opener: bytes) -> bytes:
    closer = b"]" if opener == b"[" else b"}"
    return opener * depth + b"1" + closer * depth


@MODES
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("opener", [b"[", b'{"a":'], ids=["lists", "objects"])
@pytest.mark.parametrize("where", ["unknown_property", "extension", "data", "context"])
def test_deeply_nested_json_never_raises(
    plan_settings: PlanSettings, depth: int, opener: bytes, where: str
) -> None:
    deep = nested(depth, opener)
    base = frame(indicator(x_deep="@@DEEP@@", extensions={"x-ext": "@@EXT@@"}))
    if where == "unknown_property":
        data = base.replace(b'"@@DEEP@@"', deep)
    elif where == "extension":
        data = base.replace(b'"@@EXT@@"', deep)
    elif where == "data":
        data = b'{"type":"create","data":' + deep + b"}"
    else:
        data = base[:-1] + b',"context":{"patch":' + deep + b"}}"
    began = time.perf_counter()
    actions = plan(data, plan_settings)
    assert time.perf_counter() - began < SECONDS_BUDGET
    if where == "data":
        one_skip(actions)
    elif depth >= 5_000:
        skip = one_skip(actions)
        assert "nested too deeply" in skip.reason
        assert skip.object_id == indicator()["id"]  # the skip names the object
    elif depth <= 200:
        # Still an ordinary object (stix mode keeps the deep part out of the flattened field).
        assert actions == () or not isinstance(actions[0], Skip), actions


# --- unknown types and extensions -----------------------------------------------------------

type_names = st.from_regex(r"x-[a-z][a-z0-9-]{0,20}", fullmatch=True) | st.sampled_from(
    ["report", "malware", "ipv4-addr", "relationship", "note", "grouping", "x-opencti-task"]
)
extension_names = st.from_regex(
    r"extension-definition--[0-9a-f-]{8,36}", fullmatch=True
) | st.sampled_from([OPENCTI_EXTENSION, MITRE_EXTENSION, "x-custom"])


@given(
    type_name=type_names,
    extensions=st.dictionaries(extension_names, json_values, max_size=3),
    extra=st.dictionaries(
        st.from_regex(r"x_[a-z_]{1,10}", fullmatch=True), json_values, max_size=3
    ),
)
def test_unknown_stix_types_are_ignored_in_ecs_and_indexed_in_stix_mode(
    type_name: str, extensions: dict[str, object], extra: dict[str, object]
) -> None:
    obj: dict[str, object] = {
        "type": type_name,
        "spec_version": "2.1",
        "id": f"{type_name}--1b6a3e52-4d1f-4a8e-9b3c-0e1f2a3b4c5d",
        "extensions": extensions,
        **extra,
    }
    data = frame(obj)
    ecs = plan(data, ECS)
    stix = plan(data, STIX)
    if any(isinstance(a, Skip) for a in ecs + stix):
        # Only when the OpenCTI id is malformed (it would be the document id).
        assert OPENCTI_EXTENSION in extensions
        return
    assert ecs == ()  # ECS mode exports indicators only
    assert len(stix) == 1
    assert isinstance(stix[0], Upsert)


@given(
    extensions=st.dictionaries(
        extension_names.filter(lambda n: n not in (OPENCTI_EXTENSION, MITRE_EXTENSION)),
        json_values,
        max_size=4,
    )
)
def test_unknown_extensions_on_an_indicator_do_not_change_its_document(
    extensions: dict[str, object],
) -> None:
    plain = plan(frame(indicator()), ECS)
    with_extensions = plan(
        frame(
            indicator(
                extensions={
                    **extensions,
                    OPENCTI_EXTENSION: {"id": "9a7f3b52-8f0e-4c61-b6a9-1d2e3f4a5b6c"},
                }
            )
        ),
        ECS,
    )
    assert with_extensions == plain


# --- huge inputs: time and memory -----------------------------------------------------------


def _ten_megabyte_literal() -> str:
    return "[domain-name:value = '" + "a" * (10 * MB) + ".example.org']"


def _ors(total_chars: int) -> str:
    parts: list[str] = []
    size = 0
    number = 0
    while size < total_chars:
        part = f"ipv4-addr:value = '10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}'"
        parts.append(part)
        size += len(part) + 4
        number += 1
    return "[" + " OR ".join(parts) + "]"


HUGE_PATTERNS: Mapping[str, Callable[[], str]] = {
    "10 MB string literal": _ten_megabyte_literal,
    "10k nested parentheses": lambda: "(" * 10_000 + "[ipv4-addr:value = '1.2.3.4']" + ")" * 10_000,
    "10k parentheses inside brackets": lambda: (
        "[" + "(" * 10_000 + "ipv4-addr:value = '1.2.3.4'" + ")" * 10_000 + "]"
    ),
    "10k unclosed brackets": lambda: "[" * 10_000,
    "10k observations chained": lambda: " AND ".join(["[ipv4-addr:value = '1.2.3.4']"] * 10_000),
    "1 MB of ORs": lambda: _ors(MB),
    "10 MB of garbage": lambda: "\u00e9]'[(" * (2 * MB),
}


@MODES
@pytest.mark.parametrize("name", sorted(HUGE_PATTERNS))
def test_huge_patterns_within_budget(plan_settings: PlanSettings, name: str) -> None:
    data = frame(indicator(HUGE_PATTERNS[name]()))
    actions = within_budget(lambda: plan(data, plan_settings))
    assert len(actions) == 1
    if plan_settings is ECS and isinstance(actions[0], Delete):
        assert actions[0].code in ("invalid_pattern", "unmappable")


@pytest.mark.slow
def test_a_10_mb_pattern_of_ors_within_budget() -> None:
    """The worst realistic shape: one observation listing ~280k addresses (a 13 MB document)."""
    data = frame(indicator(_ors(10 * MB)))
    (action,) = within_budget(lambda: plan(data, ECS))
    assert isinstance(action, Upsert)


@MODES
def test_a_10_mb_event_within_budget(plan_settings: PlanSettings) -> None:
    big = indicator(description="d" * (10 * MB), labels=[f"l{n}" for n in range(10_000)])
    data = frame(big)
    (action,) = within_budget(lambda: plan(data, plan_settings))
    assert isinstance(action, Upsert)


def test_the_pattern_cache_does_not_keep_huge_patterns() -> None:
    """Planning keeps parsed patterns for reuse (an update re-sends its pattern); huge ones
    must not pile up there, or a feed of big indicators would grow the process without bound."""
    frames = [
        frame(indicator(f"[domain-name:value = '{n}{'a' * MB}.example.org']")) for n in range(40)
    ]
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for data in frames:
            plan(data, ECS)
        gc.collect()
        retained = (tracemalloc.get_traced_memory()[0] - baseline) / MB
    finally:
        tracemalloc.stop()
    assert retained < 20, f"{retained:.0f} MB kept after planning 40 one-megabyte patterns"


def test_a_frame_nested_1000_deep_in_stix_mode_is_not_a_recursion_bomb() -> None:
    """Just under the decoder's own limit, the stix-mode document builder must not recurse
    once per level (Python's stack is shorter than msgspec's)."""
    deep = nested(990, b"[")
    data = frame(indicator(x_deep="@@DEEP@@")).replace(b'"@@DEEP@@"', deep)
    for action in plan(data, STIX):
        assert isinstance(action, Upsert | Skip)


@settings(max_examples=50)
@given(
    depth=st.integers(min_value=1, max_value=3000),
    opener=st.sampled_from([b"[", b'{"k":']),
    plan_settings=plan_modes,
)
def test_any_nesting_depth_is_planned(
    depth: int, opener: bytes, plan_settings: PlanSettings
) -> None:
    data = frame(indicator(x_deep="@@DEEP@@")).replace(b'"@@DEEP@@"', nested(depth, opener))
    plan(data, plan_settings)


def test_a_64_mb_stream_frame_is_decoded_in_linear_time() -> None:
    """The stream reader feeds the SSE decoder 64 KB at a time. A frame as large as the reader
    accepts (``max_frame_bytes``, 64 MB) took ~35 s when every chunk re-joined and re-scanned
    the growing line; it must take about as long as copying it."""
    chunk = 64 * 1024
    wire = b"id: 1-0\nevent: create\ndata: " + b"a" * (64 * MB) + b"\n\nid: 2-0\ndata: x\n\n"
    decoder = SseDecoder()
    frames: list[SseFrame] = []
    began = time.perf_counter()
    for start in range(0, len(wire), chunk):
        decoder, found = feed(decoder, wire[start : start + chunk])
        frames.extend(found)
        assert decoder.frame_bytes <= 64 * MB + chunk
    elapsed = time.perf_counter() - began
    assert [(frame.id, len(frame.data)) for frame in frames] == [("1-0", 64 * MB), ("2-0", 1)]
    assert elapsed < SECONDS_BUDGET, f"took {elapsed:.1f} s"
