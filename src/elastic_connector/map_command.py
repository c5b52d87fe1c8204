"""`elastic-connector map`: STIX bundle or stream events in, Elasticsearch `_bulk` NDJSON out.

The mapping is the library's (``elastic_connector.api.iter_bundle_actions``), which runs exactly
the planning the daemon runs (same config, same policy, same mapping); this module only prints
it. It touches no network, so an analyst can see what a feed would become before connecting
anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import BinaryIO, Final, TextIO

import msgspec

from elastic_connector.api import InputError, Skipped, Withheld, iter_bundle_actions
from elastic_connector.core.config import Config

_encoder: Final = msgspec.json.Encoder()


def run_map(
    source: BinaryIO, output: BinaryIO, errors: TextIO, config: Config, now: datetime
) -> int:
    """Map ``source`` to bulk NDJSON on ``output``, skips to ``errors``; returns the exit code:
    0 once the input was read (whatever was skipped), 2 when it could not be."""
    try:
        text = source.read()
    except OSError as error:
        errors.write(f"elastic-connector map: cannot read input: {error}\n")
        return 2
    for outcome in iter_bundle_actions(text, now=now, config=config):
        if isinstance(outcome, InputError):
            errors.write(f"elastic-connector map: {outcome}\n")
            return 2
        if isinstance(outcome, Skipped | Withheld):
            skip = {"skip": outcome.reason, "id": outcome.id}
            errors.write(_encoder.encode(skip).decode() + "\n")
        output.write(outcome.bulk_lines())
    output.flush()
    return 0
