"""The parts of a document that describe the observed object, from the values a pattern gave.

``threat.indicator.{email,file,url,registry,x509,as}`` and ``opencti.observable`` (what ECS has
no field for). Each part is built only when its group of fields holds a value.
"""

from __future__ import annotations

from typing import Final

import msgspec.structs

from elastic_connector.core.indicators import ecs
from elastic_connector.core.indicators.found_values import FoundValues


def threat_indicator_parts(found: FoundValues, groups: set[str]) -> dict[str, object]:
    """The ``threat.indicator`` parts named after observable types that the pattern gave a value,
    by ``ecs.ThreatIndicator`` attribute name (for ``msgspec.structs.replace``)."""
    parts: dict[str, object] = {}
    if "threat.indicator.email" in groups:
        parts["email"] = ecs.IndicatorEmail(address=found.s("threat.indicator.email.address"))
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
    s = found.s
    file_hash = None
    if "threat.indicator.file.hash" in groups:
        file_hash = ecs.FileHash(
            md5=s("threat.indicator.file.hash.md5"),
            sha1=s("threat.indicator.file.hash.sha1"),
            sha256=s("threat.indicator.file.hash.sha256"),
            sha384=s("threat.indicator.file.hash.sha384"),
            sha512=s("threat.indicator.file.hash.sha512"),
            ssdeep=s("threat.indicator.file.hash.ssdeep"),
            tlsh=s("threat.indicator.file.hash.tlsh"),
        )
    pe = elf = None
    if "threat.indicator.file.pe" in groups:
        pe = ecs.FilePe(
            imphash=s("threat.indicator.file.pe.imphash"),
            pehash=s("threat.indicator.file.pe.pehash"),
        )
    if "threat.indicator.file.elf" in groups:
        elf = ecs.FileElf(telfhash=s("threat.indicator.file.elf.telfhash"))
    return ecs.IndicatorFile(
        name=s("threat.indicator.file.name"),
        directory=s("threat.indicator.file.directory"),
        path=s("threat.indicator.file.path"),
        size=found.i("threat.indicator.file.size"),
        mime_type=s("threat.indicator.file.mime_type"),
        hash=file_hash,
        pe=pe,
        elf=elf,
    )


def _indicator_url(found: FoundValues) -> ecs.IndicatorUrl:
    s = found.s
    return ecs.IndicatorUrl(
        full=s("threat.indicator.url.full"),
        original=s("threat.indicator.url.original"),
        scheme=s("threat.indicator.url.scheme"),
        domain=s("threat.indicator.url.domain"),
        port=found.i("threat.indicator.url.port"),
        path=s("threat.indicator.url.path"),
        query=s("threat.indicator.url.query"),
        fragment=s("threat.indicator.url.fragment"),
        extension=s("threat.indicator.url.extension"),
    )


def _indicator_registry(found: FoundValues, groups: set[str]) -> ecs.IndicatorRegistry:
    s = found.s
    data = None
    if "threat.indicator.registry.data" in groups:
        data = ecs.RegistryData(
            strings=s("threat.indicator.registry.data.strings"),
            type=s("threat.indicator.registry.data.type"),
        )
    return ecs.IndicatorRegistry(
        hive=s("threat.indicator.registry.hive"),
        key=s("threat.indicator.registry.key"),
        path=s("threat.indicator.registry.path"),
        value=s("threat.indicator.registry.value"),
        data=data,
    )


def _x509_name_part(found: FoundValues, groups: set[str], role: str) -> ecs.X509Name | None:
    prefix = f"threat.indicator.x509.{role}"
    if prefix not in groups:
        return None
    s = found.s
    return ecs.X509Name(
        distinguished_name=s(f"{prefix}.distinguished_name"),
        common_name=s(f"{prefix}.common_name"),
        organization=s(f"{prefix}.organization"),
        organizational_unit=s(f"{prefix}.organizational_unit"),
        country=s(f"{prefix}.country"),
        locality=s(f"{prefix}.locality"),
        state_or_province=s(f"{prefix}.state_or_province"),
    )


def _indicator_x509(found: FoundValues, groups: set[str]) -> ecs.X509:
    s = found.s
    return ecs.X509(
        serial_number=s("threat.indicator.x509.serial_number"),
        issuer=_x509_name_part(found, groups, "issuer"),
        subject=_x509_name_part(found, groups, "subject"),
        not_before=found.d("threat.indicator.x509.not_before"),
        not_after=found.d("threat.indicator.x509.not_after"),
        alternative_names=s("threat.indicator.x509.alternative_names"),
        signature_algorithm=s("threat.indicator.x509.signature_algorithm"),
        public_key_algorithm=s("threat.indicator.x509.public_key_algorithm"),
        public_key_exponent=found.i("threat.indicator.x509.public_key_exponent"),
        version_number=s("threat.indicator.x509.version_number"),
    )


def _indicator_as(found: FoundValues, groups: set[str]) -> ecs.AutonomousSystem:
    organization = None
    if "threat.indicator.as.organization" in groups:
        organization = ecs.AsOrganization(name=found.s("threat.indicator.as.organization.name"))
    return ecs.AutonomousSystem(
        number=found.i("threat.indicator.as.number"), organization=organization
    )


def _extra_hash(found: FoundValues, prefix: str) -> ecs.ExtraHash:
    s = found.s
    return ecs.ExtraHash(
        md5=s(f"{prefix}.md5"),
        sha1=s(f"{prefix}.sha1"),
        sha256=s(f"{prefix}.sha256"),
        sha384=s(f"{prefix}.sha384"),
        sha512=s(f"{prefix}.sha512"),
        sha3_256=s(f"{prefix}.sha3_256"),
        sha3_512=s(f"{prefix}.sha3_512"),
        ssdeep=s(f"{prefix}.ssdeep"),
        tlsh=s(f"{prefix}.tlsh"),
    )


_OBSERVED_VALUES: Final = (
    "user_agent",
    "cryptocurrency_wallet",
    "phone_number",
    "bank_account",
    "credential",
    "tracking_number",
    "text",
)
_NO_OBSERVABLE: Final = ecs.Observable()


def observable(found: FoundValues, groups: set[str]) -> ecs.Observable | None:
    """``opencti.observable``: the values ECS has no field for; None when there are none."""
    o = "opencti.observable"
    if o not in groups:
        return None
    s, i = found.s, found.i
    parts: dict[str, object] = {}
    if f"{o}.file.hash" in groups:
        parts["file"] = ecs.ObservedFile(
            hash=ecs.Sha3Hash(
                sha3_256=s(f"{o}.file.hash.sha3_256"), sha3_512=s(f"{o}.file.hash.sha3_512")
            )
        )
    if f"{o}.x509_certificate.hash" in groups:
        parts["x509_certificate"] = ecs.ObservedX509(
            hash=_extra_hash(found, f"{o}.x509_certificate.hash")
        )
    if f"{o}.mac_addr" in groups:
        parts["mac_addr"] = ecs.ObservedMac(value=s(f"{o}.mac_addr.value"))
    if f"{o}.mutex" in groups:
        parts["mutex"] = ecs.ObservedMutex(name=s(f"{o}.mutex.name"))
    if f"{o}.process" in groups:
        parts["process"] = ecs.ObservedProcess(
            name=s(f"{o}.process.name"),
            pid=i(f"{o}.process.pid"),
            command_line=s(f"{o}.process.command_line"),
            cwd=s(f"{o}.process.cwd"),
        )
    if f"{o}.user_account" in groups:
        parts["user_account"] = ecs.ObservedUserAccount(
            user_id=s(f"{o}.user_account.user_id"),
            account_login=s(f"{o}.user_account.account_login"),
            display_name=s(f"{o}.user_account.display_name"),
        )
    if f"{o}.software" in groups:
        parts["software"] = ecs.ObservedSoftware(
            name=s(f"{o}.software.name"),
            vendor=s(f"{o}.software.vendor"),
            version=s(f"{o}.software.version"),
            cpe=s(f"{o}.software.cpe"),
            swid=s(f"{o}.software.swid"),
        )
    if f"{o}.network_traffic" in groups:
        parts["network_traffic"] = ecs.ObservedNetworkTraffic(
            protocols=s(f"{o}.network_traffic.protocols")
        )
    if f"{o}.email_message" in groups:
        parts["email_message"] = ecs.ObservedEmailMessage(subject=s(f"{o}.email_message.subject"))
    for kind in _OBSERVED_VALUES:
        group = f"{o}.{kind}"
        if group in groups:
            parts[kind] = ecs.ObservedValue(value=s(f"{group}.value"))
    return msgspec.structs.replace(_NO_OBSERVABLE, **parts)
