"""Hypothesis strategies for indicators, mapping contexts and patterns aimed at the mapper.

* ``indicators()``: Indicator values as msgspec could decode them, with hostile metadata
  (huge or negative numbers, naive and offset datetimes, year 1 and 9999, odd text).
* ``contexts()``: mapping contexts.
* ``mapped_patterns()``: patterns over the object paths the mapper knows (``path_rules.RULES``),
  any operator, with values that are sometimes valid for the target field and sometimes not.
* ``any_patterns()``: mapped patterns and the parser's realistic indicator patterns.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from elastic_connector.core.indicators import MappingContext
from elastic_connector.core.indicators.path_rules import RULES
from elastic_connector.core.pattern.tree import (
    AnyIndex,
    Comparison,
    ComparisonAnd,
    ComparisonExpression,
    ComparisonOr,
    Exists,
    FollowedBy,
    IntLiteral,
    Literal,
    ObjectPath,
    Observation,
    ObservationAnd,
    ObservationExpression,
    ObservationOr,
    Op,
    PathStep,
    Pattern,
    Qualified,
    SetLiteral,
    StringLiteral,
    TimestampLiteral,
)
from elastic_connector.core.policy.tlp import Tlp
from elastic_connector.core.stix import (
    Extensions,
    ExternalReference,
    Indicator,
    KillChainPhase,
    MitreExtension,
    OpenCTIExtension,
)
from tests.core.pattern.pattern_strategies import (
    comparison_values,
    indicator_patterns,
    literals,
    qualifiers,
)

# --- metadata -------------------------------------------------------------------------------

_TEXT = st.text(max_size=30)
# Any character JSON can carry (no lone surrogate: msgspec refuses them on decoding).
_ODD_TEXT = st.one_of(_TEXT, st.text(st.characters(codec="utf-8"), max_size=30))


def datetimes() -> st.SearchStrategy[datetime]:
    """Naive (read as UTC) and aware datetimes, at the edges of the calendar too."""
    offsets = st.integers(-23 * 60, 23 * 60).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    )
    return st.one_of(
        st.datetimes(),
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes(timezones=offsets),
        st.sampled_from(
            [
                datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # before year 1 in UTC
                datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),
                datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
            ]
        ),
    )


_FLAG_TEXT = st.sampled_from(["true", "False", "YES", "no", "1", "0", "maybe", ""])
"""Booleans as producers spell them, and strings that spell none."""


def _numbers() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-5, 105), st.integers(-(2**70), 2**70))


def _extensions() -> st.SearchStrategy[Extensions]:
    opencti = st.builds(
        OpenCTIExtension,
        id=st.one_of(st.none(), st.uuids().map(str), _ODD_TEXT),
        updated_at=st.none() | datetimes(),
        is_inferred=st.none() | st.booleans() | _FLAG_TEXT,
        score=st.none() | _numbers(),
        detection=st.none() | st.booleans() | _FLAG_TEXT,
        main_observable_type=st.none()
        | st.sampled_from(
            ["IPv4-Addr", "StixFile", "Hostname", "Url", "Text", "Email-Message", "Domain-Name"]
        )
        | _ODD_TEXT,
    )
    mitre = st.builds(MitreExtension, platforms=st.lists(_TEXT, max_size=3).map(tuple))
    return st.builds(Extensions, opencti=st.none() | opencti, mitre=st.none() | mitre)


def indicators(pattern_text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Indicator]:
    return st.builds(
        Indicator,
        id=st.uuids().map(lambda u: f"indicator--{u}") | _ODD_TEXT,
        pattern=pattern_text if pattern_text is not None else _ODD_TEXT,
        pattern_type=st.sampled_from(["stix", "STIX", "yara"]),
        name=st.none() | _ODD_TEXT,
        description=st.none() | _ODD_TEXT,
        pattern_version=st.none() | st.just("2.1"),
        indicator_types=st.lists(_TEXT, max_size=3).map(tuple),
        valid_from=st.none() | datetimes(),
        valid_until=st.none() | datetimes(),
        revoked=st.booleans() | _FLAG_TEXT,
        confidence=st.none() | _numbers(),
        labels=st.lists(_ODD_TEXT, max_size=4).map(tuple),
        created=st.none() | datetimes(),
        modified=st.none() | datetimes(),
        created_by_ref=st.none() | _TEXT,
        kill_chain_phases=st.lists(st.builds(KillChainPhase, _TEXT, _TEXT), max_size=2).map(tuple),
        external_references=st.lists(
            st.builds(
                ExternalReference,
                source_name=st.none() | _TEXT,
                url=st.none() | _TEXT,
                external_id=st.none() | _TEXT,
            ),
            max_size=2,
        ).map(tuple),
        extensions=_extensions(),
        x_opencti_score=st.none() | _numbers(),
        x_opencti_detection=st.none() | st.booleans() | _FLAG_TEXT,
        x_opencti_main_observable_type=st.none() | st.just("IPv6-Addr"),
        x_mitre_platforms=st.lists(_TEXT, max_size=2).map(tuple),
    )


def contexts() -> st.SearchStrategy[MappingContext]:
    return st.builds(
        MappingContext,
        now=datetimes(),
        tlp=st.none() | st.sampled_from(list(Tlp)),
        feed_name=_ODD_TEXT,
        opencti_url=st.none() | st.just("https://cti.example/") | _TEXT,
        provider=st.none() | _ODD_TEXT,
    )


# --- patterns over the mapped paths -----------------------------------------------------------

_HASH_KEYS = [
    "MD5",
    "SHA-1",
    "SHA1",
    "sha256",
    "SHA-256",
    "SHA-384",
    "SHA-512",
    "SHA3-256",
    "SHA3-512",
    "SSDEEP",
    "TLSH",
    "ssdeep",
    "WHIRLPOOL",
    "x",
]


def _steps(path: str, hash_key: str, index: PathStep) -> tuple[PathStep, ...]:
    steps: list[PathStep] = []
    for part in path.split("."):
        if part == "*":
            steps.append(hash_key)
        elif part.endswith("[*]"):
            steps.extend([part[:-3], index])
        else:
            steps.append(part)
    return tuple(steps)


_INDEXES: list[PathStep] = [AnyIndex(), 0, 3, -1]


@st.composite
def mapped_paths(draw: st.DrawFn) -> ObjectPath:
    object_type, path = draw(st.sampled_from(sorted(RULES)))
    index = draw(st.sampled_from(_INDEXES))
    return ObjectPath(object_type, _steps(path, draw(st.sampled_from(_HASH_KEYS)), index))


def _texts() -> st.SearchStrategy[str]:
    """Values that are valid for some field and not for others."""
    ipv4 = st.ip_addresses(v=4).map(str)
    ipv6 = st.ip_addresses(v=6).map(str)
    return st.one_of(
        ipv4,
        ipv6,
        st.tuples(ipv4, st.integers(0, 40)).map(lambda p: f"{p[0]}/{p[1]}"),
        st.tuples(ipv6, st.integers(0, 130)).map(lambda p: f"{p[0]}/{p[1]}"),
        st.sampled_from(
            [
                "foo",
                "",
                " ",
                "fe80::1%eth0",
                "01.2.3.4",
                "1.2.3.4/255.255.0.0",
                "http://[::1",
                "https://a.example:99999/x",
                "evil.example/path/file.tar.gz?q#f",
                "//host:80",
                "/only/a/path",
                "mailto:x@y",
                "HKEY_LOCAL_MACHINE\\Software\\Run",
                "\\REGISTRY\\USER\\S-1-5\\x",
                "HKCU",
                "CN=a, O=b\\, c, C=US",
                "/C=US/O=x/CN=y",
                'CN=\\41\\c3\\a9, OU="q,r"',
                "not a dn",
                "00:1a:2b:3c:4d:5e",
                "001a.2b3c.4d5e",
                "00-1A-2B-3C-4D-5E-6F-70",
                "zz:zz:zz:zz:zz:zz",
                "2024-01-31T12:00:00Z",
                "2024-01-31T12:00:00.123456789+05:30",
                "0001-01-01T00:00:00+01:00",
                "12345",
                "99999999999999999999999",
                "36:f7:d4:32",
                "C:\\Windows\\Temp",
                "/usr/bin",
            ]
        ),
        st.text(max_size=20),
    )


def _exact_values() -> st.SearchStrategy[Literal]:
    return st.one_of(
        st.builds(StringLiteral, _texts()),
        st.builds(IntLiteral, st.one_of(st.integers(-5, 70000), st.integers(-(2**70), 2**70))),
        st.builds(
            TimestampLiteral, st.sampled_from(["2024-01-01T00:00:00Z", "9999-12-31T23:59:60Z"])
        ),
        literals(),
    )


@st.composite
def mapped_comparisons(draw: st.DrawFn) -> Comparison:
    path = draw(mapped_paths())
    op = draw(st.sampled_from([Op.EQ, Op.EQ, Op.IN, Op.ISSUBSET, *list(Op)]))
    value: Literal | SetLiteral
    if op is Op.IN:
        value = SetLiteral(tuple(draw(st.lists(_exact_values(), max_size=4))))
    elif op in (Op.EQ, Op.ISSUBSET):
        value = draw(_exact_values())
    else:
        value = draw(comparison_values(op))
    return Comparison(path, op, value, draw(st.booleans()))


def _leaves() -> st.SearchStrategy[ComparisonExpression]:
    return st.one_of(
        mapped_comparisons(),
        mapped_comparisons(),
        mapped_comparisons(),
        st.builds(Exists, mapped_paths(), st.booleans()),
    )


@st.composite
def _observation(draw: st.DrawFn) -> ObservationExpression:
    leaves = draw(st.lists(_leaves(), min_size=1, max_size=4))
    expression: ComparisonExpression
    if len(leaves) == 1:
        expression = leaves[0]
    elif draw(st.booleans()):
        # An OR group inside an AND: values under it must not combine (file path, registry).
        if len(leaves) >= 3 and draw(st.booleans()):
            leaves = [ComparisonOr(tuple(leaves[:2])), *leaves[2:]]
        expression = ComparisonAnd(tuple(leaves))
    else:
        expression = ComparisonOr(tuple(leaves))
    observation: ObservationExpression = Observation(expression)
    if draw(st.integers(0, 5)) == 0:
        observation = Qualified(observation, draw(qualifiers()))
    return observation


@st.composite
def mapped_patterns(draw: st.DrawFn) -> Pattern:
    """Small patterns (1-3 observations of 1-4 tests) over the mapped paths."""
    observations = draw(st.lists(_observation(), min_size=1, max_size=3))
    if len(observations) == 1:
        return Pattern(observations[0])
    kind = draw(st.sampled_from(["and", "or", "followedby"]))
    if kind == "and":
        return Pattern(ObservationAnd(_splice(ObservationAnd, observations)))
    if kind == "or":
        return Pattern(ObservationOr(_splice(ObservationOr, observations)))
    return Pattern(FollowedBy(_splice(FollowedBy, observations)))


def _splice(
    kind: type[ObservationAnd | ObservationOr | FollowedBy],
    items: list[ObservationExpression],
) -> tuple[ObservationExpression, ...]:
    """Operands in canonical form: a same-kind operand is spliced in."""
    flat: list[ObservationExpression] = []
    for item in items:
        if isinstance(item, kind):
            flat.extend(item.operands)
        else:
            flat.append(item)
    return tuple(flat)


def any_patterns() -> st.SearchStrategy[Pattern]:
    """Mostly mapped paths, sometimes realistic indicators. (The parser's arbitrary trees,
    ``pattern_strategies.patterns()``, are slow to draw: tests use them on their own.)"""
    return st.one_of(mapped_patterns(), mapped_patterns(), indicator_patterns())
