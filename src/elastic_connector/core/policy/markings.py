"""Which TLP level an object carries, from its ``object_marking_refs``.

The standard TLP marking ids are known without any lookup (``tlp.STANDARD_MARKINGS``); every
other marking definition (custom TLP definitions, PAP, statements) is learnt from the
marking-definition objects seen on the stream or read through the API, and passed in as
``known``: its TLP level, None for a marking that is not a TLP marking, or ``UNREADABLE``.

Nothing here ever *assumes* a marking is harmless. A reference to a marking that is in neither
is *unknown* (it could be a custom TLP:RED): the object is withheld until the marking is known,
and the shell re-reads the marking definitions. A marking that is (or may be) a TLP marking but
whose level cannot be read is *unreadable*, and withheld for good: fail closed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final, TypeAlias

from elastic_connector.core.policy.settings import MarkingResolution
from elastic_connector.core.policy.tlp import STANDARD_MARKINGS, Tlp, strictest
from elastic_connector.core.stix import MarkingDefinition


class Unreadable(enum.Enum):
    """A marking that is, or may be, a TLP marking, whose level cannot be read."""

    LEVEL = "unreadable"


UNREADABLE: Final = Unreadable.LEVEL

MarkingLevel: TypeAlias = Tlp | Unreadable | None
"""What a marking definition stands for: a TLP level, ``UNREADABLE``, or None (not TLP)."""


class _Role(enum.Enum):
    CLAIM = "claim"
    NAME = "name"
    TYPE = "type"


def _says_tlp(text: str) -> bool:
    return text.strip()[:3].upper() == "TLP"


def _known_shape(marking: MarkingDefinition) -> bool:
    """Texts where producers write text, and ``definition`` as text or a dict of texts."""
    texts = (
        marking.name,
        marking.definition_type,
        marking.x_opencti_definition_type,
        marking.x_opencti_definition,
    )
    if any(value is not None and not isinstance(value, str) for value in texts):
        return False
    definition = marking.definition
    if isinstance(definition, dict):
        return all(isinstance(value, str) for value in definition.values())
    return definition is None or isinstance(definition, str)


def tlp_of_marking(marking: MarkingDefinition) -> MarkingLevel:
    """The TLP level a marking definition stands for, None when it is provably not a TLP marking
    (a PAP marking, a statement, another named classification), ``UNREADABLE`` otherwise.

    Every shape the platform and STIX 2.0/2.1 use is read, in any case, with or without the
    ``TLP:`` prefix: ``name`` (OpenCTI 5.x+: ``TLP:RED``), ``definition`` as ``{"tlp": "red"}``
    (STIX 2.0, older OpenCTI; any key case) or as text (OpenCTI's GraphQL records),
    ``x_opencti_definition``/``x_opencti_definition_type`` (pycti exports) and the OASIS TLP 2.0
    extension (``tlp_2_0``). The marking is a TLP marking when any of its types or texts says
    so; its level is then the strictest level read, and it is ``UNREADABLE`` when no level reads
    or any text claiming TLP does not (``TLP:RED-INTERNAL``, ``TLP:TEST``). A marking with no
    type at all (no ``definition_type``, no ``TYPE:`` name prefix) cannot be told from a TLP
    marking, nor can one whose fields have types no producer writes: ``UNREADABLE`` as well.
    """
    if not _known_shape(marking):
        return UNREADABLE  # a shape no producer writes: nothing can be proven from it
    kinds: list[str] = []
    # (value, how it counts): a CLAIM must read as a level; a NAME must when it starts with
    # "TLP"; a TYPE counts only when it reads as one ("TLP:RED" as a type is still RED).
    texts: list[tuple[object, _Role]] = []
    for kind in (marking.definition_type, marking.x_opencti_definition_type):
        if isinstance(kind, str) and kind.strip():
            kinds.append(kind)
            texts.append((kind, _Role.TYPE))
    definition = marking.definition
    if isinstance(definition, dict):
        for key, value in definition.items():
            if key.strip():
                kinds.append(key)
            texts.append((value, _Role.CLAIM if _says_tlp(key) else _Role.NAME))
    elif definition is not None:
        texts.append((definition, _Role.CLAIM))
    if marking.x_opencti_definition is not None:
        texts.append((marking.x_opencti_definition, _Role.CLAIM))
    tlp2 = marking.extensions.tlp2
    if tlp2 is not None:
        kinds.append("TLP")
        texts.append((tlp2.tlp_2_0, _Role.CLAIM))
    name = marking.name
    if isinstance(name, str):
        prefix, colon, _ = name.partition(":")
        if colon and prefix.strip():
            kinds.append(prefix)
        texts.append((name, _Role.NAME))
    is_tlp = any(_says_tlp(kind) for kind in kinds) or any(
        isinstance(text, str) and _says_tlp(text) for text, _ in texts
    )
    if not is_tlp:
        return None if kinds else UNREADABLE
    levels: list[Tlp] = []
    for text, role in texts:
        level = Tlp.parse(text) if isinstance(text, str) else None
        if level is not None:
            levels.append(level)
        elif role is _Role.CLAIM or (
            role is _Role.NAME and isinstance(text, str) and _says_tlp(text)
        ):
            return UNREADABLE
    return strictest(levels) or UNREADABLE


# What nearly every object resolves to, built once (resolutions are immutable): no marking, or
# one standard TLP marking.
_UNMARKED: Final = MarkingResolution(None)
_LONE_STANDARD: Final[dict[str, MarkingResolution]] = {
    ref: MarkingResolution(level) for ref, level in STANDARD_MARKINGS.items()
}


def resolve_markings(refs: Iterable[str], known: Mapping[str, MarkingLevel]) -> MarkingResolution:
    """Resolve ``object_marking_refs`` against the standard ids and ``known``."""
    if isinstance(refs, tuple):  # what decoded objects hold
        if not refs:
            return _UNMARKED
        if len(refs) == 1:
            lone = _LONE_STANDARD.get(refs[0])
            if lone is not None:
                return lone
    levels: list[Tlp] = []
    unknown: list[str] = []
    unreadable: list[str] = []
    for ref in refs:
        level: MarkingLevel = STANDARD_MARKINGS.get(ref)
        if level is None:
            if ref not in known:
                unknown.append(ref)
                continue
            level = known[ref]
        if level is UNREADABLE:
            unreadable.append(ref)
        elif level is not None:
            levels.append(level)
    return MarkingResolution(strictest(levels), tuple(unknown), tuple(unreadable))


def resolve_tlp(refs: Iterable[str], known: Mapping[str, MarkingLevel]) -> Tlp | None:
    """The strictest TLP among the object's known markings; None when none is a TLP marking."""
    return resolve_markings(refs, known).tlp
