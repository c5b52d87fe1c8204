"""The stand-in's sightings behave as the platform's (``demo/standin_sightings.py``): each test
names the rule of ``shared/reference/opencti.md`` ("Sighting upserts") it reproduces, through the
real pycti."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from pycti import OpenCTIApiClient

from elastic_connector.demo.opencti_standin import OpenCTIStandin
from tests.support.alerts import add_indicators

AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
MAY_1 = "2024-05-01T00:00:00.000Z"
MAY_2 = "2024-05-02T00:00:00.000Z"
MAY_3 = "2024-05-03T00:00:00.000Z"
MAY_31 = "2024-05-31T00:00:00.000Z"
JUNE_1 = "2024-06-01T00:00:00.000Z"
JUNE_15 = "2024-06-15T00:00:00.000Z"
STIX_A = "sighting--11111111-1111-4111-8111-111111111111"
STIX_B = "sighting--22222222-2222-4222-8222-222222222222"
STIX_C = "sighting--33333333-3333-4333-8333-333333333333"
STIX_D = "sighting--44444444-4444-4444-8444-444444444444"


class Platform:
    """The stand-in, an indicator, the where-sighted identity and pycti clients."""

    def __init__(self, standin: OpenCTIStandin) -> None:
        self.standin = standin
        [self.indicator] = add_indicators(standin, 1)
        self.admin = self.api(standin.token)
        identity = self.admin.identity.create(type="SecurityPlatform", name="Elastic Security")
        assert identity is not None
        self.identity = str(identity["id"])

    def api(self, token: str) -> OpenCTIApiClient:
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            return OpenCTIApiClient(self.standin.url, token, log_level="error", ssl_verify=False)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)

    def user(self, name: str, **options: object) -> OpenCTIApiClient:
        token = f"token-{name}"
        self.standin.add_user(
            token,
            name=name,
            capabilities=("KNOWLEDGE_KNUPDATE",),
            **options,  # type: ignore[arg-type]  # max_confidence / allowed_markings
        )
        return self.api(token)

    def write(self, api: OpenCTIApiClient | None = None, **fields: object) -> dict[str, object]:
        arguments: dict[str, object] = {"fromId": self.indicator, "toId": self.identity}
        arguments.update(fields)
        create: Callable[..., object] = (api or self.admin).stix_sighting_relationship.create
        created = create(**arguments)
        assert isinstance(created, dict)
        return {str(key): value for key, value in created.items()}

    def stored(self) -> list[dict[str, object]]:
        return self.standin.sightings

    def one(self) -> dict[str, object]:
        [sighting] = self.stored()
        return sighting


@pytest.fixture
def platform(clean_opencti_env: None) -> Iterator[Platform]:
    with OpenCTIStandin(heartbeat_interval=0.2) as standin:
        yield Platform(standin)


# --- lookup ----------------------------------------------------------------------------------


def test_a_write_finds_the_sighting_holding_its_stix_id_whatever_its_dates(
    platform: Platform,
) -> None:
    """Lookup by any id: the given ``stix_id`` is kept in ``x_opencti_stix_ids``."""
    first = platform.write(stix_id=STIX_A, first_seen=MAY_1, last_seen=MAY_2, count=2)
    again = platform.write(stix_id=STIX_A, first_seen=JUNE_15, last_seen=JUNE_15, count=5)

    assert again["id"] == first["id"]
    sighting = platform.one()
    assert STIX_A in sighting["x_opencti_stix_ids"]  # type: ignore[operator]  # a list
    assert sighting["standard_id"] != STIX_A
    assert (sighting["first_seen"], sighting["last_seen"], sighting["attribute_count"]) == (
        MAY_1,
        JUNE_15,
        7,  # the dates widened: added
    )


def test_a_write_merges_into_a_sighting_whose_dates_are_each_within_30_days(
    platform: Platform,
) -> None:
    """Lookup by (indicator, identity, first_seen and last_seen each strictly within ±30 days)."""
    platform.write(stix_id=STIX_A, first_seen=MAY_1, last_seen=MAY_2, count=1)
    platform.write(stix_id=STIX_B, first_seen=MAY_2, last_seen=MAY_3, count=1)
    assert len(platform.stored()) == 1
    assert platform.one()["x_opencti_stix_ids"] == sorted([STIX_A, STIX_B])

    # first_seen exactly 30 days after the stored one: outside the (strict) window.
    platform.write(stix_id=STIX_C, first_seen=MAY_31, last_seen=JUNE_1, count=1)
    assert len(platform.stored()) == 2
    # One millisecond less: inside (first_seen 29.99 days, last_seen 29 days after).
    platform.write(stix_id=STIX_D, first_seen="2024-05-30T23:59:59.999Z", last_seen=JUNE_1, count=1)
    assert len(platform.stored()) == 2
    first, _ = platform.stored()
    assert STIX_D in first["x_opencti_stix_ids"]  # type: ignore[operator]  # a list
    # last_seen 49 days after every stored one: a new sighting.
    platform.write(first_seen=MAY_3, last_seen="2024-07-20T00:00:00.000Z", count=1)
    assert len(platform.stored()) == 3


def test_only_ids_find_a_sighting_without_the_deduplication_window(
    clean_opencti_env: None,
) -> None:
    with OpenCTIStandin(heartbeat_interval=0.2, merge_sightings=False) as standin:
        platform = Platform(standin)
        platform.write(stix_id=STIX_A, first_seen=MAY_1, last_seen=MAY_2, count=1)
        platform.write(stix_id=STIX_B, first_seen=MAY_1, last_seen=MAY_3, count=1)
        platform.write(stix_id=STIX_B, first_seen=MAY_1, last_seen=MAY_3, count=1)

        assert sorted(s["attribute_count"] for s in platform.stored()) == [1, 1]  # type: ignore[type-var]  # ints


# --- counts -----------------------------------------------------------------------------------


def test_the_count_is_added_only_when_a_date_widens_and_replaced_otherwise(
    platform: Platform,
) -> None:
    platform.write(stix_id=STIX_A, first_seen=MAY_2, last_seen=MAY_2, count=4)
    platform.write(first_seen=MAY_1, last_seen=MAY_2, count=3)  # first_seen widened
    assert platform.one()["attribute_count"] == 7
    platform.write(first_seen=MAY_2, last_seen=MAY_3, count=2)  # last_seen widened
    assert platform.one()["attribute_count"] == 9

    # The same write again: nothing widens, the count is replaced by the re-sent one.
    platform.write(first_seen=MAY_2, last_seen=MAY_3, count=2)
    assert platform.one()["attribute_count"] == 2


def test_a_new_sighting_counts_one_without_a_count(platform: Platform) -> None:
    platform.write(first_seen=MAY_1, last_seen=MAY_2)
    assert platform.one()["attribute_count"] == 1


# --- confidence --------------------------------------------------------------------------------


def test_confidence_is_capped_by_the_users_max_confidence(platform: Platform) -> None:
    capped = platform.user("capped", max_confidence=60)
    platform.write(capped, first_seen=MAY_1, last_seen=MAY_2, confidence=90)
    assert platform.one()["confidence"] == 60


def test_without_a_confidence_a_sighting_gets_the_users_max(platform: Platform) -> None:
    platform.write(platform.user("seventy", max_confidence=70), first_seen=MAY_1, last_seen=MAY_2)
    assert platform.one()["confidence"] == 70


def test_a_less_confident_writer_changes_nothing_but_the_stix_ids(platform: Platform) -> None:
    """Upserted fields apply only when the writer's (capped) confidence reaches the
    sighting's: an analyst raising a sighting's confidence freezes its count."""
    created = platform.write(
        stix_id=STIX_A,
        first_seen=MAY_1,
        last_seen=MAY_2,
        count=3,
        confidence=50,
        description="first",
    )
    platform.standin.set_sighting_confidence(str(created["id"]), 80)

    platform.write(
        stix_id=STIX_B,
        first_seen=MAY_1,
        last_seen=MAY_3,
        count=4,
        confidence=50,
        description="new",
    )

    sighting = platform.one()
    assert (sighting["attribute_count"], sighting["last_seen"], sighting["confidence"]) == (
        3,
        MAY_2,
        80,
    )
    assert sighting["description"] == "first"
    assert STIX_B in sighting["x_opencti_stix_ids"]  # type: ignore[operator]  # a list


def test_an_equally_confident_writer_is_applied(platform: Platform) -> None:
    created = platform.write(first_seen=MAY_1, last_seen=MAY_2, count=3, confidence=80)
    platform.standin.set_sighting_confidence(str(created["id"]), 80)
    platform.write(first_seen=MAY_1, last_seen=MAY_3, count=4, confidence=80)
    assert platform.one()["attribute_count"] == 7


# --- references --------------------------------------------------------------------------------


def test_a_missing_indicator_or_identity_names_it_in_unresolved_ids(platform: Platform) -> None:
    platform.standin.forget_object(platform.indicator)
    with pytest.raises(ValueError, match="MISSING_REFERENCE_ERROR") as raised:
        platform.write(first_seen=MAY_1, last_seen=MAY_2)
    detail = raised.value.args[0]
    assert isinstance(detail, dict)
    assert detail["unresolvedIds"] == [platform.indicator]


def test_a_marking_the_user_may_not_use_is_a_missing_reference_without_ids(
    platform: Platform,
) -> None:
    green_only = platform.user("green", allowed_markings=[GREEN])
    with pytest.raises(ValueError, match="MISSING_REFERENCE_ERROR") as raised:
        platform.write(green_only, first_seen=MAY_1, last_seen=MAY_2, objectMarking=[AMBER])
    detail = raised.value.args[0]
    assert isinstance(detail, dict)
    assert "unresolvedIds" not in detail
    assert platform.stored() == []

    platform.write(green_only, first_seen=MAY_1, last_seen=MAY_2, objectMarking=[GREEN])
    assert platform.one()["objectMarking"] == [GREEN]


def test_unknown_markings_references_and_authors_are_dropped_silently(
    platform: Platform,
) -> None:
    unknown_marking = "marking-definition--00000000-0000-4000-8000-000000000000"
    platform.write(
        first_seen=MAY_1,
        last_seen=MAY_2,
        objectMarking=[unknown_marking, AMBER],
        externalReferences=["external-reference--00000000-0000-4000-8000-000000000000"],
        createdBy="identity--00000000-0000-4000-8000-000000000000",
    )
    sighting = platform.one()
    assert (sighting["objectMarking"], sighting["externalReferences"]) == ([AMBER], [])
    assert sighting["createdBy"] is None


def test_references_dropped_at_creation_are_added_by_an_upsert_or_relation_add(
    platform: Platform,
) -> None:
    platform.standin.sighting_references_at_creation(kept=False)
    link = platform.admin.external_reference.create(
        source_name="Elastic Security", url="https://kibana.example/a", external_id="a"
    )
    assert link is not None
    created = platform.write(
        first_seen=MAY_1, last_seen=MAY_2, count=1, externalReferences=[link["id"]]
    )
    assert platform.one()["externalReferences"] == []

    # relationAdd needs no confidence for an external reference (an analyst raised it).
    platform.standin.set_sighting_confidence(str(created["id"]), 100)
    less = platform.user("less", max_confidence=10)
    less.query(
        """mutation Add($id: ID!, $input: StixRefRelationshipAddInput!) {
             stixSightingRelationshipEdit(id: $id) { relationAdd(input: $input) { id } } }""",
        {
            "id": created["id"],
            "input": {"toId": link["id"], "relationship_type": "external-reference"},
        },
    )
    assert platform.one()["externalReferences"] == [link["id"]]


def test_an_upsert_adds_references_to_a_sighting_without_any(platform: Platform) -> None:
    platform.standin.sighting_references_at_creation(kept=False)
    link = platform.admin.external_reference.create(
        source_name="Elastic Security", url="https://kibana.example/b", external_id="b"
    )
    assert link is not None
    platform.write(first_seen=MAY_1, last_seen=MAY_2, count=1, externalReferences=[link["id"]])
    platform.write(first_seen=MAY_1, last_seen=MAY_3, count=1, externalReferences=[link["id"]])
    assert platform.one()["externalReferences"] == [link["id"]]


# --- dates -------------------------------------------------------------------------------------


def test_first_seen_after_last_seen_is_a_database_error(platform: Platform) -> None:
    with pytest.raises(ValueError, match="DATABASE_ERROR"):
        platform.write(first_seen=MAY_2, last_seen=MAY_1)
    assert platform.stored() == []


# --- the user ----------------------------------------------------------------------------------


def test_me_tells_the_allowed_markings_and_the_max_confidence(platform: Platform) -> None:
    api = platform.user("analyst", max_confidence=40, allowed_markings=[GREEN])
    answer = api.query(
        "query { me { effective_confidence_level { max_confidence } "
        "allowed_marking { standard_id } } }"
    )
    assert answer["data"] == {
        "me": {
            "effective_confidence_level": {"max_confidence": 40},
            "allowed_marking": [{"standard_id": GREEN}],
        }
    }
    amber = platform.admin.marking_definition.read(id=AMBER)
    assert amber is not None
    assert amber["standard_id"] == AMBER


def test_a_sighting_reads_back_with_its_markings_and_references(platform: Platform) -> None:
    link = platform.admin.external_reference.create(
        source_name="Elastic Security", url="https://kibana.example/c", external_id="c"
    )
    assert link is not None
    created = platform.write(
        stix_id=STIX_A,
        first_seen=MAY_1,
        last_seen=MAY_2,
        count=2,
        objectMarking=[AMBER],
        externalReferences=[link["id"]],
    )
    read = platform.admin.stix_sighting_relationship.read(
        id=STIX_A,
        customAttributes="""id attribute_count confidence first_seen last_seen
            objectMarking { standard_id } externalReferences { edges { node { id } } }""",
    )
    assert read is not None
    assert read["id"] == created["id"]
    markings = read["objectMarking"]
    assert isinstance(markings, list)
    assert [marking["standard_id"] for marking in markings] == [AMBER]
    assert read["externalReferencesIds"] == [link["id"]]
    assert (read["attribute_count"], read["first_seen"]) == (2, MAY_1)
