"""An indicator's STIX confidence (0-100) as the word ECS ``threat.indicator.confidence`` takes."""

from __future__ import annotations


def confidence_level(confidence: int | None) -> str:
    """STIX 2.1 appendix A None/Low/Med/High scale, as ECS ``threat.indicator.confidence``."""
    if confidence is None or type(confidence) is not int:
        return "Not Specified"
    if confidence == 0:
        return "None"
    if 1 <= confidence <= 29:
        return "Low"
    if 30 <= confidence <= 69:
        return "Medium"
    if 70 <= confidence <= 100:
        return "High"
    return "Not Specified"
