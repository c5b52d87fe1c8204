"""Scheduled upkeep of the indicator index (ecs modes).

* Expiry: an indicator whose ``valid_until`` passes (or whose ``connector.indicator_ttl``
  elapses) while OpenCTI sends no event about it would otherwise keep matching forever; the
  sweep deletes it, and its ES|QL lookup rows (``output.lookup.index``) the same way.
* Freshness: Kibana's prebuilt indicator-match rules only look at indicators whose
  ``@timestamp`` is within the last 30 days; live indicators get a fresh ``@timestamp`` once a
  day so a long-lived indicator keeps matching.

Both are by-query requests sent without ``refresh`` (which needs the ``maintenance``
privilege) and without client retries (a retried by-query runs twice on the server); see
``index_setup.delete_expired``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from elastic_transport import ApiError, ConnectionTimeout, TransportError
from elasticsearch import Elasticsearch

from elastic_connector.shell.elastic import describe_error
from elastic_connector.shell.index_setup import delete_expired, touch_indicators
from elastic_connector.shell.metrics import Metrics

_log = logging.getLogger(__name__)


class Sweeper:
    """Runs one sweep at start and then every ``interval`` seconds until stopped."""

    def __init__(
        self,
        client: Elasticsearch,
        index: str,
        interval: float,
        metrics: Metrics,
        clock: Callable[[], datetime],
        *,
        ttl: timedelta | None = None,
        lookup_index: str | None = None,
    ) -> None:
        self._client = client
        self._index = index
        self._ttl = ttl
        self._lookup_index = lookup_index
        self._interval = interval
        self._metrics = metrics
        self._clock = clock
        self._stop = threading.Event()
        self._touch_supported = True
        self._thread = threading.Thread(target=self._run, name="expiry-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def sweep_once(self) -> None:
        now = self._clock()
        try:
            deleted = delete_expired(self._client, self._index, now, ttl=self._ttl)
            self._metrics.expired_deleted.inc(deleted)
            if deleted:
                _log.info("expiry sweep removed %d expired indicator(s)", deleted)
            if self._lookup_index is not None:
                # Rows carry their indicator's lifetime fields: the same query finds them.
                rows = delete_expired(self._client, self._lookup_index, now, ttl=self._ttl)
                if rows:
                    _log.info("expiry sweep removed %d ES|QL lookup row(s)", rows)
            if self._touch_supported:
                touched = touch_indicators(self._client, self._index, now, ttl=self._ttl)
                self._touch_supported = touched.supported
        except ConnectionTimeout as error:
            # Not sent again: the request keeps running on the server as a task, and a second
            # one would work over the same documents. The next sweep picks up what is left.
            _log.warning(
                "expiry sweep: no answer in time; it may still be running in Elasticsearch "
                "(not sent again; next sweep in %.0f s): %s",
                self._interval,
                describe_error(error),
            )
        except (ApiError, TransportError) as error:
            _log.warning(
                "expiry sweep failed (next try in %.0f s): %s",
                self._interval,
                describe_error(error),
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sweep_once()
            self._stop.wait(self._interval)
