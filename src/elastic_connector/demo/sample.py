"""The demo's sample knowledge: indicators of every common kind, plus some that must not reach
Elasticsearch (revoked, expired, TLP:RED, a Sigma rule, a regex-only pattern)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from elastic_connector.demo.opencti_data import Json, make_indicator

RED: Final = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed"
AMBER: Final = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
GREEN: Final = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sample_objects(now: datetime | None = None) -> list[Json]:
    """The sample indicators, as the OpenCTI stream would send them."""
    moment = now or datetime.now(UTC)
    past = _iso(moment - timedelta(days=30))
    return [
        make_indicator(
            "[ipv4-addr:value = '198.51.100.23']",
            name="C2 server 198.51.100.23",
            main_observable_type="IPv4-Addr",
            markings=[AMBER],
            labels=["c2", "cobalt-strike"],
            score=85,
            confidence=90,
        ),
        make_indicator(
            "[ipv4-addr:value = '203.0.113.0/24']",
            name="Bulletproof hosting range",
            main_observable_type="IPv4-Addr",
            markings=[GREEN],
            score=60,
        ),
        make_indicator(
            "[domain-name:value = 'login-micros0ft.example']",
            name="Phishing domain",
            main_observable_type="Domain-Name",
            labels=["phishing"],
        ),
        make_indicator(
            "[url:value = 'https://cdn.evil.example/payload.bin?id=42']",
            name="Payload URL",
            main_observable_type="Url",
        ),
        make_indicator(
            "[file:hashes.'SHA-256' = "
            "'8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4' "
            "AND file:name = 'Invoice_2024.PDF.exe']",
            name="Dropper",
            main_observable_type="StixFile",
            kill_chain_phases=[{"kill_chain_name": "mitre-attack", "phase_name": "execution"}],
            platforms=["windows"],
        ),
        make_indicator(
            "[windows-registry-key:key = "
            "'HKEY_CURRENT_USER\\\\Software\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Run']",
            name="Run key persistence",
            main_observable_type="Windows-Registry-Key",
        ),
        make_indicator(
            "[email-addr:value = 'ceo-urgent@evil.example']",
            name="BEC sender",
            main_observable_type="Email-Addr",
        ),
        make_indicator(
            "[ipv4-addr:value = '192.0.2.66']",
            name="Revoked indicator",
            revoked=True,
        ),
        make_indicator(
            "[domain-name:value = 'expired.example']",
            name="Expired indicator",
            valid_from=past,
            valid_until=_iso(moment - timedelta(days=1)),
        ),
        make_indicator(
            "[ipv4-addr:value = '192.0.2.99']",
            name="TLP:RED indicator",
            markings=[RED],
        ),
        make_indicator(
            "title: Suspicious PowerShell\ndetection: {selection: {Image: powershell.exe}}",
            name="Sigma rule",
            pattern_type="sigma",
        ),
        make_indicator(
            "[file:name MATCHES '^invoice_[0-9]+\\\\.exe$']",
            name="Regex-only pattern",
        ),
    ]
