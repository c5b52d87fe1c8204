"""``FoundValues`` keeps the field groups (every dotted prefix of a field holding a value) as
values are added; the oracle computes them from the fields afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.indicators.found_values import FoundValues, field_groups

_FIELDS = st.sampled_from(
    [
        "threat.indicator.ip",
        "threat.indicator.file.hash.sha256",
        "threat.indicator.file.name",
        "threat.indicator.url.port",
        "opencti.observable.process.pid",
        "opencti.indicator.ip_range",
        "x",
    ]
)
_ADDS = st.lists(st.tuples(st.sampled_from(["text", "number", "moment"]), _FIELDS), max_size=8)


def _groups_of(found: FoundValues) -> set[str]:
    fields = [*found.strs, *found.ints, *found.dates]
    return {
        field.rsplit(".", depth)[0] for field in fields for depth in range(1, field.count(".") + 1)
    }


@given(_ADDS)
def test_the_groups_are_the_prefixes_of_the_fields_given_a_value(
    adds: list[tuple[str, str]],
) -> None:
    found = FoundValues()
    for kind, field in adds:
        if kind == "text":
            found.text(field, "v")
        elif kind == "number":
            found.number(field, 1)
        else:
            found.moment(field, datetime(2024, 1, 1, tzinfo=UTC))
    assert field_groups(found) == _groups_of(found)
    tables = (found.strs, found.ints, found.dates)
    assert all(values for table in tables for values in table.values())


def test_the_groups_of_one_field() -> None:
    found = FoundValues()
    found.text("threat.indicator.file.name", "a.exe")
    found.text("threat.indicator.file.name", "b.exe")
    assert field_groups(found) == {"threat", "threat.indicator", "threat.indicator.file"}
    assert found.s("threat.indicator.file.name") == ("a.exe", "b.exe")
