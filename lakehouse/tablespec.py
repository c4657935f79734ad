"""A table declared once: its columns, from which its Arrow and pandera schemas derive.

The writer needs the Arrow schema, the checks need the pandera schema; written
out twice they drift (a column added to one and not the other). A
:class:`TableSpec` lists each column once, with its type, whether it may be
null and its checks::

    SPEC = TableSpec(names.CONS_RECOMMENDATIONS, (
        Column(names.USER_ID, pa.int64(), nullable=False),
        Column("score", pa.float32(), checks=(Check(np.isfinite),)),
    ), unique=(names.USER_ID,))
    SPEC.arrow()    # pa.Schema
    SPEC.pandera()  # pandera DataFrameSchema of the non-partition columns
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandera.pandas as pandera


@dataclass(frozen=True)
class Column:
    """One column.

    Attributes:
        name: The column's name (from :mod:`lakehouse.names` where it has one).
        type: Its Arrow type.
        nullable: Whether the checks accept nulls (Arrow columns stay nullable,
            as Delta writes them).
        checks: Pandera checks, made when the pandera schema is (a callable
            taking the pandera module, so the table module need not import it).
        partition: A partition column: in the Arrow schema, not in the frame
            the checks see.
        doc: What the column holds, where its name does not say.
    """

    name: str
    type: pa.DataType
    nullable: bool = True
    checks: tuple[Callable[[Any], Any], ...] = ()
    partition: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A table's name, its columns in order, and the keys its rows are unique by."""

    name: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, in order."""
        return tuple(c.name for c in self.columns)

    def arrow(self) -> pa.Schema:
        """The Arrow schema the table is written with."""
        return pa.schema([(c.name, c.type) for c in self.columns])

    def pandera(self) -> pandera.DataFrameSchema:
        """The pandera schema of its rows (partition columns left out)."""
        import pandera.pandas as pandera

        return pandera.DataFrameSchema(
            {c.name: pandera.Column(_dtype(c.type), [make(pandera) for make in c.checks],
                                    nullable=c.nullable)
             for c in self.columns if not c.partition},
            unique=list(self.unique) or None, strict=False, name=self.name)


def _dtype(arrow_type: pa.DataType) -> Any:
    """The pandas dtype pandera checks for an Arrow type: what ``to_pandas`` gives it."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return str
    return pa.table({"c": pa.array([], arrow_type)}).to_pandas()["c"].dtype
