"""Logging for the daemon: one line per record, text or JSON, secrets masked.

pycti calls ``logging.basicConfig(force=True)`` when its helper is built, which replaces the
root handlers; our records therefore go through our own handler on the ``elastic_connector``
logger (not propagated), installed after the helper exists. Every configured secret value is
also masked in every record, ours and pycti's, as a second line of defence.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Final, TextIO

import msgspec

from elastic_connector.core.config import Config, LogFormat, Secret
from elastic_connector.core.monitoring.repeat_limit import (
    RepeatLimits,
    admit,
    close_windows,
    left_out_line,
)

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_MASK: Final = "***"
_encoder: Final = msgspec.json.Encoder(enc_hook=str)  # pycti metadata may hold any object


def secret_values(config: Config) -> tuple[str, ...]:
    """Every secret string in ``config`` (and its parts), longest first."""
    secrets: list[Secret | None] = [
        config.opencti.token,
        config.elasticsearch.password,
        config.elasticsearch.api_key,
        config.cloud.auth,
    ]
    values: set[str] = set()
    for secret in secrets:
        if secret is None or not secret.reveal():
            continue
        text = secret.reveal()
        values.add(text)
        values.update(part for part in _parts(text) if len(part) >= 8)
    return tuple(sorted(values, key=len, reverse=True))


def _parts(text: str) -> Iterable[str]:
    # An encoded API key is base64("id:key"), and cloud.auth is "user:password": the pieces
    # are secret on their own too.
    yield from text.split(":")
    try:
        decoded = base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return
    yield decoded
    yield from decoded.split(":")


_SHORT_SECRET: Final = 12
"""Below this length a secret is masked only as a whole word: a password such as ``elastic``
or ``t`` masked inside every word would make the logs unreadable (``***_connector``) while
telling anyone who reads them what it is."""


def _masked(secret: str) -> str:
    """The pattern of ``secret`` in a log line: anywhere, or as a whole word when short."""
    escaped = re.escape(secret)
    if len(secret) >= _SHORT_SECRET:
        return escaped
    return rf"(?<!\w){escaped}(?!\w)"


class SecretMask(logging.Filter):
    """Replaces secret values in a record's final message and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a secret that contains another is masked whole.
        ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(_masked(secret) for secret in ordered)) if ordered else None
        )

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(_MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        record.msg = self.mask(record.getMessage())
        record.args = None
        attributes = getattr(record, "attributes", None)
        if isinstance(attributes, dict):
            record.attributes = {
                key: self.mask(value) if isinstance(value, str) else value
                for key, value in attributes.items()
            }
        if record.exc_info:
            record.exc_text = self.mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class LibraryTracebacks(logging.Filter):
    """Drops the traceback of other libraries' records (pycti logs every failed request with
    one, the Elasticsearch transport every retry): the connector reports each failure itself,
    in one line that says what to check. Our own tracebacks (bugs) are kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("elastic_connector"):
            record.exc_info = None
            record.exc_text = None
        return True


class RepeatLimit(logging.Filter):
    """Our warnings and errors, each kind (logger, message template and reason code) limited
    to a budget of lines per window (``core.monitoring.repeat_limit``); ``flush`` logs the
    summaries of the windows that are over ("N more like this"). Critical lines are never held
    back.

    With ``keep_as_debug`` (the log level is debug) the lines held back are written as debug
    lines instead of dropped: nothing is lost to whoever asks for everything."""

    def __init__(
        self, limits: RepeatLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._limits = limits or RepeatLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._origins: dict[str, tuple[str, int]] = {}
        self._closed: list[tuple[str, int, str]] = []
        self.keep_as_debug = False

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno not in (logging.WARNING, logging.ERROR)
            or not record.name.startswith("elastic_connector")
            or getattr(record, "repeat_summary", False)
        ):
            return True
        values = getattr(record, "fields", None)
        code = values.get("code", "") if isinstance(values, dict) else ""
        key = f"{record.name}|{record.msg}|{code}"
        with self._lock:
            self._limits, allowed, closed = admit(
                self._limits, key, record.getMessage(), self._clock()
            )
            self._origins[key] = (record.name, record.levelno)
            if closed is not None:
                self._closed.append((record.name, record.levelno, left_out_line(closed)))
        if not allowed and self.keep_as_debug:
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return True
        return allowed

    def flush(self, *, every: bool = False) -> None:
        """Log a summary for each window that is over (``every`` one: at shutdown) and left
        lines out."""
        with self._lock:
            self._limits, summaries = close_windows(self._limits, self._clock(), every=every)
            lines, self._closed = self._closed, []
            for summary in summaries:
                name, level = self._origins.get(summary.key, ("elastic_connector", logging.WARNING))
                lines.append((name, level, left_out_line(summary)))
            if summaries or len(self._origins) > len(self._limits.windows):
                open_keys = self._limits.windows.keys()
                self._origins = {k: v for k, v in self._origins.items() if k in open_keys}
        for name, level, text in lines:
            logging.getLogger(name).log(level, "%s", text, extra={"repeat_summary": True})


def _record_fields(record: logging.LogRecord) -> dict[str, object]:
    """Our structured ``fields``, plus pycti's metadata (``attributes``: ids, error reasons)."""
    found: dict[str, object] = {}
    for name in ("attributes", "fields"):
        values = getattr(record, name, None)
        if isinstance(values, dict):
            found.update({str(key): value for key, value in values.items()})
    return found


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", "message", ...extra "fields"}`` on one line, plus
    the ``json_fields`` a text line already says in words (``json_only``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_record_fields(record))
        extra = getattr(record, "json_fields", None)
        if isinstance(extra, dict):
            entry.update({str(key): value for key, value in extra.items()})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """``2024-01-01T00:00:00Z INFO elastic_connector.x: message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{moment} {record.levelname} {record.name}: {record.getMessage()}"
        fields = _record_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


def configure(
    config: Config, stream: TextIO | None = None, repeats: RepeatLimit | None = None
) -> None:
    """Send our records (and pycti's) to ``stream`` in the configured format and level;
    ``repeats`` limits how often each kind of warning is written."""
    level = _LEVELS.get(config.connector.log_level, logging.INFO)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if config.connector.log_format is LogFormat.JSON else TextFormatter()
    )
    handler.setFormatter(formatter)
    if repeats is not None:
        repeats.keep_as_debug = level <= logging.DEBUG
        handler.addFilter(repeats)  # first: it keys on the message template, before masking
    if level > logging.DEBUG:
        handler.addFilter(LibraryTracebacks())
    handler.addFilter(SecretMask(secret_values(config)))
    for name in ("elastic_connector", "pycti", "api", "elastic_transport", "elasticsearch"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level)
    # Libraries that log at INFO for every request would drown the connector's own lines, and
    # the transport's retry warnings come with a full traceback each: the connector reports
    # every failure itself, in one line that says what to check.
    logging.getLogger("elastic_transport").setLevel(max(level, logging.ERROR))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))


def fields(**values: object) -> dict[str, object]:
    """``extra=`` for structured fields: ``log.info("...", extra=fields(event_id=x))``."""
    return {"fields": values}


def json_only(**values: object) -> dict[str, object]:
    """``extra=`` for fields only JSON lines carry, because the text of the message already
    says them (a progress line's figures)."""
    return {"json_fields": values}


@contextlib.contextmanager
def command_output(config: Config | None, *, verbose: bool) -> Iterator[None]:
    """Logging for the one-shot commands (check, setup, map, sightings, config, status): their
    output is their own lines only. With ``verbose``, or log level debug, log records (the
    libraries' too) go to stderr, secrets masked; library tracebacks only at debug.

    Everything is put back on exit: the commands also run in-process (tests, the demo).
    """
    debug = config is not None and config.connector.log_level == "debug"
    if not (verbose or debug):
        # pycti's client calls logging.basicConfig() and logs every failed request with its
        # traceback; only a global switch keeps that (and urllib3's, the transport's) quiet.
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter())
    if not debug:
        handler.addFilter(LibraryTracebacks())
    if config is not None:
        handler.addFilter(SecretMask(secret_values(config)))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
