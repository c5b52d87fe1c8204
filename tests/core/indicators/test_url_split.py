"""``value_forms.split_url`` splits a URL exactly as ``urllib.parse.urlsplit`` does.

It splits the common case itself (printable ASCII without brackets) and hands everything else to
``urlsplit``: the oracle here is ``urlsplit`` on any text, with and without the ``//`` that
``url_parts`` puts before an authority, so a shortcut that cuts differently (or accepts what
``urlsplit`` refuses) fails.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from elastic_connector.core.indicators.value_forms import split_url, url_parts

# Characters that decide where urlsplit cuts or what it refuses, and some that do not.
_URLISH: st.SearchStrategy[str] = st.text(
    alphabet=st.sampled_from([*"/?#@:[].%-_~aZ09 \t\r\n\x00\x7f", "é", "\u2100", "\uff03"]),
    max_size=30,
)
_TARGETS: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=40),
    _URLISH,
    _URLISH.map(lambda text: "//" + text),
    _URLISH.map(lambda text: "/" + text),
)


def _oracle(target: str) -> tuple[str, str, str, str] | str:
    try:
        split = urlsplit(target)
    except ValueError as error:
        return f"ValueError: {error}"
    return split.netloc, split.path, split.query, split.fragment


def _ours(target: str) -> tuple[str, str, str, str] | str:
    try:
        return split_url(target)
    except ValueError as error:
        return f"ValueError: {error}"


@given(_TARGETS)
@example("//evil.example.com:8080/a/b.exe?x=1&y=2#frag")
@example("//host#frag?not-a-query")
@example("//host?q=1/2#f/g")
@example("//[::1]:80/path")
@example("//[::1/path")
@example("/path?q#f")
@example("//")
@example("//user@host")
def test_split_url_is_urlsplit(target: str) -> None:
    assert _ours(target) == _oracle(target)


def test_url_parts_cut_at_the_first_delimiter() -> None:
    # One example per delimiter order: the authority ends at the first of / ? #.
    assert url_parts("http://a.example?q=1/2#f") == [
        ("scheme", "http"),
        ("domain", "a.example"),
        ("query", "q=1/2"),
        ("fragment", "f"),
    ]
    assert url_parts("http://a.example#f?g") == [
        ("scheme", "http"),
        ("domain", "a.example"),
        ("fragment", "f?g"),
    ]
