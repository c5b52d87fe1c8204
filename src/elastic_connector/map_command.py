"""`elastic-connector map`: STIX bundle or stream events in, Elasticsearch `_bulk` NDJSON out.

It runs exactly the planning the daemon runs (same config loader, same policy, same mapping) and
touches no network, so an analyst can see what a feed would become before connecting anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Final, TextIO

import msgspec

from elastic_connector.core.actions import Action, Delete, Skip, Upsert
from elastic_connector.core.events import PlannerState, PlanSettings, plan_frame

_STREAM_EVENTS: Final = ("create", "update", "delete", "merge")


class _Bundle(msgspec.Struct):
    type: str
    objects: list[msgspec.Raw] = []


class _StreamLine(msgspec.Struct):
    """One NDJSON line: ``{"id": "<ms>-<seq>", "event": "create", "data": {...} | "<json>"}``."""

    data: msgspec.Raw
    id: str = ""
    event: str = ""


class UnreadableInput(Exception):
    """The input is neither a STIX bundle nor NDJSON stream events."""


_header = msgspec.json.Decoder(dict[str, object])
_bundle = msgspec.json.Decoder(_Bundle)
_line = msgspec.json.Decoder(_StreamLine)
_string = msgspec.json.Decoder(str)
_encoder: Final = msgspec.json.Encoder()


def _frames(text: bytes) -> Iterator[tuple[str, str, bytes]]:
    """(event id, event name, payload JSON) for each event of the input."""
    stripped = text.strip()
    if not stripped:
        return
    whole: dict[str, object] | None
    try:
        whole = _header.decode(stripped)
    except (msgspec.DecodeError, msgspec.ValidationError):
        whole = None
    if whole is not None and whole.get("type") == "bundle":
        try:
            bundle = _bundle.decode(stripped)
        except msgspec.ValidationError as error:
            raise UnreadableInput(f"not a STIX bundle: {error}") from error
        # Marking definitions first, so every object's TLP resolves whatever the bundle's order.
        objects = sorted(bundle.objects, key=lambda raw: b'"marking-definition"' not in bytes(raw))
        for number, raw in enumerate(objects, start=1):
            payload = b'{"type":"create","data":' + bytes(raw) + b"}"
            yield f"bundle-{number}", "create", payload
        return
    readable = False
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = _header.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            if not readable:
                raise UnreadableInput(
                    f"line {number} is not JSON; expected a STIX bundle or NDJSON stream events"
                ) from error
            yield f"line-{number}", "invalid", str(error).encode()
            continue
        readable = True
        if "data" not in fields and isinstance(fields.get("type"), str) and "id" in fields:
            # A bare STIX object: treated like a bundle member, as a create.
            yield f"line-{number}", "create", b'{"type":"create","data":' + line.strip() + b"}"
            continue
        try:
            item = _line.decode(line)
        except msgspec.ValidationError as error:
            yield f"line-{number}", "invalid", str(error).encode()
            continue
        data = bytes(item.data)
        if data.startswith(b'"'):
            data = _string.decode(data).encode()
        yield item.id or f"line-{number}", item.event or _event_of(data), data


def _event_of(data: bytes) -> str:
    try:
        kind = _header.decode(data).get("type")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "invalid"
    return kind if isinstance(kind, str) and kind in _STREAM_EVENTS else "invalid"


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
    try:
        for frame_id, event, payload in _frames(text):
            if event == "invalid":
                errors.write(
                    _encoder.encode(
                        {"skip": f"not a stream event: {payload.decode()}", "id": frame_id}
                    ).decode()
                    + "\n"
                )
                continue
            plan = plan_frame(frame_id, event, payload, state, settings, now)
            state = plan.state
            for action in plan.actions:
                _report(action, frame_id, errors)
                if not isinstance(action, Skip):
                    output.write(bulk_lines(action))
    except UnreadableInput as error:
        errors.write(f"elastic-connector map: {error}\n")
        return 2
    output.flush()
    return 0
