"""The log filter that masks secrets: long ones wherever they appear, short ones (a weak
password, a test token) only as whole words, so that the rest of a line stays readable."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.shell.logs import SecretMask


def test_a_long_secret_is_masked_wherever_it_appears() -> None:
    mask = SecretMask(["Hq3fJ7uZ0sVb5nXe2wKd9A"])
    assert mask.mask("key=Hq3fJ7uZ0sVb5nXe2wKd9A;x") == "key=***;x"
    assert mask.mask("prefixHq3fJ7uZ0sVb5nXe2wKd9Asuffix") == "prefix***suffix"


def test_a_short_secret_is_masked_as_a_word_and_leaves_other_words_alone() -> None:
    mask = SecretMask(["elastic", "t"])
    line = "starting elastic_connector: https://elastic:t@es.example:9200 (user elastic)"
    assert mask.mask(line) == (
        "starting elastic_connector: https://***:***@es.example:9200 (user ***)"
    )


def test_a_secret_containing_a_shorter_one_is_masked_whole() -> None:
    mask = SecretMask(["abc", "abc:defghijklmnop"])
    assert mask.mask("auth abc:defghijklmnop") == "auth ***"


def test_the_filter_masks_the_formatted_message_and_its_arguments() -> None:
    mask = SecretMask(["sec-opencti-token-4c1f9e2b7a61"])
    record = logging.LogRecord(
        "x", logging.INFO, "f", 1, "token %s refused", ("sec-opencti-token-4c1f9e2b7a61",), None
    )
    assert mask.filter(record)
    assert record.getMessage() == "token *** refused"


_secret = st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1, max_size=20)


@given(secret=_secret, before=st.text(max_size=20), after=st.text(max_size=20))
def test_a_secret_standing_apart_never_survives_masking(
    secret: str, before: str, after: str
) -> None:
    masked = SecretMask([secret]).mask(f"{before} {secret} {after}")
    assert f" {secret} " not in masked.replace("***", "\0")
