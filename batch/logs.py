"""Logging: a log file per day under ``M365BATCH_HOME/logs``, with secrets scrubbed.

Every log record, ours and third-party (msal, urllib3), passes through :class:`Redactor`,
which removes bearer tokens, JWTs, client secrets and assertions, and any value registered
with :func:`register_secret` (the configured client secret and certificate password). The
same scrubbing serves exception text that reaches the console.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from pathlib import Path

from batch.files import private_dir, private_file

_SECRETS: set[str] = set()
_LOCK = threading.Lock()

# Patterns for credentials that can appear in URLs, headers, bodies and msal's debug output.
_PATTERNS = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_\.~+/=]+"), r"\1[redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)((?:client_secret|client_assertion|access_token|refresh_token|id_token|password|passphrase)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
        ),
        r"\1[redacted]",
    ),
]


def register_secret(value: str | None) -> None:
    """Scrub ``value`` from every log record and console error from now on."""
    if value and len(value) >= 4:
        with _LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret and credential-shaped value replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


class Redactor(logging.Filter):
    """A logging filter that scrubs secrets from the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken third-party format string must not kill the run
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(home: Path, *, debug: bool = False) -> Path:
    """Send log records to a dated file under ``home/logs``; returns the file's path."""
    private_dir(home)
    log_dir = private_dir(home / "logs")
    path = private_file(log_dir / f"m365batch-{dt.date.today().isoformat()}.log")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_m365batch", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler._m365batch = True  # type: ignore[attr-defined]
    handler.addFilter(Redactor())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    return path
