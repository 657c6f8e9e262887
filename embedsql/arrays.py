"""Arrow arrays made from Python and NumPy values without importing pandas.

``pa.array``, ``pa.table`` and ``pa.record_batch`` first ask whether their input is a pandas object,
and to ask they import pandas when it is installed: ~0.5 s, once per process (most people who keep
tables in DuckDB have pandas). These build the same arrays from their buffers, which pyarrow takes
as they are (NumPy's without a copy); pyarrow's ``to_numpy``, ``pa.scalar`` and compute functions
given Python values ask too, so ``numbers`` and ``mask`` read arrays back into NumPy from their
buffers. Starting a command, planning a job and loading its results import no pandas
(``tests/test_startup.py``).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pyarrow as pa

__all__ = ["booleans", "float32s", "int64s", "mask", "numbers", "strings", "table"]


def strings(values: Collection[str]) -> pa.Array:
    """A ``string`` array of ``values`` (no NULLs)."""
    encoded = [value.encode("utf-8") for value in values]
    ends = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=ends[1:])
    data = pa.py_buffer(b"".join(encoded))
    large = pa.Array.from_buffers(pa.large_string(), len(encoded), [None, pa.py_buffer(ends), data])
    return large.cast(pa.string()) if ends[-1] < 2**31 else large


def booleans(mask: np.ndarray) -> pa.Array:
    """A ``bool`` array of the NumPy booleans ``mask``."""
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


def float32s(values: np.ndarray) -> pa.Array:
    """A ``float`` array over the NumPy float32 ``values`` (flattened; no copy when contiguous)."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.Array.from_buffers(pa.float32(), len(flat), [None, pa.py_buffer(flat)])


def int64s(values: Collection[int | None] | np.ndarray) -> pa.Array:
    """An ``int64`` array of ``values``, None as NULL."""
    if isinstance(values, np.ndarray):
        array, valid = np.ascontiguousarray(values, dtype=np.int64), None
    else:
        array = np.array([0 if v is None else v for v in values], dtype=np.int64)
        present = np.array([v is not None for v in values], dtype=bool)
        valid = None if present.all() else pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), len(array), [valid, pa.py_buffer(array)])


def table(columns: dict[str, pa.Array | pa.ChunkedArray]) -> pa.Table:
    """A table of Arrow ``columns`` (``pa.table`` of a dict asks about pandas first)."""
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def numbers(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a numeric array as NumPy, read in place from its buffer (a NULL's slot holds
    whatever the buffer holds there: see ``mask`` for which are valid)."""
    dtype = np.dtype(array.type.to_pandas_dtype())
    if isinstance(array, pa.ChunkedArray):
        return np.concatenate([numbers(chunk) for chunk in array.chunks] or [np.zeros(0, dtype)])
    if not len(array):
        return np.zeros(0, dtype)
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]


def mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A ``bool`` array as NumPy booleans, NULL as False."""
    if isinstance(array, pa.ChunkedArray):
        return np.concatenate([mask(chunk) for chunk in array.chunks] or [np.zeros(0, bool)])
    validity, values = array.buffers()[:2]
    bits = _bits(values, array.offset, len(array))
    return bits if validity is None else bits & _bits(validity, array.offset, len(array))


def _bits(buffer: pa.Buffer | None, offset: int, length: int) -> np.ndarray:
    if buffer is None or not length:
        return np.zeros(length, bool)
    unpacked = np.unpackbits(np.frombuffer(buffer, np.uint8), bitorder="little", count=offset + length)
    return unpacked[offset:].astype(bool)
