"""The Batch API request line of a text, rendered in SQL: valid JSON that holds exactly the text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedsql.models import MODELS, ModelChoice
from embedsql.plan import _request_line

MODEL = MODELS["text-embedding-3-small"]


@pytest.fixture(scope="module")
def memory() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


@settings(max_examples=300)
@given(text=st.text(min_size=1), custom_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
@pytest.mark.parametrize("dimensions", [MODEL.dimensions, 256])
def test_a_line_is_json_holding_exactly_the_text(
    memory: duckdb.DuckDBPyConnection, dimensions: int, text: str, custom_id: str
) -> None:
    choice = ModelChoice(MODEL, dimensions, "test")

    (line,) = memory.execute(f"SELECT {_request_line('?', '?', choice)}", [custom_id, text]).fetchone() or ()

    assert line.endswith("\n")
    assert "\n" not in line[:-1]
    body = {"input": text, "model": MODEL.name, "encoding_format": "base64"}
    if dimensions != MODEL.dimensions:
        body["dimensions"] = dimensions
    assert json.loads(line) == {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}
