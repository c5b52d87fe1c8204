"""The export filters of the policy: score, confidence, labels, main observable type.

The properties compare the policy with a model written from the option descriptions, check
that each filter only ever removes indicators (tightening never lets one more through), that
``labels_exclude`` wins and case never matters, and that the planner deletes an indicator an
update makes fail a filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config import Mode
from elastic_connector.core.config.observable_types import (
    OPENCTI_OBSERVABLE_TYPES,
    canonical_observable_type,
)
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.core.policy import (
    PolicySettings,
    any_filter,
    filtered_out,
    main_observable_type,
    opencti_score,
)
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import Extensions, Indicator, OpenCTIExtension
from tests.core.indicators.indicator_strategies import indicators

NOW = datetime(2025, 6, 1, tzinfo=UTC)

LABELS = ["malware", "Phishing", "c2", "tor", "APT28"]
label_lists = st.lists(st.sampled_from(LABELS + [label.upper() for label in LABELS]), max_size=3)
type_names = st.sampled_from([*OPENCTI_OBSERVABLE_TYPES, "file", "ipv4-addr", "URL"])


@st.composite
def filter_settings(draw: st.DrawFn) -> PolicySettings:
    return PolicySettings.filters(
        min_score=draw(st.none() | st.integers(0, 100)),
        min_confidence=draw(st.none() | st.integers(0, 100)),
        labels_include=draw(label_lists),
        labels_exclude=draw(label_lists),
        indicator_types=draw(st.lists(type_names, max_size=3)),
    )


@st.composite
def filtered_indicators(draw: st.DrawFn) -> Indicator:
    """Indicators whose filtered properties take values near the thresholds."""
    base = draw(indicators())
    score = st.none() | st.integers(-5, 105)
    main = st.none() | type_names | st.just("Unknown")
    extension = OpenCTIExtension(score=draw(score), main_observable_type=draw(main))
    return msgspec.structs.replace(
        base,
        labels=tuple(draw(label_lists)),
        confidence=draw(st.none() | st.integers(-5, 105)),
        extensions=Extensions(opencti=draw(st.none() | st.just(extension))),
        x_opencti_score=draw(score),
        x_opencti_main_observable_type=draw(main),
    )


def model_passes(indicator: Indicator, settings: PolicySettings) -> bool:
    """The filters as the option descriptions state them."""
    score, confidence = opencti_score(indicator), indicator.confidence
    carried = {label.lower() for label in indicator.labels}
    main = main_observable_type(indicator)
    return all(
        (
            settings.min_score is None or (score is not None and score >= settings.min_score),
            settings.min_confidence is None
            or (confidence is not None and confidence >= settings.min_confidence),
            not carried & settings.labels_exclude,
            not settings.labels_include or bool(carried & settings.labels_include),
            not settings.indicator_types
            or (main is not None and canonical_observable_type(main) in settings.indicator_types),
        )
    )


@given(indicator=filtered_indicators(), settings=filter_settings())
def test_filters_follow_their_description(indicator: Indicator, settings: PolicySettings) -> None:
    withheld = filtered_out(indicator, settings)
    assert (withheld is None) == model_passes(indicator, settings)
    if withheld is not None:
        assert withheld.code in {"min_score", "min_confidence", "labels", "indicator_type"}
        assert withheld.reason


@given(indicator=filtered_indicators(), settings=filter_settings(), data=st.data())
def test_tightening_a_filter_never_lets_more_through(
    indicator: Indicator, settings: PolicySettings, data: st.DataObject
) -> None:
    tighter = msgspec.structs.replace(
        settings,
        min_score=max(settings.min_score or 0, data.draw(st.integers(0, 100))),
        min_confidence=max(settings.min_confidence or 0, data.draw(st.integers(0, 100))),
        labels_exclude=settings.labels_exclude | {data.draw(st.sampled_from(LABELS)).lower()},
    )
    if filtered_out(indicator, settings) is not None:
        assert filtered_out(indicator, tighter) is not None


@given(indicator=filtered_indicators(), label=st.sampled_from(LABELS))
def test_an_excluded_label_wins_over_an_included_one(indicator: Indicator, label: str) -> None:
    tagged = msgspec.structs.replace(indicator, labels=(*indicator.labels, label.upper()))
    settings = PolicySettings.filters(labels_include=[label], labels_exclude=[label.lower()])
    withheld = filtered_out(tagged, settings)
    assert withheld is not None
    assert withheld.code == "labels"


@given(indicator=filtered_indicators(), settings=filter_settings())
def test_label_and_type_case_never_matters(indicator: Indicator, settings: PolicySettings) -> None:
    main = main_observable_type(indicator)
    shouted = msgspec.structs.replace(
        indicator,
        labels=tuple(label.swapcase() for label in indicator.labels),
        extensions=Extensions(opencti=OpenCTIExtension(
            score=opencti_score(indicator),
            main_observable_type=None if main is None else main.swapcase(),
        )),
    )  # fmt: skip
    assert (filtered_out(shouted, settings) is None) == (filtered_out(indicator, settings) is None)


@pytest.mark.parametrize(
    "setting",
    [
        {"min_score": 0},
        {"min_confidence": 0},
        {"labels_include": ["x"]},
        {"labels_exclude": ["x"]},
        {"indicator_types": ["IPv4-Addr"]},
    ],
)
def test_any_one_filter_set_is_filtering(setting: dict[str, Any]) -> None:
    assert any_filter(PolicySettings.filters(**setting))
    # TLP, detection and the lifetime are not export filters.
    assert not any_filter(
        PolicySettings.filters(max_tlp=Tlp.RED, require_detection=True, indicator_ttl=60.0)
    )


@given(indicator=filtered_indicators())
def test_no_filter_set_withholds_nothing(indicator: Indicator) -> None:
    assert not any_filter(PolicySettings.filters())
    assert filtered_out(indicator, PolicySettings.filters()) is None


F = PolicySettings.filters


@pytest.mark.parametrize(
    ("indicator", "settings", "code"),
    [
        ({"x_opencti_score": 49}, F(min_score=50), "min_score"),
        ({"x_opencti_score": 50}, F(min_score=50), None),
        ({}, F(min_score=0), "min_score"),  # no score cannot be shown to pass
        ({"confidence": 10}, F(min_confidence=11), "min_confidence"),
        ({"labels": ["TOR"]}, F(labels_exclude=["tor"]), "labels"),
        ({"labels": ["x"]}, F(labels_include=["y"]), "labels"),
        ({"labels": ["Y"]}, F(labels_include=["y"]), None),
        ({"x_opencti_main_observable_type": "StixFile"}, F(indicator_types=["file"]), None),
        ({"x_opencti_main_observable_type": "Url"}, F(indicator_types=["Mutex"]), "indicator_type"),
        ({}, F(indicator_types=["IPv4-Addr"]), "indicator_type"),
    ],
)  # fmt: skip
def test_filter_examples(
    indicator: dict[str, object], settings: PolicySettings, code: str | None
) -> None:
    built = msgspec.convert(
        {"id": "indicator--1", "pattern": "[x:y = 'z']", **indicator}, Indicator
    )
    withheld = filtered_out(built, settings)
    assert (withheld.code if withheld else None) == code


def _event(score: int) -> bytes:
    indicator = {
        "type": "indicator",
        "id": "indicator--5e0b3b57-0b3f-4d4b-9c55-35e6d1d5f3a1",
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "extensions": {
            "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba": {
                "id": "0a6b2c7e-5f57-4f0b-9d0e-6a0a3e1e8f11",
                "score": score,
                "main_observable_type": "IPv4-Addr",
            }
        },
    }
    return msgspec.json.encode({"data": indicator})


def test_an_update_that_fails_a_filter_deletes_the_exported_document() -> None:
    settings = PlanSettings(mode=Mode.ECS, index="ti", policy=PolicySettings.filters(min_score=60))
    first = plan_frame("1-0", "create", _event(80), PlannerState(), settings, NOW)
    later = plan_frame("2-0", "update", _event(40), first.state, settings, NOW)
    (upsert,) = first.actions
    (delete,) = later.actions
    assert isinstance(upsert, Upsert)
    assert isinstance(delete, Delete)
    assert (delete.index, delete.id, delete.code) == (upsert.index, upsert.id, "min_score")


@given(score=st.integers(0, 100))
def test_filters_left_unset_plan_exactly_as_before(score: int) -> None:
    plain = PlanSettings(mode=Mode.ECS, index="ti")
    unset = PlanSettings(mode=Mode.ECS, index="ti", policy=PolicySettings.filters())
    event = _event(score)
    assert plan_frame("1-0", "create", event, PlannerState(), plain, NOW) == plan_frame(
        "1-0", "create", event, PlannerState(), unset, NOW
    )
