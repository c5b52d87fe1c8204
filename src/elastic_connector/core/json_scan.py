"""The top level of a JSON text, read without decoding what is inside.

A JSON decoder builds every nested value, and nesting deeper than the interpreter's recursion
limit makes it give up on the whole text. These functions only find where each top-level member
or element starts and ends, iteratively, so a bundle with one absurdly deep object still yields
its other objects, and an object that does not decode can still be named by its ``id``.

Only the structure is followed (strings, brackets, braces); what lies between is checked later
by the real decoder. Every function is total: malformed or truncated input gives what could be
read up to the problem, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import msgspec

_SPACE: Final = re.compile(rb"[ \t\r\n]*")
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_STRUCTURE: Final = re.compile(rb'["\[\]{}]')
_SCALAR: Final = re.compile(rb"[-+.0-9A-Za-z]+")
"""Numbers, ``true``, ``false``, ``null`` (and look-alikes the decoder will refuse)."""
_OPENERS: Final = b"[{"
_QUOTE: Final = ord('"')
_COMMA: Final = ord(",")
_COLON: Final = ord(":")
_string: Final = msgspec.json.Decoder(str)


def skip_space(text: bytes, position: int) -> int:
    """The first position at or after ``position`` that is not JSON whitespace."""
    match = _SPACE.match(text, position)
    return match.end() if match else position


def value_end(text: bytes, position: int) -> int | None:
    """Where the JSON value starting at ``position`` ends; None when it is truncated or does
    not start a value. Nesting depth costs no recursion."""
    if position >= len(text):
        return None
    first = text[position]
    if first == _QUOTE:
        match = _STRING.match(text, position)
        return match.end() if match else None
    if first not in _OPENERS:
        match = _SCALAR.match(text, position)
        return match.end() if match else None
    depth = 0
    cursor = position
    while True:
        found = _STRUCTURE.search(text, cursor)
        if found is None:
            return None
        char = text[found.start()]
        if char == _QUOTE:
            string = _STRING.match(text, found.start())
            if string is None:
                return None
            cursor = string.end()
            continue
        depth += 1 if char in _OPENERS else -1
        cursor = found.end()
        if depth == 0:
            return cursor


def text_of(raw: bytes) -> str | None:
    """A JSON string value as text; None when ``raw`` is not one."""
    try:
        return _string.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeError):
        return None


def members(text: bytes, *, partial: bool = False) -> Iterator[tuple[str, bytes]]:
    """(name, raw value) of each member of the object ``text`` holds, in order, up to the first
    malformed one; with ``partial``, a value cut by the end of the text is given as the rest of
    the text (to find an id inside an object that was cut)."""
    position = skip_space(text, 0)
    if position >= len(text) or text[position] != ord("{"):
        return
    position = skip_space(text, position + 1)
    while position < len(text) and text[position] == _QUOTE:
        key = _STRING.match(text, position)
        name = text_of(key.group()) if key else None
        if key is None or name is None:
            return
        position = skip_space(text, key.end())
        if position >= len(text) or text[position] != _COLON:
            return
        start = skip_space(text, position + 1)
        end = value_end(text, start)
        if end is None:
            if partial and start < len(text):
                yield name, text[start:]
            return
        yield name, text[start:end]
        position = skip_space(text, end)
        if position >= len(text) or text[position] != _COMMA:
            return
        position = skip_space(text, position + 1)


def member(text: bytes, name: str, *, partial: bool = False) -> bytes | None:
    """The raw value of member ``name`` (the last one, as decoders take it); None if absent."""
    found = None
    for key, value in members(text, partial=partial):
        if key == name:
            found = value
    return found


def string_member(text: bytes, name: str) -> str | None:
    """Member ``name`` when it is a string; None otherwise."""
    raw = member(text, name)
    return None if raw is None else text_of(raw)


def elements(text: bytes, position: int = 0) -> tuple[list[bytes], int | None]:
    """The raw elements of the array starting at ``position`` (after whitespace), and where the
    array ends (None when it is malformed or truncated: the elements are those read before)."""
    found: list[bytes] = []
    position = skip_space(text, position)
    if position >= len(text) or text[position] != ord("["):
        return found, None
    position = skip_space(text, position + 1)
    if position < len(text) and text[position] == ord("]"):
        return found, position + 1
    while True:
        end = value_end(text, position)
        if end is None:
            return found, None
        found.append(text[position:end])
        position = skip_space(text, end)
        if position < len(text) and text[position] == ord("]"):
            return found, position + 1
        if position >= len(text) or text[position] != _COMMA:
            return found, None
        position = skip_space(text, position + 1)
