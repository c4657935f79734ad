"""The source's failures, each a :class:`lakehouse.errors.SourceError`.

An endpoint run that hits one of these fails with the message as its run
record's ``error``; the pre-flight check raises the first three to the user.
"""

from __future__ import annotations

from lakehouse.errors import SourceError


class SourceUnreachableError(SourceError):
    """No HTTP answer at all (refused, DNS, timeouts) after the retries."""


class NotTheApiError(SourceError):
    """Something answered, but not with the API's page envelope."""


class HttpStatusError(SourceError):
    """The API answered with an error status (after retries, if retryable)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class SourceMovedError(SourceError):
    """The collection changed while it was being read, every time it was read."""


class FieldTypeError(SourceError):
    """A field arrived with a type other than the contract's (or the table's)."""


class EmptySourceError(SourceError):
    """The endpoint served no records where its last snapshot had some."""
