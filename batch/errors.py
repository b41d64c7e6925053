"""Errors and exit codes: the one exception tree of m365batch.

Every failure the tool knows about is a :class:`BatchError`. Stages raise the subclass that
names them, with structured context as keyword-only attributes; the CLI maps them to a
one-line message and an exit code in one place (``batch.cli``)::

    BatchError                      anything the tool knows how to explain
    ├── ConfigError                 configuration or credentials missing or contradictory
    ├── InputError                  an input file cannot be read at all (file, sheet, row, column)
    ├── AuthError                   no token: bad secret or certificate, unknown tenant or app
    ├── GraphError                  Microsoft Graph could not be used
    │   ├── GraphRequestError       the request never got an answer (DNS, TLS, reset, timeout)
    │   └── GraphStatusError        Graph answered with an error status (status, code, request id)
    │       └── PermissionDenied    401/403 after token renewal: the app lacks a permission
    ├── GuardStopped                a safety guard stopped the run (removal threshold, breaker)
    ├── JournalError                the run journal is missing, locked, damaged or stale
    └── ReportError                 the report workbook could not be written

Validation problems in rows are not exceptions: they are collected as findings and reported.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any


class ExitCode(enum.IntEnum):
    """Process exit codes, as documented in the README and product contract."""

    SUCCESS = 0  #: every row applied or already as desired
    ERROR = 1  #: fatal: unreadable input, auth or permission failure, unreachable, internal
    USAGE = 2  #: bad command line
    ROWS_FAILED = 3  #: finished, but some rows are invalid, failed or deferred
    GUARD_STOPPED = 4  #: stopped by a safety guard (removal threshold, failure breaker)
    INTERRUPTED = 130  #: interrupted (Ctrl-C); the journal is intact and resume continues


class BatchError(Exception):
    """Root of every error m365batch knows how to explain to a person."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(BatchError):
    """Raised when configuration or credentials are missing, unreadable or contradictory."""


class InputError(BatchError):
    """Raised when an input file cannot be read at all; carries where it went wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        sheet: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = Path(path) if path is not None else None
        self.sheet = sheet
        self.row = row
        self.column = column

    def __str__(self) -> str:
        where = []
        if self.path is not None:
            where.append(self.path.name)
        if self.sheet:
            where.append(f"sheet '{self.sheet}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column:
            where.append(f"column '{self.column}'")
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        return f"{text} {self.hint}" if self.hint else text


class AuthError(BatchError):
    """Raised when no access token can be had (bad secret or certificate, unknown tenant/app)."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        correlation_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.error = error
        self.correlation_id = correlation_id


class GraphError(BatchError):
    """Raised when Microsoft Graph could not be used."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.url = url


class GraphRequestError(GraphError):
    """Raised when a request got no answer: DNS, TLS, connection reset or timeout."""


class GraphStatusError(GraphError):
    """Raised when Graph answered a request with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url, hint=hint)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.response = response

    def __str__(self) -> str:
        parts = [f"{self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"Graph answered {' '.join(parts)}: {self.message}"
        if self.method and self.url:
            text += f" ({self.method} {self.url}"
            text += f", request-id {self.request_id})" if self.request_id else ")"
        return f"{text} {self.hint}" if self.hint else text


class PermissionDenied(GraphStatusError):
    """Raised on 401/403 that token renewal did not cure: the app lacks a permission or role."""


class GuardStopped(BatchError):
    """Raised when a safety guard stops a run: removal threshold or failure-rate breaker."""

    exit_code = ExitCode.GUARD_STOPPED


class JournalError(BatchError):
    """Raised when a run journal is missing, locked by another run, damaged or stale."""


class ReportError(BatchError):
    """Raised when the report workbook cannot be written."""
