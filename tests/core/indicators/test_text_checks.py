"""The string-method checks in ``value_forms`` accept exactly what the regular expressions they
replaced match whole (the oracle), on any text and on text made of the characters that decide."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from elastic_connector.core.indicators import value_forms

_DECIDING = st.text(
    alphabet=st.sampled_from([*"09afAFgG+.-:/ \n", "\u0661", "\uff10", "é", "\u212a"]), max_size=25
)
_TEXTS = st.one_of(st.text(max_size=25), _DECIDING)


@given(_TEXTS)
@example("")
@example("0")
@example("deadBEEF")
@example("de ad")
def test_is_hex_is_the_regex(text: str) -> None:
    assert value_forms.is_hex(text) == bool(re.fullmatch(r"[0-9A-Fa-f]+", text))


@given(_TEXTS, st.integers(1, 21))
@example("", 5)
@example("65535", 5)
@example("655350", 5)
@example("\u0661", 5)
def test_is_decimal_is_the_regex(text: str, most: int) -> None:
    expected = bool(re.fullmatch(rf"[0-9]{{1,{most}}}", text))
    assert value_forms.is_decimal(text, most) == expected


@given(_TEXTS)
@example("")
@example("hxxp")
@example("svn+ssh")
@example("1http")
@example("é")
@example("\u212a")
def test_scheme_check_is_the_regex(text: str) -> None:
    expected = bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", text))
    assert value_forms._is_scheme(text) == expected
