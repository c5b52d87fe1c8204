"""Which TLP level an object carries, from its ``object_marking_refs``.

The standard TLP marking ids are known without any lookup (``tlp.STANDARD_MARKINGS``); any other
TLP marking (a platform with custom TLP definitions) is learnt from the marking-definition
objects seen on the stream or read once through the API, and passed in as ``known``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from elastic_connector.core.stix import MarkingDefinition
from elastic_connector.core.tlp import STANDARD_MARKINGS, Tlp, strictest


def tlp_of_marking(marking: MarkingDefinition) -> Tlp | None:
    """The TLP level a marking definition stands for, or None when it is not a TLP marking
    (PAP, statements, custom classifications)."""
    definition = marking.definition
    if isinstance(definition, dict) and "tlp" in definition:
        # STIX 2.0 form: {"definition_type": "tlp", "definition": {"tlp": "amber"}}
        return Tlp.parse(definition["tlp"])
    kind = (marking.definition_type or "").strip().lower()
    if kind not in ("tlp", ""):
        return None
    for text in (marking.name, definition if isinstance(definition, str) else None):
        if text and text.strip().upper().startswith("TLP"):
            level = Tlp.parse(text)
            if level is not None:
                return level
    return None


def resolve_tlp(refs: Iterable[str], known: Mapping[str, Tlp]) -> Tlp | None:
    """The strictest TLP among the object's markings; None when none of them is a TLP marking."""
    levels = []
    for ref in refs:
        level = STANDARD_MARKINGS.get(ref) or known.get(ref)
        if level is not None:
            levels.append(level)
    return strictest(levels)
