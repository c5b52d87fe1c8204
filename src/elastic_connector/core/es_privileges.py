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


class Need(enum.Enum):
    """When a privilege is needed."""

    ALWAYS = "always"
    SETUP = "setup"
    """Only without ``reduced_privileges`` (the connector sets the index up itself)."""
    SIGHTINGS = "ecs"
    """Only in the ``ecs`` mode (alerts are read to create sightings)."""


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
)

_ALERTS_ALIAS_PREFIX: Final = ".alerts-"
_INTERNAL_PREFIX: Final = ".internal"


def required(*, setup: bool, sightings: bool) -> tuple[Requirement, ...]:
    """The rows a deployment needs: ``setup`` without reduced privileges, ``sightings`` in the
    ``ecs`` mode."""
    return tuple(
        r
        for r in REQUIREMENTS
        if r.need is Need.ALWAYS
        or (r.need is Need.SETUP and setup)
        or (r.need is Need.SIGHTINGS and sightings)
    )


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


def target_names(target: Target, index: str, alerts_index: str | None) -> tuple[str, ...]:
    """The index names (or patterns) a row's privilege must cover; () for the cluster."""
    if target is Target.INDICATORS:
        return (index, f"{index}-*")
    if alerts_index is None or target is Target.CLUSTER:
        return ()
    if target is Target.ALERTS:
        return _names(alerts_index)
    return alert_backing_patterns(alerts_index)


def role(index: str, alerts_index: str | None, *, setup: bool) -> dict[str, object]:
    """The role descriptor (``cluster`` and ``indices``) holding exactly ``required`` — what
    the documentation shows as JSON. Targets needing the same privileges share one entry.
    ``alerts_index=None``: no sightings."""
    rows = required(setup=setup, sightings=alerts_index is not None)
    cluster = [r.privilege for r in rows if r.target is Target.CLUSTER]
    per_target: dict[Target, list[str]] = {}
    for row in rows:
        if row.target is not Target.CLUSTER:
            privileges = per_target.setdefault(row.target, [])
            if row.privilege not in privileges:
                privileges.append(row.privilege)
    entries: list[tuple[list[str], list[str]]] = []
    for target, privileges in per_target.items():
        names = list(target_names(target, index, alerts_index))
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
