"""What may leave OpenCTI for Elasticsearch, and for how long.

- ``rules``: the export policy itself: an indicator withheld (``indicator_withheld``;
  ``fields_withheld`` from its fields as the planner has read them) when it is revoked, expired,
  marked above the TLP ceiling or fails an export filter (``filtered_out``, ``any_filter``), any
  object kept back by its TLP alone (``tlp_allowed``);
- ``settings``: what the policy is given and gives (``PolicySettings``, ``Withheld``), msgspec
  Structs kept apart so that the rules compile;
- ``tlp``: the TLP levels (``Tlp``) and the standard marking definitions;
- ``markings``: which TLP level an object's ``object_marking_refs`` resolve to, unknown and
  unreadable markings withheld (``resolve_markings``);
- ``lifetime``: when an indicator expires, its ``valid_until`` or the default lifetime
  (``expiry``), as a function and as an Elasticsearch query.

Exports ``PolicySettings``, ``Withheld``, ``Tlp``, ``indicator_withheld``, ``tlp_allowed``,
``filtered_out``, ``any_filter``, ``opencti_score``, ``main_observable_type``,
``resolve_markings`` and ``expiry``.
"""

from elastic_connector.core.policy.lifetime import expiry
from elastic_connector.core.policy.markings import resolve_markings
from elastic_connector.core.policy.rules import (
    any_filter,
    filtered_out,
    indicator_withheld,
    main_observable_type,
    opencti_score,
    tlp_allowed,
)
from elastic_connector.core.policy.settings import PolicySettings, Withheld
from elastic_connector.core.policy.tlp import Tlp

__all__ = [
    "PolicySettings",
    "Tlp",
    "Withheld",
    "any_filter",
    "expiry",
    "filtered_out",
    "indicator_withheld",
    "main_observable_type",
    "opencti_score",
    "resolve_markings",
    "tlp_allowed",
]
