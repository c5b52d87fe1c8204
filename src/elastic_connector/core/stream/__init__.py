"""OpenCTI's live stream, as the connector reads it.

- ``sse``: server-sent events decoded from raw bytes (``SseDecoder``, ``feed``);
- ``ids``: stream event ids (``StreamId``) and their order;
- ``position``: where the stream is read from, and the request that asks for it;
- ``progress``: which position may be saved, or resumed from, after a run of frames;
- ``frames``: what a connection's frames say beyond their data (the ``connected`` greeting, the
  recovery replay of a first start, trimmed history).

Exports ``SseDecoder``, ``SseFrame``, ``feed``, ``StreamId``, ``STREAM_START``,
``parse_stream_id``, ``StreamPosition``, ``initial_position``, ``StreamProgress``,
``start_progress``, ``observe`` and ``resume_position``.
"""

from elastic_connector.core.stream.ids import STREAM_START, StreamId, parse_stream_id
from elastic_connector.core.stream.position import StreamPosition, initial_position
from elastic_connector.core.stream.progress import (
    StreamProgress,
    observe,
    resume_position,
    start_progress,
)
from elastic_connector.core.stream.sse import SseDecoder, SseFrame, feed

__all__ = [
    "STREAM_START",
    "SseDecoder",
    "SseFrame",
    "StreamId",
    "StreamPosition",
    "StreamProgress",
    "feed",
    "initial_position",
    "observe",
    "parse_stream_id",
    "resume_position",
    "start_progress",
]
