"""The index state a sequence of events must leave, computed by the pure core, and the
document-by-document comparison with what the daemon actually wrote.

The oracle folds ``core.events.plan_frame`` over the events in stream order with the daemon's own
planning settings (built from the same environment) and applies each ``Upsert``/``Delete`` to a
dictionary. Since every write is idempotent and keyed by the OpenCTI id, whatever the daemon
went through (outages, replays, kills), the index must end up equal to that dictionary.
``@timestamp`` is the only field that depends on when an event was processed; it is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

from elastic_connector.core.actions import Delete, Upsert
from elastic_connector.core.config.load import build_config, env_layer
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from tests.e2e.harness import ConnectorHarness
from tests.reliability.workload import Event, envelope

__all__ = ["assert_index_matches", "comparable", "expected_documents", "plan_settings"]

_VOLATILE: Final = ("@timestamp",)
_SHOWN: Final = 5
_NOW: Final = datetime(2025, 6, 1, tzinfo=UTC)
"""Any time after the workloads' fixed dates will do: nothing they create ever expires."""


def plan_settings(harness: ConnectorHarness) -> PlanSettings:
    """The planning settings of the daemon ``harness`` runs (same environment, same loader)."""
    config = build_config([env_layer(harness.environment())])
    return PlanSettings.from_config(config.unwrap())


def comparable(document: Mapping[str, object]) -> dict[str, object]:
    """``document`` without the fields that depend on processing time."""
    return {key: value for key, value in document.items() if key not in _VOLATILE}


def expected_documents(
    events: Iterable[Event], settings: PlanSettings, now: datetime = _NOW
) -> dict[str, dict[str, object]]:
    """``_id -> comparable _source`` after applying ``events`` in order."""
    state = PlannerState()
    index: dict[str, bytes] = {}
    for number, event in enumerate(events):
        plan = plan_frame(f"{number}-0", event.kind, envelope(event), state, settings, now)
        state = plan.state
        for action in plan.actions:
            if isinstance(action, Upsert):
                index[action.id] = action.document
            elif isinstance(action, Delete):
                index.pop(action.id, None)
    return {key: comparable(json.loads(document)) for key, document in index.items()}


def assert_index_matches(
    actual: Mapping[str, Mapping[str, object]], expected: Mapping[str, Mapping[str, object]]
) -> None:
    """Every expected document present and equal (but for ``@timestamp``), nothing else."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    different = sorted(
        key for key in set(expected) & set(actual) if comparable(actual[key]) != expected[key]
    )
    if not (missing or extra or different):
        return
    lines = [
        f"the index differs from the expected state ({len(expected)} documents expected, "
        f"{len(actual)} found): {len(missing)} missing, {len(extra)} unexpected, "
        f"{len(different)} different",
        f"missing: {missing[:_SHOWN]}",
        f"unexpected: {extra[:_SHOWN]}",
    ]
    for key in different[:_SHOWN]:
        got, wanted = comparable(actual[key]), expected[key]
        fields = sorted(k for k in set(got) | set(wanted) if got.get(k) != wanted.get(k))
        lines.append(f"{key}: fields {fields} differ")
        lines.extend(
            f"  {field}: got {got.get(field)!r}, expected {wanted.get(field)!r}"
            for field in fields[:_SHOWN]
        )
    raise AssertionError("\n".join(lines))
