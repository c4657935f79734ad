"""Items -> Arrow columns: exact types, drift spotted, type changes named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.source.errors import FieldTypeError
from lakehouse.source.records import JSON_TEXT, column, exact, infer_field, plain, scan_keys

INT = pa.field("id", pa.int64())
STR = pa.field("name", pa.string())
LIST = pa.field("items", pa.list_(pa.int64()))


def test_columns_keep_exact_types_and_nulls():
    assert column(INT, [1, None, 3]).to_pylist() == [1, None, 3]
    assert column(STR, ["a", None]).type == pa.string()
    arr = column(LIST, [[1, 2], None, []])
    assert arr.type == pa.list_(pa.int64()) and arr.to_pylist() == [[1, 2], None, []]
    assert column(LIST, [[], []]).type == pa.list_(pa.int64())
    assert column(INT, [None, None]).type == pa.int64()


@pytest.mark.parametrize("field, values, got, example", [
    (INT, [1, "2"], "string", "a 1-character string"),
    (INT, [1, 1.5], "number", "1.5"),     # Arrow alone would truncate 1.5 to 1
    (INT, [True], "boolean", "true"),
    (STR, ["a", 7], "integer", "7"),
    (STR, [{"x": 1}], "object", "an object with keys x"),
    (LIST, [[1], "1,2"], "string", "a 3-character string"),
    (LIST, [[1, "a"]], "a list of integer/string", "a list of 2 item(s)"),
])
def test_type_change_names_field_and_example(field, values, got, example):
    with pytest.raises(FieldTypeError) as err:
        column(field, values)
    msg = str(err.value)
    assert f"field {field.name!r} changed type" in msg
    assert f"got {got}" in msg and example in msg


def test_a_type_change_never_quotes_a_text_value():
    # Issue 21: an error line quoted a user's first name; text is someone's data.
    with pytest.raises(FieldTypeError) as err:
        column(INT, [1, "Marguerite", "ann@example.org"])
    assert "Marguerite" not in str(err.value) and "10-character string" in str(err.value)


def test_scan_keys_counts_missing_and_finds_new_fields():
    expected = frozenset({"id", "name"})
    items = [{"id": 1, "name": "a"}, {"id": 2}, {"id": 3, "name": "c", "mood": None},
             {"id": 4, "name": "d", "mood": "happy"}]
    missing, unknown = scan_keys(items, expected)
    assert missing == {"name": 1}
    assert unknown == {"mood": "happy"}


@pytest.mark.parametrize("example, typ", [
    (True, pa.bool_()), (3, pa.int64()), (2.5, pa.float64()), ("x", pa.string()),
    (None, pa.string()), ([1, 2], pa.list_(pa.int64())), (["a"], pa.list_(pa.string())),
])
def test_new_fields_get_a_natural_type(example, typ):
    assert infer_field("f", example).type == typ


def test_objects_become_json_text():
    field = infer_field("meta", {"a": [1, 2]})
    assert field.metadata[JSON_TEXT] == b"1"
    assert column(field, [{"a": [1, 2]}, None, "s"]).to_pylist() == ['{"a": [1, 2]}', None, "s"]


# ---- exact: proves a column may skip column() and be converted later, in bulk
@pytest.mark.parametrize("field, values", [
    (INT, [1, None, -(2**63), 2**63 - 1, 0]),
    (INT, [None, None]),
    (STR, ["a", None, "é😀\u0000", ""]),
    (STR, [None]),
    (LIST, [[1, 2], None, [], [None, 3], [-(2**63), 2**63 - 1]]),
    (LIST, [[], []]),
    (LIST, [None, None]),
    (LIST, [[None]]),
])
def test_exact_values_convert_as_column_does(field, values):
    assert plain(field) and exact(field, values)
    bulk = pa.array(values, field.type)
    slow = column(field, values)
    assert bulk.type == slow.type == field.type
    assert bulk.equals(slow)


@pytest.mark.parametrize("field, values", [
    (INT, [1, 1.0]),                 # Arrow with an explicit type would take 1.0 as 1
    (INT, [1, True]),
    (INT, [1, 2**63]),
    (INT, [-(2**63) - 1]),
    (INT, ["1"]),
    (STR, ["a", 1]),
    (STR, [{"a": 1}]),
    (STR, [["a"]]),
    (LIST, [[1, 2.0]]),
    (LIST, [[1, True]]),
    (LIST, [[2**63]]),
    (LIST, ["1,2"]),
    (LIST, [[[1]]]),
    (LIST, [(1, 2)]),
])
def test_not_exact_goes_the_careful_way(field, values):
    assert not exact(field, values)


def test_only_plain_fields_can_be_deferred():
    assert not plain(pa.field("x", pa.string(), metadata={JSON_TEXT: b"1"}))
    assert not plain(pa.field("x", pa.float64()))
    assert not plain(pa.field("x", pa.bool_()))
    assert not plain(pa.field("x", pa.list_(pa.string())))
    assert not exact(pa.field("x", pa.float64()), [1.5])
