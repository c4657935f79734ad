"""The exceptions users see.

Every expected failure is a :class:`LakehouseError`; its message says what went
wrong and what to do about it, in one line. The CLI prints it as ``Error: ...``
and exits 1. Anything else that escapes is a bug and keeps its traceback.
"""


class LakehouseError(Exception):
    """Base class of every error a user can act on."""


class ConfigError(LakehouseError):
    """A setting or option has a value that cannot be used."""


class LakeError(LakehouseError):
    """The lake cannot be opened, read or written."""


class TableNotFoundError(LakeError):
    """A table name does not exist in the lake."""


class ReadOnlyError(LakeError):
    """A statement that could change the lake was given where only queries may run."""


class BrokenTableError(LakeError):
    """A table's Delta log or data files are damaged: the table cannot be read."""


class SchemaError(LakeError):
    """Data does not match a table's schema in a way that cannot be merged."""


class LockedError(LakehouseError):
    """Another process holds the lock this one needs."""


class SourceError(LakehouseError):
    """The source API could not be read completely and correctly."""


class SourceResetError(SourceError):
    """A snapshot shares too few keys with the previous one: the source was likely reset."""


class HistoryError(LakeError):
    """The history of an endpoint cannot be brought in line with its raw snapshots."""


class ValidationError(LakehouseError):
    """A table failed a table-level data check and was not written."""


class ModelError(LakehouseError):
    """A model cannot be trained, found, loaded or promoted."""


class ServeError(LakehouseError):
    """The recommendation service cannot answer a request as asked."""


class NothingToServeError(ServeError):
    """There are no recommendations (or no ranking for unknown users) to serve yet."""


class NotServedError(ServeError):
    """The request names something the service does not hold, e.g. a score date."""


class KLimitError(ServeError):
    """More tracks were asked for than the served partition holds per user.

    Attributes:
        limit: The largest k that can be answered.
    """

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit
