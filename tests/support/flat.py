"""A JSON document as Elasticsearch indexes it: one field per dotted path to a leaf."""

from __future__ import annotations

from collections.abc import Mapping


def flat_fields(document: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """``{"threat": {"indicator": {"ip": x}}}`` -> ``{"threat.indicator.ip": x}`` (lists are
    leaves, as the documents these tests read have no objects inside lists)."""
    flat: dict[str, object] = {}
    for key, value in document.items():
        if isinstance(value, Mapping):
            flat.update(flat_fields(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
