"""The stand-in platform's data and its GraphQL answers.

``PlatformState`` holds what the platform knows (STIX objects from the stream, identities,
sightings, connectors and their state, users) and resolves the root fields a STREAM connector
uses, the way the platform does: upserts by standard id, ``MISSING_REFERENCE_ERROR`` for unknown
references, capability checks, pycti-shaped records. Callers hold the stand-in's lock. Each
rule is the platform's as shared/reference/opencti.md ("Platform behaviours a connector must
survive", read in the platform's source) states it; the sighting upserts are in
``standin_sightings``, the stream in ``standin_stream``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple, TypeAlias

import msgspec

from elastic_connector.demo.graphql_lite import Field, UnsupportedFilter, matches_filters
from elastic_connector.demo.opencti_data import (
    ADMIN_USER_ID,
    DEFAULT_MARKINGS,
    MITRE_EXTENSION,
    NAMESPACE,
    OPENCTI_EXTENSION,
    Json,
    external_reference_standard_id,
    identity_standard_id,
    internal_id,
)
from elastic_connector.demo.standin_indicators import (
    IndicatorOrder,
    ListingError,
    check_arguments,
    encode_cursor,
    filter_view,
    label_id,
    named_ids,
)
from elastic_connector.demo.standin_sightings import INPUT_FIELDS as SIGHTING_INPUT_FIELDS
from elastic_connector.demo.standin_sightings import SightingStore

_enc = msgspec.json.encode
_decode_json = msgspec.json.Decoder(Json)


class StandinUser(msgspec.Struct, frozen=True):
    """A platform user behind a token; ``BYPASS`` grants everything."""

    id: str
    name: str
    user_email: str
    capabilities: tuple[str, ...]
    max_confidence: int = 100
    """The user's effective max confidence (``effective_confidence_level``)."""
    allowed_markings: tuple[str, ...] | None = None
    """Standard ids of the markings the user's groups allow (None: every marking)."""

    def may_use_marking(self, standard_id: str) -> bool:
        return self.allowed_markings is None or standard_id in self.allowed_markings


class StreamCollection(msgspec.Struct, kw_only=True):
    """A live stream (``/stream/<id>``); ``filters`` is its FilterGroup as the platform
    stores it (a JSON string), None when it streams everything."""

    id: str
    name: str
    live: bool = True
    public: bool = False
    recover_supported: bool = True
    """False: the platform answers a recovery request with a ``no-recover`` event."""
    filters: str | None = None
    opaque_filters: bool = False
    """Filtered by a test's Python predicate, which no FilterGroup expresses: reading its
    ``filters`` is refused rather than answered as "none" (that would show everything)."""


class Stored(NamedTuple):
    """The current version of an object: its JSON is ``source[start:end]`` (a slice of the
    event frame, so a large preloaded log is not held twice)."""

    source: bytes
    start: int
    end: int
    ms: int
    type: str
    internal_id: str

    @property
    def stix(self) -> bytes:
        return self.source[self.start : self.end]


class GraphQLError(Exception):
    def __init__(self, code: str, message: str, http_status: int, **data: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: Json = {"http_status": http_status, **data}

    def payload(self, path: str | None) -> Json:
        error: Json = {
            "message": self.message,
            "name": self.code,
            "extensions": {"code": self.code, "data": self.data},
        }
        if path is not None:
            error["path"] = [path]
        return error


def auth_required() -> GraphQLError:
    return GraphQLError("AUTH_REQUIRED", "You must be logged in to do this.", 401)


def missing_reference(ids: Sequence[str]) -> GraphQLError:
    return GraphQLError(
        "MISSING_REFERENCE_ERROR", "Element(s) not found", 404, unresolvedIds=list(ids)
    )


def bad_input(message: str) -> GraphQLError:
    return GraphQLError("BAD_USER_INPUT", message, 400)


_IDENTITY_MUTATIONS: Final = {
    "organizationAdd": ("Organization", "organization"),
    "systemAdd": ("System", "system"),
    "securityPlatformAdd": ("SecurityPlatform", "securityplatform"),
    "individualAdd": ("Individual", "individual"),
    "identityAdd": ("", ""),
}
_IDENTITY_CLASSES: Final = {
    "Organization": "organization",
    "System": "system",
    "SecurityPlatform": "securityplatform",
    "Individual": "individual",
    "Sector": "class",
}

_IDENTITY_TYPES: Final = {
    identity_class: kind for kind, identity_class in _IDENTITY_CLASSES.items()
}


def _parse_date(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise bad_input(
        f'Variable "$input" got invalid value {value!r} at "input.{field}"; '
        'Expected type "DateTime".'
    )


def has_capability(user: StandinUser, capability: str, *, exact: bool = False) -> bool:
    """BYPASS grants everything; a more specific capability (``KNOWLEDGE_KNUPDATE``) grants its
    parents (``KNOWLEDGE``)."""
    if "BYPASS" in user.capabilities:
        return True
    if exact:
        return capability in user.capabilities
    return any(c == capability or c.startswith(capability + "_") for c in user.capabilities)


class PlatformState:
    """Everything the stand-in platform stores, and its GraphQL resolvers.

    ``on_create`` receives the STIX form of identities and sightings created through GraphQL
    (the stand-in publishes them on the stream, as the platform does).

    Sightings follow the platform's upsert rules (``standin_sightings``); ``merge_sightings``
    off sets the platform's ``relations_deduplication`` window to 0 days, so that only ids find
    an existing sighting.
    """

    def __init__(
        self,
        *,
        version: str,
        on_create: Callable[[Json], None] | None = None,
        merge_sightings: bool = True,
    ) -> None:
        self.version = version
        self.on_create = on_create
        self.sighting_store = SightingStore()
        if not merge_sightings:
            self.sighting_store.rules.deduplication_days = 0
        self.users: dict[str, StandinUser] = {}
        self.objects: dict[str, Stored] = {}
        self.by_internal: dict[str, str] = {}
        self.collections: dict[str, StreamCollection] = {}
        self.connectors: dict[str, Json] = {}
        self.identities: dict[str, Json] = {}
        self.sightings: dict[str, Json] = self.sighting_store.records
        self.sighting_inputs: list[Json] = self.sighting_store.inputs
        self.external_references: dict[str, Json] = {}
        self.bundles: list[str] = []
        self.indicator_order = IndicatorOrder()
        self.generation = 0
        """Bumped by every change of what is stored (listing counts are cached per value)."""
        self._counts: dict[tuple[str, int], int] = {}
        self.indicator_node_hook: Callable[[Json], object] | None = None
        """Tests: rewrites each ``indicators`` node (a hostile answer)."""
        for marking in DEFAULT_MARKINGS:
            stix = _enc(
                {
                    "id": marking.standard_id,
                    "type": "marking-definition",
                    "spec_version": "2.1",
                    "definition_type": marking.definition_type,
                    "name": marking.definition,
                    "created": "2020-02-25T09:02:29.040Z",
                    "x_opencti_order": marking.order,
                    "x_opencti_color": marking.color,
                }
            )
            marking_id = internal_id(marking.standard_id)
            self.store(
                marking.standard_id, Stored(stix, 0, len(stix), 0, "marking-definition", marking_id)
            )

    def store(self, stix_id: str, stored: Stored) -> None:
        """Make ``stored`` the current version of object ``stix_id``."""
        previous = self.objects.get(stix_id)
        previous_type = previous.type if previous is not None else None
        if "indicator" in (stored.type, previous_type) and previous_type != stored.type:
            self.indicator_order.changed()
        self.objects[stix_id] = stored
        self.by_internal[stored.internal_id] = stix_id
        self.generation += 1

    def forget(self, object_id: str) -> None:
        """Remove an object (STIX or internal id), as a deletion does."""
        stix_id = self.by_internal.get(object_id, object_id)
        stored = self.objects.pop(stix_id, None)
        self.generation += 1
        if stored is not None:
            self.by_internal.pop(stored.internal_id, None)
            if stored.type == "indicator":
                self.indicator_order.changed()
        identity = self.identities.pop(stix_id, None)
        if identity is not None:
            self.by_internal.pop(str(identity["id"]), None)

    def user(self, token: str | None) -> StandinUser | None:
        return self.users.get(token) if token else None

    def resolve(self, kind: str, field: Field, user: StandinUser) -> object:
        """The value of one root field (before projection); raises ``GraphQLError``."""
        resolvers = _MUTATIONS if kind == "mutation" else _QUERIES
        entry = resolvers.get(field.name)
        if entry is None:
            type_name = "Mutation" if kind == "mutation" else "Query"
            raise GraphQLError(
                "GRAPHQL_VALIDATION_FAILED",
                f'Cannot query field "{field.name}" on type "{type_name}".',
                400,
            )
        capability, resolver = entry
        if capability is not None and not has_capability(user, capability):
            raise GraphQLError("FORBIDDEN_ACCESS", "You are not allowed to do this.", 403)
        return resolver(self, field, user)

    def _about(self, field: Field, user: StandinUser) -> object:
        return {
            "version": self.version,
            "dependencies": [{"name": "Elasticsearch", "version": "8.19.0"}],
        }

    def _me(self, field: Field, user: StandinUser) -> object:
        return {
            "id": user.id,
            "name": user.name,
            "user_email": user.user_email,
            "entity_type": "User",
            "capabilities": [
                {"id": str(uuid.uuid5(NAMESPACE, "capability:" + c)), "name": c}
                for c in user.capabilities
            ],
            "effective_confidence_level": {"max_confidence": user.max_confidence},
            "allowed_marking": [
                self._marking_record(stix_id, stored)
                for stix_id, stored in self.objects.items()
                if stored.type == "marking-definition"
                and (has_capability(user, "BYPASS") or user.may_use_marking(stix_id))
            ],
        }

    def _register_connector(self, field: Field, user: StandinUser) -> object:
        raw = field.arguments.get("input")
        given: Json = dict(raw) if isinstance(raw, dict) else {}
        connector_id = given.get("id")
        if not isinstance(connector_id, str) or not connector_id:
            raise bad_input('Variable "$input" got invalid value: "id" is required')
        connector = self.connectors.setdefault(
            connector_id, {"id": connector_id, "connector_state": None}
        )
        connector.update(
            {
                "name": given.get("name"),
                "connector_type": given.get("type"),
                "connector_scope": given.get("scope"),
                "connector_user_id": user.id,
                "_input": given,
            }
        )
        return {
            **connector,
            "jwks": None,
            "config": {
                "connection": {
                    "host": "localhost",
                    "vhost": "/",
                    "use_ssl": False,
                    "port": 5672,
                    "user": "guest",
                    "pass": "guest",
                },
                "s3": {
                    "endpoint": "localhost",
                    "port": 9000,
                    "use_ssl": False,
                    "bucket_name": "opencti-bucket",
                    "bucket_region": "us-east-1",
                    "access_key": "standin",
                    "secret_key": "standin",
                },
                "listen": f"listen_{connector_id}",
                "listen_routing": f"listen_routing_{connector_id}",
                "listen_exchange": "amqp.connector.exchange",
                "push": f"push_{connector_id}",
                "push_routing": f"push_routing_{connector_id}",
                "push_exchange": "amqp.worker.exchange",
            },
        }

    def _ping_connector(self, field: Field, user: StandinUser) -> object:
        connector_id = field.arguments.get("id")
        connector = self.connectors.get(str(connector_id))
        if connector is None:
            raise GraphQLError(
                "FUNCTIONAL_ERROR", "No connector found with the specified ID", 400, id=connector_id
            )
        if connector.pop("_reset", False):
            pass  # the reset state is answered once, not overwritten by this ping
        else:
            state = field.arguments.get("state")
            connector["connector_state"] = state if isinstance(state, str) else None
            connector["connector_info"] = field.arguments.get("connectorInfo")
        pings = connector.get("_pings", 0)
        connector["_pings"] = (pings if isinstance(pings, int) else 0) + 1
        return connector

    def _delete_connector(self, field: Field, user: StandinUser) -> object:
        connector_id = str(field.arguments.get("id"))
        if self.connectors.pop(connector_id, None) is None:
            raise GraphQLError("FUNCTIONAL_ERROR", "Cant find element to delete", 400)
        return connector_id

    def stored(self, object_id: object) -> tuple[str, Stored] | None:
        if not isinstance(object_id, str):
            return None
        stix_id = self.by_internal.get(object_id, object_id)
        stored = self.objects.get(stix_id)
        return None if stored is None else (stix_id, stored)

    def _marking_record(self, stix_id: str, stored: Stored) -> Json:
        stix = _decode_json.decode(stored.stix)
        definition = stix.get("name") or stix.get("definition")
        return {
            "id": stored.internal_id,
            "standard_id": stix_id,
            "entity_type": "Marking-Definition",
            "parent_types": ["Basic-Object", "Stix-Object", "Stix-Meta-Object"],
            "definition_type": stix.get("definition_type"),
            "definition": definition if isinstance(definition, str) else json.dumps(definition),
            "x_opencti_order": stix.get("x_opencti_order", 0),
            "x_opencti_color": stix.get("x_opencti_color"),
            "created": stix.get("created"),
            "modified": stix.get("modified", stix.get("created")),
            "created_at": stix.get("created"),
            "updated_at": stix.get("modified", stix.get("created")),
        }

    def marking_record(self, stix_id: str, stored: Stored) -> Json:
        return self._marking_record(stix_id, stored)

    def _marking_definition(self, field: Field, user: StandinUser) -> object:
        """``markingDefinition(id:)``: by standard or internal id."""
        found = self.stored(field.arguments.get("id"))
        if found is None or found[1].type != "marking-definition":
            return None
        return self._marking_record(*found)

    def _identity_record(self, stix_id: str) -> Json | None:
        created = self.identities.get(stix_id)
        if created is not None:
            return created
        found = self.stored(stix_id)
        if found is None or found[1].type != "identity":
            return None
        stix = _decode_json.decode(found[1].stix)
        # The platform's type for an imported identity follows its identity_class.
        identity_class = stix.get("identity_class")
        entity_type = _IDENTITY_TYPES.get(str(identity_class).lower(), "Organization")
        return {
            "id": found[1].internal_id,
            "standard_id": stix_id,
            "entity_type": entity_type,
            "parent_types": ["Basic-Object", "Stix-Object", "Stix-Core-Object", "Identity"],
            "name": stix.get("name"),
            "identity_class": stix.get("identity_class"),
        }

    def _indicator_record(self, stix_id: str, stored: Stored) -> Json:
        stix = _decode_json.decode(stored.stix)
        extensions = stix.get("extensions")
        ext: Mapping[str, object] = {}
        mitre: Mapping[str, object] = {}
        if isinstance(extensions, dict):
            found_ext = extensions.get(OPENCTI_EXTENSION)
            ext = found_ext if isinstance(found_ext, dict) else {}
            found_mitre = extensions.get(MITRE_EXTENSION)
            mitre = found_mitre if isinstance(found_mitre, dict) else {}
        markings: list[Json] = []
        refs = stix.get("object_marking_refs")
        for ref in refs if isinstance(refs, list) else []:
            known = self.stored(ref)
            if known is not None and known[1].type == "marking-definition":
                markings.append(self._marking_record(*known))
        created_by = stix.get("created_by_ref")
        author = self._identity_record(created_by) if isinstance(created_by, str) else None
        labels = stix.get("labels")
        references = stix.get("external_references")
        phases = stix.get("kill_chain_phases")
        return {
            "id": stored.internal_id,
            "standard_id": stix_id,
            "entity_type": "Indicator",
            "parent_types": [
                "Basic-Object",
                "Stix-Object",
                "Stix-Core-Object",
                "Stix-Domain-Object",
            ],
            "spec_version": stix.get("spec_version", "2.1"),
            "created_at": ext.get("created_at"),
            "updated_at": ext.get("updated_at"),
            "creators": [{"id": ADMIN_USER_ID, "name": "admin"}],
            "createdBy": author,
            "objectOrganization": [],
            "objectMarking": markings,
            "objectLabel": [
                {
                    "id": label_id(str(v)),
                    "value": v,
                    "color": "#000000",
                }
                for v in (labels if isinstance(labels, list) else [])
            ],
            "externalReferences": {
                "edges": [
                    {"node": {"id": internal_id(json.dumps(r, sort_keys=True)), **r}}
                    for r in (references if isinstance(references, list) else [])
                    if isinstance(r, dict)
                ]
            },
            "revoked": stix.get("revoked", False),
            "confidence": stix.get("confidence"),
            "created": stix.get("created"),
            "modified": stix.get("modified"),
            "pattern_type": stix.get("pattern_type"),
            "pattern_version": stix.get("pattern_version"),
            "pattern": stix.get("pattern"),
            "name": stix.get("name"),
            "description": stix.get("description"),
            "indicator_types": stix.get("indicator_types", []),
            "valid_from": stix.get("valid_from"),
            "valid_until": stix.get("valid_until"),
            "x_opencti_score": ext.get("score"),
            "x_opencti_detection": ext.get("detection"),
            "x_opencti_main_observable_type": ext.get("main_observable_type"),
            "x_opencti_observable_values": [],
            "x_mitre_platforms": mitre.get("platforms", []),
            "observables": {"edges": []},
            "killChainPhases": [
                {
                    "id": internal_id(json.dumps(p, sort_keys=True)),
                    "entity_type": "Kill-Chain-Phase",
                    **p,
                }
                for p in (phases if isinstance(phases, list) else [])
                if isinstance(p, dict)
            ],
            "customFieldValues": [],
        }

    def indicator_record(self, stix_id: str, stored: Stored) -> Json:
        return self._indicator_record(stix_id, stored)

    def _indicator(self, field: Field, user: StandinUser) -> object:
        found = self.stored(field.arguments.get("id"))
        if found is None or found[1].type != "indicator":
            return None
        return self._indicator_record(*found)

    def _connection_page(self, records: list[Json], field: Field) -> Json:
        try:
            kept = [r for r in records if matches_filters(r, field.arguments.get("filters"))]
        except UnsupportedFilter as error:
            raise GraphQLError("UNSUPPORTED_ERROR", f"Unsupported filter: {error}", 500) from None
        first_arg = field.arguments.get("first")
        first = first_arg if isinstance(first_arg, int) and first_arg > 0 else 500
        after = field.arguments.get("after")
        start = int(after) + 1 if isinstance(after, str) and after.isdigit() else 0
        page = kept[start : start + first]
        return {
            "edges": [{"node": node, "cursor": str(start + i)} for i, node in enumerate(page)],
            "pageInfo": {
                "startCursor": str(start) if page else None,
                "endCursor": str(start + len(page) - 1) if page else None,
                "hasNextPage": start + len(page) < len(kept),
                "hasPreviousPage": start > 0,
                "globalCount": len(kept),
            },
        }

    def internal_id_of(self, object_id: str) -> str:
        """The internal id of a referenced object (as a filter value names it)."""
        found = self.stored(object_id)
        if found is not None:
            return found[1].internal_id
        identity = self.identities.get(object_id)
        return str(identity["id"]) if identity is not None else internal_id(object_id)

    def filter_view(self, stix: Mapping[str, object]) -> Json:
        return filter_view(stix, self.internal_id_of)

    def _indicators(self, field: Field, user: StandinUser) -> object:
        """``indicators``: ordered by standard id, paged by cursor, filtered by a FilterGroup
        (``standin_indicators``); nodes are built only for the page."""
        try:
            first, start, filters = check_arguments(field)
        except ListingError as error:
            raise bad_input(str(error)) from None
        except UnsupportedFilter as error:
            raise GraphQLError("UNSUPPORTED_ERROR", f"Unsupported: {error}", 500) from None
        named = named_ids(filters)
        if named is not None:  # the platform looks these up, it does not scan
            found = (self.stored(object_id) for object_id in named)
            chosen = sorted({f[0] for f in found if f is not None and f[1].type == "indicator"})
            ids: Iterator[str] = iter([i for i in chosen if start is None or i > start])
        else:
            ids = self.indicator_order.after(
                lambda: [k for k, v in self.objects.items() if v.type == "indicator"], start
            )
        page: list[tuple[str, Stored]] = []
        more = False
        try:
            for stix_id in ids:
                stored = self.objects.get(stix_id)
                if stored is None or stored.type != "indicator":
                    continue
                if filters is not None and not matches_filters(
                    self.filter_view(_decode_json.decode(stored.stix)), filters
                ):
                    continue
                if len(page) == first:
                    more = True
                    break
                page.append((stix_id, stored))
        except UnsupportedFilter as error:
            raise GraphQLError("UNSUPPORTED_ERROR", f"Unsupported filter: {error}", 500) from None
        edges: list[Json] = []
        for stix_id, stored in page:
            node: object = _IndicatorNode(self, stix_id, stored)
            if self.indicator_node_hook is not None:
                node = self.indicator_node_hook(dict(_IndicatorNode(self, stix_id, stored)))
            edges.append({"node": node, "cursor": encode_cursor([stix_id])})
        return {
            "edges": edges,
            "pageInfo": {
                "startCursor": encode_cursor([page[0][0]]) if page else None,
                "endCursor": encode_cursor([page[-1][0]]) if page else None,
                "hasNextPage": more,
                "hasPreviousPage": start is not None,
                "globalCount": self._indicator_count(filters),
            },
        }

    def _indicator_count(self, filters: object) -> int:
        """``globalCount``, computed once per filter and state of the knowledge base."""
        key = (json.dumps(filters, sort_keys=True), self.generation)
        cached = self._counts.get(key)
        if cached is not None:
            return cached
        named = named_ids(filters)
        if named is not None:
            candidates = [f[1] for f in map(self.stored, named) if f is not None]
        else:
            candidates = list(self.objects.values())
        count = sum(
            1
            for stored in candidates
            if stored.type == "indicator"
            and (
                filters is None
                or matches_filters(self.filter_view(_decode_json.decode(stored.stix)), filters)
            )
        )
        self._counts = {key: count}
        return count

    def _marking_definitions(self, field: Field, user: StandinUser) -> object:
        records = [
            self._marking_record(stix_id, stored)
            for stix_id, stored in self.objects.items()
            if stored.type == "marking-definition"
        ]
        records.sort(key=lambda r: (str(r["definition_type"]), str(r["x_opencti_order"])))
        return self._connection_page(records, field)

    def _identity(self, field: Field, user: StandinUser) -> object:
        object_id = field.arguments.get("id")
        if not isinstance(object_id, str):
            return None
        stix_id = self.by_internal.get(object_id, object_id)
        return self._identity_record(stix_id)

    def _identity_add(self, field: Field, user: StandinUser) -> object:
        raw = field.arguments.get("input")
        given: Json = dict(raw) if isinstance(raw, dict) else {}
        entity_type, identity_class = _IDENTITY_MUTATIONS[field.name]
        if not entity_type:
            entity_type = str(given.get("type") or "")
            if entity_type not in _IDENTITY_CLASSES:
                raise bad_input(f'Value "{entity_type}" does not exist in "IdentityType" enum.')
            identity_class = _IDENTITY_CLASSES[entity_type]
        name = given.get("name")
        if not isinstance(name, str) or not name.strip():
            raise GraphQLError("VALIDATION_ERROR", "Validation error", 500, field="name")
        standard_id = identity_standard_id(name, identity_class)
        existing = self.identities.get(standard_id)
        if existing is None:
            existing = {
                "id": internal_id(standard_id),
                "standard_id": standard_id,
                "entity_type": entity_type,
                "parent_types": ["Basic-Object", "Stix-Object", "Stix-Core-Object", "Identity"],
                "name": name,
                "identity_class": identity_class,
                "description": given.get("description"),
            }
            self.identities[standard_id] = existing
            self.by_internal[str(existing["id"])] = standard_id
            if self.on_create is not None:
                self._echo(
                    {
                        "id": standard_id,
                        "type": "identity",
                        "spec_version": "2.1",
                        "name": name,
                        "identity_class": identity_class,
                        "extensions": {
                            OPENCTI_EXTENSION: {"id": existing["id"], "type": entity_type}
                        },
                    }
                )
        elif given.get("description") is not None and given.get("update"):
            existing["description"] = given.get("description")
        return existing

    def _resolve_identity(self, object_id: object) -> Json | None:
        if not isinstance(object_id, str):
            return None
        return self._identity_record(self.by_internal.get(object_id, object_id))

    def resolve_identity(self, object_id: object) -> Json | None:
        return self._resolve_identity(object_id)

    def _sighting_add(self, field: Field, user: StandinUser) -> object:
        raw = field.arguments.get("input")
        given: Json = dict(raw) if isinstance(raw, dict) else {}
        self.sighting_inputs.append(dict(given))
        unknown = sorted(set(given) - SIGHTING_INPUT_FIELDS)
        if unknown:
            raise bad_input(
                f'Variable "$input" got invalid value; Field "{unknown[0]}" is not defined by '
                'type "StixSightingRelationshipAddInput".'
            )
        first_seen = _parse_date(given.get("first_seen"), "first_seen")
        last_seen = _parse_date(given.get("last_seen"), "last_seen")
        count = given.get("attribute_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise bad_input(f'Variable "$input" got invalid value {count!r}; Int expected')
        record = self.sighting_store.add(self, user, given, first_seen, last_seen)
        return self.sighting_store.render(self, record)

    def _sighting(self, field: Field, user: StandinUser) -> object:
        """``stixSightingRelationship(id:)``: by internal, standard or any other STIX id."""
        record = self.sighting_store.find(field.arguments.get("id"))
        return None if record is None else self.sighting_store.render(self, record)

    def _sighting_edit(self, field: Field, user: StandinUser) -> object:
        """``stixSightingRelationshipEdit(id:)``: only ``relationAdd`` is implemented."""
        result: Json = {}
        for selected in field.selections:
            if selected.name != "relationAdd":
                raise bad_input(f"stixSightingRelationshipEdit.{selected.name} is not supported")
            raw = selected.arguments.get("input")
            given: Json = dict(raw) if isinstance(raw, dict) else {}
            result[selected.name] = self.sighting_store.relation_add(
                self, user, field.arguments.get("id"), given
            )
        return result

    def external_reference(self, object_id: object) -> Json | None:
        return self._external_reference(object_id)

    def _external_reference(self, object_id: object) -> Json | None:
        if not isinstance(object_id, str):
            return None
        stix_id = self.by_internal.get(object_id, object_id)
        return self.external_references.get(stix_id)

    def _external_reference_add(self, field: Field, user: StandinUser) -> object:
        """``externalReferenceAdd``: upserted by the standard id of its URL (else source name
        and external id), as the platform does."""
        raw = field.arguments.get("input")
        given: Json = dict(raw) if isinstance(raw, dict) else {}
        url, source_name, external_id = (
            given.get(key) for key in ("url", "source_name", "external_id")
        )
        standard_id = external_reference_standard_id(
            url if isinstance(url, str) else None,
            source_name if isinstance(source_name, str) else None,
            external_id if isinstance(external_id, str) else None,
        )
        if standard_id is None or not isinstance(source_name, str) or not source_name:
            raise GraphQLError("VALIDATION_ERROR", "Validation error", 500, field="source_name")
        record = self.external_references.get(standard_id)
        if record is None:
            record = {
                "id": internal_id(standard_id),
                "standard_id": standard_id,
                "entity_type": "External-Reference",
                "parent_types": ["Basic-Object", "Stix-Object", "Stix-Meta-Object"],
                "source_name": source_name,
                "url": url,
                "external_id": external_id,
                "description": given.get("description"),
            }
            self.external_references[standard_id] = record
            self.by_internal[str(record["id"])] = standard_id
        return record

    def echo(self, stix_object: Json) -> None:
        self._echo(stix_object)

    def _echo(self, stix_object: Json) -> None:
        """Publish what a GraphQL write created, as the platform does."""
        if self.on_create is not None:
            self.on_create(stix_object)

    def _stream_collection(self, field: Field, user: StandinUser) -> object:
        collection = self.collections.get(str(field.arguments.get("id")))
        if collection is None:
            return None
        if collection.opaque_filters and any(f.name == "filters" for f in field.selections):
            raise GraphQLError(
                "UNSUPPORTED_ERROR",
                "stand-in: this collection is filtered by a Python predicate, which no "
                "FilterGroup expresses (give add_stream_collection a filter_group)",
                500,
            )
        return {
            "id": collection.id,
            "name": collection.name,
            "description": "",
            "filters": collection.filters,
            "stream_live": collection.live,
            "stream_public": collection.public,
        }

    def _bundle_push(self, field: Field, user: StandinUser) -> object:
        bundle = field.arguments.get("bundle")
        if not isinstance(bundle, str):
            raise bad_input('Variable "$bundle" of required type "String!" was not provided.')
        self.bundles.append(bundle)
        return True


class _IndicatorNode(Mapping[str, object]):
    """An ``indicators`` node built on demand: ``id``, ``standard_id`` and ``toStix`` cost
    nothing; any other field builds the whole record once (a listing of 100 000 indicators
    that asks only for ``toStix`` must not build 100 000 records)."""

    _CHEAP: Final = frozenset({"id", "standard_id", "entity_type", "toStix"})

    def __init__(self, platform: PlatformState, stix_id: str, stored: Stored) -> None:
        self._platform = platform
        self._stix_id = stix_id
        self._stored = stored
        self._record: Json | None = None

    def _full(self) -> Json:
        if self._record is None:
            self._record = {
                **self._platform.indicator_record(self._stix_id, self._stored),
                "toStix": self._stored.stix.decode(),
            }
        return self._record

    def __getitem__(self, key: str) -> object:
        if key == "id":
            return self._stored.internal_id
        if key == "standard_id":
            return self._stix_id
        if key == "entity_type":
            return "Indicator"
        if key == "toStix":
            return self._stored.stix.decode()
        return self._full()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())


_Resolver: TypeAlias = Callable[[PlatformState, Field, StandinUser], object]

_QUERIES: Final[Mapping[str, tuple[str | None, _Resolver]]] = {
    "about": (None, PlatformState._about),
    "me": (None, PlatformState._me),
    "indicator": ("KNOWLEDGE", PlatformState._indicator),
    "indicators": ("KNOWLEDGE", PlatformState._indicators),
    "identity": ("KNOWLEDGE", PlatformState._identity),
    "stixSightingRelationship": ("KNOWLEDGE", PlatformState._sighting),
    "markingDefinition": (None, PlatformState._marking_definition),
    "markingDefinitions": (None, PlatformState._marking_definitions),
    "streamCollection": (None, PlatformState._stream_collection),
}
_MUTATIONS: Final[Mapping[str, tuple[str | None, _Resolver]]] = {
    "registerConnector": ("CONNECTORAPI", PlatformState._register_connector),
    "pingConnector": ("CONNECTORAPI", PlatformState._ping_connector),
    "deleteConnector": ("CONNECTORAPI", PlatformState._delete_connector),
    **dict.fromkeys(_IDENTITY_MUTATIONS, ("KNOWLEDGE_KNUPDATE", PlatformState._identity_add)),
    "stixSightingRelationshipAdd": ("KNOWLEDGE_KNUPDATE", PlatformState._sighting_add),
    "stixSightingRelationshipEdit": ("KNOWLEDGE_KNUPDATE", PlatformState._sighting_edit),
    "externalReferenceAdd": ("KNOWLEDGE_KNUPDATE", PlatformState._external_reference_add),
    "stixBundlePush": ("CONNECTORAPI", PlatformState._bundle_push),
}
