"""SQL text: the one place identifiers and values are quoted into a statement.

Everything the lake builds as SQL text (DuckDB views, predicates, settings)
quotes through these two functions, so a name or path with a quote in it
cannot end a string early.
"""

from __future__ import annotations


def ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (``a"b`` -> ``"a""b"``)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """``value`` as a single-quoted SQL string literal (``it's`` -> ``'it''s'``)."""
    return "'" + str(value).replace("'", "''") + "'"
