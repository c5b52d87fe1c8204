"""What the library gives instead of raising when an input cannot be used at all."""

from __future__ import annotations

import msgspec


class InputError(msgspec.Struct, frozen=True):
    """The input (or ``now``, or ``config``) could not be used at all: ``reason`` says why;
    ``problems`` lists every invalid setting of a ``config``."""

    reason: str
    problems: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "; ".join((self.reason, *self.problems))

    def to_dict(self) -> dict[str, object]:
        return {"error": self.reason, "problems": list(self.problems)}


def type_name(value: object) -> str:
    """The name of ``value``'s type, for the errors about what a caller passed."""
    return type(value).__name__
