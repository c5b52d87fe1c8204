"""What the connector's Elasticsearch credentials must hold, as one table.

``elastic-connector check`` asks Elasticsearch for exactly these rows (``_has_privileges``) and
words a missing one with the row's purpose; ``docs/elasticsearch-privileges.md`` shows the same
rows, in the same order, and the two role descriptors built from them (``role``);
``tests/test_privileges_docs.py`` keeps the page and this table equal line by line.

Why each row is there, in Elasticsearch's terms (``IndexPrivilege.java``,
``ClusterPrivilegeResolver.java``):

* ``index`` grants ``indices:data/write/index*``, ``bulk*`` and ``update*`` (so ``_bulk`` index
  items and ``_update_by_query``); ``delete`` grants ``indices:data/write/delete*`` and
  ``bulk*`` (``_bulk`` delete items and ``_delete_by_query``). ``write`` holds both.
* ``read`` grants ``indices:data/read/*``: the search inside every by-query request, opening a
  point in time on the alerts and searching through it. A point in time keeps the *concrete*
  index names, so the search through it is authorized on the backing indices, not the alias.
* ``view_index_metadata``: ``_resolve/index``, ``_alias``, ``HEAD /<index>``, ``_mapping``.
* Setup only: ``manage_index_templates`` (cluster; ``indices:admin/index_template/*``),
  ``create_index`` (``indices:admin/create``) and ``manage`` (``indices:admin/*``: the write alias,
  which Elasticsearch authorizes on both the index and the alias, and ``PUT _mapping``).
"""

from __future__ import annotations

import enum
from typing import Final

import msgspec

__all__ = [
    "REQUIREMENTS",
    "Need",
    "Requirement",
    "Target",
    "alert_backing_patterns",
    "required",
    "role",
    "target_names",
]


class Target(enum.Enum):
    """Where a privilege is needed."""

    CLUSTER = "cluster"
    INDICATORS = "indicators"
    """The indicator index name (an alias after setup) and its backing indices ``<index>-*``."""
    ALERTS = "alerts"
    """``sightings.alerts_index`` (an alias pattern in 8.x/9.x)."""
    ALERT_BACKING = "alert backing indices"
    """The concrete indices behind the alerts alias (``.internal.alerts-security.alerts-*``)."""
    LOOKUP = "lookup index"
    """``output.lookup.index``: one concrete index (ES|QL joins do not go through aliases)."""
    DEAD_LETTERS = "dead-letter index"
    """``output.elasticsearch.dead_letter_index`` (an alias after setup) and ``<name>-*``."""


class Need(enum.Enum):
    """When a privilege is needed."""

    ALWAYS = "always"
    SETUP = "setup"
    """Only without ``reduced_privileges`` (the connector sets the index up itself)."""
    SIGHTINGS = "ecs"
    """Only in the ``ecs`` mode (alerts are read to create sightings)."""
    LOOKUP = "lookup"
    """Only with ``output.lookup.index``."""
    LOOKUP_SETUP = "lookup setup"
    """With ``output.lookup.index`` and without ``reduced_privileges``."""
    DEAD_LETTERS = "dead letters"
    """Only with ``output.elasticsearch.dead_letter_index``."""
    DEAD_LETTERS_SETUP = "dead letters setup"
    """With ``output.elasticsearch.dead_letter_index`` and without ``reduced_privileges``."""


class Requirement(msgspec.Struct, frozen=True):
    privilege: str
    target: Target
    need: Need
    purpose: str
    """What it is needed for; completes "needed to ..."."""


REQUIREMENTS: Final[tuple[Requirement, ...]] = (
    Requirement(
        "index",
        Target.INDICATORS,
        Need.ALWAYS,
        "write indicators (_bulk) and refresh their @timestamp (_update_by_query)",
    ),
    Requirement(
        "delete",
        Target.INDICATORS,
        Need.ALWAYS,
        "delete revoked, merged and expired indicators (_bulk, _delete_by_query)",
    ),
    Requirement(
        "read",
        Target.INDICATORS,
        Need.ALWAYS,
        "find expired and stale indicators (the search inside _delete_by_query and "
        "_update_by_query); read the index to reconcile it (_pit, _search, _mget)",
    ),
    Requirement(
        "view_index_metadata",
        Target.INDICATORS,
        Need.ALWAYS,
        "check what the index is at start (_resolve/index, _alias, _mapping)",
    ),
    Requirement(
        "manage_index_templates",
        Target.CLUSTER,
        Need.SETUP,
        "install the index template during setup (_index_template)",
    ),
    Requirement(
        "create_index",
        Target.INDICATORS,
        Need.SETUP,
        "create the first index during setup",
    ),
    Requirement(
        "manage",
        Target.INDICATORS,
        Need.SETUP,
        "add the write alias and update mappings during setup (_alias, _mapping)",
    ),
    Requirement(
        "read",
        Target.ALERTS,
        Need.SIGHTINGS,
        "open a point in time on the detection alerts (_pit)",
    ),
    Requirement(
        "read",
        Target.ALERT_BACKING,
        Need.SIGHTINGS,
        "search the alerts through that point in time, which names the backing indices (_search)",
    ),
    Requirement(
        "read",
        Target.INDICATORS,
        Need.LOOKUP,
        "read stored indicators back to find the lookup rows an update removes (_mget)",
    ),
    Requirement("index", Target.LOOKUP, Need.LOOKUP, "write the lookup rows (_bulk)"),
    Requirement(
        "delete",
        Target.LOOKUP,
        Need.LOOKUP,
        "delete the rows of changed, removed and expired indicators (_bulk, _delete_by_query)",
    ),
    Requirement(
        "read",
        Target.LOOKUP,
        Need.LOOKUP,
        "find the rows of expired indicators (the search inside _delete_by_query)",
    ),
    Requirement(
        "view_index_metadata",
        Target.LOOKUP,
        Need.LOOKUP,
        "check the lookup index's mode and mapping at start (_resolve/index, _settings, _mapping)",
    ),
    Requirement("create_index", Target.LOOKUP, Need.LOOKUP_SETUP, "create the lookup index"),
    Requirement(
        "manage", Target.LOOKUP, Need.LOOKUP_SETUP, "update the lookup index's mapping (_mapping)"
    ),
    Requirement("index", Target.DEAD_LETTERS, Need.DEAD_LETTERS, "write dead letters (_bulk)"),
    Requirement(
        "view_index_metadata",
        Target.DEAD_LETTERS,
        Need.DEAD_LETTERS,
        "check what the dead-letter index is at start (_resolve/index, _alias, _mapping)",
    ),
    Requirement(
        "create_index",
        Target.DEAD_LETTERS,
        Need.DEAD_LETTERS_SETUP,
        "create the first dead-letter index during setup",
    ),
    Requirement(
        "manage",
        Target.DEAD_LETTERS,
        Need.DEAD_LETTERS_SETUP,
        "add the dead-letter write alias and update its mapping during setup (_alias, _mapping)",
    ),
)

_ALERTS_ALIAS_PREFIX: Final = ".alerts-"
_INTERNAL_PREFIX: Final = ".internal"


def required(
    *, setup: bool, sightings: bool, lookup: bool = False, dead_letters: bool = False
) -> tuple[Requirement, ...]:
    """The rows a deployment needs: ``setup`` without reduced privileges, ``sightings`` in the
    ``ecs`` mode, ``lookup`` and ``dead_letters`` when those indices are configured."""
    wanted = {
        Need.ALWAYS: True,
        Need.SETUP: setup,
        Need.SIGHTINGS: sightings,
        Need.LOOKUP: lookup,
        Need.LOOKUP_SETUP: lookup and setup,
        Need.DEAD_LETTERS: dead_letters,
        Need.DEAD_LETTERS_SETUP: dead_letters and setup,
    }
    return tuple(r for r in REQUIREMENTS if wanted[r.need])


def alert_backing_patterns(alerts_index: str) -> tuple[str, ...]:
    """The backing-index patterns of Kibana's alert aliases named by ``alerts_index``.

    Kibana 8.x/9.x writes ``.alerts-security.alerts-<space>`` over
    ``.internal.alerts-security.alerts-<space>-00000N``: the backing name is the alias name
    with ``.internal`` in front. Names of another shape have no known backing pattern (the
    ``check`` command still tries a point in time on them).
    """
    return tuple(
        f"{_INTERNAL_PREFIX}{name}"
        for name in _names(alerts_index)
        if name.startswith(_ALERTS_ALIAS_PREFIX)
    )


def target_names(
    target: Target,
    index: str,
    alerts_index: str | None,
    lookup_index: str | None = None,
    dead_letter_index: str | None = None,
) -> tuple[str, ...]:
    """The index names (or patterns) a row's privilege must cover; () for the cluster."""
    if target is Target.INDICATORS:
        return (index, f"{index}-*")
    if target is Target.LOOKUP:
        return () if lookup_index is None else (lookup_index,)
    if target is Target.DEAD_LETTERS:
        return () if dead_letter_index is None else (dead_letter_index, f"{dead_letter_index}-*")
    if alerts_index is None or target is Target.CLUSTER:
        return ()
    if target is Target.ALERTS:
        return _names(alerts_index)
    return alert_backing_patterns(alerts_index)


def role(
    index: str,
    alerts_index: str | None,
    *,
    setup: bool,
    lookup_index: str | None = None,
    dead_letter_index: str | None = None,
) -> dict[str, object]:
    """The role descriptor (``cluster`` and ``indices``) holding exactly ``required`` — what
    the documentation shows as JSON. Targets needing the same privileges share one entry.
    ``alerts_index=None``: no sightings; ``lookup_index``/``dead_letter_index``: those
    outputs."""
    rows = required(
        setup=setup,
        sightings=alerts_index is not None,
        lookup=lookup_index is not None,
        dead_letters=dead_letter_index is not None,
    )
    cluster = [r.privilege for r in rows if r.target is Target.CLUSTER]
    per_target: dict[Target, list[str]] = {}
    for row in rows:
        if row.target is not Target.CLUSTER:
            privileges = per_target.setdefault(row.target, [])
            if row.privilege not in privileges:
                privileges.append(row.privilege)
    entries: list[tuple[list[str], list[str]]] = []
    for target, privileges in per_target.items():
        names = list(target_names(target, index, alerts_index, lookup_index, dead_letter_index))
        same = next((entry for entry in entries if entry[1] == privileges), None)
        if same is not None:
            same[0].extend(names)
        elif names:
            entries.append((names, privileges))
    return {
        "cluster": cluster,
        "indices": [{"names": names, "privileges": privs} for names, privs in entries],
    }


def _names(expression: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in expression.split(",") if n.strip())
