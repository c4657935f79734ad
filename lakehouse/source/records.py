"""Items (JSON objects) -> Arrow columns, checking types and spotting drift.

The contract fixes each field's type. A field that arrives with another type
is a :class:`FieldTypeError` naming the field and an example value. A field
the contract does not know is kept as a new column with a type inferred from
its values; a field that is absent reads as null and is counted.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from lakehouse.source.errors import FieldTypeError

JSON_TEXT = b"lakehouse.json_text"  # field metadata: values stored as JSON text
_INT64 = pa.int64()
_STRING = pa.string()
_INT64_LIST = pa.list_(pa.int64())
_NONE = type(None)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def scan_keys(items: Iterable[Mapping[str, Any]], expected: frozenset[str]
              ) -> tuple[Counter[str], dict[str, Any]]:
    """Fields missing from items, and fields not in ``expected`` with an example.

    Returns:
        (count of items lacking each expected field, {unknown field: first
        non-null value seen, or None}).
    """
    missing: Counter[str] = Counter()
    unknown: dict[str, Any] = {}
    for item in items:
        keys = item.keys()
        if keys == expected:
            continue
        for name in expected - keys:
            missing[name] += 1
        for name in keys - expected:
            if unknown.get(name) is None:
                unknown[name] = item[name]
    return missing, unknown


def infer_field(name: str, example: Any) -> pa.Field:
    """The column a new (drifted) field becomes, from one example value.

    Scalars keep their JSON type; lists of integers or strings become lists;
    anything else (objects, mixed lists) is kept as JSON text.
    """
    if isinstance(example, bool):
        return pa.field(name, pa.bool_())
    if isinstance(example, int):
        return pa.field(name, pa.int64())
    if isinstance(example, float):
        return pa.field(name, pa.float64())
    if isinstance(example, str) or example is None:
        return pa.field(name, pa.string())
    if isinstance(example, list) and example:
        if all(type(v) is int for v in example):
            return pa.field(name, pa.list_(pa.int64()))
        if all(isinstance(v, str) for v in example):
            return pa.field(name, pa.list_(pa.string()))
    return pa.field(name, pa.string(), metadata={JSON_TEXT: b"1"})


def column(field: pa.Field, values: Sequence[Any]) -> pa.Array:
    """The Arrow array of one field's values, of exactly ``field.type``.

    Raises:
        FieldTypeError: A value does not have the field's type (an int where a
            string is due, a float or bool where an int is due, ...).
    """
    typ = field.type
    if field.metadata and field.metadata.get(JSON_TEXT):
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v)
                         for v in values], pa.string())
    try:
        if pa.types.is_string(typ):
            # Strict and the cheapest: anything but str or None raises.
            return pa.array(values, typ)
        # Inference first: with an explicit type, Arrow would silently turn
        # 1.5 into 1 for an int64 field.
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        arr = None
    if arr is not None:
        if arr.type == typ:
            return arr
        if arr.null_count == len(arr):
            return pa.nulls(len(arr), typ)
        if _widens(arr.type, typ):
            return arr.cast(typ)
    bad = next((v for v in values if v is not None and not _fits(v, typ)), None)
    raise FieldTypeError(field.name, _describe(typ), _describe_value(bad), _example(bad))


def plain(field: pa.Field) -> bool:
    """Whether :func:`exact` can vouch for ``field``: a string, int64 or list of int64
    column, not JSON text."""
    return not (field.metadata and field.metadata.get(JSON_TEXT)) and \
        field.type in (_STRING, _INT64, _INT64_LIST)


def exact(field: pa.Field, values: Sequence[Any]) -> bool:
    """Whether every value already has exactly the type of a :func:`plain` field.

    If so, ``pa.array(values, field.type)`` equals what :func:`column` returns
    (and cannot raise), so the conversion can be deferred and done for many
    pages in one call: each ``pa.array`` call releases and re-takes the GIL,
    which costs far more than the conversion itself when the page-reading
    threads are waiting for it. Checks types only (``type() is``, so a bool is
    not an int), in C-level loops; False sends the page the careful way.
    """
    kinds = set(map(type, values))
    typ = field.type
    if typ == _STRING:
        return kinds <= {str, _NONE}
    if typ == _INT64:
        return kinds <= {int, _NONE} and _in_int64(values, _NONE in kinds)
    if typ == _INT64_LIST:
        if not kinds <= {list, _NONE}:
            return False
        lists = [v for v in values if v is not None] if _NONE in kinds else values
        flat = list(itertools.chain.from_iterable(lists))
        inner = set(map(type, flat))
        return inner <= {int, _NONE} and _in_int64(flat, _NONE in inner)
    return False


def _in_int64(values: Sequence[int | None], has_none: bool) -> bool:
    ints = [v for v in values if v is not None] if has_none else values
    return not ints or (min(ints) >= _INT_MIN and max(ints) <= _INT_MAX)


def _widens(got: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_list(got) and pa.types.is_list(want):
        return pa.types.is_null(got.value_type) or _widens(got.value_type, want.value_type)
    return pa.types.is_integer(got) and pa.types.is_floating(want)


def _fits(value: Any, typ: pa.DataType) -> bool:
    if pa.types.is_string(typ):
        return isinstance(value, str)
    if pa.types.is_boolean(typ):
        return isinstance(value, bool)
    if pa.types.is_integer(typ):
        return type(value) is int and -(2**63) <= value < 2**63
    if pa.types.is_floating(typ):
        return type(value) in (int, float)
    if pa.types.is_list(typ):
        return isinstance(value, list) and all(v is None or _fits(v, typ.value_type)
                                               for v in value)
    return True


def _describe(typ: pa.DataType) -> str:
    if pa.types.is_list(typ):
        return f"a list of {_describe(typ.value_type)}s"
    return {"int64": "integer", "string": "string", "double": "number",
            "bool": "boolean"}.get(str(typ), str(typ))


def _describe_value(value: Any) -> str:
    if isinstance(value, list):
        inner = sorted({_describe_value(v) for v in value if v is not None})
        return f"a list of {'/'.join(inner) or 'nulls'}"
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            dict: "object"}.get(type(value), type(value).__name__)


def _example(value: Any) -> str:
    """The offending value, told without its content when it could be someone's data.

    A number or a boolean shows the type clash (1.5 for an integer); a string,
    a list or an object could hold a name or an e-mail, which must not reach an
    error line, the run log or an alert: their shape is told instead.
    """
    if isinstance(value, bool | int | float) or value is None:
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, str):
        return f"a {len(value)}-character string"
    if isinstance(value, dict):
        keys = ", ".join(sorted(str(k) for k in value)[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    return type(value).__name__
