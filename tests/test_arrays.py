"""``embedsql.arrays`` makes the same arrays as pyarrow's own constructors (which import pandas)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays as numpy_arrays

from embedsql import arrays

# Whichever example first calls pa.array waits for pyarrow to import pandas.
_NO_DEADLINE = settings(deadline=None)


@_NO_DEADLINE
@given(st.lists(st.text()))
def test_strings(values: list[str]) -> None:
    made = arrays.strings(values)
    assert made.equals(pa.array(values, pa.string()))
    made.validate(full=True)


@_NO_DEADLINE
@given(numpy_arrays(bool, st.integers(0, 70)))
def test_booleans(mask: np.ndarray) -> None:
    made = arrays.booleans(mask)
    assert made.equals(pa.array(mask, pa.bool_()))
    made.validate(full=True)


@_NO_DEADLINE
@given(numpy_arrays(np.float32, st.tuples(st.integers(0, 5), st.integers(1, 4))))
def test_float32s(matrix: np.ndarray) -> None:
    made = arrays.float32s(matrix)
    assert made.type == pa.float32()
    assert np.array_equal(made.to_numpy(), matrix.reshape(-1), equal_nan=True)


@_NO_DEADLINE
@given(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1)))
def test_int64s(values: list[int | None]) -> None:
    made = arrays.int64s(values)
    assert made.equals(pa.array(values, pa.int64()))
    made.validate(full=True)
    assert arrays.int64s(np.arange(len(values))).equals(pa.array(range(len(values)), pa.int64()))


def test_table() -> None:
    made = arrays.table({"a": arrays.strings(["x", "y"]), "b": arrays.int64s([1, None])})
    assert made.equals(pa.table({"a": ["x", "y"], "b": pa.array([1, None], pa.int64())}))
