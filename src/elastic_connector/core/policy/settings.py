"""The export policy's settings (``PolicySettings``: TLP ceiling, detection flag, export
filters, default lifetime), its verdict on an object it keeps back (``Withheld``) and what an
object's markings resolve to (``MarkingResolution``). msgspec Structs, kept out of ``rules`` and
``markings`` so that the policy's checks can be compiled (``setup.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import msgspec

from elastic_connector.core.config.observable_types import canonical_observable_type
from elastic_connector.core.policy.tlp import Tlp


class PolicySettings(msgspec.Struct, frozen=True, kw_only=True):
    max_tlp: Tlp = Tlp.AMBER_STRICT
    require_detection: bool = False
    min_score: int | None = None
    min_confidence: int | None = None
    labels_include: frozenset[str] = frozenset()
    """Lower case; empty: no label is required."""
    labels_exclude: frozenset[str] = frozenset()
    """Lower case."""
    indicator_types: frozenset[str] = frozenset()
    """Main observable types in the platform's spelling (``IPv4-Addr``); empty: any type."""
    indicator_ttl: timedelta | None = None
    """Lifetime of an indicator without ``valid_until`` (``lifetime.expiry``)."""

    @classmethod
    def filters(
        cls,
        *,
        max_tlp: Tlp = Tlp.AMBER_STRICT,
        require_detection: bool = False,
        min_score: int | None = None,
        min_confidence: int | None = None,
        labels_include: Iterable[str] = (),
        labels_exclude: Iterable[str] = (),
        indicator_types: Iterable[str] = (),
        indicator_ttl: float | None = None,
    ) -> PolicySettings:
        """Settings from configuration values: labels in any case, observable types in any
        spelling the configuration accepts, the ttl in seconds."""
        types = (canonical_observable_type(name) for name in indicator_types)
        return cls(
            max_tlp=max_tlp,
            require_detection=require_detection,
            min_score=min_score,
            min_confidence=min_confidence,
            labels_include=frozenset(label.lower() for label in labels_include),
            labels_exclude=frozenset(label.lower() for label in labels_exclude),
            indicator_types=frozenset(name for name in types if name is not None),
            indicator_ttl=None if indicator_ttl is None else timedelta(seconds=indicator_ttl),
        )


class Withheld(msgspec.Struct, frozen=True):
    """Why an object must not be (or no longer be) in Elasticsearch. ``code`` is for metrics."""

    code: str
    reason: str
    subject: str = ""


class MarkingResolution(msgspec.Struct, frozen=True):
    """The strictest TLP among an object's markings (None: no TLP marking), the referenced
    marking ids that are not known at all, and those whose TLP level cannot be read.

    Made by ``markings.resolve_markings``, for every event."""

    tlp: Tlp | None
    unknown: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
