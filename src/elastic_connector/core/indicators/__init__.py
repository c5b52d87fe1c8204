"""An OpenCTI indicator and its parsed pattern -> one ECS threat-indicator document.

- ``document``: the mapping itself (``indicator_document``); ``mapping_context``: what it
  needs besides the indicator (``MappingContext``) and its refusal (``Unmappable``);
- ``ecs``: the ECS document types the connector writes, and the index mapping derived from them;
  ``field_values``: the values each Elasticsearch field type accepts (keyword, long, date);
- the rules, one concern each: ``exact_values`` (which comparisons give match values),
  ``path_rules`` (which field each STIX object path feeds: the mapping table),
  ``field_handlers`` (one literal -> field values), ``value_forms`` (ECS's normal forms),
  ``found_values`` (the values collected per field), ``observable_parts`` (the document parts
  describing the observed object), ``observable_types`` (``threat.indicator.type``) and
  ``confidence`` (``threat.indicator.confidence``).

Exports ``indicator_document``, its ``MappingContext`` and ``Unmappable`` result, and the
index mapping ``INDICATOR_MAPPINGS``.
"""

from elastic_connector.core.indicators.document import indicator_document
from elastic_connector.core.indicators.ecs import INDICATOR_MAPPINGS
from elastic_connector.core.indicators.mapping_context import (
    MappingContext,
    Unmappable,
)

__all__ = ["INDICATOR_MAPPINGS", "MappingContext", "Unmappable", "indicator_document"]
