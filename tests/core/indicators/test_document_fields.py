"""The document reads an indicator's fields in one call (``msgspec.structs.astuple``) and
unpacks them by position: each must land under its own name, whatever the values are."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given

from elastic_connector.core.indicators import document
from elastic_connector.core.stix import (
    Extensions,
    ExternalReference,
    Indicator,
    KillChainPhase,
    MitreExtension,
    OpenCTIExtension,
)

from .indicator_strategies import indicators

# What ``_Shared`` keeps under the field's own name (the extensions and the platform's main
# observable type become ``extension``, ``mitre`` and ``main_type``).
_KEPT = tuple(
    name
    for name in Indicator.__struct_fields__
    if name not in ("object_marking_refs", "extensions", "x_opencti_main_observable_type")
)


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
        extensions=Extensions(OpenCTIExtension(id="opencti"), MitreExtension(("mitre",))),
        x_opencti_score=22,
        x_opencti_detection="x_opencti_detection",
        x_opencti_main_observable_type="x_opencti_main_observable_type",
        x_mitre_platforms=("x_mitre_platforms",),
    )
    shared = document._Shared(indicator)
    for name in _KEPT:
        assert getattr(shared, name) == getattr(indicator, name), name
    assert shared.extension == OpenCTIExtension(id="opencti")
    assert shared.mitre == MitreExtension(("mitre",))
    assert shared.main_type == "x_opencti_main_observable_type"


# Kept as the document writes them (in UTC; None where no date can be written).
_NORMALISED = ("created", "valid_from", "modified")


@given(indicators())
def test_shared_fields_are_the_indicators(indicator: Indicator) -> None:
    shared = document._Shared(indicator)
    for name in _KEPT:
        value = getattr(indicator, name)
        expected = document._opt_date(value) if name in _NORMALISED else value
        assert getattr(shared, name) == expected, name
    opencti = indicator.extensions.opencti
    assert shared.extension == opencti
    assert shared.mitre == indicator.extensions.mitre
    main_type = opencti.main_observable_type if opencti is not None else None
    expected = indicator.x_opencti_main_observable_type if main_type is None else main_type
    assert shared.main_type == expected
