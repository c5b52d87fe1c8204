"""Properties of the indicator mapping over generated indicators, patterns and contexts."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure
from stix2patterns.v21.pattern import Pattern as ReferencePattern

from elastic_connector.core.indicators import (
    MappingContext,
    Unmappable,
    ecs,
    indicator_document,
    path_rules,
    value_forms,
)
from elastic_connector.core.indicators import document as document_module
from elastic_connector.core.pattern import comparisons, render
from elastic_connector.core.pattern.tree import (
    Comparison,
    HexLiteral,
    IntLiteral,
    ObjectPath,
    Observation,
    Op,
    Pattern,
    SetLiteral,
    StringLiteral,
)
from elastic_connector.core.stix import Indicator
from tests.core.indicators.es_field_checks import problems
from tests.core.indicators.indicator_strategies import any_patterns, contexts
from tests.core.indicators.indicator_strategies import indicators as indicator_values
from tests.core.pattern.pattern_strategies import indicator_patterns, patterns


def encoded(indicator: Indicator, pattern: Pattern, context: MappingContext) -> bytes | None:
    result = indicator_document(indicator, pattern, context)
    if isinstance(result, Failure):
        return None
    return ecs.encode_document(result.unwrap())


@given(indicator_values(), any_patterns(), contexts())
def test_any_indicator_gives_a_valid_document_or_a_reason(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    """Never raises; a document fits the mapping (every leaf valid for its Elasticsearch type,
    no unmapped field), is deterministic (byte-identical on a second run) and round-trips."""
    result = indicator_document(indicator, pattern, context)
    if isinstance(result, Failure):
        failure = result.failure()
        assert isinstance(failure, Unmappable)
        assert failure.reason.startswith("pattern has no exact-match value: ")
        assert indicator_document(indicator, pattern, context) == result
        return
    document = result.unwrap()
    data = ecs.encode_document(document)
    doc = json.loads(data)
    assert problems(doc, ecs.INDICATOR_MAPPINGS) == []
    assert doc["event"] == {
        "kind": "enrichment",
        "category": ["threat"],
        "type": ["indicator"],
        "module": "ti_opencti_connector",
        "dataset": "ti_opencti_connector.indicator",
    }
    assert encoded(indicator, pattern, context) == data
    assert ecs.decode_document(data) == document
    assert ecs.encode_document(ecs.decode_document(data)) == data


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(indicator_values(), patterns(), contexts())
def test_arbitrary_pattern_trees_never_raise_and_fit_the_mapping(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    """The parser's arbitrary trees: any names, any values, surrogates, deep nesting."""
    data = encoded(indicator, pattern, context)
    if data is not None:
        assert problems(json.loads(data), ecs.INDICATOR_MAPPINGS) == []


def _exact(comparison: Comparison) -> bool:
    return not comparison.negated and comparison.op in (Op.EQ, Op.IN, Op.ISSUBSET)


def _known(comparison: Comparison) -> bool:
    rule = path_rules.rule_for(comparison.path)  # the path table is what is under test here
    return rule is not None


@given(indicator_values(), any_patterns(), contexts())
def test_a_document_needs_an_exact_comparison_on_a_known_path(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    """Checked with the parser's own walker (``pattern.comparisons``), not the mapper's."""
    tests = [site.test for site in comparisons(pattern)]
    usable = [t for t in tests if isinstance(t, Comparison) and _exact(t) and _known(t)]
    if not usable:
        assert isinstance(indicator_document(indicator, pattern, context), Failure)


# Fields whose values are the pattern's values as written (no normal form applies).
VERBATIM = re.compile(
    r"threat\.indicator\.(url\.(full|original)|email\.address|file\.(name|directory|mime_type)"
    r"|registry\.(value|data\.strings|data\.type)|x509\.(signature_algorithm|alternative_names))"
    r"|opencti\.observable\.(mutex\.name|process\.(name|command_line|cwd)|user_account\..*"
    r"|software\..*|email_message\.subject|network_traffic\.protocols|\w+\.value)"
)


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{prefix}{key}.")]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item, prefix)]
    return [(prefix.rstrip("."), value)]


@given(indicator_values(), any_patterns(), contexts())
def test_values_written_as_given_come_from_exact_comparisons(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    data = encoded(indicator, pattern, context)
    if data is None:
        return
    given_values: set[str] = set()
    for site in comparisons(pattern):
        test = site.test
        if isinstance(test, Comparison) and _exact(test):
            members = test.value.values if isinstance(test.value, SetLiteral) else (test.value,)
            for literal in members:
                if isinstance(literal, StringLiteral):
                    given_values.add(literal.value)
                elif isinstance(literal, IntLiteral):
                    given_values.add(str(literal.value))
    for path, value in _leaves(json.loads(data)):
        if VERBATIM.fullmatch(path) and path != "opencti.observable.mac_addr.value":
            assert value in given_values, (path, value)


# --- oracle: the reference validator's view of the same patterns ---------------------------------


def _unquote(raw: str) -> str | int:
    if raw.startswith("'") and raw.endswith("'"):
        return re.sub(r"\\([\\'])", r"\1", raw[1:-1])
    return int(raw)


def _normal(object_type: str, path: list[str], value: str | int) -> str | int:
    """What the document holds for an exact value, per the normal forms of the mapping table."""
    if isinstance(value, int):
        return value
    if object_type in ("ipv4-addr", "ipv6-addr") or (path[-1:] == ["value"] and "ref" in path[0]):
        network = ipaddress.ip_network(value, strict=False)
        if network.prefixlen == network.max_prefixlen:
            return value.partition("/")[0]
        return network.with_prefixlen
    if object_type == "mac-addr":
        normal = value_forms.normal_mac(value)
        assert normal is not None
        return normal
    if object_type == "x509-certificate" and path == ["serial_number"]:
        return value.replace(":", "").upper()
    if object_type == "windows-registry-key" and path == ["key"]:
        hive, key = value_forms.registry_parts(value)
        return f"{hive}\\{key}" if hive else value
    return value


@given(indicator_values(), indicator_patterns(), contexts())
def test_every_equality_the_reference_validator_sees_is_in_the_document(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    """Oracle: OASIS ``stix2-patterns`` inspects the printed pattern; every ``=`` comparison on
    a path of the mapping table must reach the document (realistic patterns: every value is
    valid except the empty string, which is never a value)."""
    data = encoded(indicator, pattern, context)
    held = {value for _path, value in _leaves(json.loads(data))} if data is not None else set()
    inspected = ReferencePattern(render(pattern)).inspect().comparisons
    for object_type, tests in inspected.items():
        for path, op, raw in tests:
            if op != "=":
                continue
            steps = tuple("*" if isinstance(step, int) else step for step in path)
            key = ".".join(str(s) for s in steps)
            if "hashes" in steps:
                key = ".".join([*map(str, steps[:-1]), "*"])
            if (object_type, key) not in path_rules.RULES or raw == "''":
                continue
            assert _normal(object_type, list(map(str, steps)), _unquote(raw)) in held, (
                object_type,
                path,
                raw,
            )


@given(st.binary(max_size=40))
def test_hex_literals_of_hashes_are_lower_case_hex(data: bytes) -> None:
    tree = Pattern(
        Observation(Comparison(ObjectPath("file", ("hashes", "MD5")), Op.EQ, HexLiteral(data)))
    )
    result = indicator_document(
        Indicator(id="indicator--1", pattern="[file:hashes.MD5 = h'...']"),
        tree,
        MappingContext(now=datetime(2024, 1, 1), tlp=None, feed_name="x"),
    )
    if not data:
        assert isinstance(result, Failure)
    else:
        doc = result.unwrap()
        assert doc.threat.indicator.file is not None
        assert doc.threat.indicator.file.hash is not None
        assert doc.threat.indicator.file.hash.md5 == (data.hex(),)


ECS_INDICATOR_TYPES = frozenset(
    [
        "autonomous-system",
        "artifact",
        "directory",
        "domain-name",
        "email-addr",
        "file",
        "ipv4-addr",
        "ipv6-addr",
        "mac-addr",
        "mutex",
        "port",
        "process",
        "software",
        "url",
        "user-account",
        "windows-registry-key",
        "x509-certificate",
    ]
)
"""ECS 8.x's allowed ``threat.indicator.type`` values, written out from the ECS reference."""


@given(indicator_values(), any_patterns(), contexts())
def test_indicator_type_is_only_an_ecs_value(
    indicator: Indicator, pattern: Pattern, context: MappingContext
) -> None:
    """Whatever OpenCTI's main observable type and whatever the pattern: an allowed value or
    none, and an address type only when the document carries an address."""
    data = encoded(indicator, pattern, context)
    if data is None:
        return
    doc = json.loads(data)
    kind = doc["threat"]["indicator"].get("type")
    assert kind is None or kind in ECS_INDICATOR_TYPES, kind
    if kind in ("ipv4-addr", "ipv6-addr"):
        assert doc["threat"]["indicator"].get("ip") or doc["opencti"]["indicator"].get("ip_range")


def test_every_rule_names_an_ecs_type_or_none() -> None:
    for key, rule in path_rules.RULES.items():
        assert rule.ecs_type is None or rule.ecs_type in ECS_INDICATOR_TYPES, key


_ID_TEXTS = st.one_of(
    st.none(), st.sampled_from(["", "x", "indicator--1", "é", "\ud800"]), st.text(max_size=8)
)


@given(_ID_TEXTS, _ID_TEXTS)
def test_the_two_ids_are_deduplicated_as_any_list_is(
    internal: str | None, stix: str | None
) -> None:
    # ``threat.indicator.id`` takes the two ids through a shortcut; the oracle is the general
    # rule every other list field follows (valid keywords only, first occurrence kept).
    assert document_module._ids(internal, stix) == document_module._unique((internal, stix))


@given(st.lists(_ID_TEXTS, max_size=12))
def test_a_short_list_is_deduplicated_as_any_other(texts: list[str | None]) -> None:
    # Up to eight values in a tuple take a scan of the values kept; an iterator, the dict.
    shown = document_module._unique(tuple(texts))
    assert shown == document_module._unique(iter(texts))
    assert shown == tuple(dict.fromkeys(t for t in texts if t and t != "\ud800"))
