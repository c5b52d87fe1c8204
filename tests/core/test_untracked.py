"""What the planner builds for every event is left out of the garbage collector's work
(``gc=False`` on the classes): the decoded event, the pattern tree and the ECS document.

They are immutable and built from their parts, so they cannot be in a reference cycle; tracked,
they made the collector run every few dozen events and full collections walk every cached tree
(``docs/performance.md`` §7c). A class that loses ``gc=False`` fails here by name.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec

from elastic_connector.core.indicators import document as indicators
from elastic_connector.core.indicators import ecs
from elastic_connector.core.pattern.parser import read_pattern
from elastic_connector.core.pattern.tree import Pattern
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import (
    MITRE_EXTENSION,
    OPENCTI_EXTENSION,
    Indicator,
    StreamEvent,
    read_event,
)

NOW = datetime(2025, 6, 1, tzinfo=UTC)
# Every kind of node the walk and the document builders meet: AND/OR, a set, a qualifier,
# FOLLOWEDBY, EXISTS, a negation, hashes, a URL and an address.
PATTERN = (
    "([file:hashes.'SHA-256' = '" + "a" * 64 + "' AND file:name = 'x.exe' OR file:size IN (1, 2)]"
    " FOLLOWEDBY [url:value = 'http://evil.example/a.php' AND ipv4-addr:value NOT = '10.0.0.1'])"
    " WITHIN 60 SECONDS OR [ipv4-addr:value ISSUBSET '10.0.0.0/8' AND EXISTS mutex:name]"
)
FRAME = msgspec.json.encode(
    {
        "type": "create",
        "data": {
            "type": "indicator",
            "id": "indicator--00000000-0000-4000-8000-000000000001",
            "name": "many parts",
            "pattern": PATTERN,
            "valid_from": "2025-01-01T00:00:00Z",
            "labels": ["a", "b"],
            "object_marking_refs": ["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"],
            "kill_chain_phases": [{"kill_chain_name": "k", "phase_name": "p"}],
            "external_references": [{"source_name": "s", "url": "https://example.org/r"}],
            "extensions": {
                OPENCTI_EXTENSION: {"id": "internal-1", "score": 50},
                MITRE_EXTENSION: {"platforms": ["windows"]},
            },
        },
    }
)


def _structs(value: object) -> Iterator[msgspec.Struct]:
    """Every Struct in ``value``, itself included, through fields and tuples."""
    if isinstance(value, tuple):
        for item in value:
            yield from _structs(item)
    elif isinstance(value, msgspec.Struct):
        yield value
        for item in msgspec.structs.astuple(value):
            yield from _structs(item)


def _tracked(value: object) -> list[str]:
    return sorted({type(s).__name__ for s in _structs(value) if gc.is_tracked(s)})


def test_the_decoded_event_is_untracked() -> None:
    event = read_event("1-0", "create", FRAME)
    assert isinstance(event, StreamEvent)
    assert len(list(_structs(event))) >= 8
    assert _tracked(event) == []


def test_the_pattern_tree_is_untracked() -> None:
    tree = read_pattern(PATTERN)
    assert isinstance(tree, Pattern)
    assert len(list(_structs(tree))) > 20
    assert _tracked(tree) == []


def test_the_document_is_untracked() -> None:
    event = read_event("1-0", "create", FRAME)
    tree = read_pattern(PATTERN)
    assert isinstance(event, StreamEvent)
    assert isinstance(event.object.typed, Indicator)
    assert isinstance(tree, Pattern)
    context = indicators.MappingContext(now=NOW, tlp=Tlp.AMBER, feed_name="OpenCTI")
    document = indicators.document_of(event.object.typed, tree, context)
    assert isinstance(document, ecs.IndicatorDocument)
    assert len(list(_structs(document))) > 6
    assert _tracked(document) == []
