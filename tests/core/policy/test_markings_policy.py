"""TLP levels, marking resolution and the export policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.policy import PolicySettings, indicator_withheld, tlp_allowed
from elastic_connector.core.policy.markings import (
    UNREADABLE,
    MarkingLevel,
    resolve_markings,
    resolve_tlp,
    tlp_of_marking,
)
from elastic_connector.core.policy.settings import MarkingResolution
from elastic_connector.core.policy.tlp import STANDARD_MARKINGS, Tlp, strictest
from elastic_connector.core.stix import Extensions, Indicator, MarkingDefinition, OpenCTIExtension

NOW = datetime(2025, 6, 1, tzinfo=UTC)
levels = st.sampled_from(list(Tlp))


_REFS = st.sampled_from(
    [*STANDARD_MARKINGS, "marking-definition--custom", "marking-definition--pap"]
)
_KNOWN: dict[str, MarkingLevel] = {
    "marking-definition--custom": Tlp.RED,
    "marking-definition--pap": None,
    # A standard id read from the platform too: the standard level wins, on both paths.
    next(iter(STANDARD_MARKINGS)): UNREADABLE,
}


@given(st.lists(_REFS, max_size=3), st.booleans())
def test_shared_resolutions_are_what_the_general_resolution_gives(
    refs: list[str], known: bool
) -> None:
    # A tuple (what decoded objects hold) may take a shared resolution; a list never does.
    markings = _KNOWN if known else {}
    assert resolve_markings(tuple(refs), markings) == resolve_markings(refs, markings)


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("TLP:CLEAR", Tlp.CLEAR),
        ("tlp:white", Tlp.WHITE),
        ("TLP:AMBER+STRICT", Tlp.AMBER_STRICT),
        (" amber ", Tlp.AMBER),
        ("TLP RED", Tlp.RED),
        ("TLP:PURPLE", None),
        ("PAP:RED", None),
        ("", None),
    ],
)
def test_tlp_names_parse_case_insensitively(text: str, level: Tlp | None) -> None:
    assert Tlp.parse(text) is level


@given(level=levels)
def test_label_parses_back_to_the_level(level: Tlp) -> None:
    assert Tlp.parse(level.label) is level
    assert Tlp.parse(level.value) is level


@given(chosen=st.lists(levels, min_size=1))
def test_strictest_has_the_highest_rank(chosen: list[Tlp]) -> None:
    best = strictest(chosen)
    assert best is not None
    assert best in chosen
    assert best.rank == max(level.rank for level in chosen)


def test_white_and_clear_are_the_same_level() -> None:
    assert Tlp.WHITE.rank == Tlp.CLEAR.rank == 0
    assert [t.rank for t in (Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED)] == [1, 2, 3, 4]
    assert strictest([]) is None


def test_every_standard_marking_resolves_without_a_lookup() -> None:
    for marking_id, level in STANDARD_MARKINGS.items():
        assert resolve_tlp([marking_id], {}) is level


@pytest.mark.parametrize(
    ("marking", "level"),
    [
        (MarkingDefinition(id="m", definition_type="TLP", name="TLP:RED"), Tlp.RED),
        (MarkingDefinition(id="m", definition_type="tlp", definition={"tlp": "amber"}), Tlp.AMBER),
        (MarkingDefinition(id="m", definition_type="TLP", definition="TLP:GREEN"), Tlp.GREEN),
        (MarkingDefinition(id="m", name="TLP:AMBER+STRICT"), Tlp.AMBER_STRICT),
        (MarkingDefinition(id="m", definition_type="PAP", name="PAP:RED"), None),
        (
            MarkingDefinition(id="m", definition_type="statement", definition={"statement": "x"}),
            None,
        ),
        # A TLP marking whose level cannot be read is never taken for "not TLP".
        (MarkingDefinition(id="m", definition_type="TLP", name="TLP:PURPLE"), UNREADABLE),
    ],
)
def test_tlp_of_a_marking_definition(marking: MarkingDefinition, level: MarkingLevel) -> None:
    assert tlp_of_marking(marking) is level


def test_resolution_takes_the_strictest_marking_and_lists_the_unknown_ones() -> None:
    amber = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
    custom = "marking-definition--custom"
    pap = "marking-definition--pap"
    unknown = "marking-definition--unknown"
    assert resolve_markings([amber, unknown], {}) == MarkingResolution(Tlp.AMBER, (unknown,))
    assert resolve_markings([amber, custom], {custom: Tlp.RED}) == MarkingResolution(Tlp.RED)
    assert resolve_markings([pap], {pap: None}) == MarkingResolution(None)
    assert resolve_tlp([unknown], {}) is None


@given(level=levels, ceiling=levels)
def test_tlp_above_the_ceiling_is_withheld_and_the_rest_allowed(level: Tlp, ceiling: Tlp) -> None:
    denied = tlp_allowed(MarkingResolution(level), PolicySettings(max_tlp=ceiling))
    assert (denied is None) == (level.rank <= ceiling.rank)
    assert tlp_allowed(MarkingResolution(None), PolicySettings(max_tlp=ceiling)) is None
    unknown = tlp_allowed(MarkingResolution(level, ("m",)), PolicySettings(max_tlp=ceiling))
    assert unknown is not None
    assert unknown.code == ("tlp" if level.rank > ceiling.rank else "unknown_marking")


def _indicator(**fields: object) -> Indicator:
    base: dict[str, object] = {"id": "indicator--1", "pattern": "[x:y = 'z']"}
    base.update(fields)
    return msgspec.convert(base, Indicator)


@pytest.mark.parametrize(
    ("indicator", "tlp", "settings", "code"),
    [
        (_indicator(), None, PolicySettings(), None),
        (_indicator(revoked=True), None, PolicySettings(), "revoked"),
        (_indicator(valid_until=NOW), None, PolicySettings(), "expired"),
        (_indicator(valid_until=NOW + timedelta(seconds=1)), None, PolicySettings(), None),
        # A naive timestamp is UTC.
        (_indicator(valid_until=datetime(2025, 5, 1)), None, PolicySettings(), "expired"),
        (_indicator(), Tlp.RED, PolicySettings(), "tlp"),
        (_indicator(pattern_type="yara"), None, PolicySettings(), "pattern_type"),
        (_indicator(pattern_type=" STIX "), None, PolicySettings(), None),
        (_indicator(), None, PolicySettings(require_detection=True), "detection"),
        (
            _indicator(extensions=Extensions(opencti=OpenCTIExtension(detection=True))),
            None,
            PolicySettings(require_detection=True),
            None,
        ),
        (_indicator(x_opencti_detection=True), None, PolicySettings(require_detection=True), None),
    ],
)
def test_policy_rules(
    indicator: Indicator, tlp: Tlp | None, settings: PolicySettings, code: str | None
) -> None:
    withheld = indicator_withheld(indicator, MarkingResolution(tlp), settings, NOW)
    assert (withheld.code if withheld else None) == code
