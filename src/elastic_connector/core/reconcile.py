"""Reconciliation: the index compared with what OpenCTI holds, and what repairs it.

Every indicator read from OpenCTI (GraphQL ``indicators``, each node's ``toStix`` being the
STIX object exactly as the stream sends it) is planned by the stream's own planner
(``core.events.plan_event``, as a ``create`` event): same policy, markings and author names, so
reconciliation and stream can never disagree on what a document should be. The planned action
is then compared with the document the index holds (``compare``):

* **missing**: the plan writes a document and the index has none -> create it;
* **stale**: the index has a document and the plan writes a different one (the content
  compared without ``@timestamp``, which the connector refreshes by itself) or withholds the
  indicator (revoked, expired, TLP raised...) -> rewrite or delete it;
* **orphaned**: a document no indicator read from OpenCTI accounts for (deleted or merged away
  in OpenCTI, outside the live stream's filters, written by hand) -> delete it, but only after
  a complete read in which every node was identified (``orphans_withheld``).

Every repair carries a ``Guard``: the version of the document as it was read (or "no document"
for a create). Elasticsearch refuses it if anything wrote the document since, so a
reconciliation never overwrites a newer write of the stream with the older state it read
(``docs/reconcile.md``).

GraphQL answers are decoded here (``read_page``, ``read_node``): a hostile node (a missing or
mistyped field, a ``toStix`` that is not a STIX indicator) is skipped with its id and reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final, NamedTuple

import msgspec
from returns.result import Failure, Result, Success

from elastic_connector.core.actions import Delete, Guard, Skip, Upsert
from elastic_connector.core.events import PlannerState, PlanSettings, plan_event
from elastic_connector.core.stix import DecodeError, Indicator, StreamEvent, read_object, truth
from elastic_connector.core.stream.ids import StreamId
from elastic_connector.core.stream.position import StreamPosition

RECONCILE_EVENT_ID: Final = "reconcile"
"""The event id of the ``create`` events reconciliation plans (named in its skips)."""
PENDING_KEY: Final = "reconcile_pending"
"""Connector-state key: a reconciliation that must run (initial sync, stream gap) and has not
finished yet; a restart runs it again."""
DIGEST_EXCLUDED: Final = ("@timestamp",)
"""Top-level fields left out of the comparison: the connector sets and refreshes them itself."""
INVALID_DIGEST: Final = b""
"""The digest of a ``_source`` that is not JSON: equal to no planned document."""

MISSING: Final = "missing"
STALE: Final = "stale"
ORPHANED: Final = "orphaned"
CLASSES: Final = (MISSING, STALE, ORPHANED)


# --- the index side ------------------------------------------------------------------------------


class IndexedDocument(NamedTuple):
    """What reconciliation keeps of one document of the index: a digest of its content and
    the version it was read at (``_seq_no``, ``_primary_term``)."""

    digest: bytes
    seq_no: int
    primary_term: int


_any_decoder: Final = msgspec.json.Decoder()
_sorted_encoder: Final = msgspec.json.Encoder(order="sorted")


def document_digest(source: bytes | str) -> bytes:
    """A 16-byte digest of a document's content (JSON text): key order, whitespace and the
    fields in ``DIGEST_EXCLUDED`` do not count. ``INVALID_DIGEST`` for text that is not JSON."""
    try:
        decoded = _any_decoder.decode(source)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        return INVALID_DIGEST
    return content_digest(decoded)


def content_digest(content: object) -> bytes:
    """``document_digest`` of a document already decoded (a search hit's ``_source``)."""
    if isinstance(content, dict):
        content = {k: v for k, v in content.items() if k not in DIGEST_EXCLUDED}
    try:
        canonical = _sorted_encoder.encode(content)
    except (RecursionError, TypeError):
        return INVALID_DIGEST
    return hashlib.blake2b(canonical, digest_size=16).digest()


# --- the OpenCTI side: GraphQL answers -----------------------------------------------------------


class _PageInfo(msgspec.Struct):
    has_next_page: bool = msgspec.field(name="hasNextPage")
    end_cursor: str | None = msgspec.field(default=None, name="endCursor")
    global_count: int | None = msgspec.field(default=None, name="globalCount")


class _Connection(msgspec.Struct):
    page_info: _PageInfo = msgspec.field(name="pageInfo")
    edges: list[object] | None = None


class Page(msgspec.Struct, frozen=True):
    """One page of a GraphQL connection: its raw nodes (decoded one by one, so that one bad
    node does not lose the page) and where the next page starts."""

    nodes: tuple[object, ...]
    end_cursor: str | None
    has_next_page: bool
    global_count: int | None


def read_page(answer: object, field: str) -> Page | str:
    """The page a GraphQL answer (``{"data": {field: {edges, pageInfo}}}``) holds, or why it
    cannot be read. A next page without a cursor is a problem: following it would restart the
    listing (and never end)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    connection = data.get(field) if isinstance(data, dict) else None
    if connection is None:
        return f"the answer holds no {field} (data.{field} is missing or null)"
    try:
        decoded = msgspec.convert(connection, _Connection)
    except msgspec.ValidationError as error:
        return f"the {field} answer is malformed: {error}"
    nodes: list[object] = []
    for edge in decoded.edges or ():
        nodes.append(edge.get("node") if isinstance(edge, dict) else edge)
    info = decoded.page_info
    if info.has_next_page and not info.end_cursor:
        return f"the {field} answer says more pages follow but gives no cursor"
    return Page(tuple(nodes), info.end_cursor, info.has_next_page, info.global_count)


class _Author(msgspec.Struct):
    standard_id: str | None = None
    name: str | None = None


class _Node(msgspec.Struct):
    id: str | None = None
    standard_id: str | None = None
    to_stix: str | None = msgspec.field(default=None, name="toStix")
    created_by: _Author | None = msgspec.field(default=None, name="createdBy")


class IndicatorNode(msgspec.Struct, frozen=True):
    """One ``indicators`` node: its ids, its STIX object (``toStix``) and its author's name."""

    id: str
    """The OpenCTI internal id (the ``_id`` of its document)."""
    standard_id: str
    stix: str
    author: tuple[str, str] | None = None
    """(STIX id, name) of the identity in ``createdBy``, when the node carries one."""


class NodeProblem(msgspec.Struct, frozen=True):
    """A node that cannot be planned; ``ids`` are the ids it could still be read under (empty
    when none: then no document can be told apart from one of an unread indicator)."""

    ids: tuple[str, ...]
    reason: str


def _ids_of(node: object) -> tuple[str, ...]:
    if not isinstance(node, dict):
        return ()
    found = (node.get("id"), node.get("standard_id"))
    return tuple(value for value in found if isinstance(value, str) and value)


def read_node(node: object) -> IndicatorNode | NodeProblem:
    """Decode one node of the ``indicators`` answer; never raises."""
    try:
        decoded = msgspec.convert(node, _Node)
    except msgspec.ValidationError as error:
        return NodeProblem(_ids_of(node), f"malformed node: {error}")
    if not decoded.id:
        return NodeProblem(_ids_of(node), "the node has no id")
    if not decoded.to_stix:
        # The platform answers "" when it cannot load the object (deleted meanwhile, or not
        # readable by this user).
        return NodeProblem(_ids_of(node), "the node has no toStix (STIX form)")
    author = decoded.created_by
    named = (
        (author.standard_id, author.name.strip())
        if author is not None and author.standard_id and author.name and author.name.strip()
        else None
    )
    return IndicatorNode(decoded.id, decoded.standard_id or "", decoded.to_stix, named)


# --- planning ------------------------------------------------------------------------------------


class Planned(msgspec.Struct, frozen=True):
    """What the stream's planner makes of one indicator read from OpenCTI."""

    ids: tuple[str, ...]
    """Every id the indicator's document could be under (accounted for, never orphaned)."""
    action: Upsert | Delete


class Unplanned(msgspec.Struct, frozen=True):
    """An indicator reconciliation leaves alone: ``skip`` says why it could not be planned
    (``None`` for one the live stream would not send: an inferred indicator without
    ``live_stream_with_inferences``)."""

    ids: tuple[str, ...]
    skip: Skip | None


def plan_node(
    node: IndicatorNode,
    state: PlannerState,
    settings: PlanSettings,
    now: datetime,
    authors: Mapping[str, str],
    *,
    with_inferences: bool,
) -> Planned | Unplanned:
    """Plan one indicator as the stream plans a ``create`` of it. Never raises."""
    obj = read_object(node.stix, "$.toStix")
    if isinstance(obj, DecodeError):
        return Unplanned(
            (node.id,), Skip(RECONCILE_EVENT_ID, obj.object_id or node.id, "undecodable", str(obj))
        )
    ids = (node.id,) if obj.opencti_id == node.id else (node.id, obj.opencti_id)
    if obj.type != "indicator":
        reason = f"toStix holds a {obj.type[:40]!r} object, not an indicator"
        return Unplanned(ids, Skip(RECONCILE_EVENT_ID, obj.id, "undecodable", reason))
    typed = obj.typed
    if not with_inferences and isinstance(typed, Indicator):
        extension = typed.extensions.opencti
        if extension is not None and truth(extension.is_inferred) is True:
            return Unplanned((), None)  # the live stream does not send it either
    event = StreamEvent(event_id=RECONCILE_EVENT_ID, kind="create", object=obj)
    try:
        plan = plan_event(event, state, settings, now, authors)
    except RecursionError:
        skip = Skip(RECONCILE_EVENT_ID, obj.id, "undecodable", "JSON nested too deeply")
        return Unplanned(ids, skip)
    for action in plan.actions:
        if isinstance(action, Skip):
            return Unplanned(ids, action)
    actions = [a for a in plan.actions if not isinstance(a, Skip)]
    if len(actions) != 1:  # pragma: no cover - a create of an indicator plans one action
        reason = f"planned {len(actions)} actions for one indicator"
        return Unplanned(ids, Skip(RECONCILE_EVENT_ID, obj.id, "internal_error", reason))
    return Planned(ids, actions[0])


# --- the difference ------------------------------------------------------------------------------


class Difference(msgspec.Struct, frozen=True):
    """One repair: its class (``missing``, ``stale``, ``orphaned``) and the guarded action."""

    kind: str
    action: Upsert | Delete


_CREATE: Final = Guard()


def compare(planned: Upsert | Delete, current: IndexedDocument | None) -> Difference | None:
    """The repair that makes the index hold what ``planned`` says (None: it already does)."""
    if isinstance(planned, Delete):
        if current is None:
            return None
        guard = Guard(current.seq_no, current.primary_term)
        return Difference(STALE, msgspec.structs.replace(planned, guard=guard))
    if current is None:
        return Difference(MISSING, msgspec.structs.replace(planned, guard=_CREATE))
    if document_digest(planned.document) == current.digest:
        return None
    guard = Guard(current.seq_no, current.primary_term)
    return Difference(STALE, msgspec.structs.replace(planned, guard=guard))


def orphan(index: str, doc_id: str, current: IndexedDocument) -> Difference:
    """The repair of a document no indicator read from OpenCTI accounts for."""
    return Difference(
        ORPHANED,
        Delete(
            index,
            doc_id,
            "orphaned",
            "no indicator in OpenCTI (visible to the connector) has this document",
            guard=Guard(current.seq_no, current.primary_term),
        ),
    )


class ReadOutcome(msgspec.Struct, frozen=True):
    """How the OpenCTI side of a run ended, for the orphan decision."""

    complete: bool
    """Every page was read (the last said no page follows)."""
    unidentified: int = 0
    """Nodes that could not even be told apart by an id."""
    failure: str | None = None


def orphans_withheld(read: ReadOutcome) -> str | None:
    """Why orphaned documents must not be deleted after this read (None: they may). A
    document is orphaned only if *no* indicator accounts for it, which only a complete read
    in which every node was identified can tell."""
    if not read.complete:
        cause = f" ({read.failure})" if read.failure else ""
        return f"OpenCTI was not read to the end{cause}: nothing is deleted as orphaned"
    if read.unidentified:
        return (
            f"{read.unidentified} indicator(s) came without any id: an orphan could be one of "
            "them, so nothing is deleted as orphaned"
        )
    return None


# --- the collection a live stream shows ----------------------------------------------------------


def collection_filters(raw: object) -> Result[dict[str, object] | None, str]:
    """The FilterGroup of a live stream collection (``streamCollection.filters``, a JSON
    string; empty or null for none) as the ``filters`` argument of a listing, or why it cannot
    be used: a reconciliation never reads more than the stream shows."""
    if raw is None or raw == "":
        return Success(None)
    if not isinstance(raw, str):
        return Failure(f"its filters are a {type(raw).__name__}, not a JSON FilterGroup")
    try:
        group = json.loads(raw)
    except ValueError as error:
        return Failure(f"its filters are not JSON ({error})")
    if group is None:
        return Success(None)
    if not isinstance(group, dict):
        return Failure("its filters are not a FilterGroup object")
    filters = group.get("filters")
    groups = group.get("filterGroups")
    if not isinstance(filters, list) or not isinstance(groups, list):
        return Failure("its filters are not a FilterGroup (filters and filterGroups lists)")
    return Success(group if filters or groups else None)


# --- runs, positions and the state ---------------------------------------------------------------


def live_start_position(now: datetime, margin: float) -> StreamPosition:
    """Where the live stream is followed from while an initial reconciliation runs: ``margin``
    seconds before ``now`` (the platform's stream ids come from its own clock, which may lag
    ours), with no recovery replay. Events in the margin are read again, harmlessly."""
    start = now - timedelta(seconds=margin)
    return StreamPosition(str(StreamId(max(0, int(start.timestamp() * 1000)), 0)), None)


def reconcile_pending(state: Mapping[str, object] | None) -> bool:
    """Whether the saved state holds a reconciliation that must run and has not finished."""
    return state is not None and state.get(PENDING_KEY) is True


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    """What one run found and did (the command's JSON line, metrics, ``/healthz``)."""

    opencti_indicators: int = 0
    index_documents: int = 0
    missing: int = 0
    stale: int = 0
    orphaned: int = 0
    written: int = 0
    deleted: int = 0
    skipped: int = 0
    """Indicators that could not be planned (hostile answers), each logged with id and reason."""
    superseded: int = 0
    """Repairs dropped because the document was written since it was read (a newer write)."""


class Sample(msgspec.Struct, frozen=True):
    """Some ids of one class (``--dry-run``) and how many more there are."""

    ids: tuple[str, ...]
    more: int


_line_encoder: Final = msgspec.json.Encoder()


def summary_line(counts: Counts, *, dry_run: bool, samples: Mapping[str, Sample] | None) -> bytes:
    """The command's one JSON line: the counts, ``dry_run``, and with samples the ids of each
    class (``ids``) and how many were not shown (``more``)."""
    line: dict[str, object] = {
        name: getattr(counts, name) for name in msgspec.structs.asdict(counts)
    }
    line["dry_run"] = dry_run
    if samples is not None:
        line["ids"] = {kind: list(samples[kind].ids) for kind in CLASSES if kind in samples}
        line["more"] = {kind: samples[kind].more for kind in CLASSES if kind in samples}
    return _line_encoder.encode(line)
