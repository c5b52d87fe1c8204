"""``core.elastic.bulk_lines.encode_action`` (re-exported by ``shell.bulk``) assembles the
action line from pieces; it must be the very bytes of encoding the action object as JSON,
whatever the index and id hold."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from elastic_connector.core.actions import Delete, Guard, Upsert
from elastic_connector.shell.bulk import encode_action

_encoder = msgspec.json.Encoder()
_NAMES = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@given(_NAMES, _NAMES)
def test_upsert_lines_are_the_json_of_the_action(index: str, doc_id: str) -> None:
    document = b'{"a":1}'
    meta = _encoder.encode({"index": {"_index": index, "_id": doc_id}})
    assert encode_action(Upsert(index, doc_id, document)) == meta + b"\n" + document + b"\n"


@given(_NAMES, _NAMES)
def test_delete_lines_are_the_json_of_the_action(index: str, doc_id: str) -> None:
    meta = _encoder.encode({"delete": {"_index": index, "_id": doc_id}})
    assert encode_action(Delete(index, doc_id, "deleted", "gone")) == meta + b"\n"


_VERSIONS = st.tuples(st.integers(0, 2**62), st.integers(1, 2**31))


@given(_NAMES, _NAMES, st.none() | _VERSIONS)
def test_guarded_lines_are_the_json_of_the_action(
    index: str, doc_id: str, version: tuple[int, int] | None
) -> None:
    """A guard without a version is a ``create``; one with a version is an ``index`` (or a
    ``delete``) on that version."""
    document = b'{"a":1}'
    target: dict[str, object] = {"_index": index, "_id": doc_id}
    if version is None:
        guard = Guard()
        upsert_meta = _encoder.encode({"create": target})
        delete_meta = _encoder.encode({"delete": target})
    else:
        guard = Guard(*version)
        versioned = {**target, "if_seq_no": version[0], "if_primary_term": version[1]}
        upsert_meta = _encoder.encode({"index": versioned})
        delete_meta = _encoder.encode({"delete": versioned})
    upsert = Upsert(index, doc_id, document, guard=guard)
    assert encode_action(upsert) == upsert_meta + b"\n" + document + b"\n"
    delete = Delete(index, doc_id, "deleted", "gone", guard=guard)
    assert encode_action(delete) == delete_meta + b"\n"


@pytest.mark.parametrize("document", [b"", b"  ", b'{"a":\n1}', b'{"a":"\r"}'])
def test_documents_that_would_break_the_framing_are_refused(document: bytes) -> None:
    with pytest.raises(ValueError, match=r"empty|line break"):
        encode_action(Upsert("i", "d", document))
