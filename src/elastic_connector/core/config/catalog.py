"""OpenCTI's connector catalog files, generated from the option registry.

The platform's catalog and its connector manager (OpenCTI-Platform/connectors, every connector's
``__metadata__/``) read two files: ``connector_manifest.json`` (what the connector is, where its
image is) and ``connector_config_schema.json`` (a JSON Schema, draft 2020-12, whose properties
are the connector's environment variables: the manager renders a form from it and starts the
container with the values). ``tests/test_catalog_files.py`` keeps the files at the repository
root equal to ``manifest()`` and ``config_schema()``.

The schema follows the rules the connectors repository checks (``tests/tests_metadata``): every
property has a ``type`` and no ``anyOf``/``oneOf`` or objects; arrays have a default;
``CONNECTOR_TYPE`` is the constant ``STREAM``; ``CONNECTOR_SCOPE`` is an array of strings;
secrets are ``format: password`` and ``writeOnly``; ``CONNECTOR_ID`` is left out (the manager
gives each deployment its own id); ``additionalProperties`` is true (the earlier connector's
variable names, ``aliases``, stay readable).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Final, get_args

import msgspec

from elastic_connector.core.config.export import plain_value
from elastic_connector.core.config.model import Config, Secret
from elastic_connector.core.config.options import OPTIONS, Option
from elastic_connector.core.config.values import IDENTITY_TYPES
from elastic_connector.core.policy.tlp import Tlp

SLUG: Final = "elastic"
CONTAINER_IMAGE: Final = "opencti/connector-elastic"
"""Where the image is published for the catalog (``docker build -t`` this name to test)."""
SOURCE_CODE: Final = "https://github.com/OpenCTI-Platform/connectors/tree/master/stream/elastic"

MANAGER_SET: Final = frozenset({"CONNECTOR_ID"})
"""Variables the connector manager sets itself: not in the schema."""

_DESCRIPTION: Final = (
    "Streams OpenCTI indicators into Elasticsearch as ECS threat-indicator documents (every "
    "observable type, exact STIX pattern values) that Elastic Security's Intelligence page and "
    "indicator match rules use, keeps them exact (deletes, revocations, expiry and TLP "
    "retractions), and writes the matches those rules produce back into OpenCTI as sightings. "
    "Optional: export filters, a default indicator lifetime, an ES|QL LOOKUP JOIN index and a "
    "dead-letter index for refused documents."
)
_SHORT: Final = (
    "Streams OpenCTI indicators to Elasticsearch as ECS threat indicators for Elastic "
    "Security's indicator match rules, and turns their alerts into OpenCTI sightings."
)

# Integer ranges the registry enforces (``options``): the form refuses the same values.
_RANGES: Final[Mapping[str, tuple[int | None, int | None]]] = {
    "connector.min_score": (0, 100),
    "connector.min_confidence": (0, 100),
    "connector.metrics_port": (1, 65535),
    "output.elasticsearch.bulk_max_actions": (1, None),
    "output.elasticsearch.bulk_max_bytes": (1, None),
    "sightings.page_size": (1, 10_000),
    "sightings.confidence": (0, 100),
}
_LOG_LEVELS: Final = ["debug", "info", "warn", "warning", "error"]
_ARRAY_ENV: Final = frozenset({"CONNECTOR_SCOPE"})
"""Strings the platform's rules want as arrays (pycti splits the scope on commas)."""


def manifest(version: str) -> dict[str, object]:
    """``__metadata__/connector_manifest.json`` for the image of ``version``."""
    return {
        "title": "Elastic",
        "slug": SLUG,
        "description": _DESCRIPTION,
        "short_description": _SHORT,
        "logo": None,
        "use_cases": ["Detection & Response Enablement"],
        "solution_categories": ["SIEM & Security Analytics"],
        "license_type": "Free",
        "contact": None,
        "verified": False,
        "last_verified_date": None,
        "playbook_supported": False,
        "max_confidence_level": 80,
        "support_version": ">=6.0.0",
        "subscription_link": "https://www.elastic.co/security",
        "source_code": SOURCE_CODE,
        "manager_supported": True,
        "container_version": version,
        "container_image": CONTAINER_IMAGE,
        "container_type": "STREAM",
    }


def config_schema() -> dict[str, object]:
    """``__metadata__/connector_config_schema.json``: one property per option's variable."""
    properties: dict[str, object] = {}
    for option in OPTIONS:
        if option.env_var in MANAGER_SET:
            continue
        properties[option.env_var] = _property(option)
        if option.env_var == "CONNECTOR_LOG_LEVEL":
            properties["CONNECTOR_TYPE"] = {
                "const": "STREAM",
                "default": "STREAM",
                "type": "string",
            }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://www.filigran.io/connectors/{SLUG}_config.schema.json",
        "type": "object",
        "properties": properties,
        "required": [
            option.env_var
            for option in OPTIONS
            if option.required and option.env_var not in MANAGER_SET
        ],
        "additionalProperties": True,
    }


def _annotation(option: Option) -> object:
    section = next(f for f in msgspec.structs.fields(Config) if f.name == option.section)
    assert isinstance(section.type, type)  # the registry checked that sections are Structs
    field = next(f for f in msgspec.structs.fields(section.type) if f.name == option.name)
    annotation = field.type
    if isinstance(annotation, types.UnionType):
        (annotation,) = (arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def _property(option: Option) -> dict[str, object]:
    annotation = _annotation(option)
    spec: dict[str, object] = {"description": option.description}
    default = plain_value(option.default, reveal_secrets=True)
    if option.env_var == "CONNECTOR_LOG_LEVEL":
        spec.update(type="string", enum=_LOG_LEVELS)
    elif option.env_var in _ARRAY_ENV:
        spec.update(type="array", items={"type": "string"})
        default = [default] if isinstance(default, str) else default
    elif annotation is Secret:
        spec.update(type="string", format="password", writeOnly=True)
    elif annotation is bool:
        spec["type"] = "boolean"
    elif annotation is int and option.type_name in ("integer", "port"):
        spec["type"] = "integer"
        low, high = _RANGES.get(option.yaml_path, (None, None))
        if low is not None:
            spec["minimum"] = low
        if high is not None:
            spec["maximum"] = high
    elif annotation is float and option.type_name.startswith("seconds"):
        # Read as seconds or as a duration; the form shows the duration the docs use.
        spec["type"] = "string"
        seconds = option.default
        default = duration_text(float(seconds)) if isinstance(seconds, int | float) else None
    elif annotation == tuple[str, ...]:
        spec.update(type="array", items={"type": "string"})
        default = [] if default is None else default
    elif annotation is Tlp:
        spec.update(type="string", enum=[level.label for level in Tlp if level is not Tlp.WHITE])
    elif option.yaml_path == "sightings.identity_type":
        spec.update(type="string", enum=list(IDENTITY_TYPES))
    elif option.type_name == "URL":
        spec.update(type="string", format="uri")
    elif " / " in option.type_name:  # an enum: ecs / ecs_no_signals / stix
        spec.update(type="string", enum=option.type_name.split(" / "))
    else:
        spec["type"] = "string"
    if default is not None:
        spec["default"] = default
    return dict(sorted(spec.items()))


_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(seconds: float) -> str:
    """Seconds as the duration ``parse_seconds`` reads back to the same value (``1h``, ``90s``,
    ``1.5s``)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    for unit, size in _UNITS:
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return "0s"
