"""Memos of a pure function of one argument, for the per-event hot path: ``Memo``, bounded,
for hashable keys; ``Latest``, for the last argument only, by identity.

``functools.lru_cache`` does the same job through a Python-level call: from compiled code, a
lookup in it costs several times a dictionary lookup (docs/performance.md §7e). A ``Memo`` is
a compiled class, so ``memo.of(key)`` is a direct C call and a dictionary lookup. It forgets
everything when full rather than the least recently used entry: it is meant for keys drawn
from a small set (field names, observable types), where it never fills.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar, cast

__all__ = ["Latest", "Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
A = TypeVar("A")

_MISSING: Final = object()


class Memo(Generic[K, V]):
    """``function(key)``, computed once per key while at most ``limit`` keys are kept:
    ``memo.of(key)``. A method, not ``__call__``: compiled code calls a method of a compiled
    class directly, and a call of the instance through Python's calling convention."""

    __slots__ = ("_function", "_limit", "_values")

    def __init__(self, function: Callable[[K], V], limit: int) -> None:
        self._function = function
        self._limit = limit
        self._values: dict[K, object] = {}

    def of(self, key: K) -> V:
        """``function(key)``."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            if len(self._values) >= self._limit:
                self._values.clear()
            computed = self._function(key)
            self._values[key] = computed
            return computed
        return cast(V, value)  # stored by the branch above


class Latest(Generic[A, V]):
    """``function(argument)`` for the argument of the last call, computed again whenever a
    different object is given: ``latest.of(argument)``. For an argument that is the same object
    for long runs of calls (the planner's settings), where even a dictionary lookup costs more
    than what it saves: a Struct's hash reads every field. Identity, not equality, so the
    argument need not be hashable, and a new object only costs one computation."""

    __slots__ = ("_function", "_last")

    def __init__(self, function: Callable[[A], V]) -> None:
        self._function = function
        # One tuple, replaced whole: a thread switch can never pair one argument with
        # another's value.
        self._last: tuple[object, object] = (_MISSING, None)

    def of(self, argument: A) -> V:
        """``function(argument)``."""
        last = self._last
        if last[0] is argument:
            return cast(V, last[1])  # stored with this argument below
        value = self._function(argument)
        self._last = (argument, value)
        return value
