"""What ``document.indicator_document`` needs besides the indicator (``MappingContext``) and
why it may give no document (``Unmappable``). msgspec Structs, kept out of ``document`` so that
the mapping itself can be compiled (``setup.py``).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from elastic_connector.core.policy.tlp import Tlp


class MappingContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the mapping needs besides the indicator; resolved by the caller."""

    now: datetime
    """Becomes ``@timestamp``: keeps Kibana's ``now-30d`` indicator window meaningful."""
    tlp: Tlp | None
    """Already resolved from ``object_marking_refs``."""
    feed_name: str
    """``threat.feed.name``, e.g. ``OpenCTI``."""
    opencti_url: str | None = None
    """Platform base URL: links to the indicator (``threat.indicator.reference``)."""
    provider: str | None = None
    """Name of the ``created_by_ref`` identity when known (``threat.indicator.provider``)."""
    expires_at: datetime | None = None
    """The expiry ``connector.indicator_ttl`` gives an indicator without ``valid_until``
    (``opencti.indicator.expires_at``)."""


class Unmappable(msgspec.Struct, frozen=True):
    """Why an indicator yields no document; ``reason`` is for humans (logs, the map command)."""

    reason: str

    def __str__(self) -> str:
        return self.reason
