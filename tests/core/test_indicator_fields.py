"""``stix.IndicatorFields`` reads an indicator's fields in one call (``msgspec.structs.astuple``)
and unpacks them by position, its extensions' too: each must land under its own name, whatever
the values are."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec.structs
from hypothesis import given

from elastic_connector.core.stix import (
    Extensions,
    ExternalReference,
    Indicator,
    IndicatorFields,
    KillChainPhase,
    MitreExtension,
    OpenCTIExtension,
)

from .indicators.indicator_strategies import indicators

# What ``IndicatorFields`` keeps under the field's own name (the extensions and the platform's
# main observable type become the extension fields below, ``mitre_platforms`` and ``main_type``).
_KEPT = tuple(
    name
    for name in Indicator.__struct_fields__
    if name not in ("extensions", "x_opencti_main_observable_type")
)


# The OpenCTI extension's fields, in its field order, by the name ``IndicatorFields`` keeps
# them under.
_EXTENSION = {
    "id": "internal_id",
    "updated_at": "updated_at",
    "is_inferred": "is_inferred",
    "score": "score",
    "detection": "detection",
}


def _same_extension(shared: IndicatorFields, indicator: Indicator) -> None:
    opencti = indicator.extensions.opencti
    for field, kept in _EXTENSION.items():
        expected = None if opencti is None else getattr(opencti, field)
        assert getattr(shared, kept) == expected, kept
    mitre = indicator.extensions.mitre
    assert shared.mitre_platforms == (() if mitre is None else mitre.platforms)
    main_type = opencti.main_observable_type if opencti is not None else None
    expected_type = indicator.x_opencti_main_observable_type if main_type is None else main_type
    assert shared.main_type == expected_type


def _day(day: int) -> datetime:
    return datetime(2024, 1, day, tzinfo=UTC)


def test_every_field_lands_under_its_own_name() -> None:
    # A distinct value in every field: two fields of one type swapped cannot go unnoticed.
    indicator = Indicator(
        id="id",
        pattern="pattern",
        pattern_type="pattern_type",
        name="name",
        description="description",
        pattern_version="pattern_version",
        indicator_types=("indicator_types",),
        valid_from=_day(1),
        valid_until=_day(2),
        revoked="revoked",
        confidence=11,
        labels=("labels",),
        created=_day(3),
        modified=_day(4),
        created_by_ref="created_by_ref",
        object_marking_refs=("object_marking_refs",),
        kill_chain_phases=(KillChainPhase("kill", "chain"),),
        external_references=(ExternalReference("external"),),
        extensions=Extensions(
            OpenCTIExtension(
                id="opencti",
                updated_at=_day(5),
                is_inferred="is_inferred",
                score=33,
                detection="detection",
                main_observable_type=None,
            ),
            MitreExtension(("mitre",)),
        ),
        x_opencti_score=22,
        x_opencti_detection="x_opencti_detection",
        x_opencti_main_observable_type="x_opencti_main_observable_type",
        x_mitre_platforms=("x_mitre_platforms",),
    )
    shared = IndicatorFields(indicator)
    for name in _KEPT:
        assert getattr(shared, name) == getattr(indicator, name), name
    _same_extension(shared, indicator)
    assert (shared.internal_id, shared.updated_at, shared.score) == ("opencti", _day(5), 33)
    assert (shared.is_inferred, shared.detection) == ("is_inferred", "detection")
    assert shared.mitre_platforms == ("mitre",)
    assert shared.main_type == "x_opencti_main_observable_type"
    typed = Extensions(OpenCTIExtension(main_observable_type="IPv4-Addr"))
    with_type = IndicatorFields(msgspec.structs.replace(indicator, extensions=typed))
    assert with_type.main_type == "IPv4-Addr"


@given(indicators())
def test_shared_fields_are_the_indicators(indicator: Indicator) -> None:
    shared = IndicatorFields(indicator)
    for name in _KEPT:
        assert getattr(shared, name) == getattr(indicator, name), name
    assert shared.indicator is indicator
    _same_extension(shared, indicator)
