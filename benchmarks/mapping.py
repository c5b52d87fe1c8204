"""Sections 1 and 2: the pure core against the reference pattern parser, on one core.

* **mapping**: stream events (JSON bytes) -> ``core.events.plan_frame`` -> NDJSON bytes with
  ``core.elastic.bulk_lines.encode_action``, exactly the daemon's per-event work minus the
  network;
* **parser**: ``core.pattern.parse`` alone;
* both against ``stix2patterns.v21.pattern.Pattern(text).inspect()`` (what most STIX tools run)
  on the same patterns, measured once and shared by the two sections.

Times are the CPU time of the measuring thread (``time.thread_time``), best of ``repeats``
runs: other processes on the machine slow a run down but do not count in it.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from benchmarks.generator import NOW, Event, indicator_patterns
from elastic_connector.core import events as events_module
from elastic_connector.core import stix
from elastic_connector.core.actions import Skip, Upsert
from elastic_connector.core.config import DEFAULT_ECS_INDEX, Mode
from elastic_connector.core.config.observable_types import OPENCTI_OBSERVABLE_TYPES
from elastic_connector.core.elastic.bulk_lines import encode_action
from elastic_connector.core.events import PlannerState, PlanSettings, plan_event, plan_frame
from elastic_connector.core.indicators import document as indicators
from elastic_connector.core.indicators import ecs
from elastic_connector.core.pattern import parser as pattern
from elastic_connector.core.policy import PolicySettings
from elastic_connector.core.policy.tlp import Tlp

SETTINGS: Final = PlanSettings(mode=Mode.ECS_NO_SIGNALS, index=DEFAULT_ECS_INDEX)
FILTERED: Final = msgspec.structs.replace(
    SETTINGS,
    # Every export filter and a lifetime, set so that (almost) every indicator passes: each
    # check runs, and the same documents are built as without them.
    policy=PolicySettings.filters(
        max_tlp=SETTINGS.policy.max_tlp,
        min_score=0,
        min_confidence=0,
        labels_exclude=["false-positive"],
        indicator_types=OPENCTI_OBSERVABLE_TYPES,
        indicator_ttl=100 * 365 * 86400.0,
    ),
)


class Stages(msgspec.Struct, frozen=True):
    """Microseconds per indicator event spent in each step of ``plan_frame`` + encoding."""

    decode: float
    parse: float
    policy_and_map: float
    encode_document: float
    encode_action: float


class MappingResult(msgspec.Struct, frozen=True):
    events: int
    indicator_events: int
    upserts: int
    deletes: int
    skips: int
    ndjson_bytes: int
    events_per_s: float
    us_per_event: float
    stix2_patterns_per_s: float
    stix2_us_per_pattern: float
    ratio: float
    """Core events/s over stix2-patterns inspected patterns/s (same patterns)."""
    stages: Stages
    filtered_us_per_event: float = 0.0
    """The same mapping with every export filter and a lifetime set (``FILTERED``)."""
    filtered_upserts: int = 0


class ParserResult(msgspec.Struct, frozen=True):
    patterns: int
    unique_patterns: int
    patterns_per_s: float
    us_per_pattern: float
    stix2_patterns_per_s: float
    stix2_us_per_pattern: float
    ratio: float


def best_time(run: Callable[[], object], repeats: int) -> float:
    """Smallest thread CPU time of ``repeats`` calls (garbage collected before each)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        gc.collect()
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return max(best, 1e-9)


def map_events(
    events: Sequence[Event], settings: PlanSettings = SETTINGS
) -> tuple[list[bytes], Counter[str]]:
    """The daemon's per-event core work: plan every frame, encode every write as NDJSON."""
    state = PlannerState()
    lines: list[bytes] = []
    counts: Counter[str] = Counter()
    for event in events:
        plan = plan_frame(event.id, event.event, event.data, state, settings, NOW)
        state = plan.state
        for action in plan.actions:
            if isinstance(action, Skip):
                counts["skip"] += 1
            else:
                counts["upsert" if isinstance(action, Upsert) else "delete"] += 1
                lines.append(encode_action(action))
    return lines, counts


def _cold_pattern_cache() -> None:
    """Forget the planner's parsed patterns: every timed run starts like a first pass over the
    stream (only the repeats inside it, from updates, hit the cache)."""
    events_module._parse.cache_clear()


def _map_only(events: Sequence[Event], settings: PlanSettings = SETTINGS) -> None:
    _cold_pattern_cache()
    state = PlannerState()
    for event in events:
        plan = plan_frame(event.id, event.event, event.data, state, settings, NOW)
        state = plan.state
        for action in plan.actions:
            if not isinstance(action, Skip):
                encode_action(action)


def stix2_inspect_time(patterns: Sequence[str]) -> float:
    """CPU seconds for ``Pattern(p).inspect()`` over ``patterns`` (one run: it is slow)."""
    from stix2patterns.v21.pattern import Pattern as ReferencePattern

    def run() -> None:
        for text in patterns:
            ReferencePattern(text).inspect()

    return best_time(run, 1)


def _stages(events: Sequence[Event], repeats: int) -> Stages:
    """Per-step cost on the indicator create/update events (the ones that are mapped)."""
    decoded: list[stix.StreamEvent] = []
    frames: list[Event] = []
    for event in events:
        value = stix.read_event(event.id, event.event, event.data)
        if (
            isinstance(value, stix.StreamEvent)
            and event.event in ("create", "update")
            and isinstance(value.object.typed, stix.Indicator)
        ):
            decoded.append(value)
            frames.append(event)
    if not decoded:
        return Stages(0.0, 0.0, 0.0, 0.0, 0.0)
    count = len(decoded)
    typed = [d.object.typed for d in decoded if isinstance(d.object.typed, stix.Indicator)]
    parsed = [pattern.parse(i.pattern).value_or(None) for i in typed]
    context = indicators.MappingContext(now=NOW, tlp=Tlp.AMBER, feed_name="OpenCTI")
    documents = [
        doc
        for i, p in zip(typed, parsed, strict=True)
        if p is not None
        and (doc := indicators.indicator_document(i, p, context).value_or(None)) is not None
    ]
    encoded = [ecs.encode_document(doc) for doc in documents]
    upserts = [Upsert(SETTINGS.index, str(n), body) for n, body in enumerate(encoded)]

    def decode() -> None:
        for event in frames:
            stix.read_event(event.id, event.event, event.data)

    def parse() -> None:
        for indicator in typed:
            pattern.parse(indicator.pattern)

    def plan() -> None:
        _cold_pattern_cache()
        state = PlannerState()
        for event in decoded:
            plan_event(event, state, SETTINGS, NOW)

    def encode_documents() -> None:
        for doc in documents:
            ecs.encode_document(doc)

    def encode_actions() -> None:
        for upsert in upserts:
            encode_action(upsert)

    scale = 1e6 / count
    decode_s = best_time(decode, repeats)
    parse_s = best_time(parse, repeats)
    plan_s = best_time(plan, repeats)
    document_s = best_time(encode_documents, repeats) * count / max(1, len(documents))
    action_s = best_time(encode_actions, repeats) * count / max(1, len(upserts))
    # plan_event = policy + parse + map + encode_document: report the rest as "policy and map".
    map_s = max(0.0, plan_s - parse_s - document_s * len(documents) / count)
    return Stages(
        decode=decode_s * scale,
        parse=parse_s * scale,
        policy_and_map=map_s * scale,
        encode_document=document_s * scale,
        encode_action=action_s * scale,
    )


def run_mapping(
    events: Sequence[Event], repeats: int, stix2_seconds: float, patterns: Sequence[str]
) -> MappingResult:
    """Section 1; ``stix2_seconds`` is the reference time over ``patterns`` (the patterns of
    ``events``)."""
    lines, counts = map_events(events)
    _, filtered_counts = map_events(events, FILTERED)
    core_s = best_time(lambda: _map_only(events), repeats)
    filtered_s = best_time(lambda: _map_only(events, FILTERED), repeats)
    return MappingResult(
        events=len(events),
        indicator_events=len(patterns),
        upserts=counts["upsert"],
        deletes=counts["delete"],
        skips=counts["skip"],
        ndjson_bytes=sum(len(line) for line in lines),
        events_per_s=len(events) / core_s,
        us_per_event=core_s / len(events) * 1e6,
        stix2_patterns_per_s=len(patterns) / stix2_seconds,
        stix2_us_per_pattern=stix2_seconds / len(patterns) * 1e6,
        # Conservative: the core's time covers the whole stream (deletes, other objects),
        # the reference's only the indicator patterns in it.
        ratio=stix2_seconds / core_s,
        stages=_stages(events, repeats),
        filtered_us_per_event=filtered_s / len(events) * 1e6,
        filtered_upserts=filtered_counts["upsert"],
    )


def run_parser(patterns: Sequence[str], repeats: int, stix2_seconds: float) -> ParserResult:
    """Section 2: ``core.pattern.parse`` (no cache) on the same patterns as the reference."""

    def run() -> None:
        for text in patterns:
            pattern.parse(text)

    core_s = best_time(run, repeats)
    stix2_per_pattern = stix2_seconds / len(patterns)
    return ParserResult(
        patterns=len(patterns),
        unique_patterns=len(set(patterns)),
        patterns_per_s=len(patterns) / core_s,
        us_per_pattern=core_s / len(patterns) * 1e6,
        stix2_patterns_per_s=1 / stix2_per_pattern,
        stix2_us_per_pattern=stix2_per_pattern * 1e6,
        ratio=stix2_per_pattern / (core_s / len(patterns)),
    )


def run_core_sections(
    events: Sequence[Event], repeats: int
) -> tuple[MappingResult, ParserResult, list[bytes]]:
    """Sections 1 and 2 (sharing one reference measurement) and the NDJSON the core made."""
    patterns = indicator_patterns(events)
    stix2_seconds = stix2_inspect_time(patterns)
    lines, _ = map_events(events)
    return (
        run_mapping(events, repeats, stix2_seconds, patterns),
        run_parser(patterns, repeats, stix2_seconds),
        lines,
    )


__all__ = [
    "SETTINGS",
    "MappingResult",
    "ParserResult",
    "Stages",
    "best_time",
    "map_events",
    "run_core_sections",
    "run_mapping",
    "run_parser",
    "stix2_inspect_time",
]
