"""The NDJSON lines of a ``_bulk`` request: each action's action line and, for an upsert, its
document line, exactly as Elasticsearch reads them.

The action line is assembled from JSON-encoded pieces: the same bytes as encoding
``{"index": {"_index": ..., "_id": ...}}``, without building and encoding a dict per action
(``tests/shell/test_bulk_framing.py`` compares the two). Pure, and compiled with the core: the
daemon frames every action it writes.
"""

from __future__ import annotations

from typing import Final

import msgspec
import msgspec.structs

from elastic_connector.core.actions import Delete, Guard, Upsert
from elastic_connector.core.memo import Memo

__all__ = ["WriteAction", "encode_action"]

WriteAction = Upsert | Delete

_meta_encoder: Final = msgspec.json.Encoder()
# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d).
_Upsert: Final = Upsert
_encode_meta: Final = _meta_encoder.encode
_astuple: Final = msgspec.structs.astuple


def _action_prefixes_of(index: str) -> tuple[bytes, bytes, bytes]:
    """``{"<op>":{"_index":<index>,"_id":`` for ``index`` and each op (index, create, delete):
    what every action line of that op on ``index`` starts with."""
    name = _encode_meta(index)
    return (
        b'{"index":{"_index":' + name + b',"_id":',
        b'{"create":{"_index":' + name + b',"_id":',
        b'{"delete":{"_index":' + name + b',"_id":',
    )


# By index name alone: the settings' one string, whose hash Python keeps (a tuple key was
# hashed anew for every action).
_action_prefixes: Final = Memo(_action_prefixes_of, 64)


def encode_action(action: WriteAction) -> bytes:
    """The NDJSON lines of ``action``: action line (+ document line), newline-terminated.

    Raises ``ValueError`` when an upsert's document is empty or spans several lines (it would
    break the NDJSON framing of the whole request).
    """
    if isinstance(action, _Upsert):
        # The four fields in one call: each read of a Struct's field is a generic attribute
        # lookup for compiled code (docs/performance.md §7f).
        index: str
        document_id: str
        document: bytes
        guard: Guard | None
        index, document_id, document, guard = _astuple(action)
        # isspace() stops at the first other byte; strip() would copy the whole document.
        if not document or document.isspace():
            raise ValueError("document is empty")
        # find(), not ``in``: bytes.__contains__ first tries the needle as an int and builds a
        # TypeError for every call, which made this check the costliest step of framing.
        if document.find(b"\n") >= 0 or document.find(b"\r") >= 0:
            raise ValueError("document is not single-line JSON (contains a line break)")
        prefixes = _action_prefixes.of(index)
        prefix = prefixes[1] if guard is not None and guard.seq_no is None else prefixes[0]
        return b"".join(
            (prefix, _encode_meta(document_id), _guard_suffix(guard), b"}}\n", document, b"\n")
        )
    return b"".join(
        (
            _action_prefixes.of(action.index)[2],
            _encode_meta(action.id),
            _guard_suffix(action.guard),
            b"}}\n",
        )
    )


def _guard_suffix(guard: Guard | None) -> bytes:
    """``,"if_seq_no":N,"if_primary_term":M`` for a guard naming a version (a guard without
    one is a ``create``, which Elasticsearch refuses when the document exists)."""
    if guard is None or guard.seq_no is None or guard.primary_term is None:
        return b""
    return b',"if_seq_no":%d,"if_primary_term":%d' % (guard.seq_no, guard.primary_term)
