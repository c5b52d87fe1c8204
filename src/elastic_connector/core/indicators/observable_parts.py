"""The parts of a document that describe the observed object, from the values a pattern gave.

``threat.indicator.{email,file,url,registry,x509,as}`` and ``opencti.observable`` (what ECS has
no field for). Each part is built only when its group of fields holds a value.
"""

from __future__ import annotations

from typing import Final

import msgspec.structs

from elastic_connector.core.indicators import ecs
from elastic_connector.core.indicators.found_values import FoundValues

# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d). The parts most documents have.
_IndicatorEmail: Final = ecs.IndicatorEmail
_FileHash: Final = ecs.FileHash
_FilePe: Final = ecs.FilePe
_FileElf: Final = ecs.FileElf
_IndicatorFile: Final = ecs.IndicatorFile
_IndicatorUrl: Final = ecs.IndicatorUrl
_RegistryData: Final = ecs.RegistryData
_IndicatorRegistry: Final = ecs.IndicatorRegistry


def threat_indicator_parts(found: FoundValues, groups: set[str]) -> dict[str, object]:
    """The ``threat.indicator`` parts named after observable types that the pattern gave a value,
    by ``ecs.ThreatIndicator`` attribute name."""
    parts: dict[str, object] = {}
    if "threat.indicator.email" in groups:
        parts["email"] = _IndicatorEmail(address=found.s("threat.indicator.email.address"))
    if "threat.indicator.file" in groups:
        parts["file"] = _indicator_file(found, groups)
    if "threat.indicator.url" in groups:
        parts["url"] = _indicator_url(found)
    if "threat.indicator.registry" in groups:
        parts["registry"] = _indicator_registry(found, groups)
    if "threat.indicator.x509" in groups:
        parts["x509"] = _indicator_x509(found, groups)
    if "threat.indicator.as" in groups:
        parts["as_"] = _indicator_as(found, groups)
    return parts


def _indicator_file(found: FoundValues, groups: set[str]) -> ecs.IndicatorFile:
    file_hash = None
    if "threat.indicator.file.hash" in groups:
        file_hash = _FileHash(
            md5=found.s("threat.indicator.file.hash.md5"),
            sha1=found.s("threat.indicator.file.hash.sha1"),
            sha256=found.s("threat.indicator.file.hash.sha256"),
            sha384=found.s("threat.indicator.file.hash.sha384"),
            sha512=found.s("threat.indicator.file.hash.sha512"),
            ssdeep=found.s("threat.indicator.file.hash.ssdeep"),
            tlsh=found.s("threat.indicator.file.hash.tlsh"),
        )
    pe = elf = None
    if "threat.indicator.file.pe" in groups:
        pe = _FilePe(
            imphash=found.s("threat.indicator.file.pe.imphash"),
            pehash=found.s("threat.indicator.file.pe.pehash"),
        )
    if "threat.indicator.file.elf" in groups:
        elf = _FileElf(telfhash=found.s("threat.indicator.file.elf.telfhash"))
    return _IndicatorFile(
        name=found.s("threat.indicator.file.name"),
        directory=found.s("threat.indicator.file.directory"),
        path=found.s("threat.indicator.file.path"),
        size=found.i("threat.indicator.file.size"),
        mime_type=found.s("threat.indicator.file.mime_type"),
        hash=file_hash,
        pe=pe,
        elf=elf,
    )


def _indicator_url(found: FoundValues) -> ecs.IndicatorUrl:
    return _IndicatorUrl(
        full=found.s("threat.indicator.url.full"),
        original=found.s("threat.indicator.url.original"),
        scheme=found.s("threat.indicator.url.scheme"),
        domain=found.s("threat.indicator.url.domain"),
        port=found.i("threat.indicator.url.port"),
        path=found.s("threat.indicator.url.path"),
        query=found.s("threat.indicator.url.query"),
        fragment=found.s("threat.indicator.url.fragment"),
        extension=found.s("threat.indicator.url.extension"),
    )


def _indicator_registry(found: FoundValues, groups: set[str]) -> ecs.IndicatorRegistry:
    data = None
    if "threat.indicator.registry.data" in groups:
        data = _RegistryData(
            strings=found.s("threat.indicator.registry.data.strings"),
            type=found.s("threat.indicator.registry.data.type"),
        )
    return _IndicatorRegistry(
        hive=found.s("threat.indicator.registry.hive"),
        key=found.s("threat.indicator.registry.key"),
        path=found.s("threat.indicator.registry.path"),
        value=found.s("threat.indicator.registry.value"),
        data=data,
    )


def _x509_name_part(found: FoundValues, groups: set[str], role: str) -> ecs.X509Name | None:
    prefix = f"threat.indicator.x509.{role}"
    if prefix not in groups:
        return None
    return ecs.X509Name(
        distinguished_name=found.s(f"{prefix}.distinguished_name"),
        common_name=found.s(f"{prefix}.common_name"),
        organization=found.s(f"{prefix}.organization"),
        organizational_unit=found.s(f"{prefix}.organizational_unit"),
        country=found.s(f"{prefix}.country"),
        locality=found.s(f"{prefix}.locality"),
        state_or_province=found.s(f"{prefix}.state_or_province"),
    )


def _indicator_x509(found: FoundValues, groups: set[str]) -> ecs.X509:
    return ecs.X509(
        serial_number=found.s("threat.indicator.x509.serial_number"),
        issuer=_x509_name_part(found, groups, "issuer"),
        subject=_x509_name_part(found, groups, "subject"),
        not_before=found.d("threat.indicator.x509.not_before"),
        not_after=found.d("threat.indicator.x509.not_after"),
        alternative_names=found.s("threat.indicator.x509.alternative_names"),
        signature_algorithm=found.s("threat.indicator.x509.signature_algorithm"),
        public_key_algorithm=found.s("threat.indicator.x509.public_key_algorithm"),
        public_key_exponent=found.i("threat.indicator.x509.public_key_exponent"),
        version_number=found.s("threat.indicator.x509.version_number"),
    )


def _indicator_as(found: FoundValues, groups: set[str]) -> ecs.AutonomousSystem:
    organization = None
    if "threat.indicator.as.organization" in groups:
        organization = ecs.AsOrganization(name=found.s("threat.indicator.as.organization.name"))
    return ecs.AutonomousSystem(
        number=found.i("threat.indicator.as.number"), organization=organization
    )


def _extra_hash(found: FoundValues, prefix: str) -> ecs.ExtraHash:
    return ecs.ExtraHash(
        md5=found.s(f"{prefix}.md5"),
        sha1=found.s(f"{prefix}.sha1"),
        sha256=found.s(f"{prefix}.sha256"),
        sha384=found.s(f"{prefix}.sha384"),
        sha512=found.s(f"{prefix}.sha512"),
        sha3_256=found.s(f"{prefix}.sha3_256"),
        sha3_512=found.s(f"{prefix}.sha3_512"),
        ssdeep=found.s(f"{prefix}.ssdeep"),
        tlsh=found.s(f"{prefix}.tlsh"),
    )


# (part, its group, its field), the names written out once rather than formatted for every
# document.
_OBSERVED_VALUES: Final = tuple(
    (kind, f"opencti.observable.{kind}", f"opencti.observable.{kind}.value")
    for kind in (
        "user_agent",
        "cryptocurrency_wallet",
        "phone_number",
        "bank_account",
        "credential",
        "tracking_number",
        "text",
    )
)
_NO_OBSERVABLE: Final = ecs.Observable()


def observable(found: FoundValues, groups: set[str]) -> ecs.Observable | None:
    """``opencti.observable``: the values ECS has no field for; None when there are none."""
    if "opencti.observable" not in groups:
        return None
    parts: dict[str, object] = {}
    if "opencti.observable.file.hash" in groups:
        parts["file"] = ecs.ObservedFile(
            hash=ecs.Sha3Hash(
                sha3_256=found.s("opencti.observable.file.hash.sha3_256"),
                sha3_512=found.s("opencti.observable.file.hash.sha3_512"),
            )
        )
    if "opencti.observable.x509_certificate.hash" in groups:
        parts["x509_certificate"] = ecs.ObservedX509(
            hash=_extra_hash(found, "opencti.observable.x509_certificate.hash")
        )
    if "opencti.observable.mac_addr" in groups:
        parts["mac_addr"] = ecs.ObservedMac(value=found.s("opencti.observable.mac_addr.value"))
    if "opencti.observable.mutex" in groups:
        parts["mutex"] = ecs.ObservedMutex(name=found.s("opencti.observable.mutex.name"))
    if "opencti.observable.process" in groups:
        parts["process"] = ecs.ObservedProcess(
            name=found.s("opencti.observable.process.name"),
            pid=found.i("opencti.observable.process.pid"),
            command_line=found.s("opencti.observable.process.command_line"),
            cwd=found.s("opencti.observable.process.cwd"),
        )
    if "opencti.observable.user_account" in groups:
        parts["user_account"] = ecs.ObservedUserAccount(
            user_id=found.s("opencti.observable.user_account.user_id"),
            account_login=found.s("opencti.observable.user_account.account_login"),
            display_name=found.s("opencti.observable.user_account.display_name"),
        )
    if "opencti.observable.software" in groups:
        parts["software"] = ecs.ObservedSoftware(
            name=found.s("opencti.observable.software.name"),
            vendor=found.s("opencti.observable.software.vendor"),
            version=found.s("opencti.observable.software.version"),
            cpe=found.s("opencti.observable.software.cpe"),
            swid=found.s("opencti.observable.software.swid"),
        )
    if "opencti.observable.network_traffic" in groups:
        parts["network_traffic"] = ecs.ObservedNetworkTraffic(
            protocols=found.s("opencti.observable.network_traffic.protocols")
        )
    if "opencti.observable.email_message" in groups:
        parts["email_message"] = ecs.ObservedEmailMessage(
            subject=found.s("opencti.observable.email_message.subject")
        )
    for kind, group, field in _OBSERVED_VALUES:
        if group in groups:
            parts[kind] = ecs.ObservedValue(value=found.s(field))
    return msgspec.structs.replace(_NO_OBSERVABLE, **parts)
