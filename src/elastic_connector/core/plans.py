"""What ``events.plan_frame`` takes besides the event, and what it returns: the planning
settings (``PlanSettings``), the state carried from one event to the next (``PlannerState``)
and the ``Plan``. msgspec Structs, kept out of ``events`` so that the planning code itself can
be compiled (``setup.py``: a module defining a class with keyword arguments stays interpreted).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from elastic_connector.core.actions import Action
from elastic_connector.core.config.model import OFFLINE_OPENCTI_URL, Config, Mode
from elastic_connector.core.policy.markings import MarkingLevel, tlp_of_marking
from elastic_connector.core.policy.settings import PolicySettings
from elastic_connector.core.stix import MarkingDefinition, StixObject


class PlanSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The part of the configuration planning depends on."""

    mode: Mode
    index: str
    policy: PolicySettings = PolicySettings()
    feed_name: str = "OpenCTI"
    """``threat.feed.name``: the feed is OpenCTI, whatever the connector instance is called."""
    opencti_url: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> PlanSettings:
        return cls(
            mode=config.connector.mode,
            index=config.index,
            policy=PolicySettings.filters(
                max_tlp=config.connector.max_tlp,
                require_detection=config.connector.require_detection,
                min_score=config.connector.min_score,
                min_confidence=config.connector.min_confidence,
                labels_include=config.connector.labels_include or (),
                labels_exclude=config.connector.labels_exclude or (),
                indicator_types=config.connector.indicator_types or (),
                indicator_ttl=config.connector.indicator_ttl,
            ),
            # Links back to OpenCTI only when there is a real platform to link to.
            opencti_url=None
            if config.opencti.url == OFFLINE_OPENCTI_URL
            else config.opencti.url.rstrip("/") or None,
        )


class PlannerState(msgspec.Struct, frozen=True):
    """Every marking definition known beyond the standard TLP ones: id -> its TLP level, None
    for a marking that is not a TLP marking (PAP, statement...), or ``UNREADABLE``."""

    markings: Mapping[str, MarkingLevel] = msgspec.field(default_factory=dict)

    def learn(self, obj: StixObject, deleted: bool) -> PlannerState:
        """The state after seeing ``obj`` (unchanged unless it is a marking definition)."""
        # The type first: most objects are not markings, and an isinstance() that fails on a
        # Struct class is costly (``events.plan_frame``).
        if obj.type != "marking-definition" or not isinstance(obj.typed, MarkingDefinition):
            return self
        if deleted:
            if obj.id not in self.markings:
                return self
            return PlannerState({k: v for k, v in self.markings.items() if k != obj.id})
        level = tlp_of_marking(obj.typed)
        if obj.id in self.markings and self.markings[obj.id] is level:
            return self
        return PlannerState({**self.markings, obj.id: level})

    def with_markings(self, markings: Mapping[str, MarkingLevel]) -> PlannerState:
        """The state with ``markings`` (read from the platform) added or updated."""
        return PlannerState({**self.markings, **markings})


class Plan(msgspec.Struct, frozen=True):
    actions: tuple[Action, ...]
    state: PlannerState
    authors: tuple[tuple[str, str], ...] = ()
    """(identity id, name) of the identities this event carried, for the shell's cache."""
    missing_authors: tuple[str, ...] = ()
    """``created_by_ref`` ids an exported indicator had whose name ``authors`` lacked."""
    object_id: str = ""
    """The STIX id of the event's object (empty when the event did not decode)."""
