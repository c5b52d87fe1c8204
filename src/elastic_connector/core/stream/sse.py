"""Server-sent events (the ``text/event-stream`` format) decoded from raw bytes.

``feed(decoder, chunk)`` takes the decoder state and the next bytes read from the network and
returns the new state plus every frame those bytes completed. Chunks may split lines, CRLF pairs
and frames anywhere; feeding a stream in any chunking gives the same frames.

Parsing follows the WHATWG rules: lines end with CRLF, LF or CR; a line starting with ``:`` is a
comment; ``field: value`` loses one space after the colon; ``data`` lines are joined with LF;
an ``id`` containing NUL is ignored; ``retry`` must be all digits; a blank line ends a frame.
Unlike a browser, frames are returned even without ``data`` (an id-only frame still moves the
stream position) and the consumer decides what to do with them.
"""

from __future__ import annotations

from typing import Final

import msgspec

_BOM: Final = b"\xef\xbb\xbf"


class SseFrame(msgspec.Struct, frozen=True):
    """One dispatched frame. ``event`` defaults to ``message`` as in the spec."""

    event: str = "message"
    data: bytes = b""
    id: str | None = None
    retry: int | None = None


class SseDecoder(msgspec.Struct, frozen=True):
    """Decoder state between two chunks; start with ``SseDecoder()``."""

    pending: tuple[bytes, ...] = ()
    """The pieces of an incomplete last line, joined once it ends: re-joining (and re-scanning)
    a growing line at every chunk would make a frame of n bytes cost O(n²) to read."""
    pending_size: int = 0
    skip_lf: bool = False
    """The previous chunk ended with CR: an LF opening the next one belongs to that CRLF."""
    started: bool = False
    """A leading byte-order mark has been dealt with."""
    data: tuple[bytes, ...] = ()
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    open: bool = False
    """A field of the current frame has been seen (a blank line now dispatches it)."""

    @property
    def frame_bytes(self) -> int:
        """Bytes held for the frame being read (to refuse frames too large to keep)."""
        return self.pending_size + sum(len(part) + 1 for part in self.data)


def feed(decoder: SseDecoder, chunk: bytes) -> tuple[SseDecoder, list[SseFrame]]:
    """Decode ``chunk``; return the next state and the frames it completed, in order."""
    if not chunk:
        return decoder, []
    started = decoder.started
    if not started:
        buffer = b"".join(decoder.pending) + chunk
        if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
            return msgspec.structs.replace(decoder, pending=(buffer,), pending_size=len(buffer)), []
        started = True
        chunk = buffer.removeprefix(_BOM)
        pending = b""
    elif b"\n" not in chunk and b"\r" not in chunk:
        # The middle of a long line: keep the piece, look at the line once it ends.
        return msgspec.structs.replace(
            decoder,
            pending=(*decoder.pending, chunk),
            pending_size=decoder.pending_size + len(chunk),
            skip_lf=False,
        ), []
    else:
        pending = b"".join(decoder.pending)
    if decoder.skip_lf and chunk.startswith(b"\n"):
        chunk = chunk[1:]
    buffer = pending + chunk
    skip_lf = False
    if b"\r" in buffer:
        skip_lf = buffer.endswith(b"\r")
        buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = buffer.split(b"\n")
    rest = lines.pop()

    data = list(decoder.data)
    event, event_id, retry, is_open = decoder.event, decoder.id, decoder.retry, decoder.open
    frames: list[SseFrame] = []
    for line in lines:
        if not line:
            if is_open:
                frames.append(
                    SseFrame(
                        event=event or "message", data=b"\n".join(data), id=event_id, retry=retry
                    )
                )
                data, event, event_id, retry, is_open = [], None, None, None, False
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
            is_open = True
        elif name == b"event":
            event = value.decode("utf-8", "replace")
            is_open = True
        elif name == b"id":
            if b"\0" not in value:
                event_id = value.decode("utf-8", "replace")
                is_open = True
        elif name == b"retry" and value.isdigit():
            retry = int(value)
            is_open = True
    state = SseDecoder(
        pending=(rest,) if rest else (),
        pending_size=len(rest),
        skip_lf=skip_lf,
        started=started,
        data=tuple(data),
        event=event,
        id=event_id,
        retry=retry,
        open=is_open,
    )
    return state, frames


def encode_frame(frame: SseFrame) -> bytes:
    """The wire form of ``frame`` (LF line ends); ``feed`` decodes it back to ``frame``.

    ``data`` containing CR or LF becomes several ``data`` lines; ids with line breaks or NUL
    cannot be encoded and raise ``ValueError``.
    """
    lines: list[bytes] = []
    if frame.id is not None:
        raw_id = frame.id.encode()
        if any(c in raw_id for c in (b"\r", b"\n", b"\0")):
            raise ValueError("an SSE id cannot contain CR, LF or NUL")
        lines.append(b"id: " + raw_id)
    if frame.event != "message":
        raw_event = frame.event.encode()
        if b"\r" in raw_event or b"\n" in raw_event:
            raise ValueError("an SSE event name cannot contain CR or LF")
        lines.append(b"event: " + raw_event)
    if frame.retry is not None:
        lines.append(b"retry: %d" % frame.retry)
    text = frame.data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines.extend(b"data: " + part for part in text.split(b"\n"))
    return b"\n".join(lines) + b"\n\n"
