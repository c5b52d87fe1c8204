"""``core.memo.Memo``: a bounded memo of a pure function gives the function's own answers, for
any sequence of keys, and never keeps more than its limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.memo import Latest, Memo


def _shape(key: str) -> tuple[int, str] | None:
    """A pure function with None among its answers (a memo must not read None as "absent")."""
    return None if key.startswith("n") else (len(key), key.upper())


@given(st.lists(st.text(alphabet="nab", max_size=3), max_size=60), st.integers(1, 5))
def test_a_memo_answers_as_its_function(keys: list[str], limit: int) -> None:
    calls: list[str] = []

    def counted(key: str) -> tuple[int, str] | None:
        calls.append(key)
        return _shape(key)

    memo = Memo(counted, limit)
    for key in keys:
        assert memo.of(key) == _shape(key)
        assert len(memo._values) <= limit
    # A key is computed again only after the memo was emptied to make room.
    assert len(calls) <= len(keys)
    if len(set(keys)) <= limit:
        assert sorted(calls) == sorted(set(keys))


def test_a_memo_computes_a_key_once_while_it_has_room() -> None:
    calls: list[str] = []

    def counted(key: str) -> str | None:
        calls.append(key)
        return None

    memo = Memo(counted, 2)
    assert [memo.of("a"), memo.of("a"), memo.of("b"), memo.of("a")] == [None] * 4
    assert calls == ["a", "b"]
    memo.of("c")  # full: forgets everything, then keeps "c"
    memo.of("a")
    assert calls == ["a", "b", "c", "a"]


@given(st.lists(st.sampled_from(range(4)), max_size=40))
def test_latest_answers_as_its_function_and_computes_once_per_run(picks: list[int]) -> None:
    # Equal lists that are different objects: Latest goes by identity, not equality.
    arguments = [[1], [1], [2], [3]]
    calls: list[list[int]] = []

    def counted(argument: list[int]) -> tuple[int, ...]:
        calls.append(argument)
        return (sum(argument), id(argument))

    latest = Latest(counted)
    for pick in picks:
        argument = arguments[pick]
        assert latest.of(argument) == (sum(argument), id(argument))
    # One computation per run of the same object, none within a run.
    runs = sum(1 for i, pick in enumerate(picks) if i == 0 or picks[i - 1] != pick)
    assert len(calls) == runs
