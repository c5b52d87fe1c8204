"""What ``elastic-connector map`` and the library read: STIX data as a file holds it, turned into
the stream frames the planner takes (``core.events.plan_frame``).

Accepted: a STIX bundle, a JSON array of STIX objects, a single object (each object becomes a
``create`` event), or OpenCTI stream events (``{"id", "event", "data"}``), as NDJSON (one value
per line) or as JSON values in any layout (pretty-printed, several in a row); a UTF-8 byte order
mark is ignored. Only the top level is parsed here, without recursion, so no nesting depth can
stop the whole input, and one bad line or item costs only itself (``BadItem``). Input that is
not JSON at all, or a bundle whose ``objects`` is not an array, ends the reading
(``Unreadable``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, TypeAlias

import msgspec

from elastic_connector.core import json_scan

_STREAM_EVENTS: Final = ("create", "update", "delete", "merge")
_BOM: Final = b"\xef\xbb\xbf"
_FIRST: Final = {"marking-definition": 0, "identity": 1}
"""Order of a bundle's objects: markings first, so every object's TLP resolves whatever the
bundle's order, then identities, so every indicator's author is known."""


class Frame(msgspec.Struct, frozen=True):
    """One event for the planner: its id (the stream's, else where it sits in the input:
    ``line-3``, ``bundle-2``, ``item-1-4``), its name (``create``...) and its data (JSON)."""

    id: str
    event: str
    data: bytes


class BadItem(msgspec.Struct, frozen=True):
    """A line or item that is not a stream event, a STIX object or a collection of them."""

    where: str
    reason: str


class Unreadable(msgspec.Struct, frozen=True):
    """Why the rest of the input cannot be read; always the last thing ``read_frames`` gives."""

    reason: str


InputItem: TypeAlias = Frame | BadItem | Unreadable


class _Unreadable(Exception):
    pass


def read_frames(text: bytes) -> Iterator[InputItem]:
    """The frames of ``text`` in order, each bad line or item in its place, and ``Unreadable``
    last when the input stops making sense. Never raises."""
    try:
        yield from _frames(text)
    except _Unreadable as error:
        yield Unreadable(str(error))


def _frames(text: bytes) -> Iterator[Frame | BadItem]:
    text = text.removeprefix(_BOM)
    start = json_scan.skip_space(text, 0)
    if start >= len(text):
        return
    end = json_scan.value_end(text, start) if text[start : start + 1] in (b"{", b"[") else None
    if end is None:
        raise _Unreadable(
            "the input is not JSON; expected a STIX bundle, STIX objects or NDJSON stream events"
        )
    newline = text.find(b"\n", start)
    if newline != -1 and end <= newline and not text[end:newline].strip():
        yield from _lines(text)
    else:
        yield from _values(text, start)


def _lines(text: bytes) -> Iterator[Frame | BadItem]:
    """NDJSON: each line on its own, so one bad line costs only itself."""
    for number, line in enumerate(text.split(b"\n"), start=1):
        start = json_scan.skip_space(line, 0)
        if start >= len(line):
            continue
        end = json_scan.value_end(line, start)
        if end is None or line[end:].strip():
            yield BadItem(f"line-{number}", f"line {number} is not one JSON value")
            continue
        yield from _items(line[start:end], f"line-{number}")


def _values(text: bytes, start: int) -> Iterator[Frame | BadItem]:
    number = 0
    position = start
    while position < len(text):
        end = json_scan.value_end(text, position)
        if end is None:
            yield BadItem(f"item-{number + 1}", f"invalid JSON at byte {position}")
            return
        number += 1
        yield from _items(text[position:end], f"item-{number}")
        position = json_scan.skip_space(text, end)


def _items(raw: bytes, label: str) -> Iterator[Frame | BadItem]:
    """The events of one JSON value: an array of items, a bundle, a stream event, an object."""
    if raw.startswith(b"["):
        elements, end = json_scan.elements(raw)
        yield from _collection(elements, label)
        if end is None:
            yield BadItem(label, f"array is not valid JSON after {len(elements)} items")
        return
    fields = dict(json_scan.members(raw))
    kind = json_scan.text_of(fields.get("type", b""))
    if kind == "bundle":
        objects = fields.get("objects", b"[]")
        elements, end = json_scan.elements(objects)
        if end is None:
            raise _Unreadable("not a STIX bundle: `objects` is not an array of objects")
        yield from _collection(elements, "bundle")
        return
    if "data" in fields:
        yield _event(raw, label)
        return
    if kind is not None and "id" in fields:
        yield Frame(label, "create", _create(raw))  # a bare STIX object
        return
    yield BadItem(label, "neither a STIX object (type, id), a bundle nor a stream event (data)")


def _collection(elements: list[bytes], label: str) -> Iterator[Frame | BadItem]:
    def order(raw: bytes) -> int:
        return _FIRST.get(json_scan.string_member(raw, "type") or "", len(_FIRST))

    for number, raw in enumerate(sorted(elements, key=order), start=1):
        where = f"{label}-{number}"
        if not raw.startswith(b"{"):
            yield BadItem(where, "not a JSON object")
        elif "data" in dict(json_scan.members(raw)):
            yield _event(raw, where)  # never a collection again: no recursion on nesting
        else:
            yield Frame(where, "create", _create(raw))


def _event(raw: bytes, label: str) -> Frame | BadItem:
    """A stream event: ``{"id": "<ms>-<seq>", "event": "create", "data": {...} | "<json>"}``."""
    fields = dict(json_scan.members(raw))
    data = fields.get("data", b"null")
    if data.startswith(b'"'):
        decoded = json_scan.text_of(data)
        data = decoded.encode("utf-8", "surrogatepass") if decoded is not None else data
    event_id = json_scan.text_of(fields.get("id", b"")) or label
    event = json_scan.text_of(fields.get("event", b"")) or _event_of(data)
    if event == "invalid":
        return BadItem(event_id, data.decode("utf-8", "replace"))
    return Frame(event_id, event, data)


def _create(raw: bytes) -> bytes:
    return b'{"type":"create","data":' + raw + b"}"


def _event_of(data: bytes) -> str:
    kind = json_scan.string_member(data, "type")
    return kind if kind in _STREAM_EVENTS else "invalid"
