"""The source's failures, each a :class:`lakehouse.errors.SourceError`.

An endpoint run that hits one of these fails with the message as its run
record's ``error``; the pre-flight check raises the first three to the user.
"""

from __future__ import annotations

from lakehouse.errors import SourceError


class SourceUnreachableError(SourceError):
    """No HTTP answer at all (refused, DNS, timeouts) after the retries."""


class CutShortError(SourceUnreachableError):
    """The API answered, but the body broke off before its end, every try.

    Unlike no answer at all, it can be one endpoint's problem: the others are
    still read.
    """


class SourceTooSlowError(SourceUnreachableError):
    """An answer was arriving, but not complete within the request deadline."""


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
    """A field arrived with a type other than the contract's (or the table's).

    Attributes:
        field: The field's name.
        expected: The type due, in words (``integer``).
        got: The type that came, in words (``string``).
        kind: Which change this is, without the example: two pages with the
            same field and types have the same kind (the drift key).
    """

    def __init__(self, field: str, expected: str, got: str, example: str, where: str = ""):
        self.field, self.expected, self.got = field, expected, got
        self.example, self.where = example, where
        self.kind = f"field {field!r} changed type: expected {expected}, got {got}"
        super().__init__(f"{self.kind} (e.g. {example}){where}")

    def on_page(self, number: int) -> FieldTypeError:
        """The same error, saying on which page it was seen."""
        return FieldTypeError(self.field, self.expected, self.got, self.example,
                              f" on page {number}")


class EmptySourceError(SourceError):
    """The endpoint served no records where its last snapshot had some."""
