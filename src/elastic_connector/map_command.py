"""`elastic-connector map`: STIX bundle or stream events in, Elasticsearch `_bulk` NDJSON out.

It runs exactly the planning the daemon runs (same config loader, same policy, same mapping) and
touches no network, so an analyst can see what a feed would become before connecting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Final, TextIO, TypeAlias

import msgspec

from elastic_connector.core import json_scan
from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame
from elastic_connector.shell.authors import AuthorNames

_STREAM_EVENTS: Final = ("create", "update", "delete", "merge")
_BOM: Final = b"\xef\xbb\xbf"
_FIRST: Final = {"marking-definition": 0, "identity": 1}
"""Order of a bundle's objects: markings first, so every object's TLP resolves whatever the
bundle's order, then identities, so every indicator's author is known."""


class UnreadableInput(Exception):
    """The input is neither a STIX bundle, STIX objects nor NDJSON stream events."""


_encoder: Final = msgspec.json.Encoder()

Frame: TypeAlias = tuple[str, str, bytes]
"""(event id, event name or ``invalid``, payload JSON or the reason it is invalid)."""


def _frames(text: bytes) -> Iterator[Frame]:
    """The events of the input. Accepted: NDJSON (one stream event, STIX object, bundle or
    array per line), or JSON values in any layout (a pretty-printed bundle, object or array of
    objects); a UTF-8 byte order mark is ignored. Only the top level is parsed here, without
    recursion, so no nesting depth can stop the whole input."""
    text = text.removeprefix(_BOM)
    start = json_scan.skip_space(text, 0)
    if start >= len(text):
        return
    end = json_scan.value_end(text, start) if text[start : start + 1] in (b"{", b"[") else None
    if end is None:
        raise UnreadableInput(
            "the input is not JSON; expected a STIX bundle, STIX objects or NDJSON stream events"
        )
    newline = text.find(b"\n", start)
    if newline != -1 and end <= newline and not text[end:newline].strip():
        yield from _lines(text)
    else:
        yield from _values(text, start)


def _lines(text: bytes) -> Iterator[Frame]:
    """NDJSON: each line on its own, so one bad line costs only itself."""
    for number, line in enumerate(text.split(b"\n"), start=1):
        start = json_scan.skip_space(line, 0)
        if start >= len(line):
            continue
        end = json_scan.value_end(line, start)
        if end is None or line[end:].strip():
            yield f"line-{number}", "invalid", f"line {number} is not one JSON value".encode()
            continue
        yield from _items(line[start:end], f"line-{number}")


def _values(text: bytes, start: int) -> Iterator[Frame]:
    number = 0
    position = start
    while position < len(text):
        end = json_scan.value_end(text, position)
        if end is None:
            where = f"item-{number + 1}"
            yield where, "invalid", f"invalid JSON at byte {position}".encode()
            return
        number += 1
        yield from _items(text[position:end], f"item-{number}")
        position = json_scan.skip_space(text, end)


def _items(raw: bytes, label: str) -> Iterator[Frame]:
    """The events of one JSON value: an array of items, a bundle, a stream event, an object."""
    if raw.startswith(b"["):
        elements, end = json_scan.elements(raw)
        yield from _collection(elements, label)
        if end is None:
            yield label, "invalid", f"array is not valid JSON after {len(elements)} items".encode()
        return
    fields = dict(json_scan.members(raw))
    kind = json_scan.text_of(fields.get("type", b""))
    if kind == "bundle":
        objects = fields.get("objects", b"[]")
        elements, end = json_scan.elements(objects)
        if end is None:
            raise UnreadableInput("not a STIX bundle: `objects` is not an array of objects")
        yield from _collection(elements, "bundle")
        return
    if "data" in fields:
        yield _event(raw, label)
        return
    if kind is not None and "id" in fields:
        yield label, "create", _create(raw)  # a bare STIX object
        return
    reason = "neither a STIX object (type, id), a bundle nor a stream event (data)"
    yield label, "invalid", reason.encode()


def _collection(elements: list[bytes], label: str) -> Iterator[Frame]:
    def order(raw: bytes) -> int:
        return _FIRST.get(json_scan.string_member(raw, "type") or "", len(_FIRST))

    for number, raw in enumerate(sorted(elements, key=order), start=1):
        where = f"{label}-{number}"
        if not raw.startswith(b"{"):
            yield where, "invalid", b"not a JSON object"
        elif "data" in dict(json_scan.members(raw)):
            yield _event(raw, where)  # never a collection again: no recursion on nesting
        else:
            yield where, "create", _create(raw)


def _event(raw: bytes, label: str) -> Frame:
    """A stream event: ``{"id": "<ms>-<seq>", "event": "create", "data": {...} | "<json>"}``."""
    fields = dict(json_scan.members(raw))
    data = fields.get("data", b"null")
    if data.startswith(b'"'):
        decoded = json_scan.text_of(data)
        data = decoded.encode("utf-8", "surrogatepass") if decoded is not None else data
    event_id = json_scan.text_of(fields.get("id", b"")) or label
    event = json_scan.text_of(fields.get("event", b"")) or _event_of(data)
    return event_id, event, data


def _create(raw: bytes) -> bytes:
    return b'{"type":"create","data":' + raw + b"}"


def _event_of(data: bytes) -> str:
    kind = json_scan.string_member(data, "type")
    return kind if kind in _STREAM_EVENTS else "invalid"


def bulk_lines(action: Upsert | Delete) -> bytes:
    """The `_bulk` NDJSON of one action (the action line, then the source line for an upsert)."""
    if isinstance(action, Upsert):
        head = _encoder.encode({"index": {"_index": action.index, "_id": action.id}})
        return head + b"\n" + action.document + b"\n"
    return _encoder.encode({"delete": {"_index": action.index, "_id": action.id}}) + b"\n"


def _report(action: Action, frame_id: str, errors: TextIO) -> None:
    if isinstance(action, Skip):
        errors.write(
            _encoder.encode({"skip": action.reason, "id": action.object_id or frame_id}).decode()
            + "\n"
        )
    elif isinstance(action, Delete) and action.code not in ("deleted", "merged"):
        errors.write(_encoder.encode({"skip": action.reason, "id": action.id}).decode() + "\n")


def _skip(errors: TextIO, reason: str, object_id: str) -> None:
    errors.write(_encoder.encode({"skip": reason, "id": object_id}).decode() + "\n")


def run_map(
    source: BinaryIO, output: BinaryIO, errors: TextIO, settings: PlanSettings, now: datetime
) -> int:
    """Map ``source`` to bulk NDJSON on ``output``, skips to ``errors``; returns the exit code."""
    try:
        text = source.read()
    except OSError as error:
        errors.write(f"elastic-connector map: cannot read input: {error}\n")
        return 2
    state = PlannerState()
    authors = AuthorNames()
    try:
        for frame_id, event, payload in _frames(text):
            if event == "invalid":
                _skip(errors, f"not a stream event: {payload.decode()}", frame_id)
                continue
            try:
                plan = plan_frame(frame_id, event, payload, state, settings, now, authors.names)
            except Exception as error:
                # As in the daemon: a bug in planning costs this event, reported, not the run.
                _skip(errors, f"internal error while planning (a bug): {error!r}", frame_id)
                continue
            state = plan.state
            authors.learn(plan)
            for action in plan.actions:
                _report(action, frame_id, errors)
                if not isinstance(action, Skip):
                    output.write(bulk_lines(action))
    except UnreadableInput as error:
        errors.write(f"elastic-connector map: {error}\n")
        return 2
    output.flush()
    return 0
