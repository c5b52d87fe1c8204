"""The stand-in platform's sightings, stored and upserted by the platform's own rules.

Every rule below was read in the OpenCTI platform's source (``opencti-graphql/src``) and is
listed in ``shared/reference/opencti.md`` ("Sighting upserts"); the stand-in must never be kinder
than the platform:

* **Lookup** (``middleware.ts`` ``getExistingRelations`` + ``buildRelationDeduplicationFilters``):
  an existing sighting is the one whose internal id, standard id or ``x_opencti_stix_ids`` holds
  one of the write's ids (its derived standard id, ``stix_id``, ``x_opencti_stix_ids``), *or* the
  one of the same indicator and identity whose ``first_seen`` and ``last_seen`` are each strictly
  within ``relations_deduplication`` days (30 by default) of the write's (a date the write does
  not give does not filter). When several match, the platform takes the first search hit; the
  stand-in takes the oldest.
* **Creation** (``data-builder.js`` ``buildRelationData``, ``createRelationRaw``): confidence is
  ``min(user's max confidence, given ?? 100)`` (``confidence-level.ts``
  ``controlCreateInputWithUserConfidence``); ``attribute_count`` defaults to 1, ``first_seen`` /
  ``last_seen`` to the platform's FROM_START / UNTIL_END; ``first_seen > last_seen`` is a
  ``DATABASE_ERROR``; the ``stix_id`` goes to ``x_opencti_stix_ids`` when it is not the standard
  id. External references are stored at creation by today's source; ``references_at_creation``
  off reproduces a platform that drops them there (opencti.md: "to confirm on the platform").
* **Upsert** (``upsert-utils.js`` ``buildUpdatePatchForUpsert`` /
  ``generateAttributesInputsForUpsert`` / ``generateRefsInputsForUpsert``): the dates widen;
  ``attribute_count`` is *added* when ``first_seen`` or ``last_seen`` widened, *replaced*
  otherwise; a field is applied only when the writer's capped confidence is at least the
  sighting's (``controlUpsertInputWithUserConfidence``; no confidence counts as 0) or when the
  sighting's field is empty; the ``stix_id`` always joins ``x_opencti_stix_ids``; markings and
  references are added under the same confidence rule.
* **References** (``middleware.ts`` ``inputResolveRefs``): an unknown ``fromId``/``toId`` is a
  ``MISSING_REFERENCE_ERROR`` with ``unresolvedIds``; other unknown markings, references and
  authors are silently dropped for an API caller; a known marking the user may not use is a
  ``MISSING_REFERENCE_ERROR`` *without* ``unresolvedIds`` (unless the user has ``BYPASS``).
* **Adding a reference later** (``relationAdd`` on ``stixSightingRelationshipEdit``): external
  references need no confidence (``shouldCheckConfidenceOnRefRelationship``); markings need the
  user's max confidence to reach the sighting's (``controlUserConfidenceAgainstElement``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from elastic_connector.demo.opencti_data import (
    NAMESPACE,
    OPENCTI_EXTENSION,
    Json,
    internal_id,
    sighting_standard_id,
)

if TYPE_CHECKING:
    from elastic_connector.demo.standin_graphql import PlatformState, StandinUser, Stored

INPUT_FIELDS: Final = frozenset(
    {
        "fromId", "toId", "stix_id", "description", "first_seen", "last_seen",
        "attribute_count", "x_opencti_negative", "created", "modified", "confidence",
        "createdBy", "objectMarking", "objectLabel", "externalReferences",
        "x_opencti_stix_ids", "x_opencti_workflow_id", "x_opencti_modified_at",
        "objectOrganization", "update", "upsertOperations", "customFieldValues",
    }
)  # fmt: skip
"""``StixSightingRelationshipAddInput``'s fields."""

FROM_START: Final = datetime(1970, 1, 1, tzinfo=UTC)
UNTIL_END: Final = datetime(5138, 11, 16, 9, 46, 40, tzinfo=UTC)
"""The platform's open dates (``utils/format.js`` FROM_START_STR / UNTIL_END_STR)."""

DEDUPLICATION_DAYS: Final = 30
"""``relations_deduplication`` ``past_days`` / ``next_days`` default."""

_UPSERTED: Final = ("first_seen", "last_seen", "attribute_count", "description", "confidence")


class SightingRules:
    """Switches tests turn to reproduce a platform's configuration (defaults: the platform's)."""

    def __init__(self) -> None:
        self.deduplication_days = DEDUPLICATION_DAYS
        """0: only ids find an existing sighting (``relations_deduplication`` set to 0)."""
        self.references_at_creation = True
        """False: external references given at creation are dropped (see the module notes)."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _strings(value: object) -> list[str]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return [value] if isinstance(value, str) else []


def _stored_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _crop(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return 100
    return max(0, min(100, value))


class SightingStore:
    """The sightings of one stand-in platform (callers hold the stand-in's lock)."""

    def __init__(self) -> None:
        self.rules = SightingRules()
        self.records: dict[str, Json] = {}
        """By standard id, in creation order."""
        self.inputs: list[Json] = []

    # --- reading ----------------------------------------------------------------------------

    def find(self, object_id: object) -> Json | None:
        """A sighting by internal id, standard id or any of its other STIX ids."""
        if not isinstance(object_id, str):
            return None
        wanted = object_id.lower()
        for record in self.records.values():
            if wanted in self._ids(record):
                return record
        return None

    @staticmethod
    def _ids(record: Mapping[str, object]) -> set[str]:
        return {
            str(record["id"]),
            str(record["standard_id"]),
            *_strings(record.get("x_opencti_stix_ids")),
        }

    def render(self, platform: PlatformState, record: Json) -> Json:
        """The GraphQL shape of a sighting (references as objects and connections)."""
        markings = [
            platform.marking_record(*found)
            for marking in _strings(record.get("objectMarking"))
            if (found := platform.stored(marking)) is not None
        ]
        references = [
            {"node": ref}
            for ref_id in _strings(record.get("externalReferences"))
            if (ref := platform.external_reference(ref_id)) is not None
        ]
        author = record.get("createdBy")
        return {
            **record,
            "objectMarking": markings,
            "externalReferences": {"edges": references},
            "createdBy": platform.resolve_identity(author) if isinstance(author, str) else None,
        }

    # --- writing ----------------------------------------------------------------------------

    def add(
        self,
        platform: PlatformState,
        user: StandinUser,
        given: Json,
        first_seen: datetime | None,
        last_seen: datetime | None,
    ) -> Json:
        """``stixSightingRelationshipAdd`` once the input is validated (see the module notes)."""
        from elastic_connector.demo.standin_graphql import (
            GraphQLError,
            has_capability,
            missing_reference,
        )

        source = platform.stored(given.get("fromId"))
        target = platform.resolve_identity(given.get("toId"))
        unresolved = [
            str(given.get(key))
            for key, found in (("fromId", source), ("toId", target))
            if found is None
        ]
        if unresolved or source is None or target is None:
            raise missing_reference(unresolved)
        markings = [
            found[0]
            for marking in _strings(given.get("objectMarking"))
            if (found := platform.stored(marking)) is not None
            and found[1].type == "marking-definition"
        ]
        if not has_capability(user, "BYPASS") and not all(
            user.may_use_marking(marking) for marking in markings
        ):
            raise GraphQLError(
                "MISSING_REFERENCE_ERROR",
                "User trying to create the data has missing markings",
                404,
                reason="User trying to create the data has missing markings",
            )
        references = [
            str(ref["id"])
            for ref_id in _strings(given.get("externalReferences"))
            if (ref := platform.external_reference(ref_id)) is not None
        ]
        author_record = platform.resolve_identity(given.get("createdBy"))
        author = str(author_record["id"]) if author_record is not None else None
        applied = min(user.max_confidence, _crop(given.get("confidence")))
        standard_id = sighting_standard_id(
            source[0],
            [str(target["standard_id"])],
            None if given.get("first_seen") is None else str(given.get("first_seen")),
            None if given.get("last_seen") is None else str(given.get("last_seen")),
        )
        stix_id = given.get("stix_id")
        given_ids = {
            item.lower()
            for item in [*_strings(stix_id), *_strings(given.get("x_opencti_stix_ids"))]
        }
        existing = self._existing(
            given_ids | {standard_id},
            source[1].internal_id,
            str(target["id"]),
            first_seen,
            last_seen,
        )
        if existing is None:
            return self._create(
                platform,
                given,
                standard_id=standard_id,
                source=source,
                target=target,
                first_seen=first_seen or FROM_START,
                last_seen=last_seen or UNTIL_END,
                confidence=applied,
                markings=markings,
                references=references,
                author=author,
            )
        self._upsert(
            existing,
            given,
            given_ids=given_ids,
            first_seen=first_seen,
            last_seen=last_seen,
            confidence=applied,
            markings=markings,
            references=references,
            author=author,
        )
        return existing

    def _existing(
        self,
        given_ids: set[str],
        from_id: str,
        to_id: str,
        first_seen: datetime | None,
        last_seen: datetime | None,
    ) -> Json | None:
        window = timedelta(days=self.rules.deduplication_days)

        def near(stored: object, moment: datetime | None) -> bool:
            if moment is None:
                return True
            known = _stored_date(stored)
            return known is not None and abs(known - moment) < window

        for record in self.records.values():
            if given_ids & self._ids(record):
                return record
            if (
                record["fromId"] == from_id
                and record["toId"] == to_id
                and near(record.get("first_seen"), first_seen)
                and near(record.get("last_seen"), last_seen)
            ):
                return record
        return None

    def _create(
        self,
        platform: PlatformState,
        given: Json,
        *,
        standard_id: str,
        source: tuple[str, Stored],
        target: Json,
        first_seen: datetime,
        last_seen: datetime,
        confidence: int,
        markings: list[str],
        references: list[str],
        author: str | None,
    ) -> Json:
        from elastic_connector.demo.standin_graphql import GraphQLError

        if first_seen > last_seen:
            raise GraphQLError(
                "DATABASE_ERROR",
                "You cant create a relation with last_seen less than first_seen",
                500,
            )
        count = given.get("attribute_count")
        stix_ids = [item.lower() for item in _strings(given.get("x_opencti_stix_ids"))]
        stix_id = given.get("stix_id")
        if isinstance(stix_id, str) and stix_id and stix_id.lower() != standard_id:
            stix_ids.append(stix_id.lower())
        marking_list: list[object] = list(dict.fromkeys(markings))
        record: Json = {
            "id": internal_id(standard_id),
            "standard_id": standard_id,
            "entity_type": "stix-sighting-relationship",
            "parent_types": ["basic-relationship", "stix-relationship"],
            "fromId": source[1].internal_id,
            "toId": target["id"],
            "first_seen": _iso(first_seen),
            "last_seen": _iso(last_seen),
            "attribute_count": count if isinstance(count, int) else 1,
            "description": given.get("description") or "",
            "confidence": confidence,
            "x_opencti_negative": bool(given.get("x_opencti_negative")),
            "objectMarking": marking_list,
            "externalReferences": (
                list(dict.fromkeys(references)) if self.rules.references_at_creation else []
            ),
            "createdBy": author,
            "x_opencti_stix_ids": sorted(set(stix_ids)),
        }
        self.records[standard_id] = record
        platform.echo(
            {
                "id": standard_id,
                "type": "sighting",
                "spec_version": "2.1",
                "sighting_of_ref": source[0],
                "where_sighted_refs": [target["standard_id"]],
                "count": record["attribute_count"],
                "first_seen": record["first_seen"],
                "last_seen": record["last_seen"],
                "confidence": confidence,
                "object_marking_refs": marking_list,
                "extensions": {
                    OPENCTI_EXTENSION: {
                        "id": record["id"],
                        "type": "stix-sighting-relationship",
                        "sighting_of_type": "Indicator",
                        "where_sighted_types": [target.get("entity_type")],
                        "negative": record["x_opencti_negative"],
                    }
                },
            }
        )
        return record

    @staticmethod
    def _upsert(
        existing: Json,
        given: Json,
        *,
        given_ids: set[str],
        first_seen: datetime | None,
        last_seen: datetime | None,
        confidence: int,
        markings: list[str],
        references: list[str],
        author: str | None,
    ) -> None:
        held = existing.get("confidence")
        match = confidence >= (_crop(held) if isinstance(held, int) else 0)
        # STIX ids are always consolidated, whatever the confidence.
        ids = set(_strings(existing.get("x_opencti_stix_ids"))) | given_ids
        ids.discard(str(existing["standard_id"]))
        existing["x_opencti_stix_ids"] = sorted(ids)

        patch: Json = {"confidence": confidence}
        widened = False
        old_first = _stored_date(existing.get("first_seen"))
        old_last = _stored_date(existing.get("last_seen"))
        if first_seen is not None:
            if old_first is None or first_seen < old_first:
                widened, old_first = True, first_seen
            patch["first_seen"] = _iso(old_first)
        if last_seen is not None:
            if old_last is None or last_seen > old_last:
                widened, old_last = True, last_seen
            patch["last_seen"] = _iso(old_last)
        count = given.get("attribute_count")
        if isinstance(count, int) and not isinstance(count, bool):
            stored = existing.get("attribute_count")
            held_count = stored if isinstance(stored, int) else 0
            patch["attribute_count"] = held_count + count if widened else count
        description = given.get("description")
        if isinstance(description, str) and description.strip():
            patch["description"] = description
        for key in _UPSERTED:
            if key not in patch:
                continue
            current = existing.get(key)
            if match or current is None or current == "":
                existing[key] = patch[key]

        for key, added in (("objectMarking", markings), ("externalReferences", references)):
            current_refs = _strings(existing.get(key))
            new = [item for item in dict.fromkeys(added) if item not in current_refs]
            if new and (match or not current_refs):
                existing[key] = current_refs + new
        if author is not None and (existing.get("createdBy") is None or match):
            existing["createdBy"] = author

    def relation_add(
        self, platform: PlatformState, user: StandinUser, object_id: object, given: Json
    ) -> Json:
        """``stixSightingRelationshipEdit(id:) { relationAdd(input:) }`` for external
        references and markings."""
        from elastic_connector.demo.standin_graphql import (
            GraphQLError,
            bad_input,
            has_capability,
        )

        record = self.find(object_id)
        if record is None:
            raise GraphQLError("FUNCTIONAL_ERROR", "Cant find element to update", 400)
        kind = given.get("relationship_type")
        to_id = given.get("toId")
        if kind == "external-reference":
            ref = platform.external_reference(to_id)
            if ref is None:
                raise GraphQLError("FUNCTIONAL_ERROR", "Cant find element to add", 400)
            key, value = "externalReferences", str(ref["id"])
        elif kind == "object-marking":
            found = platform.stored(to_id)
            if found is None or found[1].type != "marking-definition":
                raise GraphQLError("FUNCTIONAL_ERROR", "Cant find element to add", 400)
            held = record.get("confidence")
            if user.max_confidence < (held if isinstance(held, int) else 0):
                raise GraphQLError(
                    "FUNCTIONAL_ERROR",
                    "User effective max confidence level is insufficient to update this element",
                    400,
                )
            if not has_capability(user, "BYPASS") and not user.may_use_marking(found[0]):
                raise GraphQLError("MISSING_REFERENCE_ERROR", "User has missing markings", 404)
            key, value = "objectMarking", found[0]
        else:
            raise bad_input(f"relationship_type {kind!r} is not supported by the stand-in")
        current = _strings(record.get(key))
        if value not in current:
            record[key] = [*current, value]
        return {
            "id": str(uuid.uuid5(NAMESPACE, f"ref:{record['id']}:{value}")),
            "entity_type": kind,
            "from": self.render(platform, record),
        }
