"""Deterministic, realistic OpenCTI stream events for the benchmarks.

``stream_events(n, seed)`` returns ``n`` SSE data events exactly as the OpenCTI live stream
sends them (``shared/reference/opencti.md``): ``(event id, event name, data JSON bytes)`` where
``data`` is the envelope ``{"version","type","scope","message","origin","data"[,"context"]}``
around a STIX 2.1 object with OpenCTI's extensions.

The mix follows a first-start replay of a real knowledge base, filtered on indicators:

* most events create indicators; every observable type the mapping knows appears (the first
  pass over ``TEMPLATES`` guarantees it, then types are drawn with realistic weights: IPs,
  domains, URLs and file hashes dominate);
* about one pattern in six is compound (``OR``/``AND`` inside one observation, several
  observations, ``FOLLOWEDBY ... WITHIN``, ``IN`` sets, CIDR blocks) and a few use comparisons
  that name no value (``LIKE``, ``MATCHES``, ``>``), which map to a delete;
* some indicators are updated later (same pattern, new score: patterns repeat), deleted,
  merged, revoked, expired or marked TLP:RED, and a few non-indicator objects pass by.

Everything is derived from ``seed``: the same ``(n, seed)`` gives the same bytes, and a longer
stream starts with the events of a shorter one.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Final, NamedTuple, TypeAlias

import msgspec

from elastic_connector.demo.opencti_data import (
    ADMIN_USER_ID,
    DEFAULT_MARKINGS,
    MITRE_EXTENSION,
    OPENCTI_EXTENSION,
    indicator_standard_id,
    internal_id,
)

__all__ = [
    "BASE_MS",
    "TEMPLATES",
    "Event",
    "Template",
    "indicator_patterns",
    "stream_events",
]

Json: TypeAlias = dict[str, object]

BASE_MS: Final = 1_717_200_000_000
"""Stream time of the first generated event (2024-06-01T00:00:00Z)."""
NOW: Final = datetime(2024, 7, 1, tzinfo=UTC)
"""The ``now`` the benchmarks plan with: later than every ``created``; the ~2% of indicators that
expire do so before ``BASE_MS``, the others after 2034, so the daemon's real clock agrees."""

_NAMESPACE: Final = uuid.UUID("5b0c1f9e-8f0a-4a53-9b9a-6d1e2f3a4b5c")
_IDENTITY: Final = "identity--0a3c5e0d-1b7f-5b2a-9c4e-7d6f8a9b0c1d"
_AUTHOR_ID: Final = str(uuid.uuid5(_NAMESPACE, "author"))
_TLP = {marking.definition: marking.standard_id for marking in DEFAULT_MARKINGS}
_encoder: Final = msgspec.json.Encoder()


class Event(NamedTuple):
    """One SSE data frame: what ``core.events.plan_frame`` takes."""

    id: str
    event: str
    data: bytes


class Template(NamedTuple):
    """One kind of pattern: its observable type(s), OpenCTI main type and how to write one."""

    name: str
    weight: int
    main_type: str
    render: Callable[[random.Random], str]


# --- values -------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """A STIX string literal: ``\\`` and ``'`` escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_WORDS: Final = (
    "alpha",
    "bravo",
    "cobalt",
    "delta",
    "echo",
    "falcon",
    "gamma",
    "harbor",
    "indigo",
    "juniper",
    "kilo",
    "lotus",
    "mercury",
    "nebula",
    "onyx",
    "pixel",
    "quartz",
    "raven",
    "sierra",
    "tango",
    "umbra",
    "vector",
    "willow",
    "xenon",
    "yankee",
    "zephyr",
    "update",
    "secure",
    "login",
    "cdn",
    "static",
    "portal",
    "mail",
    "cloud",
    "sync",
    "api",
    "track",
    "stats",
)
_TLDS: Final = ("com", "net", "org", "info", "ru", "cn", "io", "xyz", "top", "biz", "co.uk")
_EXTENSIONS: Final = ("exe", "dll", "js", "ps1", "doc", "zip", "bin", "sh", "jar", "lnk")


def _ipv4(r: random.Random) -> str:
    return f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def _ipv6(r: random.Random) -> str:
    groups = ":".join(f"{r.getrandbits(16):x}" for _ in range(4))
    return f"2001:db8:{r.getrandbits(16):x}:{r.getrandbits(12):x}::{groups.split(':')[0]}"


def _word(r: random.Random) -> str:
    return r.choice(_WORDS)


def _domain(r: random.Random) -> str:
    label = _word(r) + ("-" + _word(r) if r.random() < 0.5 else "") + str(r.randint(0, 999))
    sub = _word(r) + "." if r.random() < 0.3 else ""
    return f"{sub}{label}.{r.choice(_TLDS)}"


def _url(r: random.Random) -> str:
    scheme = r.choice(("http", "https", "https", "http"))
    host = _domain(r) if r.random() < 0.8 else _ipv4(r)
    port = f":{r.choice((8080, 8443, 4444, 59600))}" if r.random() < 0.2 else ""
    path = "/".join(_word(r) for _ in range(r.randint(1, 3)))
    name = f"/{_word(r)}.{r.choice(_EXTENSIONS)}" if r.random() < 0.5 else ""
    query = f"?id={r.getrandbits(32):x}" if r.random() < 0.3 else ""
    return f"{scheme}://{host}{port}/{path}{name}{query}"


def _hex(r: random.Random, nibbles: int) -> str:
    return f"{r.getrandbits(nibbles * 4):0{nibbles}x}"


def _file_name(r: random.Random) -> str:
    return f"{_word(r)}_{r.randint(1, 99)}.{r.choice(_EXTENSIONS)}"


def _email(r: random.Random) -> str:
    return f"{_word(r)}.{_word(r)}{r.randint(1, 99)}@{_domain(r)}"


def _registry_key(r: random.Random) -> str:
    hive = r.choice(("HKEY_LOCAL_MACHINE", "HKEY_CURRENT_USER", "HKLM", "HKCU"))
    tail = r.choice(
        (
            "Software\\Microsoft\\Windows\\CurrentVersion\\Run",
            "SYSTEM\\CurrentControlSet\\Services\\" + _word(r).capitalize(),
            "Software\\Classes\\CLSID\\{" + str(uuid.UUID(int=r.getrandbits(128))) + "}",
        )
    )
    return f"{hive}\\{tail}"


# --- patterns -------------------------------------------------------------------------------


def _eq(path: str, value: str) -> str:
    return f"{path} = {_quote(value)}"


def _simple(path: str, make: Callable[[random.Random], str]) -> Callable[[random.Random], str]:
    return lambda r: f"[{_eq(path, make(r))}]"


def _hashes(r: random.Random, object_type: str = "file") -> str:
    algorithm, nibbles = r.choice(
        (("MD5", 32), ("'SHA-1'", 40), ("'SHA-256'", 64), ("'SHA-256'", 64))
    )
    return f"[{_eq(f'{object_type}:hashes.{algorithm}', _hex(r, nibbles))}]"


_SHA1_PATH: Final = "file:hashes.'SHA-1'"
_SHA256_PATH: Final = "file:hashes.'SHA-256'"


def _file_hash_set(r: random.Random) -> str:
    # What OpenCTI writes for a file observable with several hashes.
    return (
        f"[{_eq('file:hashes.MD5', _hex(r, 32))}"
        f" OR {_eq(_SHA1_PATH, _hex(r, 40))} OR {_eq(_SHA256_PATH, _hex(r, 64))}]"
    )


def _file_in_directory(r: random.Random) -> str:
    directory = r.choice(("C:\\Windows\\System32", "C:\\Users\\Public", "/tmp", "/var/lib"))
    return (
        f"[{_eq('file:name', _file_name(r))} AND "
        f"{_eq('file:parent_directory_ref.path', directory)}]"
    )


def _ip_or_domain(r: random.Random) -> str:
    return f"[{_eq('ipv4-addr:value', _ipv4(r))}] OR [{_eq('domain-name:value', _domain(r))}]"


def _ip_set(r: random.Random) -> str:
    values = ", ".join(_quote(_ipv4(r)) for _ in range(r.randint(2, 6)))
    return f"[ipv4-addr:value IN ({values})]"


def _cidr(r: random.Random) -> str:
    return f"[{_eq('ipv4-addr:value', f'{r.randint(1, 223)}.{r.randint(0, 255)}.0.0/16')}]"


def _cidr_subset(r: random.Random) -> str:
    return f"[ipv4-addr:value ISSUBSET '{r.randint(1, 223)}.{r.randint(0, 255)}.0.0/16']"


def _c2_traffic(r: random.Random) -> str:
    return (
        f"[{_eq('network-traffic:dst_ref.value', _ipv4(r))} AND "
        f"network-traffic:dst_port = {r.choice((443, 8443, 4444, 1337))} AND "
        f"network-traffic:protocols[*] = 'tcp']"
    )


def _followed_by(r: random.Random) -> str:
    return (
        f"([{_eq('url:value', _url(r))}] FOLLOWEDBY [{_eq('domain-name:value', _domain(r))}])"
        f" WITHIN {r.choice((60, 300, 600))} SECONDS"
    )


def _registry_value(r: random.Random) -> str:
    return (
        f"[{_eq('windows-registry-key:key', _registry_key(r))} AND "
        f"{_eq('windows-registry-key:values[*].name', _word(r).capitalize())}]"
    )


def _x509(r: random.Random) -> str:
    serial = ":".join(_hex(r, 2) for _ in range(r.choice((8, 16))))
    subject = f"C=US, O={_word(r).capitalize()} Inc, CN={_domain(r)}"
    return (
        f"[{_eq('x509-certificate:serial_number', serial)} OR "
        f"{_eq('x509-certificate:subject', subject)} OR "
        f"{_eq('x509-certificate:hashes.' + repr('SHA-1'), _hex(r, 40))}]"
    )


def _process(r: random.Random) -> str:
    name = r.choice(("powershell.exe", "rundll32.exe", "cmd.exe", "mshta.exe"))
    return (
        f"[{_eq('process:name', name)} AND "
        f"{_eq('process:command_line', name + ' -enc ' + _hex(r, 24))}]"
    )


def _inexact(r: random.Random) -> str:
    # Comparisons that describe a value without naming it: the mapping has nothing to match.
    return r.choice(
        (
            f"[domain-name:value LIKE '%.{_word(r)}.{r.choice(_TLDS)}']",
            f"[url:value MATCHES '^https?://{_word(r)}[0-9]+\\\\.']",
            f"[file:size > {r.randint(1000, 10**7)}]",
        )
    )


def _software(r: random.Random) -> str:
    return (
        f"[{_eq('software:name', _word(r).capitalize())} AND "
        f"{_eq('software:version', f'{r.randint(1, 9)}.{r.randint(0, 20)}')}]"
    )


def _mac(r: random.Random) -> str:
    return ":".join(_hex(r, 2) for _ in range(6))


def _directory_path(r: random.Random) -> str:
    return "C:\\ProgramData\\" + _word(r)


def _mutex_name(r: random.Random) -> str:
    return f"Global\\{_word(r)}{r.randint(1, 999)}"


def _user_agent(r: random.Random) -> str:
    return f"Mozilla/5.0 ({_word(r)})"


def _wallet(r: random.Random) -> str:
    return "bc1q" + _hex(r, 38)


def _phone(r: random.Random) -> str:
    return f"+1{r.randint(2_000_000_000, 9_999_999_999)}"


def _iban(r: random.Random) -> str:
    return f"DE{r.randint(10**19, 10**20 - 1)}"


def _credential(r: random.Random) -> str:
    return _word(r) + _hex(r, 8)


def _tracking(r: random.Random) -> str:
    return f"1Z{_hex(r, 16).upper()}"


def _as_number(r: random.Random) -> str:
    return f"[autonomous-system:number = {r.randint(1, 400_000)}]"


def _artifact(r: random.Random) -> str:
    return _hashes(r, "artifact")


TEMPLATES: Final[tuple[Template, ...]] = (
    Template("ipv4", 250, "IPv4-Addr", _simple("ipv4-addr:value", _ipv4)),
    Template("ipv6", 20, "IPv6-Addr", _simple("ipv6-addr:value", _ipv6)),
    Template("domain", 180, "Domain-Name", _simple("domain-name:value", _domain)),
    Template("hostname", 15, "Hostname", _simple("hostname:value", _domain)),
    Template("url", 150, "Url", _simple("url:value", _url)),
    Template("file_hash", 160, "StixFile", _hashes),
    Template("email", 20, "Email-Addr", _simple("email-addr:value", _email)),
    Template("email_subject", 5, "Email-Message", _simple("email-message:subject", _word)),
    Template("file_name", 8, "StixFile", _simple("file:name", _file_name)),
    Template("artifact", 4, "Artifact", _artifact),
    Template("directory", 3, "Directory", _simple("directory:path", _directory_path)),
    Template(
        "registry", 8, "Windows-Registry-Key", _simple("windows-registry-key:key", _registry_key)
    ),
    Template("autonomous_system", 5, "Autonomous-System", _as_number),
    Template("mac", 3, "Mac-Addr", _simple("mac-addr:value", _mac)),
    Template("mutex", 4, "Mutex", _simple("mutex:name", _mutex_name)),
    Template("user_account", 3, "User-Account", _simple("user-account:account_login", _word)),
    Template("user_agent", 4, "User-Agent", _simple("user-agent:value", _user_agent)),
    Template("wallet", 4, "Cryptocurrency-Wallet", _simple("cryptocurrency-wallet:value", _wallet)),
    Template("phone", 2, "Phone-Number", _simple("phone-number:value", _phone)),
    Template("bank_account", 2, "Bank-Account", _simple("bank-account:iban", _iban)),
    Template("credential", 2, "Credential", _simple("credential:value", _credential)),
    Template("tracking_number", 1, "Tracking-Number", _simple("tracking-number:value", _tracking)),
    Template("text", 2, "Text", _simple("text:value", _word)),
    Template("file_hash_set", 40, "StixFile", _file_hash_set),
    Template("file_in_directory", 8, "StixFile", _file_in_directory),
    Template("ip_or_domain", 15, "IPv4-Addr", _ip_or_domain),
    Template("ip_set", 10, "IPv4-Addr", _ip_set),
    Template("cidr", 10, "IPv4-Addr", _cidr),
    Template("cidr_subset", 3, "IPv4-Addr", _cidr_subset),
    Template("c2_traffic", 10, "Network-Traffic", _c2_traffic),
    Template("followed_by", 5, "Url", _followed_by),
    Template("registry_value", 4, "Windows-Registry-Key", _registry_value),
    Template("x509", 4, "X509-Certificate", _x509),
    Template("process", 4, "Process", _process),
    Template("software", 3, "Software", _software),
    Template("inexact", 6, "Domain-Name", _inexact),
)
"""Pattern kinds and their relative frequency in the generated stream."""


# --- objects and envelopes ------------------------------------------------------------------


def _iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DAY_MS: Final = 86_400_000


def _valid_until(r: random.Random, ms: int) -> str:
    # About 2% already expired when streamed; the rest valid for 10 to 30 years. Either way the
    # policy decides the same with the benchmarks' NOW and with the daemon's real clock.
    if r.random() < 0.02:
        return _iso(ms - _DAY_MS * r.randint(1, 30))
    return _iso(ms + _DAY_MS * 365 * r.randint(10, 30))


class _Indicator(NamedTuple):
    stix: Json
    pattern: str


def _indicator(r: random.Random, template: Template, ms: int) -> _Indicator:
    pattern = template.render(r)
    standard_id = indicator_standard_id(pattern)
    stamp = _iso(ms - r.randint(0, 86_400_000 * 90))
    roll = r.random()
    marking = (
        "TLP:RED" if roll < 0.03 else r.choice(("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER"))
    )
    extension: Json = {
        "extension_type": "property-extension",
        "id": internal_id(standard_id),
        "type": "Indicator",
        "created_at": stamp,
        "updated_at": stamp,
        "is_inferred": False,
        "score": r.randint(20, 100),
        "detection": r.random() < 0.9,
        "main_observable_type": template.main_type,
        "labels_ids": [],
        "created_by_ref_id": _AUTHOR_ID,
        "workflow_id": None,
    }
    extensions: Json = {OPENCTI_EXTENSION: extension}
    if r.random() < 0.2:
        extensions[MITRE_EXTENSION] = {"platforms": r.sample(["windows", "linux", "macos"], 2)}
    stix: Json = {
        "id": standard_id,
        "spec_version": "2.1",
        "type": "indicator",
        "name": pattern[1:-1].split(" = ")[-1].strip("'")[:80] if r.random() < 0.8 else pattern,
        "description": f"Observed in {_word(r)} campaign" if r.random() < 0.4 else None,
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": stamp,
        "valid_until": _valid_until(r, ms),
        "revoked": r.random() < 0.02,
        "confidence": r.choice((15, 50, 75, 80, 100)),
        "labels": r.sample(
            ["malware", "c2", "phishing", "botnet", "apt", "scanner"], r.randint(0, 3)
        ),
        "created": stamp,
        "modified": stamp,
        "created_by_ref": _IDENTITY,
        "object_marking_refs": [_TLP[marking]],
        "kill_chain_phases": (
            [
                {
                    "kill_chain_name": "mitre-attack",
                    "phase_name": r.choice(("execution", "command-and-control")),
                }
            ]
            if r.random() < 0.3
            else []
        ),
        "external_references": (
            [
                {
                    "source_name": "abuse.ch",
                    "url": f"https://urlhaus.abuse.ch/url/{r.randint(1, 10**6)}/",
                }
            ]
            if r.random() < 0.3
            else []
        ),
        "x_opencti_id": None,
        "extensions": extensions,
    }
    # OpenCTI omits absent properties instead of writing null.
    for key in [key for key, value in stix.items() if value is None or value == []]:
        del stix[key]
    return _Indicator(stix, pattern)


def _other_object(r: random.Random, n: int) -> Json:
    kind = r.choice(("malware", "identity", "marking-definition", "report"))
    object_id = f"{kind}--{uuid.uuid5(_NAMESPACE, f'{kind}-{n}')}"
    stix: Json = {"id": object_id, "spec_version": "2.1", "type": kind}
    if kind == "marking-definition":
        stix.update(definition_type="statement", definition="Copyright Example", name="Copyright")
    elif kind == "identity":
        stix.update(name=f"{_word(r).capitalize()} CERT", identity_class="organization")
    else:
        stix.update(name=f"{_word(r).capitalize()} {n}", description="Synthetic " + kind)
    stix["extensions"] = {
        OPENCTI_EXTENSION: {
            "extension_type": "property-extension",
            "id": internal_id(object_id),
            "type": kind.title(),
            "created_at": "2024-05-01T00:00:00.000Z",
            "updated_at": "2024-05-01T00:00:00.000Z",
            "is_inferred": False,
        }
    }
    return stix


def _envelope(kind: str, stix: Json, message: str, context: Json | None = None) -> bytes:
    envelope: Json = {
        "version": "4",
        "type": kind,
        "scope": "external",
        "message": message,
        "origin": {"user_id": ADMIN_USER_ID, "referer": "init-create"},
        "data": stix,
    }
    if context is not None:
        envelope["context"] = context
    return _encoder.encode(envelope)


_CUMULATIVE_WEIGHTS: Final = list(itertools.accumulate(t.weight for t in TEMPLATES))


def _templates(r: random.Random) -> Iterator[Template]:
    """Every template once (in a shuffled order), then weighted draws, without end."""
    first = list(TEMPLATES)
    r.shuffle(first)
    yield from first
    while True:
        yield r.choices(TEMPLATES, cum_weights=_CUMULATIVE_WEIGHTS)[0]


def stream_events(n: int, seed: int = 42) -> list[Event]:
    """``n`` stream data events, deterministic for a given ``(n, seed)``; see the module doc."""
    r = random.Random(seed)
    # Drawn as the stream goes, so the first k events are the same whatever n is.
    schedule = _templates(random.Random(seed + 1))
    events: list[Event] = []
    live: list[_Indicator] = []  # indicators created so far (targets of updates/deletes)
    for number in range(n):
        ms = BASE_MS + number * 7
        event_id = f"{ms}-0"
        roll = r.random()
        if live and roll < 0.08:
            # An update: same pattern, new score and modification time.
            target = r.choice(live)
            stix = dict(target.stix)
            extensions = dict(stix["extensions"])  # type: ignore[call-overload]  # a Json dict
            extension = dict(extensions[OPENCTI_EXTENSION])
            old_score = extension["score"]
            extension["score"] = r.randint(20, 100)
            extension["updated_at"] = stix["modified"] = _iso(ms)
            extensions[OPENCTI_EXTENSION] = extension
            stix["extensions"] = extensions
            patch = [{"op": "replace", "path": "/x_opencti_score", "value": extension["score"]}]
            reverse = [{"op": "replace", "path": "/x_opencti_score", "value": old_score}]
            context: Json = {"patch": patch, "reverse_patch": reverse}
            message = f"replaces `{old_score}` in `Score` with `{extension['score']}`"
            events.append(Event(event_id, "update", _envelope("update", stix, message, context)))
            continue
        if live and roll < 0.10:
            target = live.pop(r.randrange(len(live)))
            message = f"deletes a Indicator `{target.stix.get('name', '')}`"
            events.append(Event(event_id, "delete", _envelope("delete", target.stix, message)))
            continue
        if len(live) >= 2 and roll < 0.105:
            source = live.pop(r.randrange(len(live)))
            target = r.choice(live)
            context = {"sources": [source.stix]}
            names = (source.stix.get("name", ""), target.stix.get("name", ""))
            message = "merges Indicator `{}` in `{}`".format(*names)
            events.append(
                Event(event_id, "merge", _envelope("merge", target.stix, message, context))
            )
            continue
        if roll < 0.12:
            other = _other_object(r, number)
            message = f"creates a {other['type']} `{other.get('name', other['id'])}`"
            events.append(Event(event_id, "create", _envelope("create", other, message)))
            continue
        template = next(schedule)
        created = _indicator(r, template, ms)
        live.append(created)
        message = f"creates a Indicator `{created.stix.get('name', '')}`"
        events.append(Event(event_id, "create", _envelope("create", created.stix, message)))
    return events


def indicator_patterns(events: Sequence[Event]) -> list[str]:
    """The pattern of every create/update/merge event of an indicator, in stream order (with
    the repeats of updates): what the connector parses."""
    decoder = msgspec.json.Decoder(_PatternOnly)
    patterns: list[str] = []
    for event in events:
        if event.event == "delete":
            continue
        envelope = decoder.decode(event.data)
        if envelope.data.type == "indicator" and envelope.data.pattern is not None:
            patterns.append(envelope.data.pattern)
    return patterns


class _PatternData(msgspec.Struct):
    type: str
    pattern: str | None = None


class _PatternOnly(msgspec.Struct):
    data: _PatternData
