"""A bounded memo of a pure function of one hashable argument, for the per-event hot path.

``functools.lru_cache`` does the same job through a Python-level call: from compiled code, a
lookup in it costs several times a dictionary lookup (docs/performance.md §7e). A ``Memo`` is
a compiled class, so ``memo.of(key)`` is a direct C call and a dictionary lookup. It forgets
everything when full rather than the least recently used entry: it is meant for keys drawn
from a small set (field names, observable types), where it never fills.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar, cast

__all__ = ["Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

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
