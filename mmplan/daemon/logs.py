"""Structured logging for `mmplan run`: readable text by default, one JSON object per line with `--log-format json`.

JSON lines carry `ts` (UTC, ISO 8601), `level`, `logger`, `msg` and every extra field a call passes
(`log.info("...", extra={"flow": "a->b"})`), plus `exc` for a traceback. Resolved `${VAR}` secrets of the
topology are replaced by `***` in every line, whatever format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TextIO

from mmplan.topology.models import SECRET_REF, Topology, secret_fields

LOGGER = "mmplan"
REDACTED = "***"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class Redactor:
    """Replaces known secret values in text. Thread-safe to read; `update` swaps the whole set."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret containing another is replaced whole
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        """A JSON-ready value with secrets replaced inside strings, lists and mappings."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(str(value))


def topology_secrets(topology: Topology, env: Mapping[str, str] = os.environ) -> set[str]:
    """The values the topology's `${VAR}` secret fields resolve to in `env`."""
    out = set()
    for _, value in secret_fields(topology):
        ref = SECRET_REF.match(value)
        if ref and env.get(ref.group(1)):
            out.add(env[ref.group(1)])
    return out


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, extra fields, exc."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(self.redact.value(doc), ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`2026-11-25 16:00:00 INFO  mmplan.run [flow=a->b] message`."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s%(context)s %(message)s", "%Y-%m-%d %H:%M:%S")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        record.context = " [" + " ".join(f"{k}={v}" for k, v in extras.items()) + "]" if extras else ""
        try:
            return self.redact(super().format(record))
        finally:
            del record.context


def setup_logging(fmt: str = "text", level: int = logging.INFO, stream: TextIO | None = None,
                  redact: Redactor | None = None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `fmt`; returns the handler it installed.

    Replaces handlers a previous call installed, so tests and reloads can call it again.
    """
    redact = redact or Redactor()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    handler._mmplan = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_mmplan", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # kafka-python logs every failed connection attempt; mmplan reports the same trouble once, with the
    # cluster and flow it concerns. Its own lines show only at debug level.
    logging.getLogger("kafka").setLevel(logging.WARNING if level <= logging.DEBUG else logging.CRITICAL)
    return handler
