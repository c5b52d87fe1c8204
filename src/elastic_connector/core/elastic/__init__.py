"""What the connector asks of Elasticsearch beyond the indicator documents themselves.

- ``privileges``: every action the connector performs, the index or cluster privilege that
  grants it, and the roles built from them (what ``check`` asks and the docs list);
- ``lookup_rows``: the rows of the ES|QL lookup index, one per exact indicator value, and how
  they follow the indicator documents;
- ``dead_letters``: the document kept for each document Elasticsearch refused for good;
- ``bulk_lines``: the NDJSON lines of a ``_bulk`` request, one action at a time
  (``encode_action``).

Exports ``REQUIREMENTS``, ``required``, ``role``, ``LOOKUP_MAPPINGS``, ``sync_rows``,
``DEAD_LETTER_MAPPINGS`` and ``dead_letter``.
"""

from elastic_connector.core.elastic.dead_letters import DEAD_LETTER_MAPPINGS, dead_letter
from elastic_connector.core.elastic.lookup_rows import LOOKUP_MAPPINGS, sync_rows
from elastic_connector.core.elastic.privileges import REQUIREMENTS, required, role

__all__ = [
    "DEAD_LETTER_MAPPINGS",
    "LOOKUP_MAPPINGS",
    "REQUIREMENTS",
    "dead_letter",
    "required",
    "role",
    "sync_rows",
]
