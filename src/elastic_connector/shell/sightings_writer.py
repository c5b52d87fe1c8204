"""Sightings into OpenCTI through pycti: the where-sighted identity, the marking, Kibana links,
the write itself, and what a failed write means.

How the platform stores a sighting decides how we write it (OpenCTI 6.x ``createRelationRaw`` /
``upsertElement``, read from the platform's source):

* the given ``stix_id`` is kept in ``x_opencti_stix_ids`` and finds the sighting again, so a
  re-sent write is an upsert, not a second sighting;
* a write is also *merged* into an existing sighting of the same indicator and identity whose
  ``first_seen`` and ``last_seen`` are each within 30 days of the new ones;
* on a merge the dates widen, and the counts are **added only when the dates widened**;
  otherwise the new count **replaces** the stored one.

* a field of the write is applied only when the writer's confidence (capped by the user's max
  confidence) is at least the sighting's; only the STIX ids are always kept;
* a reference the platform cannot resolve (an unknown marking, external reference or author) is
  dropped silently; a marking the user may not use is a ``MISSING_REFERENCE_ERROR`` without
  ``unresolvedIds`` (with them, it names the indicator or identity that is gone).

So a merge that does not widen the dates would throw away every alert counted before it. Two
rules keep the counts exact:

1. every new write widens the window: ``last_seen`` is the latest *detection* time (alert
   ``@timestamp``), which only grows from page to page because alerts are read in
   ``@timestamp`` order; when it would equal what was last written for that indicator (alerts
   of one rule run share a millisecond), it is moved 1 ms past it (``plan_sightings``, with the
   per-indicator watermarks the poller keeps in the connector state). ``first_seen`` is the
   earliest matched event (``kibana.alert.original_time``).
2. a write that may already have been applied (its answer was lost, or the connector restarted
   before saving its cursor) is never sent twice blindly: the writer first asks whether the
   platform knows the sighting's deterministic ``stix_id`` and sends only if it does not, since
   an identical re-send would not widen the dates and would reset the count. When that question
   cannot be answered, nothing is sent: the write waits, undecided, for the next try.

After each write the sighting is read back: the Kibana links the platform did not attach are
added with a second call (``relationAdd``), a missing TLP marking is reported, and the count is
checked against the upsert rules (``core.sightings.aggregation.count_problem``): a sighting
whose confidence an analyst raised keeps its count, which the poller logs once and counts.

Failures are sorted into three outcomes: ``Accepted``; ``Refused`` (this sighting can never be
written, e.g. the indicator was deleted in OpenCTI: skip it, count it, log why); ``Failed``
(OpenCTI unavailable or unhappy for a reason that is not this sighting's data: retry later,
never lose it).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import msgspec

from elastic_connector.core.config import KibanaSettings, SightingsSettings
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.sightings.aggregation import (
    SightingPayload,
    StoredSighting,
    count_problem,
    describe,
    epoch_millis,
    format_time,
)
from elastic_connector.core.sightings.alerts import parse_time

if TYPE_CHECKING:
    from pycti import OpenCTIApiClient

_log = logging.getLogger(__name__)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)

MAX_ALERT_LINKS: Final = 5
"""Kibana links attached to one sighting (the latest alerts): each is an external reference the
platform must store, and a busy indicator can have thousands of alerts."""
LINK_SOURCE_NAME: Final = "Elastic Security"
_LINK_CACHE_SIZE: Final = 10_000
_KNOWN_SIGHTINGS: Final = 10_000
_READ_BACK: Final = (
    "id standard_id attribute_count confidence first_seen last_seen "
    "objectMarking { id standard_id } externalReferences { edges { node { id } } }"
)
_RELATION_ADD: Final = (
    "mutation StixSightingRelationshipEdit($id: ID!, $input: StixRefRelationshipAddInput!) "
    "{ stixSightingRelationshipEdit(id: $id) { relationAdd(input: $input) { id } } }"
)

OPENCTI_TLP_MARKINGS: Final[Mapping[Tlp, str]] = {
    # pycti MarkingDefinition.generate_id("TLP", level.label): the ids OpenCTI gives its TLP
    # markings (TLP:CLEAR shares the STIX TLP:WHITE id).
    Tlp.WHITE: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    Tlp.CLEAR: "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
    Tlp.GREEN: "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
    Tlp.AMBER: "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
    Tlp.AMBER_STRICT: "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37",
    Tlp.RED: "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
}

IDENTITY_DESCRIPTION: Final = (
    "Elastic Security: indicator match detection alerts, recorded as sightings by "
    "elastic-connector."
)
_IDENTITY_FALLBACKS: Final[Mapping[str, tuple[str, ...]]] = {
    # SecurityPlatform exists since OpenCTI 6.9; older platforms refuse the mutation's type.
    "SecurityPlatform": ("SecurityPlatform", "System", "Organization"),
}
IdentityType: TypeAlias = Literal["Organization", "Individual", "System", "SecurityPlatform"]
_IDENTITY_TYPES: Final[Mapping[str, IdentityType]] = {
    "Organization": "Organization",
    "Individual": "Individual",
    "System": "System",
    "SecurityPlatform": "SecurityPlatform",
}

# Platform error names that are about this sighting's own data: retrying cannot help.
_REFUSALS: Final = frozenset(
    {"VALIDATION_ERROR", "FUNCTIONAL_ERROR", "UNSUPPORTED_ERROR", "BAD_USER_INPUT"}
)
_MISSING_REFERENCE: Final = "MISSING_REFERENCE_ERROR"
_SCHEMA_ERRORS: Final = frozenset({"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"})
_LINKS_DISABLED_BY: Final = _SCHEMA_ERRORS | {"FORBIDDEN_ACCESS", "VALIDATION_ERROR"}
_MAX_MESSAGE: Final = 300
_NOT_SENT: Final = frozenset(
    {"NewConnectionError", "NameResolutionError", "ConnectTimeout", "ConnectTimeoutError"}
)

CODE_INDICATOR_MISSING: Final = "indicator_missing"
CODE_REJECTED: Final = "rejected"


# --- planning: dates that always widen the sighting -----------------------------------------


class AlertLink(msgspec.Struct, frozen=True):
    """A Kibana link to one alert, sent as an external reference."""

    url: str
    alert_id: str
    rule_name: str | None = None


class SightingPlan(msgspec.Struct, frozen=True):
    """One sighting exactly as it is sent (and re-sent, unchanged, on retries)."""

    payload: SightingPayload
    first_seen: datetime
    """Earliest matched event of these alerts (never after ``last_seen``)."""
    last_seen: datetime
    """Latest detection of these alerts, past every earlier write for this indicator."""
    links: tuple[AlertLink, ...] = ()


def _from_millis(value: int) -> datetime:
    return _EPOCH + value * _MILLISECOND


def _links(payload: SightingPayload) -> tuple[AlertLink, ...]:
    latest = [ref for ref in payload.alerts if ref.url][-MAX_ALERT_LINKS:]
    return tuple(AlertLink(ref.url, ref.id, ref.rule_name) for ref in latest if ref.url)


def plan_sightings(
    payloads: Iterable[SightingPayload], watermarks: Mapping[str, int], floor_ms: int = 0
) -> tuple[tuple[SightingPlan, ...], dict[str, int]]:
    """The writes for ``payloads`` and the watermarks after them.

    ``watermarks`` maps an indicator id to the ``last_seen`` (epoch ms) last written for it (or
    read back from OpenCTI). Each plan's ``last_seen`` is its latest detection (the alerts'
    ``@timestamp``; ``last_detected`` for suppressed matches), at least ``floor_ms``, or 1 ms
    past the indicator's watermark when that is not later: every write then widens the sighting
    the platform may merge it into, which is what makes the platform add the counts (see the
    module notes). ``floor_ms`` (the alert cursor) keeps a write whose detection is older than
    the cursor past the watermarks already pruned (``prune_watermarks``).
    """
    marks = dict(watermarks)
    plans: list[SightingPlan] = []
    for payload in payloads:
        detected = max(epoch_millis(payload.detection), floor_ms)
        previous = marks.get(payload.indicator_id)
        last_ms = detected if previous is None or detected > previous else previous + 1
        last_seen = _from_millis(last_ms)
        marks[payload.indicator_id] = last_ms
        plans.append(
            SightingPlan(
                payload=payload,
                first_seen=min(payload.first_seen, last_seen),
                last_seen=last_seen,
                links=_links(payload),
            )
        )
    return tuple(plans), marks


def prune_watermarks(watermarks: Mapping[str, int], cursor_ms: int) -> dict[str, int]:
    """The watermarks that can still matter once every alert before ``cursor_ms`` is read:
    later writes are planned at ``cursor_ms`` or after (alerts are detected there, suppressed
    matches are floored there), so only marks at or past it can tie."""
    return {key: value for key, value in watermarks.items() if value >= cursor_ms}


def marking_id(level: Tlp) -> str:
    """The OpenCTI marking definition of a TLP level."""
    return OPENCTI_TLP_MARKINGS[level]


# --- what a failure means -------------------------------------------------------------------


class OpenCTIError(msgspec.Struct, frozen=True):
    """A failed pycti call, read back from whatever pycti raised."""

    code: str
    """The platform's error name (``MISSING_REFERENCE_ERROR``...), ``HTTP`` for an answer that
    is not GraphQL, ``CONNECTION`` for no answer, ``UNEXPECTED`` otherwise."""
    message: str
    unresolved: tuple[str, ...] = ()
    """``MISSING_REFERENCE_ERROR``: the ids the platform could not find."""
    maybe_applied: bool = False
    """No answer came back from the platform itself: the write may have happened."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes: ``__cause__``/``__context__``, and the exceptions requests and
    urllib3 keep in ``args`` and ``reason`` instead."""
    found: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo and len(found) < 20:
        item = todo.pop()
        if any(item is known for known in found):
            continue
        found.append(item)
        linked = [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo.extend(link for link in linked if isinstance(link, BaseException))
    return found


def _from_graphql_error(error: Mapping[str, object]) -> OpenCTIError:
    extensions = error.get("extensions")
    ext = extensions if isinstance(extensions, Mapping) else {}
    name = error.get("name") or ext.get("code") or "GRAPHQL_ERROR"
    message = error.get("message") or error.get("error_message") or ""
    data = error.get("data") or ext.get("data")
    unresolved: object = error.get("unresolvedIds")
    if unresolved is None and isinstance(data, Mapping):
        unresolved = data.get("unresolvedIds")
    ids = tuple(str(item) for item in unresolved) if isinstance(unresolved, list) else ()
    return OpenCTIError(str(name), _clip(str(message)), ids)


def describe_opencti_error(error: BaseException) -> OpenCTIError:
    """What a pycti call's exception says: the platform's error, a non-GraphQL HTTP answer, or
    no answer (and whether the request may have been applied anyway). Never raises."""
    if isinstance(error, ValueError) and error.args:
        detail = error.args[0]
        if isinstance(detail, Mapping):
            # pycti: {"name", "error_message", **extensions.data} from the first GraphQL error.
            return _from_graphql_error(detail)
        if isinstance(detail, str):
            # pycti raises the body text for any answer other than HTTP 200; the platform's
            # GraphQL server answers some validation errors with 400 and a JSON body.
            try:
                body = json.loads(detail)
            except (ValueError, RecursionError):
                body = None
            errors = body.get("errors") if isinstance(body, Mapping) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
                return _from_graphql_error(errors[0])
            # An HTML error page: a proxy in front of the platform may have given up while the
            # platform carried on.
            return OpenCTIError("HTTP", _clip(detail) or "empty answer", maybe_applied=True)
    if isinstance(error, OSError):
        # Refused, unresolvable or not connected in time: the request never left.
        causes = _chain(error)
        names = {type(item).__name__ for item in causes}
        refused = bool(names & _NOT_SENT) or any(
            isinstance(item, ConnectionRefusedError) for item in causes
        )
        return OpenCTIError(
            "CONNECTION", _clip(str(error)) or type(error).__name__, maybe_applied=not refused
        )
    return OpenCTIError("UNEXPECTED", _clip(f"{type(error).__name__}: {error}"), maybe_applied=True)


def is_schema_error(error: OpenCTIError) -> bool:
    """The platform does not know a mutation or type we used (an older OpenCTI)."""
    return error.code in _SCHEMA_ERRORS or any(
        marker in error.message for marker in ("Cannot query field", "Unknown type")
    )


# pycti raises ValueError for platform errors and requests' exceptions (OSError) for transport
# problems; KeyError/TypeError come from pycti reading an answer of an unexpected shape.
_PYCTI_ERRORS: Final = (ValueError, OSError, KeyError, TypeError)


# --- outcomes -------------------------------------------------------------------------------


class Accepted(msgspec.Struct, frozen=True):
    """OpenCTI holds the sighting (``already``: it did before this write)."""

    sighting_id: str
    already: bool = False
    stored: StoredSighting | None = None
    """The sighting as read back after the write (None: could not be read)."""
    problem: str | None = None
    """Why the count OpenCTI holds is not what this write should have made it."""


class Refused(msgspec.Struct, frozen=True):
    """OpenCTI can never take this sighting: skip it. ``code`` labels the metric."""

    code: str
    reason: str


class Failed(msgspec.Struct, frozen=True):
    """Not written this time; retry later. ``maybe_applied``: check before re-sending."""

    reason: str
    maybe_applied: bool = False


WriteOutcome: TypeAlias = Accepted | Refused | Failed


class _Undecided(msgspec.Struct, frozen=True):
    """Whether a sighting was already written could not be told."""

    reason: str


class _Unavailable(Exception):
    """A prerequisite (identity, link) could not be written now; the sighting is retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the writer -----------------------------------------------------------------------------


class SightingWriter:
    """Writes ``SightingPlan``s into OpenCTI. Not thread-safe: one poller thread uses it."""

    def __init__(
        self, api: OpenCTIApiClient, settings: SightingsSettings, kibana: KibanaSettings
    ) -> None:
        self._api = api
        self._settings = settings
        self._kibana = kibana
        self._marking = marking_id(settings.tlp)
        self._marking_found = False
        self._marking_missing_reported = False
        self._identity: str | None = None
        self._identity_type: str | None = None
        self._links: OrderedDict[str, str] = OrderedDict()
        self._links_disabled: str | None = None
        self._known: OrderedDict[str, StoredSighting] = OrderedDict()
        """Sighting id -> as last read back (what the next write to it should add to)."""

    @property
    def identity_type(self) -> str | None:
        """The entity type the where-sighted identity was created with (None: not yet)."""
        return self._identity_type

    # --- identity ---------------------------------------------------------------------------

    def identity_id(self) -> str:
        """The where-sighted identity's id, created (upserted by name) on first use.

        ``SecurityPlatform`` falls back to ``System``, then ``Organization``, on a platform
        that does not know it. Raises ``_Unavailable`` when it cannot be created now.
        """
        if self._identity is not None:
            return self._identity
        wanted = self._settings.identity_type
        kinds = _IDENTITY_FALLBACKS.get(wanted, (wanted,))
        last: OpenCTIError | None = None
        for kind in kinds:
            identity_type = _IDENTITY_TYPES.get(kind)
            if identity_type is None:
                raise _Unavailable(f"unsupported identity type {kind!r}")
            try:
                created = self._api.identity.create(
                    type=identity_type,
                    name=self._settings.identity_name,
                    description=IDENTITY_DESCRIPTION,
                )
                identity_id = None if created is None else created["id"]
            except _PYCTI_ERRORS as error:
                last = describe_opencti_error(error)
                if is_schema_error(last) and kind != kinds[-1]:
                    _log.info(
                        "OpenCTI does not know the identity type %s (%s): trying the next one",
                        kind,
                        last,
                    )
                    continue
                raise _Unavailable(
                    f"cannot create the identity {self._settings.identity_name!r} ({kind}): {last}"
                ) from error
            if identity_id is None:
                raise _Unavailable(f"OpenCTI returned no {kind} identity")
            self._identity, self._identity_type = identity_id, kind
            if kind != wanted:
                _log.warning(
                    "sightings are recorded as seen by the %s %r: this OpenCTI has no %s type",
                    kind,
                    self._settings.identity_name,
                    wanted,
                )
            return identity_id
        raise _Unavailable(f"cannot create the identity: {last}")

    # --- links ------------------------------------------------------------------------------

    def _link_ids(self, links: Sequence[AlertLink]) -> list[str]:
        ids: list[str] = []
        for link in links:
            if self._links_disabled is not None:
                return []
            known = self._links.get(link.url)
            if known is not None:
                self._links.move_to_end(link.url)
                ids.append(known)
                continue
            description = f"Elastic Security alert {link.alert_id}" + (
                f" ({link.rule_name})" if link.rule_name else ""
            )
            try:
                created = self._api.external_reference.create(
                    source_name=LINK_SOURCE_NAME,
                    url=link.url,
                    external_id=link.alert_id,
                    description=description,
                )
                link_id = None if created is None else created["id"]
            except _PYCTI_ERRORS as error:
                problem = describe_opencti_error(error)
                if problem.code in _LINKS_DISABLED_BY or is_schema_error(problem):
                    self._links_disabled = str(problem)
                    _log.warning(
                        "OpenCTI refused an external reference (%s): sightings are written "
                        "without Kibana links from now on",
                        problem,
                    )
                    return []
                raise _Unavailable(f"cannot create a Kibana link: {problem}") from error
            if link_id is None:
                continue
            self._links[link.url] = link_id
            if len(self._links) > _LINK_CACHE_SIZE:
                self._links.popitem(last=False)
            ids.append(link_id)
        return ids

    # --- the marking ------------------------------------------------------------------------

    def _check_marking(self) -> None:
        """Make sure the platform has the marking ``sightings.tlp`` before the first write: it
        would silently store the sighting without it (raise ``_Unavailable`` otherwise)."""
        if self._marking_found:
            return
        try:
            found = self._api.marking_definition.read(id=self._marking)
        except _PYCTI_ERRORS as error:
            raise _Unavailable(
                f"cannot read the marking {self._settings.tlp.label}: "
                f"{describe_opencti_error(error)}"
            ) from error
        if found is None:
            raise _Unavailable(
                f"OpenCTI has no marking {self._settings.tlp.label} ({self._marking}) that the "
                "connector's user can see: create it, allow it to the user, or change "
                "sightings.tlp"
            )
        self._marking_found = True

    # --- reading a sighting back ------------------------------------------------------------

    def _read(self, sighting_id: str) -> StoredSighting | _Undecided | None:
        try:
            found = self._api.stix_sighting_relationship.read(
                id=sighting_id, customAttributes=_READ_BACK
            )
        except _PYCTI_ERRORS as error:
            return _Undecided(str(describe_opencti_error(error)))
        return None if found is None else _stored(found)

    def already_written(self, plan: SightingPlan) -> bool | None:
        """Whether the platform knows the plan's ``stix_id`` (None: could not tell)."""
        found = self._read(plan.payload.stix_id)
        return None if isinstance(found, _Undecided) else found is not None

    def _ensure_links(self, stored: StoredSighting, links: Sequence[str]) -> StoredSighting:
        """Attach the Kibana links the platform did not keep (a second call): a platform that
        attaches external references on upsert only drops them when it creates a sighting."""
        missing = [link for link in links if link not in stored.reference_ids]
        added: list[str] = []
        for link in missing:
            try:
                self._api.query(
                    _RELATION_ADD,
                    {
                        "id": stored.id,
                        "input": {"toId": link, "relationship_type": "external-reference"},
                    },
                )
            except _PYCTI_ERRORS as error:
                _log.warning(
                    "cannot attach a Kibana link to sighting %s: %s",
                    stored.id,
                    describe_opencti_error(error),
                )
                self._links.clear()  # the link may have been deleted: created again next time
                continue
            added.append(link)
        if added:
            _log.debug("attached %d Kibana link(s) to sighting %s", len(added), stored.id)
            return msgspec.structs.replace(stored, reference_ids=(*stored.reference_ids, *added))
        return stored

    def _check_stored_marking(self, stored: StoredSighting) -> None:
        if self._marking in stored.marking_ids or self._marking_missing_reported:
            return
        self._marking_missing_reported = True
        _log.error(
            "OpenCTI stored sighting %s without its marking %s (%s): the platform drops "
            "markings it cannot resolve; check sightings.tlp and the connector user's markings",
            stored.id,
            self._settings.tlp.label,
            self._marking,
        )

    def _remember(self, stored: StoredSighting) -> None:
        self._known[stored.id] = stored
        self._known.move_to_end(stored.id)
        if len(self._known) > _KNOWN_SIGHTINGS:
            self._known.popitem(last=False)

    # --- the write --------------------------------------------------------------------------

    def write(self, plan: SightingPlan, *, verify: bool = False) -> WriteOutcome:
        """Create (or upsert) the plan's sighting. ``verify``: the same plan may have been
        applied already (lost answer, restart): look for it first and do not send it twice,
        nor when that cannot be told. Never raises for OpenCTI's answers or its absence."""
        payload = plan.payload
        try:
            identity = self.identity_id()
            self._check_marking()
        except _Unavailable as problem:
            return Failed(problem.reason)
        if verify:
            found = self._read(payload.stix_id)
            if isinstance(found, _Undecided):
                return Failed(
                    f"cannot tell whether the sighting {payload.stix_id} was already written "
                    f"({found.reason}): not sent again until that is known",
                    maybe_applied=True,
                )
            if found is not None:
                try:
                    links = self._link_ids(plan.links)
                except _Unavailable:
                    links = []
                stored = self._ensure_links(found, links)
                self._remember(stored)
                return Accepted(stored.id, already=True, stored=stored)
        try:
            links = self._link_ids(plan.links)
        except _Unavailable as problem:
            return Failed(problem.reason)
        try:
            created = self._api.stix_sighting_relationship.create(
                fromId=payload.indicator_id,
                toId=identity,
                stix_id=payload.stix_id,
                first_seen=format_time(plan.first_seen),
                last_seen=format_time(plan.last_seen),
                count=payload.count,
                description=describe(payload),
                confidence=self._settings.confidence,
                objectMarking=[self._marking],
                externalReferences=links or None,
                x_opencti_negative=False,
                # Platforms before 6.0 upsert description/confidence only with update=True.
                update=True,
            )
            sighting_id = str(created["id"])
        except _PYCTI_ERRORS as error:
            return self._judge(describe_opencti_error(error), plan, identity)
        return self._after_write(plan, sighting_id, links)

    def _after_write(self, plan: SightingPlan, sighting_id: str, links: Sequence[str]) -> Accepted:
        read = self._read(sighting_id)
        if not isinstance(read, StoredSighting):
            _log.debug("cannot read sighting %s back: %s", sighting_id, read)
            return Accepted(sighting_id)
        stored = self._ensure_links(read, links)
        self._check_stored_marking(stored)
        problem = count_problem(
            count=plan.payload.count,
            first_seen=plan.first_seen,
            last_seen=plan.last_seen,
            after=stored,
            before=self._known.get(sighting_id),
            confidence=self._settings.confidence,
        )
        self._remember(stored)
        return Accepted(sighting_id, stored=stored, problem=problem)

    def _judge(self, error: OpenCTIError, plan: SightingPlan, identity: str) -> WriteOutcome:
        payload = plan.payload
        what = f"the sighting of indicator {payload.indicator_id} ({payload.count} matches)"
        if error.code == _MISSING_REFERENCE:
            missing = {item.lower() for item in error.unresolved}
            if payload.indicator_id.lower() in missing:
                return Refused(
                    CODE_INDICATOR_MISSING,
                    f"OpenCTI refused {what}: the indicator no longer exists in OpenCTI ({error})",
                )
            if identity.lower() in missing:
                self._identity = None  # deleted in OpenCTI: created again on the next try
                return Failed(
                    f"the identity {self._settings.identity_name!r} was deleted in OpenCTI"
                )
            if not missing:
                # Without unresolvedIds the platform means a marking the user may not use.
                return Failed(
                    f"OpenCTI refused the marking {self._settings.tlp.label} of the sightings "
                    f"(sightings.tlp): the connector's user may not use it ({error}); allow "
                    "it to the user's group or change sightings.tlp"
                )
            return Failed(f"OpenCTI is missing a reference of {what}: {error}")
        if error.code in _REFUSALS:
            return Refused(CODE_REJECTED, f"OpenCTI refused {what}: {error}")
        return Failed(str(error), maybe_applied=error.maybe_applied)


def _ids(value: object, *, edges: bool = False) -> tuple[str, ...]:
    """Ids (and standard ids) out of a list of objects or a connection."""
    if edges and isinstance(value, Mapping):
        value = [edge.get("node") for edge in value.get("edges") or [] if isinstance(edge, Mapping)]
    found: list[str] = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, Mapping):
            found.extend(str(item[key]) for key in ("id", "standard_id") if item.get(key))
    return tuple(found)


def _date(value: object) -> datetime | None:
    parsed = parse_time(value) if isinstance(value, str) else None
    return parsed if isinstance(parsed, datetime) else None


def _stored(found: Mapping[str, object]) -> StoredSighting:
    """A read-back sighting, from pycti's answer (which turns connections into lists)."""
    count, confidence = found.get("attribute_count"), found.get("confidence")
    references = found.get("externalReferences")
    return StoredSighting(
        id=str(found.get("id")),
        count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        first_seen=_date(found.get("first_seen")),
        last_seen=_date(found.get("last_seen")),
        confidence=(
            confidence if isinstance(confidence, int) and not isinstance(confidence, bool) else None
        ),
        marking_ids=_ids(found.get("objectMarking")),
        reference_ids=_ids(references, edges=isinstance(references, Mapping)),
    )
