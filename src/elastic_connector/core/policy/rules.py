"""What may leave OpenCTI for Elasticsearch.

An indicator is exported only while it is usable for detection: not revoked, not expired
(``lifetime``), not marked above the configured TLP ceiling, written in the STIX pattern
language, and (when the operator asks for it) flagged for detection and passing the export
filters (score, confidence, labels, main observable type). Anything else is withheld, which for
an indicator that was exported earlier means its document is deleted: an update that makes an
indicator fail a filter removes it, as a TLP raise does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from elastic_connector.core.config.observable_types import canonical_observable_type
from elastic_connector.core.memo import Latest
from elastic_connector.core.policy.lifetime import expiry
from elastic_connector.core.policy.settings import MarkingResolution, PolicySettings, Withheld
from elastic_connector.core.policy.tlp import Tlp, rank_of
from elastic_connector.core.stix import Indicator, IndicatorFields, truth

__all__ = [
    "PolicySettings",
    "Withheld",
    "detection_flag",
    "fields_withheld",
    "filtered_out",
    "indicator_withheld",
    "main_observable_type",
    "opencti_score",
    "tlp_allowed",
]


class _Policy:
    """What the checks read from the settings for every indicator, read once per settings
    object: for compiled code, each read of a Struct's field is a generic attribute lookup, and
    this class's are members of a C struct (docs/performance.md §7f)."""

    def __init__(self, settings: PolicySettings) -> None:
        self.max_tlp: Tlp = settings.max_tlp
        self.max_rank: int = rank_of(settings.max_tlp)
        self.require_detection: bool = settings.require_detection
        self.indicator_ttl: timedelta | None = settings.indicator_ttl
        self.any_filter: bool = any_filter(settings)


_policies: Final = Latest(_Policy)


def _aware(moment: datetime) -> datetime:
    # STIX timestamps are UTC; a timestamp without offset is read as UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def tlp_allowed(markings: MarkingResolution, settings: PolicySettings) -> Withheld | None:
    """A marking above ``max_tlp`` never reaches Elasticsearch, nor does an object carrying a
    marking not known yet, or a marking that may be a TLP marking but whose level cannot be read
    (either could be a custom TLP:RED); unmarked objects may."""
    tlp = markings.tlp
    if tlp is not None:
        policy = _policies.of(settings)
        if rank_of(tlp) > policy.max_rank:
            return Withheld("tlp", f"marked {tlp.label}, above max_tlp {policy.max_tlp.label}")
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
    return fields_withheld(IndicatorFields(indicator), markings, settings, now)


def fields_withheld(
    fields: IndicatorFields, markings: MarkingResolution, settings: PolicySettings, now: datetime
) -> Withheld | None:
    """``indicator_withheld`` from the indicator's fields as the planner has read them."""
    revoked = fields.revoked
    if type(revoked) is not bool:
        revoked = truth(revoked)
    if revoked is None:
        shown = str(fields.revoked)[:40]
        return Withheld("revoked", f"revoked flag {shown!r} is not a boolean: withheld")
    if revoked:
        return Withheld("revoked", "revoked in OpenCTI")
    policy = _policies.of(settings)
    valid_until = fields.valid_until
    if valid_until is not None:
        if _aware(valid_until) <= _aware(now):
            return Withheld("expired", f"valid_until {valid_until.isoformat()} has passed")
    elif policy.indicator_ttl is not None:
        expires = expiry(fields.indicator, policy.indicator_ttl)
        if expires is not None and expires <= _aware(now):
            return Withheld(
                "expired",
                f"no valid_until, and indicator_ttl has elapsed since "
                f"{'valid_from' if fields.valid_from is not None else 'created'} "
                f"(expired {expires.isoformat()})",
            )
    denied = tlp_allowed(markings, settings)
    if denied is not None:
        return denied
    pattern_type = fields.pattern_type
    # Written as is nearly always: the comparison alone, without two copies of the text.
    if pattern_type != "stix" and pattern_type.strip().lower() != "stix":
        return Withheld(
            "pattern_type", f"pattern_type {pattern_type[:40]!r} is not exported (only 'stix')"
        )
    if policy.require_detection and not detection_flag(fields.indicator):
        return Withheld("detection", "detection flag is false and require_detection is on")
    if policy.any_filter:
        return filtered_out(fields.indicator, settings)
    return None


def any_filter(settings: PolicySettings) -> bool:
    """Whether any export filter (beyond TLP, detection and lifetime) is set. A function here,
    not a property of the settings: this module is compiled, theirs is not, and the planner
    asks for every indicator."""
    return bool(
        settings.min_score is not None
        or settings.min_confidence is not None
        or settings.labels_include
        or settings.labels_exclude
        or settings.indicator_types
    )


def filtered_out(indicator: Indicator, settings: PolicySettings) -> Withheld | None:
    """None when ``indicator`` passes the export filters, else the first one it fails. A value
    a filter needs but the indicator lacks (no score, no confidence, no main observable type)
    fails it: what cannot be shown to pass is not exported."""
    if settings.min_score is not None:
        score = opencti_score(indicator)
        if score is None or score < settings.min_score:
            shown = "no score" if score is None else f"score {score}"
            return Withheld("min_score", f"{shown}, below min_score {settings.min_score}")
    if settings.min_confidence is not None:
        confidence = indicator.confidence
        if confidence is None or confidence < settings.min_confidence:
            shown = "no confidence" if confidence is None else f"confidence {confidence}"
            return Withheld(
                "min_confidence", f"{shown}, below min_confidence {settings.min_confidence}"
            )
    if settings.labels_exclude or settings.labels_include:
        carried = {label.lower() for label in indicator.labels}
        excluded = carried & settings.labels_exclude
        if excluded:
            return Withheld("labels", f"label {min(excluded)!r} is in labels_exclude")
        if settings.labels_include and not carried & settings.labels_include:
            return Withheld("labels", "carries none of the labels in labels_include")
    if settings.indicator_types:
        main = main_observable_type(indicator)
        canonical = canonical_observable_type(main) if main is not None else None
        if canonical not in settings.indicator_types:
            shown = f"main observable type {main[:40]!r}" if main else "no main observable type"
            return Withheld("indicator_type", f"{shown} is not in indicator_types")
    return None


def opencti_score(indicator: Indicator) -> int | None:
    """OpenCTI's score: from the extension (stream), else the x_opencti_ property."""
    ext = indicator.extensions.opencti
    if ext is not None and ext.score is not None:
        return ext.score
    return indicator.x_opencti_score


def main_observable_type(indicator: Indicator) -> str | None:
    """OpenCTI's main observable type: from the extension (stream), else the x_opencti_
    property."""
    ext = indicator.extensions.opencti
    if ext is not None and ext.main_observable_type is not None:
        return ext.main_observable_type
    return indicator.x_opencti_main_observable_type


def detection_flag(indicator: Indicator) -> bool:
    """OpenCTI's detection flag: from the extension (stream), else the x_opencti_ property; a
    flag that spells no boolean is not set."""
    ext = indicator.extensions.opencti
    if ext is not None and ext.detection is not None:
        return truth(ext.detection) is True
    return truth(indicator.x_opencti_detection) is True
