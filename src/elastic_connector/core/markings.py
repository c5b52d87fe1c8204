"""Which TLP level an object carries, from its ``object_marking_refs``.

The standard TLP marking ids are known without any lookup (``tlp.STANDARD_MARKINGS``); every
other marking definition (custom TLP definitions, PAP, statements) is learnt from the
marking-definition objects seen on the stream or read through the API, and passed in as
``known``: its TLP level, or None for a marking that is not a TLP marking.

A reference to a marking that is in neither is *unknown*: it could be a custom TLP:RED, so the
object is withheld (fail closed) until the marking is known — the shell re-reads the marking
definitions when that happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

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


class MarkingResolution(msgspec.Struct, frozen=True):
    """The strictest TLP among an object's markings (None: no TLP marking), and the referenced
    marking ids that are not known at all."""

    tlp: Tlp | None
    unknown: tuple[str, ...] = ()


def resolve_markings(refs: Iterable[str], known: Mapping[str, Tlp | None]) -> MarkingResolution:
    """Resolve ``object_marking_refs`` against the standard ids and ``known``."""
    levels: list[Tlp] = []
    unknown: list[str] = []
    for ref in refs:
        level = STANDARD_MARKINGS.get(ref)
        if level is None:
            if ref not in known:
                unknown.append(ref)
                continue
            level = known[ref]
        if level is not None:
            levels.append(level)
    return MarkingResolution(strictest(levels), tuple(unknown))


def resolve_tlp(refs: Iterable[str], known: Mapping[str, Tlp | None]) -> Tlp | None:
    """The strictest TLP among the object's known markings; None when none is a TLP marking."""
    return resolve_markings(refs, known).tlp
