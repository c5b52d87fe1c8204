"""Getting the ES|QL lookup index (``output.lookup.index``) ready.

A lookup index is a plain index with ``index.mode: lookup`` (one shard; Elasticsearch 8.18 and
later). ``LOOKUP JOIN`` names it directly: in 8.18 and 9.0 it cannot be an alias, so unlike the
indicator index there is no ``-000001`` behind an alias: the index has the configured name.

``ensure_lookup_index`` creates it when missing (unless the caller may not), brings its mapping
up to date (fingerprinted in ``_meta``, as the indicator index's), and says when an existing
index is not in lookup mode: rows are still written (they stay exact), but ``LOOKUP JOIN``
refuses such an index until it is recreated in lookup mode.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import msgspec
from elastic_transport import ApiError
from elasticsearch import Elasticsearch

from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS, LOOKUP_SETTINGS
from elastic_connector.shell.elastic import describe_error
from elastic_connector.shell.index_setup import (
    MANAGED_BY,
    SetupError,
    TargetKind,
    fingerprint,
    index_name_problem,
    target_kind,
)

__all__ = ["LookupSetup", "ensure_lookup_index"]

log = logging.getLogger(__name__)

_MIN_VERSION: Final = "8.18"


class LookupSetup(msgspec.Struct, frozen=True, kw_only=True):
    index: str
    created: bool = False
    mapping_updated: bool = False
    lookup_mode: bool = True
    """False: an existing index in another mode (LOOKUP JOIN refuses it)."""
    notes: tuple[str, ...] = ()


def _mappings() -> dict[str, object]:
    return {
        **LOOKUP_MAPPINGS,
        "_meta": {"managed_by": MANAGED_BY, "mapping_fingerprint": fingerprint(LOOKUP_MAPPINGS)},
    }


def _as_dict(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def ensure_lookup_index(
    client: Elasticsearch, name: str, *, main_index: str, create: bool
) -> LookupSetup:
    """Make ``name`` ready for lookup rows; safe at every start. ``create=False`` (reduced
    privileges) only checks. Raises ``SetupError`` when a human has to act."""
    problem = index_name_problem(name)
    if problem is not None:
        raise SetupError(f"output.lookup.index: {problem}")
    if name == main_index:
        raise SetupError(
            f"output.lookup.index {name} is the indicator index: choose another name "
            "(one row per value is not one document per indicator)"
        )
    kind = target_kind(client, name)
    if kind is TargetKind.DATA_STREAM:
        raise SetupError(f"output.lookup.index {name} is a data stream; a lookup index is needed")
    if kind is TargetKind.MISSING:
        if not create:
            raise SetupError(
                f"output.lookup.index {name} does not exist and reduced_privileges is on: run "
                "`elastic-connector setup` once with a user allowed to create it"
            )
        return _create(client, name)
    return _update(client, name, create=create)


def _create(client: Elasticsearch, name: str) -> LookupSetup:
    try:
        client.indices.create(index=name, settings=LOOKUP_SETTINGS, mappings=_mappings())
    except ApiError as exc:
        if exc.meta.status != 400:
            raise
        reason = describe_error(exc)
        if "lookup" in reason.lower() or "index.mode" in reason.lower():
            raise SetupError(
                f"Elasticsearch refused to create the lookup index {name} with index.mode "
                f"lookup, which needs Elasticsearch {_MIN_VERSION} or later: {reason}"
            ) from exc
        if "resource_already_exists" in reason:
            return _update(client, name, create=True)
        raise SetupError(
            f"Elasticsearch refused to create the lookup index {name}: {reason}"
        ) from exc
    log.info("created ES|QL lookup index %s", name)
    return LookupSetup(index=name, created=True)


def _update(client: Elasticsearch, name: str, *, create: bool) -> LookupSetup:
    notes: list[str] = []
    settings = _as_dict(client.indices.get_settings(index=name).body)
    modes = {
        str(_as_dict(_as_dict(_as_dict(body).get("settings")).get("index")).get("mode", "standard"))
        for body in settings.values()
    }
    lookup_mode = modes == {"lookup"}
    if not lookup_mode:
        notes.append(
            f"{name} is not a lookup-mode index (index.mode: {', '.join(sorted(modes))}): its "
            "rows are kept up to date, but ES|QL LOOKUP JOIN refuses it; delete it and let the "
            "connector (or `elastic-connector setup`) create it again (Elasticsearch "
            f"{_MIN_VERSION}+)"
        )
    wanted = _mappings()
    current = _as_dict(client.indices.get_mapping(index=name).body)
    prints = {
        str(
            _as_dict(_as_dict(_as_dict(body).get("mappings")).get("_meta")).get(
                "mapping_fingerprint"
            )
        )
        for body in current.values()
    }
    updated = False
    if prints != {_as_dict(wanted["_meta"])["mapping_fingerprint"]}:
        if not create:
            notes.append(f"the mapping of {name} is older than this version's: run setup")
        else:
            try:
                client.indices.put_mapping(index=name, body=wanted)
                updated = True
            except ApiError as exc:
                if exc.meta.status != 400:
                    raise
                notes.append(f"the mapping of {name} could not be updated: {describe_error(exc)}")
    for note in notes:
        log.warning("%s", note)
    return LookupSetup(
        index=name, mapping_updated=updated, lookup_mode=lookup_mode, notes=tuple(notes)
    )
