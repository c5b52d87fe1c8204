"""Nothing marked above ``max_tlp`` reaches Elasticsearch, whatever the sequence of updates.

A property over many generated histories of a few indicators — created, re-marked (standard TLP
1.0 and 2.0 markings, custom TLP markings defined on the stream, one with its level only in
``definition.TLP``, one whose level cannot be read, a PAP marking, a marking never defined),
revoked and un-revoked, deleted — each run through the real write path: the shell's
``Pipeline`` (batches of any size, the real planner, the real ``BulkWriter``) into Elasticsearch.
Once the last event is written, the index is read back and compared with an oracle written
independently of the planner, from the TLP rules themselves: an indicator's document exists
exactly when its last version is not deleted, not revoked, carries no marking unknown at that
point or whose level cannot be read (fail closed: either could be a custom TLP:RED), and has no
TLP marking above the ceiling.
No document in the index ever carries a level above the ceiling.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elastic_connector.core.config import Mode
from elastic_connector.core.events import PlanSettings
from elastic_connector.core.indicators import INDICATOR_MAPPINGS
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.tlp import STANDARD_MARKINGS, Tlp
from elastic_connector.demo.opencti_data import OPENCTI_EXTENSION, Json, make_indicator
from tests.e2e.harness import dig, doc_id, documents_of
from tests.reliability.pipeline_run import run_pipeline
from tests.reliability.workload import Event, updated

RANK = {"CLEAR": 0, "WHITE": 0, "GREEN": 1, "AMBER": 2, "AMBER+STRICT": 3, "RED": 4}
"""The TLP order, written out here rather than taken from the code under test."""
STANDARD = {marking_id: level.value for marking_id, level in STANDARD_MARKINGS.items()}
UNDEFINED = f"marking-definition--{uuid.UUID(int=0xDEADBEEF)}"
"""A marking no event ever defines."""
_unique = itertools.count()


def custom_marking(definition_type: str, definition: str) -> Json:
    marking_id = f"marking-definition--{uuid.uuid4()}"
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "definition_type": definition_type,
        "definition": definition,
        "name": definition,
        "created": "2025-01-01T00:00:00.000Z",
        "modified": "2025-01-01T00:00:00.000Z",
        "extensions": {
            OPENCTI_EXTENSION: {
                "extension_type": "property-extension",
                "id": str(uuid.uuid4()),
                "type": "Marking-Definition",
            }
        },
    }


UNREADABLE = "unreadable"


def level_in_definition_only(level: str) -> Json:
    """A TLP marking with no name, its level only in ``definition`` under an upper-case key."""
    marking = custom_marking("TLP", level)
    del marking["name"]
    marking["definition"] = {"TLP": level}
    return marking


def marking_refs(stix: Json) -> list[str]:
    refs = stix.get("object_marking_refs")
    return [str(ref) for ref in refs] if isinstance(refs, list) else []


def set_internal_id(stix: Json, internal: str) -> None:
    """A fresh OpenCTI id per example: examples share the index, never a document."""
    extensions = stix["extensions"]
    assert isinstance(extensions, dict)
    extensions[OPENCTI_EXTENSION]["id"] = internal


@dataclass
class Story:
    """A generated history and what the oracle expects of it."""

    max_tlp: Tlp
    events: list[Event] = field(default_factory=list)
    indicators: list[Json] = field(default_factory=list)
    expected_present: dict[str, int | None] = field(default_factory=dict)
    """Document id -> TLP rank it must carry (None: no TLP marking) for those that exist."""


@st.composite
def stories(draw: st.DrawFn) -> Story:
    story = Story(max_tlp=draw(st.sampled_from([t for t in Tlp if t is not Tlp.WHITE])))
    tag = next(_unique)
    customs = {
        "custom TLP:RED": custom_marking("TLP", "TLP:RED"),
        "custom TLP:GREEN": custom_marking("TLP", "TLP:GREEN"),
        "PAP:AMBER": custom_marking("PAP", "PAP:AMBER"),
        "RED in definition.TLP only": level_in_definition_only("TLP:RED"),
        "TLP:TEST": custom_marking("TLP", "TLP:TEST"),
    }
    custom_level = {
        customs["custom TLP:RED"]["id"]: "RED",
        customs["custom TLP:GREEN"]["id"]: "GREEN",
        customs["PAP:AMBER"]["id"]: None,
        customs["RED in definition.TLP only"]["id"]: "RED",
        customs["TLP:TEST"]["id"]: UNREADABLE,
    }
    choices = [*STANDARD, *(str(m["id"]) for m in customs.values()), UNDEFINED]
    known: dict[str, str | None] = {}  # custom markings defined so far on the stream
    count = draw(st.integers(min_value=1, max_value=4))
    current: dict[int, Json] = {}
    final: dict[int, tuple[Json | None, frozenset[str]]] = {}
    stamp = 1_735_689_600_000
    for step in range(draw(st.integers(min_value=1, max_value=25))):
        stamp += 1
        what = draw(st.sampled_from(["mark", "mark", "mark", "revoke", "delete", "define"]))
        if what == "define":
            name = draw(st.sampled_from(sorted(customs)))
            marking = customs[name]
            known[str(marking["id"])] = custom_level[marking["id"]]
            story.events.append(Event("create", marking))
            continue
        number = draw(st.integers(min_value=0, max_value=count - 1))
        refs = draw(st.lists(st.sampled_from(choices), max_size=3, unique=True))
        if number not in current:
            stix = make_indicator(
                f"[ipv4-addr:value = '10.{tag % 250}.{tag // 250 % 250}.{number + 1}']",
                markings=refs,
                updated_at="2025-01-01T00:00:00.000Z",
            )
            set_internal_id(stix, f"tlp-{tag}-{number}")
            current[number] = stix
            story.indicators.append(stix)
            story.events.append(Event("create", stix))
        elif what == "delete":
            story.events.append(Event("delete", current.pop(number)))
            final[number] = (None, frozenset())
            continue
        elif what == "revoke":
            stix = updated(current[number], stamp, revoked=not current[number]["revoked"])
            current[number] = stix
            story.events.append(Event("update", stix))
        else:
            stix = updated(current[number], stamp, object_marking_refs=refs)
            current[number] = stix
            story.events.append(Event("update", stix))
        final[number] = (current[number], frozenset(known))
        del step
    for last, known_then in final.values():
        if last is None or last["revoked"]:
            continue
        refs = marking_refs(last)
        if any(r not in STANDARD and r not in known_then for r in refs):
            continue  # fail closed on a marking not defined (yet)
        levels = [STANDARD.get(r) or custom_level.get(r) for r in refs]
        if UNREADABLE in levels:
            continue  # fail closed on a TLP marking whose level cannot be read
        ranks = [RANK[level] for level in levels if level is not None]
        rank = max(ranks) if ranks else None
        if rank is not None and rank > RANK[story.max_tlp.value]:
            continue
        story.expected_present[doc_id(last)] = rank
    return story


@pytest.fixture(scope="module")
def tlp_index(es_client: Elasticsearch) -> Iterator[str]:
    name = f"ectest_{uuid.uuid4().hex[:12]}-tlp"
    es_client.indices.create(index=name, mappings=dict(INDICATOR_MAPPINGS))
    try:
        yield name
    finally:
        es_client.indices.delete(index=name)


def run_through_the_pipeline(story: Story, client: Elasticsearch, index: str, batch: int) -> None:
    settings = PlanSettings(
        mode=Mode.ECS_NO_SIGNALS, index=index, policy=PolicySettings(max_tlp=story.max_tlp)
    )
    pipeline, _, _, ids = run_pipeline(story.events, client, settings, batch)
    assert pipeline.status.last_ack_id == ids[-1], "not every event was written"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(story=stories(), batch=st.integers(min_value=1, max_value=10))
def test_no_document_above_max_tlp_after_any_update_sequence(
    es_client: Elasticsearch, tlp_index: str, story: Story, batch: int
) -> None:
    run_through_the_pipeline(story, es_client, tlp_index, batch)
    ours = {doc_id(stix) for stix in story.indicators}
    documents = {k: v for k, v in documents_of(es_client, tlp_index).items() if k in ours}
    ceiling = RANK[story.max_tlp.value]
    for key, document in documents.items():
        level = dig(document, "threat.indicator.marking.tlp")
        assert level is None or RANK[str(level)] <= ceiling, (key, level, story.max_tlp)
    assert set(documents) == set(story.expected_present)
    for key, rank in story.expected_present.items():
        level = dig(documents[key], "threat.indicator.marking.tlp")
        assert (None if level is None else RANK[str(level)]) == rank, (key, level)
