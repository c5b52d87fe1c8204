"""Traffic Light Protocol levels and how OpenCTI marking definitions map to them."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Final


class Tlp(enum.Enum):
    """TLP levels as ECS writes them (``threat.indicator.marking.tlp``): upper case, no prefix.

    ``WHITE`` (TLP 1.0) and ``CLEAR`` (TLP 2.0) are the same level; both are kept so the value
    written is the one the marking used.
    """

    WHITE = "WHITE"
    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"

    @property
    def rank(self) -> int:
        """How restrictive the level is: 0 for CLEAR/WHITE up to 4 for RED (``rank_of``)."""
        return rank_of(self)

    @property
    def label(self) -> str:
        """The OpenCTI / config spelling, ``TLP:AMBER+STRICT``."""
        return f"TLP:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Tlp | None:
        """``TLP:amber``, ``amber``, ``TLP: AMBER+STRICT``, ``tlp-red``... case-insensitive;
        None if ``text`` is not exactly one level (``TLP:RED-INTERNAL`` is not)."""
        name = _PREFIX.sub("", text.strip().upper(), count=1).strip()
        return _BY_VALUE.get(name)


_PREFIX: Final = re.compile(r"^TLP\s*[:_ -]?")
_BY_VALUE: Final[Mapping[str, Tlp]] = {level.value: level for level in Tlp}

# Keyed by member name: an Enum member's hash is a Python-level call (``Enum.__hash__``), a
# name's is cached, and ranks are read for every marking of every indicator.
_RANK: Final[Mapping[str, int]] = {
    Tlp.WHITE.name: 0,
    Tlp.CLEAR.name: 0,
    Tlp.GREEN.name: 1,
    Tlp.AMBER.name: 2,
    Tlp.AMBER_STRICT.name: 3,
    Tlp.RED.name: 4,
}

STANDARD_MARKINGS: Final[Mapping[str, Tlp]] = {
    # STIX 2.x TLP 1.0 marking definitions; OpenCTI uses the same ids for its TLP markings
    # (pycti MarkingDefinition.generate_id: CLEAR and WHITE share the WHITE id).
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": Tlp.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": Tlp.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": Tlp.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": Tlp.RED,
    # OpenCTI's fixed id for TLP:AMBER+STRICT.
    "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37": Tlp.AMBER_STRICT,
    # OASIS TLP 2.0 marking definitions (extension 60a3c5c5-0d10-413e-aab3-9e08dde9e88d).
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": Tlp.CLEAR,
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": Tlp.GREEN,
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": Tlp.AMBER,
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": Tlp.AMBER_STRICT,
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": Tlp.RED,
}


def rank_of(level: Tlp) -> int:
    """``level.rank``, which the policy reads for every indicator: compiled code calls this
    function directly, but calls a property through the attribute lookup of Python."""
    return _RANK[level._name_]


def strictest(levels: Iterable[Tlp]) -> Tlp | None:
    """The most restrictive level among ``levels`` (None when there is none)."""
    best: Tlp | None = None
    for level in levels:
        if best is None or rank_of(level) > rank_of(best):
            best = level
    return best
