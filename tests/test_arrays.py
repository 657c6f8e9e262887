"""``embedsql.arrays`` makes the same arrays as pyarrow's own constructors (which import pandas)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as numpy_arrays

from embedsql import arrays

# Whichever example first calls pa.array waits for pyarrow to import pandas.


@given(st.lists(st.text()))
def test_strings(values: list[str]) -> None:
    made = arrays.strings(values)
    assert made.equals(pa.array(values, pa.string()))
    made.validate(full=True)


@given(numpy_arrays(bool, st.integers(0, 70)))
def test_booleans(mask: np.ndarray) -> None:
    made = arrays.booleans(mask)
    assert made.equals(pa.array(mask, pa.bool_()))
    made.validate(full=True)


@given(numpy_arrays(np.float32, st.tuples(st.integers(0, 5), st.integers(1, 4))))
def test_float32s(matrix: np.ndarray) -> None:
    made = arrays.float32s(matrix)
    assert made.type == pa.float32()
    assert np.array_equal(made.to_numpy(), matrix.reshape(-1), equal_nan=True)


@given(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1)))
def test_int64s(values: list[int | None]) -> None:
    made = arrays.int64s(values)
    assert made.equals(pa.array(values, pa.int64()))
    made.validate(full=True)
    assert arrays.int64s(np.arange(len(values))).equals(pa.array(range(len(values)), pa.int64()))


def test_table() -> None:
    made = arrays.table({"a": arrays.strings(["x", "y"]), "b": arrays.int64s([1, None])})
    assert made.equals(pa.table({"a": ["x", "y"], "b": pa.array([1, None], pa.int64())}))


_NUMBERS = st.sampled_from(
    [
        (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
        (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
        (pa.float32(), st.floats(width=32)),
        (pa.float64(), st.floats()),
    ]
)


@given(st.data(), _NUMBERS, st.integers(0, 3))
def test_numbers_reads_each_chunk_and_slice_in_place(data: st.DataObject, kind: tuple, chunks: int) -> None:
    arrow_type, values = kind
    parts = [data.draw(st.lists(values, max_size=9)) for _ in range(chunks)]
    start = data.draw(st.integers(0, 3))
    column = pa.chunked_array([pa.array(part, arrow_type) for part in parts], arrow_type)
    sliced = column.slice(start)

    expected = [v for part in parts for v in part][start:]
    got = arrays.numbers(sliced)

    assert got.dtype == np.dtype(arrow_type.to_pandas_dtype())
    assert np.array_equal(got, np.asarray(expected, got.dtype), equal_nan=True)
    if sliced.num_chunks == 1:
        assert np.array_equal(arrays.numbers(sliced.chunk(0)), got, equal_nan=True)


@given(st.lists(st.lists(st.none() | st.booleans(), max_size=20), max_size=3), st.integers(0, 9))
def test_mask_is_true_where_the_value_is_true_and_false_for_null(parts: list[list[bool | None]], start: int) -> None:
    column = pa.chunked_array([pa.array(part, pa.bool_()) for part in parts], pa.bool_()).slice(start)

    got = arrays.mask(column)

    assert got.dtype == bool
    assert got.tolist() == [v is True for part in parts for v in part][start:]
    for chunk in column.chunks:
        assert arrays.mask(chunk).tolist() == [v is True for v in chunk.to_pylist()]
