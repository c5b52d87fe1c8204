"""Does a JSON document fit an Elasticsearch mapping the way Elasticsearch would accept it?

``problems(document, mappings)`` lists every leaf that Elasticsearch would reject or that the
mapping does not know (``dynamic: false`` would silently drop it from the index): an ``ip`` that
is not one address, an ``ip_range`` that is not a CIDR block, a ``long`` out of range, a date
that is not RFC 3339, a ``null``, a nested array... An empty list means the document is valid.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Any

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def _leaf_problem(kind: str, spec: dict[str, Any], value: Any) -> str | None:
    if kind in ("keyword", "wildcard"):
        return None if isinstance(value, str) else "not a string"
    if kind == "boolean":
        return None if isinstance(value, bool) else "not a boolean"
    if kind == "long":
        ok = type(value) is int and LONG_MIN <= value <= LONG_MAX
        return None if ok else "not a long"
    if kind == "ip":
        if not isinstance(value, str) or "/" in value or "%" in value:
            return "not a single IP address"
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "not a single IP address"
        return None
    if kind == "ip_range":
        if not isinstance(value, str) or "/" not in value:
            return "not a CIDR block"
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError:
            return "not a CIDR block"
        return None
    if kind == "date":
        if not isinstance(value, str) or not RFC3339.fullmatch(value):
            return "not an RFC 3339 date"
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return "not an RFC 3339 date"
        return None
    return f"unexpected mapping type {kind}"


def _flattened_problem(spec: dict[str, Any], value: Any, depth: int) -> str | None:
    if isinstance(value, dict):
        if depth > spec.get("depth_limit", 20):
            return "deeper than the flattened depth limit"
        for key, item in value.items():
            if not key:
                return "empty key in a flattened object"
            problem = _flattened_problem(spec, item, depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            problem = _flattened_problem(spec, item, depth)
            if problem:
                return problem
    return None


def problems(document: Any, mappings: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(value: Any, properties: dict[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            found.append(f"{path or '<root>'}: an object was expected")
            return
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            spec = properties.get(key)
            if spec is None:
                found.append(f"{where}: not in the mapping")
                continue
            items = item if isinstance(item, list) else [item]
            for element in items:
                if element is None:
                    found.append(f"{where}: null")
                elif isinstance(element, list):
                    found.append(f"{where}: nested array")
                elif "properties" in spec:
                    walk(element, spec["properties"], where)
                elif spec.get("type") == "flattened":
                    if not isinstance(element, dict):
                        found.append(f"{where}: a flattened field needs an object")
                    else:
                        problem = _flattened_problem(spec, element, 1)
                        if problem:
                            found.append(f"{where}: {problem}")
                elif spec.get("type") == "object" and spec.get("enabled") is False:
                    if not isinstance(element, dict):
                        found.append(f"{where}: a disabled object needs an object")
                elif isinstance(element, dict):
                    found.append(f"{where}: object in a {spec.get('type')} field")
                else:
                    problem = _leaf_problem(str(spec.get("type")), spec, element)
                    if problem:
                        found.append(f"{where}: {problem}: {element!r}"[:300])

    walk(document, mappings["properties"], "")
    return found
