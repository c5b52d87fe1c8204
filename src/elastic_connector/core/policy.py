"""What may leave OpenCTI for Elasticsearch.

An indicator is exported only while it is usable for detection: not revoked, not expired, not
marked above the configured TLP ceiling, written in the STIX pattern language, and (when the
operator asks for it) flagged for detection. Anything else is withheld, which for an indicator
that was exported earlier means its document is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from elastic_connector.core.markings import MarkingResolution
from elastic_connector.core.stix import Indicator, truth
from elastic_connector.core.tlp import Tlp


class PolicySettings(msgspec.Struct, frozen=True, kw_only=True):
    max_tlp: Tlp = Tlp.AMBER_STRICT
    require_detection: bool = False


class Withheld(msgspec.Struct, frozen=True):
    """Why an object must not be (or no longer be) in Elasticsearch. ``code`` is for metrics."""

    code: str
    reason: str
    subject: str = ""


def _aware(moment: datetime) -> datetime:
    # STIX timestamps are UTC; a timestamp without offset is read as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def tlp_allowed(markings: MarkingResolution, settings: PolicySettings) -> Withheld | None:
    """A marking above ``max_tlp`` never reaches Elasticsearch, nor does an object carrying a
    marking not known yet, or a marking that may be a TLP marking but whose level cannot be read
    (either could be a custom TLP:RED); unmarked objects may."""
    tlp = markings.tlp
    if tlp is not None and tlp.rank > settings.max_tlp.rank:
        return Withheld("tlp", f"marked {tlp.label}, above max_tlp {settings.max_tlp.label}")
    if markings.unknown:
        return Withheld(
            "unknown_marking",
            f"carries marking {markings.unknown[0]}, which is not known (yet): withheld until "
            "its definition is read",
            markings.unknown[0],
        )
    if markings.unreadable:
        return Withheld(
            "unreadable_marking",
            f"carries marking {markings.unreadable[0]}, which is or may be a TLP marking but "
            "whose level cannot be read: withheld (fail closed)",
            markings.unreadable[0],
        )
    return None


def indicator_withheld(
    indicator: Indicator, markings: MarkingResolution, settings: PolicySettings, now: datetime
) -> Withheld | None:
    """None when the indicator may be exported, else the first reason it may not."""
    revoked = indicator.revoked
    if revoked.__class__ is not bool:
        revoked = truth(revoked)
    if revoked is None:
        shown = str(indicator.revoked)[:40]
        return Withheld("revoked", f"revoked flag {shown!r} is not a boolean: withheld")
    if revoked:
        return Withheld("revoked", "revoked in OpenCTI")
    if indicator.valid_until is not None and _aware(indicator.valid_until) <= _aware(now):
        return Withheld("expired", f"valid_until {indicator.valid_until.isoformat()} has passed")
    denied = tlp_allowed(markings, settings)
    if denied is not None:
        return denied
    if indicator.pattern_type.strip().lower() != "stix":
        return Withheld(
            "pattern_type",
            f"pattern_type {indicator.pattern_type[:40]!r} is not exported (only 'stix')",
        )
    if settings.require_detection and not detection_flag(indicator):
        return Withheld("detection", "detection flag is false and require_detection is on")
    return None


def detection_flag(indicator: Indicator) -> bool:
    """OpenCTI's detection flag: from the extension (stream), else the x_opencti_ property; a
    flag that spells no boolean is not set."""
    ext = indicator.extensions.opencti
    if ext is not None and ext.detection is not None:
        return truth(ext.detection) is True
    return truth(indicator.x_opencti_detection) is True
