"""Getting the indicator index ready, checking the connector's privileges, and index upkeep.

Layout created by ``ensure_setup`` for an index name ``<index>``:

* a composable index template ``<index>@elastic-connector`` (priority 300, above the built-in
  ``logs`` template's 100) for ``<index>-*`` and ``<index>`` holding the given mappings. It is
  not a data-stream template: indicators are replaced and deleted in place by ``_id``, which
  data streams (append-only) do not allow;
* a concrete index ``<index>-000001`` with ``<index>`` as its write alias, so a later rollover
  or reindex can move the data without the connector's configuration changing.

An existing plain index called ``<index>`` is used as it is (its mapping is completed when that
is compatible). A data stream called ``<index>`` is refused with an explanation.

Idempotence rests on fingerprints: the template's ``_meta`` and each index mapping's ``_meta``
carry a hash of what the connector asked for, so a second run compares hashes instead of
second-guessing how Elasticsearch normalises mappings and settings.

Upkeep: ``delete_expired`` removes expired indicators (``core.policy.lifetime``);
``touch_indicators`` moves ``@timestamp`` of live indicators forward so Kibana's default
indicator window (``now-30d``) keeps matching them.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from elastic_transport import ApiError
from elasticsearch import Elasticsearch

from elastic_connector.core.elastic.privileges import Target, required, target_names
from elastic_connector.core.policy.lifetime import VALID_UNTIL_FIELD, expired_query
from elastic_connector.shell.elastic import PermanentElasticsearchError, describe_error

__all__ = [
    "FIRST_INDEX_SUFFIX",
    "MANAGED_BY",
    "TEMPLATE_PRIORITY",
    "VALID_UNTIL_FIELD",
    "PrivilegeCheck",
    "SetupError",
    "SetupReport",
    "TargetKind",
    "TouchResult",
    "build_template",
    "check_privileges",
    "delete_expired",
    "ensure_setup",
    "fingerprint",
    "index_name_problem",
    "target_kind",
    "template_name",
    "touch_indicators",
]

log = logging.getLogger(__name__)

MANAGED_BY: Final = "elastic-connector"
TEMPLATE_PRIORITY: Final = 300
"""Above the built-in ``logs`` template (100), which would make ``logs-*-*`` a data stream."""
FIRST_INDEX_SUFFIX: Final = "-000001"

TIMESTAMP_FIELD: Final = "@timestamp"
SWEEP_REQUEST_TIMEOUT: Final = 600.0
"""delete/update-by-query run synchronously; a large index needs more than a search."""


def _by_query_client(client: Elasticsearch, request_timeout: float) -> Elasticsearch:
    """``client`` for one long by-query request: a long timeout and no transport retries.

    A by-query request that times out on the client keeps running on the server as a task;
    a retry would start a second one over the same documents. The next sweep is the retry.
    (``wait_for_completion=false`` + the tasks API would avoid the long request, but reading
    a task back needs the ``monitor`` cluster privilege, which the connector does not ask for.)
    """
    return client.options(request_timeout=request_timeout, max_retries=0, retry_on_timeout=False)


# Characters Elasticsearch forbids in index names (plus the wildcard and the comma, which
# would make the name a pattern or a list).
_FORBIDDEN_CHARS: Final = frozenset('\\/*?"<>| ,#:')


class TargetKind(enum.Enum):
    """What the configured index name currently is in the cluster."""

    ALIAS = "alias"
    INDEX = "index"
    DATA_STREAM = "data_stream"
    MISSING = "missing"


class SetupError(PermanentElasticsearchError):
    """The index cannot be made ready without a human decision; ``message`` says which."""


class SetupReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``ensure_setup`` found and did."""

    index: str
    """The name the connector writes to (an alias, or a plain index used as is)."""
    kind: TargetKind
    """``ALIAS`` or ``INDEX`` after setup."""
    template: str
    template_changed: bool = False
    created_index: str | None = None
    alias_added: bool = False
    mappings_updated: tuple[str, ...] = ()
    incompatible: tuple[str, ...] = ()
    """One sentence per concrete index whose mapping could not take the new one."""
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether this run modified anything in the cluster."""
        return (
            self.template_changed
            or self.created_index is not None
            or self.alias_added
            or bool(self.mappings_updated)
        )

    @property
    def require_alias(self) -> bool:
        """Whether bulk writes should insist the target is an alias (no silent auto-create)."""
        return self.kind is TargetKind.ALIAS


class PrivilegeCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Result of ``check_privileges``."""

    verified: bool
    """False when the cluster offers no way to check (security disabled, compatible server)."""
    missing: tuple[str, ...] = ()
    """One plain sentence per missing privilege."""
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.verified and not self.missing


class TouchResult(msgspec.Struct, frozen=True, kw_only=True):
    """Result of ``touch_indicators``."""

    updated: int
    supported: bool = True
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# Pure helpers


def template_name(index: str) -> str:
    """The connector's index template for ``index``."""
    return f"{index}@{MANAGED_BY}"


def index_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an Elasticsearch index or alias name, or None when it can."""
    if not name:
        return "the index name is empty"
    if name != name.lower():
        return f"index name {name!r} must be lower case"
    if name in (".", ".."):
        return f"index name {name!r} is reserved"
    if name[0] in "-_+":
        return f"index name {name!r} must not start with '-', '_' or '+'"
    bad = sorted({c for c in name if c in _FORBIDDEN_CHARS})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        return f"index name {name!r} contains characters Elasticsearch forbids: {shown}"
    if len(name.encode("utf-8")) > 255 - len(FIRST_INDEX_SUFFIX):
        return f"index name {name!r} is too long (at most {255 - len(FIRST_INDEX_SUFFIX)} bytes)"
    return None


def fingerprint(value: object) -> str:
    """A stable hash of a JSON value (key order does not matter)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _strip_meta(mappings: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in mappings.items() if k != "_meta"}


def _managed_mappings(mappings: Mapping[str, object]) -> dict[str, object]:
    """``mappings`` with the connector's ``_meta`` (ownership and fingerprint) merged in."""
    user_meta = mappings.get("_meta")
    meta: dict[str, object] = dict(user_meta) if isinstance(user_meta, Mapping) else {}
    meta["managed_by"] = MANAGED_BY
    meta["mapping_fingerprint"] = fingerprint(_strip_meta(mappings))
    return {**mappings, "_meta": meta}


def build_template(
    index: str, mappings: Mapping[str, object], settings: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The body of the connector's composable index template for ``index``."""
    managed = _managed_mappings(mappings)
    body: dict[str, object] = {
        "index_patterns": [f"{index}-*", index],
        "priority": TEMPLATE_PRIORITY,
        "template": {"settings": dict(settings or {}), "mappings": managed},
    }
    body["_meta"] = {
        "managed_by": MANAGED_BY,
        "description": "OpenCTI indicators written by elastic-connector (regular index, not a "
        "data stream: documents are updated in place by _id)",
        "fingerprint": fingerprint(
            {
                "index_patterns": body["index_patterns"],
                "priority": TEMPLATE_PRIORITY,
                "settings": dict(settings or {}),
                "mappings": _strip_meta(mappings),
            }
        ),
    }
    return body


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _error_type(exc: ApiError) -> str:
    error = _as_dict(exc.body).get("error")
    return str(_as_dict(error).get("type", "")) if isinstance(error, Mapping) else ""


def _error_reason(exc: ApiError) -> str:
    error = _as_dict(exc.body).get("error")
    if isinstance(error, Mapping):
        return str(error.get("reason", ""))
    return str(error or "")


# ---------------------------------------------------------------------------------------------
# Setup


def ensure_setup(
    client: Elasticsearch,
    *,
    index: str,
    mappings: Mapping[str, object],
    settings: Mapping[str, object] | None = None,
) -> SetupReport:
    """Make ``index`` ready to receive indicators; safe to run at every start.

    Raises ``SetupError`` when a human has to decide (data stream, alias without a write index,
    template or index refused); client errors (connection, 401/403) propagate for
    ``describe_error``. Incompatible mapping changes do not raise: they are listed in
    ``SetupReport.incompatible`` (writes keep working for every field that is compatible).
    """
    problem = index_name_problem(index)
    if problem is not None:
        raise SetupError(problem)

    kind, concrete = _target(client, index)
    if kind is TargetKind.DATA_STREAM:
        raise SetupError(
            f"{index} is a data stream: data streams are append-only, so indicators could not "
            "be updated or deleted in place by _id. Set elasticsearch.index to another name, "
            "or delete the data stream (and the index template that creates it)"
        )

    notes: list[str] = []
    name = template_name(index)
    template_changed = _ensure_template(
        client, index=index, name=name, mappings=mappings, settings=settings, notes=notes
    )

    created: str | None = None
    alias_added = False
    if kind is TargetKind.MISSING:
        created, alias_added, concrete = _create_first_index(client, index, mappings, settings)
        kind = TargetKind.ALIAS
    elif kind is TargetKind.ALIAS:
        _check_write_index(client, index)

    updated, incompatible = _sync_mappings(client, concrete, mappings, skip=created)
    _check_template_wins(client, index, name, mappings, notes)
    report = SetupReport(
        index=index,
        kind=kind,
        template=name,
        template_changed=template_changed,
        created_index=created,
        alias_added=alias_added,
        mappings_updated=tuple(updated),
        incompatible=tuple(incompatible),
        notes=tuple(notes),
    )
    _log_report(report)
    return report


def target_kind(client: Elasticsearch, index: str) -> TargetKind:
    """What ``index`` is now (alias, plain index, data stream or missing), without changing
    anything; with ``reduced_privileges`` the daemon uses it instead of ``ensure_setup`` to pick
    ``BulkWriter(require_alias=...)`` and to refuse a data stream."""
    return _target(client, index)[0]


def _target(client: Elasticsearch, index: str) -> tuple[TargetKind, list[str]]:
    """What ``index`` is, and the concrete indices behind it."""
    try:
        resolved = _as_dict(client.indices.resolve_index(name=index, expand_wildcards="all").body)
    except ApiError as exc:
        if exc.meta.status == 404:
            return TargetKind.MISSING, []
        if exc.meta.status == 400 and "no handler" in _error_reason(exc):
            return _target_without_resolve(client, index)
        raise
    for stream in resolved.get("data_streams", []):
        if _as_dict(stream).get("name") == index:
            backing = _as_dict(stream).get("backing_indices", [])
            return TargetKind.DATA_STREAM, [str(i) for i in backing]
    for alias in resolved.get("aliases", []):
        if _as_dict(alias).get("name") == index:
            return TargetKind.ALIAS, [str(i) for i in _as_dict(alias).get("indices", [])]
    for item in resolved.get("indices", []):
        entry = _as_dict(item)
        if entry.get("name") == index:
            if entry.get("data_stream"):
                return TargetKind.DATA_STREAM, [index]
            return TargetKind.INDEX, [index]
    return TargetKind.MISSING, []


def _target_without_resolve(client: Elasticsearch, index: str) -> tuple[TargetKind, list[str]]:
    # Servers without _resolve/index: aliases and indices are still visible.
    if client.indices.exists_alias(name=index):
        aliases = _as_dict(client.indices.get_alias(name=index).body)
        return TargetKind.ALIAS, sorted(aliases)
    if client.indices.exists(index=index):
        return TargetKind.INDEX, [index]
    return TargetKind.MISSING, []


def _ensure_template(
    client: Elasticsearch,
    *,
    index: str,
    name: str,
    mappings: Mapping[str, object],
    settings: Mapping[str, object] | None,
    notes: list[str],
) -> bool:
    wanted = build_template(index, mappings, settings)
    wanted_meta = _as_dict(wanted["_meta"])
    try:
        existing = _as_dict(client.indices.get_index_template(name=name).body)
    except ApiError as exc:
        if exc.meta.status != 404:
            raise
        existing = {}
    current: dict[str, Any] = {}
    for entry in existing.get("index_templates", []):
        if _as_dict(entry).get("name") == name:
            current = _as_dict(_as_dict(entry).get("index_template"))
    current_meta = _as_dict(current.get("_meta"))
    if current and current_meta.get("fingerprint") == wanted_meta["fingerprint"]:
        return False
    if current and current_meta.get("managed_by") != MANAGED_BY:
        notes.append(f"replaced index template {name}, which elastic-connector had not created")
    try:
        client.indices.put_index_template(
            name=name,
            index_patterns=[f"{index}-*", index],
            priority=TEMPLATE_PRIORITY,
            template=_as_dict(wanted["template"]),
            meta=wanted_meta,
        )
    except ApiError as exc:
        if exc.meta.status in (400, 409):
            raise SetupError(
                f"Elasticsearch refused the index template {name}: {describe_error(exc)}"
            ) from exc
        raise
    return True


def _create_first_index(
    client: Elasticsearch,
    index: str,
    mappings: Mapping[str, object],
    settings: Mapping[str, object] | None,
) -> tuple[str | None, bool, list[str]]:
    """Create ``<index>-000001`` with the write alias; returns (created, alias_added, indices).

    Mappings are also given explicitly so the first index is right even if some other template
    outranks ours (that case is reported as a note by ``_check_template_wins``).
    """
    first = f"{index}{FIRST_INDEX_SUFFIX}"
    try:
        client.indices.create(
            index=first,
            aliases={index: {"is_write_index": True}},
            mappings=_managed_mappings(mappings),
            settings=dict(settings or {}),
        )
        return first, True, [first]
    except ApiError as exc:
        if _error_type(exc) != "resource_already_exists_exception":
            if exc.meta.status == 400:
                raise SetupError(
                    f"Elasticsearch refused to create index {first}: {describe_error(exc)}"
                ) from exc
            raise
    # Another connector instance won the race, or the alias was removed by hand.
    kind, concrete = _target(client, index)
    if kind is TargetKind.ALIAS:
        _check_write_index(client, index)
        return None, False, concrete
    if kind is TargetKind.MISSING:
        client.indices.put_alias(index=first, name=index, is_write_index=True)
        log.warning("index %s existed without its alias %s; alias restored", first, index)
        return None, True, [first]
    raise SetupError(f"{index} changed while setting it up (now a {kind.value}); run setup again")


def _check_write_index(client: Elasticsearch, alias: str) -> None:
    entries = _as_dict(client.indices.get_alias(name=alias).body)
    flags: dict[str, object] = {}
    for concrete, body in entries.items():
        settings = _as_dict(_as_dict(_as_dict(body).get("aliases")).get(alias))
        flags[concrete] = settings.get("is_write_index")
    if any(flag is True for flag in flags.values()):
        return
    if len(flags) == 1 and next(iter(flags.values())) is not False:
        return
    raise SetupError(
        f"alias {alias} has no write index (it points to {', '.join(sorted(flags))}); mark one "
        "of them with is_write_index: true"
    )


def _sync_mappings(
    client: Elasticsearch,
    concrete: Sequence[str],
    mappings: Mapping[str, object],
    *,
    skip: str | None,
) -> tuple[list[str], list[str]]:
    """Bring every concrete index's mapping up to ``mappings`` where it is behind."""
    wanted = _managed_mappings(mappings)
    wanted_print = _as_dict(wanted["_meta"])["mapping_fingerprint"]
    targets = [c for c in concrete if c != skip]
    if not targets:
        return [], []
    current = _as_dict(client.indices.get_mapping(index=",".join(targets)).body)
    updated: list[str] = []
    incompatible: list[str] = []
    for name in targets:
        meta = _as_dict(_as_dict(_as_dict(current.get(name)).get("mappings")).get("_meta"))
        if meta.get("mapping_fingerprint") == wanted_print:
            continue
        try:
            client.indices.put_mapping(index=name, body=dict(wanted))
        except ApiError as exc:
            if exc.meta.status != 400:
                raise
            incompatible.append(
                f"index {name} keeps its old mapping: {_error_reason(exc) or describe_error(exc)}"
                " (the new mapping applies to indices created from now on; roll the alias "
                "over or reindex to use it everywhere)"
            )
            continue
        updated.append(name)
    return updated, incompatible


def _check_template_wins(
    client: Elasticsearch,
    index: str,
    name: str,
    mappings: Mapping[str, object],
    notes: list[str],
) -> None:
    """Note when another template outranks ours for future backing indices."""
    wanted = _as_dict(_managed_mappings(mappings)["_meta"])["mapping_fingerprint"]
    probe = f"{index}-999999"
    try:
        simulated = _as_dict(client.indices.simulate_index_template(name=probe).body)
    except ApiError:
        return  # not every compatible server simulates; the first index is right anyway
    template = _as_dict(simulated.get("template"))
    meta = _as_dict(_as_dict(template.get("mappings")).get("_meta"))
    if meta.get("mapping_fingerprint") != wanted:
        notes.append(
            f"another index template outranks {name} for {index}-* (priority above "
            f"{TEMPLATE_PRIORITY}): indices created by a rollover would not get the connector's "
            "mappings"
        )


def _log_report(report: SetupReport) -> None:
    if report.template_changed:
        log.info("index template %s installed", report.template)
    if report.created_index:
        log.info("created index %s with write alias %s", report.created_index, report.index)
    for name in report.mappings_updated:
        log.info("mapping of %s updated", name)
    for sentence in report.incompatible:
        log.warning("%s", sentence)
    for note in report.notes:
        log.warning("%s", note)


# ---------------------------------------------------------------------------------------------
# Privileges


def _security_unavailable(exc: ApiError) -> bool:
    reason = _error_reason(exc).lower()
    if exc.meta.status in (400, 404, 405) and "no handler" in reason:
        return True
    return "security must be explicitly enabled" in reason or "security is not enabled" in reason


def check_privileges(
    client: Elasticsearch,
    index: str,
    alerts_index: str | None,
    need_setup: bool,
    *,
    lookup_index: str | None = None,
    dead_letter_index: str | None = None,
) -> PrivilegeCheck:
    """Which privileges the connector's credentials lack, as plain sentences.

    Asks for exactly the rows of ``core.elastic.privileges`` (also the table of
    docs/elasticsearch-privileges.md) and says one sentence per row that is not fully granted.
    ``alerts_index`` is the alert pattern the sightings loop reads (None: no sightings).
    ``need_setup`` adds what ``ensure_setup`` needs. A cluster without the security API (security
    disabled, or an Elasticsearch-compatible server) gives ``verified=False`` and a note: that is
    not an error. Authentication failures propagate (give them to ``describe_error``).
    """
    rows = required(
        setup=need_setup,
        sightings=alerts_index is not None,
        lookup=lookup_index is not None,
        dead_letters=dead_letter_index is not None,
    )
    extra = (lookup_index, dead_letter_index)
    cluster = [r.privilege for r in rows if r.target is Target.CLUSTER]
    groups: dict[tuple[str, ...], list[str]] = {}
    for row in rows:
        names = target_names(row.target, index, alerts_index, *extra)
        if names and row.privilege not in groups.setdefault(names, []):
            groups[names].append(row.privilege)
    try:
        response = _as_dict(
            client.security.has_privileges(
                cluster=cluster,
                index=[{"names": list(names), "privileges": p} for names, p in groups.items()],
            ).body
        )
    except ApiError as exc:
        if _security_unavailable(exc):
            return PrivilegeCheck(
                verified=False,
                note="privileges could not be verified: the cluster has no security API "
                "(security disabled, or an Elasticsearch-compatible server)",
            )
        raise
    granted_cluster = _as_dict(response.get("cluster"))
    granted_index = _as_dict(response.get("index"))
    missing: list[str] = []
    for row in rows:
        if row.target is Target.CLUSTER:
            if granted_cluster.get(row.privilege) is not True:
                missing.append(
                    f"missing cluster privilege {row.privilege} (needed to {row.purpose})"
                )
            continue
        names = target_names(row.target, index, alerts_index, *extra)
        lacking = [
            n for n in names if _as_dict(granted_index.get(n)).get(row.privilege) is not True
        ]
        if lacking:
            missing.append(
                f"missing index privilege {row.privilege} on {', '.join(lacking)} "
                f"(needed to {row.purpose})"
            )
    return PrivilegeCheck(verified=True, missing=tuple(missing))


# ---------------------------------------------------------------------------------------------
# Upkeep


def delete_expired(
    client: Elasticsearch,
    index: str,
    now: datetime,
    *,
    ttl: timedelta | None = None,
    request_timeout: float = SWEEP_REQUEST_TIMEOUT,
) -> int:
    """Delete the indicators expired at ``now``; returns how many.

    Expired: ``valid_until`` passed, or, with a ``ttl`` (``connector.indicator_ttl``), no
    ``valid_until`` and ``ttl`` elapsed since ``valid_from`` (else ``created``): the rule of
    ``core.policy.lifetime``. Without a ``ttl``, documents without ``valid_until`` never expire.
    Version conflicts (a document rewritten by the stream meanwhile) are skipped, not fatal: the
    stream's own write wins. No ``refresh=true``: it would make Elasticsearch run
    ``indices:admin/refresh`` as the connector, which only ``maintenance``/``manage`` grant (the
    reduced role has neither), and nothing reads the index right after a sweep; the periodic
    refresh makes the deletes visible. Sent once (see ``_by_query_client``).
    """
    _iso(now)  # refuses a naive time before anything is sent
    response = _as_dict(
        _by_query_client(client, request_timeout)
        .delete_by_query(index=index, query=expired_query(now, ttl), conflicts="proceed")
        .body
    )
    failures = response.get("failures") or []
    if failures:
        log.warning("expiry sweep on %s: %d documents failed to delete", index, len(failures))
    return int(response.get("deleted", 0))


def touch_indicators(
    client: Elasticsearch,
    index: str,
    now: datetime,
    *,
    older_than: timedelta = timedelta(days=1),
    ttl: timedelta | None = None,
    timestamp_field: str = TIMESTAMP_FIELD,
    request_timeout: float = SWEEP_REQUEST_TIMEOUT,
) -> TouchResult:
    """Set ``@timestamp`` to ``now`` on live indicators whose ``@timestamp`` is older than
    ``older_than``, so rules and pages that only look at the last 30 days keep seeing them.

    Live: not expired under the rule of ``delete_expired`` (same ``ttl``). Needs inline
    Painless scripts;
    when the cluster refuses them (``script.allowed_types: none``, or a compatible server without
    scripting) nothing is changed and ``supported=False`` says why; indicators then keep the
    ``@timestamp`` of their last update (document the rule's indicator query instead). No
    ``refresh=true`` and sent once, for the reasons given at ``delete_expired``.
    """
    query = {
        "bool": {
            "filter": [{"range": {timestamp_field: {"lt": _iso(now - older_than)}}}],
            "must_not": [expired_query(now, ttl)],
        }
    }
    script = {
        "source": "ctx._source[params.field] = params.now",
        "lang": "painless",
        "params": {"field": timestamp_field, "now": _iso(now)},
    }
    try:
        response = _as_dict(
            _by_query_client(client, request_timeout)
            .update_by_query(index=index, query=query, script=script, conflicts="proceed")
            .body
        )
    except ApiError as exc:
        if exc.meta.status != 400:
            raise
        reason = describe_error(exc)
        log.warning("cannot refresh @timestamp of live indicators on %s: %s", index, reason)
        return TouchResult(
            updated=0,
            supported=False,
            note=f"@timestamp refresh unavailable (the cluster refused the update script): "
            f"{reason}",
        )
    return TouchResult(updated=int(response.get("updated", 0)))
