"""Every shape of marking definition, through the planner in both document modes: nothing is
exported that the policy cannot prove to be at or below ``max_tlp`` (issue 12, item 1).

The shapes are those the platform and STIX write (read in OpenCTI's ``stix-2-1-converter`` and
pycti's ``MarkingDefinition.import_from_stix2``): ``name`` (``TLP:RED``), ``definition`` as
``{"tlp": "red"}`` in any key case or as text, ``x_opencti_definition(_type)``, the OASIS TLP 2.0
extension; levels in any case, with or without ``TLP:``. The property tests generate markings
whose level the test knows by construction, with noise and corruption, and arbitrary marking
objects checked against a conservative oracle written here, not taken from the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.markings import UNREADABLE, MarkingLevel, tlp_of_marking
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import OPENCTI_EXTENSION, TLP2_EXTENSION, MarkingDefinition

NOW = datetime(2025, 6, 1, tzinfo=UTC)
MARKING_ID = "marking-definition--11111111-1111-4111-8111-111111111111"
INDICATOR_ID = "indicator--22222222-2222-4222-8222-222222222222"
RANK: Final = {"CLEAR": 0, "WHITE": 0, "GREEN": 1, "AMBER": 2, "AMBER+STRICT": 3, "RED": 4}
"""The TLP order, written out here rather than taken from the code under test."""
NOT_TLP: Final = "not TLP"
UNPROVABLE: Final = "unprovable"


def settings_for(mode: Mode, max_tlp: Tlp) -> PlanSettings:
    return PlanSettings(mode=mode, index="ti", policy=PolicySettings(max_tlp=max_tlp))


def frame(obj: Mapping[str, object]) -> bytes:
    return json.dumps({"type": "create", "data": obj}).encode()


def indicator(*refs: str) -> dict[str, object]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": INDICATOR_ID,
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "object_marking_refs": list(refs),
        "extensions": {OPENCTI_EXTENSION: {"id": "internal-1"}},
    }


def marking(**fields: object) -> dict[str, object]:
    return {"type": "marking-definition", "spec_version": "2.1", "id": MARKING_ID, **fields}


def exported(marking_object: Mapping[str, object], mode: Mode, max_tlp: Tlp) -> list[Action]:
    """The indicator's actions after the marking was seen on the stream."""
    state = PlannerState()
    settings = settings_for(mode, max_tlp)
    state = plan_frame("1-0", "create", frame(marking_object), state, settings, NOW).state
    plan = plan_frame("2-0", "create", frame(indicator(MARKING_ID)), state, settings, NOW)
    return list(plan.actions)


def is_exported(actions: list[Action]) -> bool:
    assert not any(isinstance(a, Skip) for a in actions), actions
    return any(isinstance(a, Upsert) for a in actions)


# --- the shapes, one by one -----------------------------------------------------------------

SHAPES: list[tuple[str, dict[str, object], str]] = [
    (
        "issue: definition.TLP only",
        {"definition_type": "TLP", "definition": {"TLP": "TLP:RED"}},
        "RED",
    ),
    ("platform 5.x+", {"definition_type": "TLP", "name": "TLP:AMBER+STRICT"}, "AMBER+STRICT"),
    (
        "platform 4.x",
        {"definition_type": "tlp", "name": "TLP:RED", "definition": {"tlp": "RED"}},
        "RED",
    ),
    ("STIX 2.0", {"definition_type": "tlp", "definition": {"tlp": "green"}}, "GREEN"),
    ("STIX 2.0, key case", {"definition_type": "TLP", "definition": {"Tlp": "Amber"}}, "AMBER"),
    (
        "pycti export",
        {"x_opencti_definition_type": "TLP", "x_opencti_definition": "TLP:AMBER"},
        "AMBER",
    ),
    ("GraphQL record", {"definition_type": "TLP", "definition": "TLP:RED"}, "RED"),
    (
        "OASIS TLP 2.0",
        {"name": "TLP:CLEAR", "extensions": {TLP2_EXTENSION: {"tlp_2_0": "clear"}}},
        "CLEAR",
    ),
    (
        "OASIS TLP 2.0, extension only",
        {
            "extensions": {
                TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": "red"}
            }
        },
        "RED",
    ),
    ("name only", {"name": "TLP:GREEN"}, "GREEN"),
    ("lower case, space", {"definition_type": "tlp", "name": "tlp amber"}, "AMBER"),
    ("no prefix", {"definition_type": "TLP", "name": "red"}, "RED"),
    ("TLP 1.0 white", {"definition_type": "tlp", "definition": {"tlp": "white"}}, "WHITE"),
    ("strictest of two texts", {"name": "TLP:GREEN", "definition": {"tlp": "red"}}, "RED"),
    ("issue: RED-INTERNAL", {"definition_type": "TLP", "name": "TLP:RED-INTERNAL"}, UNPROVABLE),
    ("issue: TEST", {"definition_type": "TLP", "name": "TLP:TEST"}, UNPROVABLE),
    ("TLP type, no level", {"definition_type": "TLP"}, UNPROVABLE),
    ("TLP type, a display name", {"definition_type": "TLP", "name": "Partners"}, UNPROVABLE),
    ("one text unreadable", {"name": "TLP:GREEN", "definition": {"tlp": "purple"}}, UNPROVABLE),
    ("level of a wrong type", {"definition_type": "tlp", "definition": {"tlp": 4}}, UNPROVABLE),
    ("name of a wrong type", {"definition_type": "TLP", "name": ["TLP:CLEAR"]}, UNPROVABLE),
    ("no type at all", {"name": "Internal use only"}, UNPROVABLE),
    ("nothing", {}, UNPROVABLE),
    ("type of a wrong type", {"definition_type": 1, "name": "x"}, UNPROVABLE),
    ("PAP", {"definition_type": "PAP", "name": "PAP:RED"}, NOT_TLP),
    ("PAP by name", {"name": "PAP:RED"}, NOT_TLP),
    (
        "statement",
        {"definition_type": "statement", "definition": {"statement": "Copyright Red Corp"}},
        NOT_TLP,
    ),
    ("custom classification", {"definition_type": "IEP", "name": "IEP:RED"}, NOT_TLP),
]


def _level(truth: str) -> MarkingLevel:
    if truth == NOT_TLP:
        return None
    if truth == UNPROVABLE:
        return UNREADABLE
    return Tlp.parse(truth)


@pytest.mark.parametrize(("fields", "truth"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_every_shape_reads_as_expected(fields: dict[str, object], truth: str) -> None:
    import msgspec

    typed = msgspec.convert(marking(**fields), MarkingDefinition)
    assert tlp_of_marking(typed) == _level(truth)


@pytest.mark.parametrize("mode", [Mode.ECS, Mode.STIX])
@pytest.mark.parametrize(("fields", "truth"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("max_tlp", [Tlp.CLEAR, Tlp.AMBER, Tlp.RED])
def test_every_shape_is_exported_only_when_provably_allowed(
    fields: dict[str, object], truth: str, mode: Mode, max_tlp: Tlp
) -> None:
    actions = exported(marking(**fields), mode, max_tlp)
    allowed = truth == NOT_TLP or (truth != UNPROVABLE and RANK[truth] <= RANK[max_tlp.value])
    assert is_exported(actions) == allowed, actions
    if truth == UNPROVABLE:
        (withheld,) = [a for a in actions if isinstance(a, Delete)]
        assert withheld.code == "unreadable_marking"
        assert MARKING_ID in withheld.reason


def test_issue_example_is_withheld_even_at_the_lowest_ceiling() -> None:
    """The issue's repro: before the fix, an ``index`` action with no marking at all."""
    fields = {"definition_type": "TLP", "definition": {"TLP": "TLP:RED"}}
    for mode in (Mode.ECS, Mode.STIX):
        (action,) = exported(marking(**fields), mode, Tlp.CLEAR)
        assert isinstance(action, Delete)
        assert action.code == "tlp"


def test_the_level_read_is_written_in_the_document() -> None:
    fields = {"definition_type": "TLP", "definition": {"TLP": "TLP:RED"}}
    (action,) = exported(marking(**fields), Mode.ECS, Tlp.RED)
    assert isinstance(action, Upsert)
    assert json.loads(action.document)["threat"]["indicator"]["marking"]["tlp"] == "RED"


# --- generated markings whose level is known by construction ---------------------------------

_LEVEL_SPELLINGS: Final = {
    "CLEAR": ["clear", "CLEAR", "Clear"],
    "WHITE": ["white", "WHITE"],
    "GREEN": ["green", "GREEN", "Green"],
    "AMBER": ["amber", "AMBER"],
    "AMBER+STRICT": ["amber+strict", "AMBER+STRICT"],
    "RED": ["red", "RED", "Red"],
}
_PREFIXES: Final = ["", "TLP:", "tlp:", "TLP: ", "TLP ", "Tlp:"]
_GARBAGE: Final = ["RED-INTERNAL", "TEST", "PURPLE", "", "AMBER STRICT ONLY", "4", "REDACTED"]
_NOISE_KEYS: Final = ["created", "modified", "x_opencti_order", "x_opencti_color", "labels", "x"]
json_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=6)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def level_texts(draw: st.DrawFn, level: str) -> str:
    return draw(st.sampled_from(_PREFIXES)) + draw(st.sampled_from(_LEVEL_SPELLINGS[level]))


@st.composite
def tlp_part(draw: st.DrawFn) -> tuple[dict[str, object], str]:
    """One way of writing a TLP level (or a garbled one) and its truth."""
    garbled = draw(st.integers(0, 4)) == 0
    level = draw(st.sampled_from(sorted(_LEVEL_SPELLINGS)))
    text = (
        draw(st.sampled_from(["TLP:", "tlp:", "TLP "])) + draw(st.sampled_from(_GARBAGE))
        if garbled
        else draw(level_texts(level))
    )
    bare = text.split(":", 1)[-1].strip() if not garbled else text
    key = draw(st.sampled_from(["tlp", "TLP", "Tlp"]))
    shape = draw(st.integers(0, 5))
    part: dict[str, object]
    if shape == 0:
        part = {"definition_type": draw(st.sampled_from(["TLP", "tlp"])), "name": text}
        if not text.upper().startswith("TLP") and not garbled:
            part["name"] = "TLP:" + text
    elif shape == 1:
        part = {"definition_type": "tlp", "definition": {key: bare}}
    elif shape == 2:
        part = {"definition_type": "TLP", "definition": {key: text}}
    elif shape == 3:
        part = {"x_opencti_definition_type": "TLP", "x_opencti_definition": text}
    elif shape == 4:
        part = {"extensions": {TLP2_EXTENSION: {"tlp_2_0": bare.lower()}}}
    else:
        part = {"definition_type": "TLP", "definition": text}
    return part, UNPROVABLE if garbled else level


@st.composite
def generated_markings(draw: st.DrawFn) -> tuple[dict[str, object], str]:
    """A marking built from one or two ways of writing a level, or a non-TLP marking, plus
    noise; with the level it stands for (the strictest of its parts), or why it has none."""
    kind = draw(st.sampled_from(["tlp", "tlp", "tlp", "two", "pap", "statement", "untyped"]))
    fields: dict[str, object]
    if kind in ("tlp", "two"):
        fields, truth = draw(tlp_part())
        other, second = draw(tlp_part())
        if kind == "two" and not set(other) & set(fields):
            fields.update(other)
            if UNPROVABLE in (truth, second):
                truth = UNPROVABLE
            else:
                truth = max(truth, second, key=RANK.__getitem__)
    elif kind == "pap":
        level = draw(st.sampled_from(["CLEAR", "GREEN", "AMBER", "RED"]))
        fields = {"definition_type": "PAP", "name": f"PAP:{level}"}
        truth = NOT_TLP
    elif kind == "statement":
        text = draw(st.text(max_size=20).filter(lambda t: not t.strip().upper().startswith("TLP")))
        fields = {"definition_type": "statement", "definition": {"statement": text}}
        truth = NOT_TLP
    else:
        fields = {"name": draw(st.text(max_size=10).filter(lambda t: ":" not in t))}
        truth = UNPROVABLE
    for key in draw(st.lists(st.sampled_from(_NOISE_KEYS), unique=True, max_size=3)):
        fields[key] = draw(json_values)
    return marking(**fields), truth


@settings(max_examples=400)
@given(
    generated=generated_markings(),
    mode=st.sampled_from([Mode.ECS, Mode.STIX]),
    max_tlp=st.sampled_from([t for t in Tlp if t is not Tlp.WHITE]),
)
def test_a_marking_is_exported_exactly_when_its_known_level_allows(
    generated: tuple[dict[str, object], str], mode: Mode, max_tlp: Tlp
) -> None:
    marking_object, truth = generated
    actions = exported(marking_object, mode, max_tlp)
    allowed = truth == NOT_TLP or (truth != UNPROVABLE and RANK[truth] <= RANK[max_tlp.value])
    assert is_exported(actions) == allowed, (marking_object, truth, actions)


# --- arbitrary marking objects, against a conservative oracle ----------------------------------

_FIELD_NAMES: Final = [
    "name",
    "definition_type",
    "definition",
    "x_opencti_definition",
    "x_opencti_definition_type",
]
_TEXTS: Final = st.sampled_from(
    [
        "TLP:RED",
        "TLP:CLEAR",
        "tlp:green",
        "TLP",
        "tlp",
        "PAP",
        "PAP:RED",
        "statement",
        "red",
        "clear",
        "WHITE",
        "amber+strict",
        "TLP:RED-INTERNAL",
        "Red Corp",
        "",
    ]
)
_ANY_FIELD: Final = st.one_of(
    _TEXTS,
    json_values,
    st.dictionaries(
        st.one_of(_TEXTS, st.text(max_size=4)), st.one_of(_TEXTS, json_values), max_size=3
    ),
)


def _leaves(value: object, key: str = "") -> list[tuple[str, object]]:
    """(key it sits under, value) for every scalar leaf; dict keys count as keys only."""
    if isinstance(value, dict):
        return [leaf for k, item in value.items() for leaf in _leaves(item, k)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item, key)]
    return [(key, value)]


def _rest(text: str) -> str:
    """The text without a leading ``TLP`` and separators, upper case."""
    upper = text.strip().upper()
    if upper.startswith("TLP"):
        upper = upper[3:].lstrip(" :_-")
    return upper.strip()


def provably_clear(marking_object: Mapping[str, object]) -> bool:
    """A conservative proof, written from the TLP rules, that a marking allows export under
    TLP:CLEAR. Without any mention of TLP, a marking that states its type (PAP, statement...)
    is not a TLP marking. With one, every leaf under a TLP-named key, every text starting with
    TLP and every level word must say CLEAR/WHITE, and one of them must say it."""
    fields = {k: v for k, v in marking_object.items() if k in _FIELD_NAMES or k == "extensions"}
    name = fields.get("name")
    definition = fields.get("definition")
    typed = (
        any(
            isinstance(fields.get(k), str) and str(fields[k]).strip()
            for k in ("definition_type", "x_opencti_definition_type")
        )
        or (isinstance(name, str) and ":" in name and name.partition(":")[0].strip() != "")
        or (isinstance(definition, dict) and bool(definition))
    )
    keys = [k for k, _ in _leaves(fields)] + (
        list(definition) if isinstance(definition, dict) else []
    )
    leaves = _leaves(fields)
    mentions = (
        "extensions" in fields
        or any("tlp" in k.lower() for k in keys)
        or any(isinstance(v, str) and v.strip().lower().startswith("tlp") for _, v in leaves)
    )
    if not mentions:
        return typed
    says_clear = False
    for key, value in leaves:
        claims = "tlp" in key.lower() or (
            isinstance(value, str) and value.strip().lower().startswith("tlp")
        )
        if not isinstance(value, str):
            if claims:
                return False
            continue
        rest = _rest(value)
        if rest in ("CLEAR", "WHITE"):
            says_clear = True
        elif rest in ("GREEN", "AMBER", "AMBER+STRICT", "RED") or (
            claims and rest != "" and key not in ("definition_type", "x_opencti_definition_type")
        ):
            return False
    return says_clear


@settings(max_examples=400)
@given(
    fields=st.dictionaries(st.sampled_from(_FIELD_NAMES), _ANY_FIELD, max_size=4),
    tlp2=st.none() | st.one_of(_TEXTS, json_values),
    mode=st.sampled_from([Mode.ECS, Mode.STIX]),
)
def test_any_marking_exported_under_clear_is_provably_clear(
    fields: dict[str, object], tlp2: object, mode: Mode
) -> None:
    body = dict(fields)
    if tlp2 is not None:
        body["extensions"] = {TLP2_EXTENSION: {"tlp_2_0": tlp2}}
    marking_object = marking(**body)
    actions = exported(marking_object, mode, Tlp.CLEAR)
    if any(isinstance(a, Upsert) for a in actions):
        assert provably_clear(marking_object), (marking_object, actions)


@pytest.mark.parametrize(
    ("refs", "marking_object", "written"),
    [
        # STIX's TLP:WHITE id, which OpenCTI names TLP:CLEAR, and TLP 2.0's own TLP:CLEAR.
        (["marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"], None, ("CLEAR", "2.0")),
        (["marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"], None, ("CLEAR", "2.0")),
        # A TLP 1.0 producer's own definition that says white.
        (
            [MARKING_ID],
            marking(definition_type="tlp", definition={"tlp": "white"}),
            ("WHITE", "1.0"),
        ),
    ],
    ids=["stix-white-id", "tlp2-clear-id", "custom-white"],
)
def test_how_tlp_white_and_clear_are_written(
    refs: list[str], marking_object: dict[str, object] | None, written: tuple[str, str]
) -> None:
    """As docs/ecs-mapping.md says (TLP marking row)."""
    state = PlannerState()
    settings = settings_for(Mode.ECS, Tlp.CLEAR)
    if marking_object is not None:
        state = plan_frame("1-0", "create", frame(marking_object), state, settings, NOW).state
    plan = plan_frame("2-0", "create", frame(indicator(*refs)), state, settings, NOW)
    (action,) = plan.actions
    assert isinstance(action, Upsert)
    marking_field = json.loads(action.document)["threat"]["indicator"]["marking"]
    assert (marking_field["tlp"], marking_field["tlp_version"]) == written
