"""What `embedsql sql` prints is the query's data, exactly, in every format.

Each class of hostile output is a table of cases: repeated column names (printed by position; JSON
keys named as DuckDB's COPY names them), types whose Arrow form is not the value (printed as DuckDB's
own CAST to VARCHAR), control characters (kept byte for byte in machine formats, through a pipe too;
shown escaped where people read them), and NaN and infinities (valid JSON).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner, Result

import embedsql
from embedsql.cli import cli
from embedsql.formats import render
from embedsql.values import DUCKDB_TYPE

from helpers import fetch, make_db

FORMATS = ["table", "csv", "json", "jsonl", "markdown"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(
        tmp_path / "d.duckdb",
        "CREATE TABLE l AS SELECT 1 AS id, 'left' AS v; CREATE TABLE r AS SELECT 1 AS id, 'right' AS v, 2 AS w",
    )


def sql(query: str, fmt: str, *, color: bool = False) -> Result:
    """``embedsql sql QUERY --format FMT``; ``color``: as on a terminal (False: piped)."""
    return CliRunner().invoke(cli, ["sql", query, "--db", "d.duckdb", "--format", fmt], color=color)


def csv_field(text: str) -> str:
    """``text`` as one CSV field (RFC 4180)."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if text == "" or any(c in text for c in ',"\r\n') else text


def strict_json(text: str) -> object:
    """``text`` parsed as RFC 8259 JSON: NaN and Infinity, which Python reads by default, are refused."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# --- repeated column names ----------------------------------------------------------------------------

DUPLICATES = [
    (
        "same name",
        "select 1 as a, 2 as a",
        {
            "table": "a  a\n-  -\n1  2\n",
            "csv": "a,a\n1,2\n",
            "jsonl": '{"a": 1, "a_1": 2}\n',
            "markdown": "| a | a |\n|---|---|\n| 1 | 2 |\n",
        },
    ),
    (
        "other letter case",
        'select 1 as a, 2 as "A", 3 as a',
        {
            "table": "a  A  a\n-  -  -\n1  2  3\n",
            "csv": "a,A,a\n1,2,3\n",
            "jsonl": '{"a": 1, "A_1": 2, "a_2": 3}\n',
            "markdown": "| a | A | a |\n|---|---|---|\n| 1 | 2 | 3 |\n",
        },
    ),
    (
        "suffixed name already taken",
        "select 1 as a, 2 as a_1, 3 as a",
        {
            "table": "a  a_1  a\n-  ---  -\n1    2  3\n",
            "csv": "a,a_1,a\n1,2,3\n",
            "jsonl": '{"a": 1, "a_1": 2, "a_2": 3}\n',
            "markdown": "| a | a_1 | a |\n|---|---|---|\n| 1 | 2 | 3 |\n",
        },
    ),
    (
        "join on",
        "select * from l join r on l.id = r.id",
        {
            "table": "id  v     id  v      w\n--  ----  --  -----  -\n 1  left   1  right  2\n",
            "csv": "id,v,id,v,w\n1,left,1,right,2\n",
            "jsonl": '{"id": 1, "v": "left", "id_1": 1, "v_1": "right", "w": 2}\n',
            "markdown": "| id | v | id | v | w |\n|---|---|---|---|---|\n| 1 | left | 1 | right | 2 |\n",
        },
    ),
    (
        "join using",
        "select * from l join r using (id)",
        {
            "table": "id  v     v      w\n--  ----  -----  -\n 1  left  right  2\n",
            "csv": "id,v,v,w\n1,left,right,2\n",
            "jsonl": '{"id": 1, "v": "left", "v_1": "right", "w": 2}\n',
            "markdown": "| id | v | v | w |\n|---|---|---|---|\n| 1 | left | right | 2 |\n",
        },
    ),
    (
        "two stars, different types",
        "select l.*, r.v, 'x' as id from l, r",
        {
            "table": "id  v     v      id\n--  ----  -----  --\n 1  left  right  x\n",
            "csv": "id,v,v,id\n1,left,right,x\n",
            "jsonl": '{"id": 1, "v": "left", "v_1": "right", "id_1": "x"}\n',
            "markdown": "| id | v | v | id |\n|---|---|---|---|\n| 1 | left | right | x |\n",
        },
    ),
]


@pytest.mark.parametrize(("query", "expected"), [c[1:] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES])
@pytest.mark.parametrize("fmt", FORMATS)
def test_repeated_column_names_each_print_their_own_column(
    db: Path, query: str, expected: dict[str, str], fmt: str
) -> None:
    result = sql(query, fmt)

    wanted = expected[fmt] if fmt != "json" else "[" + expected["jsonl"].rstrip("\n") + "]\n"
    assert (result.exit_code, result.stdout, result.stderr) == (0, wanted, "")


@pytest.mark.parametrize("query", [c[1] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES])
def test_json_names_repeated_columns_as_duckdbs_copy_does(db: Path, tmp_path: Path, query: str) -> None:
    out = tmp_path / "copy.json"
    make_db(db, f"COPY ({query}) TO '{out}' (FORMAT json)")

    result = sql(query, "jsonl")

    pairs = lambda text: json.loads(text, object_pairs_hook=list)  # noqa: E731
    assert pairs(result.stdout) == pairs(out.read_text(encoding="utf-8"))


def test_the_python_api_keeps_repeated_names_and_every_column(db: Path) -> None:
    rows = embedsql.sql("select 1 as a, 'two' as a, 3 as A", db=db)

    assert rows.column_names == ["a", "a", "A"]
    assert [rows.column(i).to_pylist() for i in range(3)] == [[1], ["two"], [3]]


# --- types whose Arrow form is not the value -----------------------------------------------------------

# (case, SQL expression, DuckDB's text of it, its JSON, whether the table aligns it right as a number)
TYPES = [
    ("BIT", "'0101'::BIT", "0101", '"0101"', False),
    ("BIT, long", "'1000000000000000000000000000000000000001'::BIT", "1" + "0" * 38 + "1", f'"1{"0" * 38}1"', False),
    ("BIGNUM", "'123456789012345678901234567890'::BIGNUM", "123456789012345678901234567890",
     "123456789012345678901234567890", True),
    ("BIGNUM, negative, 45 digits", "('-' || repeat('9', 45))::BIGNUM", "-" + "9" * 45, "-" + "9" * 45, True),
    ("BIGNUM power is a DOUBLE", "(10::BIGNUM)^40", "1e+40", "1e+40", True),
    ("TIMETZ", "'12:00:00+05'::TIMETZ", "12:00:00+05", '"12:00:00+05"', False),
    ("TIMETZ, minutes", "'23:59:59.999999-09:30'::TIMETZ", "23:59:59.999999-09:30", '"23:59:59.999999-09:30"', False),
    ("INTERVAL", "interval '1 month 2 days 3 seconds'", "1 month 2 days 00:00:03", '"1 month 2 days 00:00:03"', False),
    ("INTERVAL, negative years", "interval '-3 years 1 microsecond'", "-3 years 00:00:00.000001",
     '"-3 years 00:00:00.000001"', False),
    ("UHUGEINT max", "340282366920938463463374607431768211455::UHUGEINT", "340282366920938463463374607431768211455",
     "340282366920938463463374607431768211455", True),
    ("HUGEINT min", "(-170141183460469231731687303715884105728)::HUGEINT", "-170141183460469231731687303715884105728",
     "-170141183460469231731687303715884105728", True),
    ("HUGEINT max", "170141183460469231731687303715884105727::HUGEINT", "170141183460469231731687303715884105727",
     "170141183460469231731687303715884105727", True),
    ("DECIMAL(38,10)", "1234567890123456789012345678.1234567891::DECIMAL(38,10)",
     "1234567890123456789012345678.1234567891", "1234567890123456789012345678.1234567891", True),
    ("DECIMAL trailing zeros", "1.50::DECIMAL(5,2)", "1.50", "1.50", True),
    ("FLOAT", "1.1::FLOAT", "1.1", "1.1", True),
    ("DOUBLE", "0.1::DOUBLE", "0.1", "0.1", True),
    ("DOUBLE, large", "1e300::DOUBLE", "1e+300", "1e+300", True),
    ("UBIGINT max", "18446744073709551615::UBIGINT", "18446744073709551615", "18446744073709551615", True),
    ("BOOLEAN", "true", "true", "true", False),
    ("TIMESTAMPTZ in the session's zone", "'2024-01-01 12:00:00+02'::TIMESTAMPTZ", "2024-01-01 15:30:00+05:30",
     '"2024-01-01 15:30:00+05:30"', False),
    ("TIMESTAMP_NS", "'2024-01-01 12:00:00.123456789'::TIMESTAMP_NS", "2024-01-01 12:00:00.123456789",
     '"2024-01-01 12:00:00.123456789"', False),
    ("TIME_NS", "'12:00:00.123456789'::TIME_NS", "12:00:00.123456789", '"12:00:00.123456789"', False),
    ("TIMESTAMP_S", "'2024-01-01 12:00:00'::TIMESTAMP_S", "2024-01-01 12:00:00", '"2024-01-01 12:00:00"', False),
    ("DATE infinity", "'infinity'::DATE", "infinity", '"infinity"', False),
    ("TIMESTAMP -infinity", "'-infinity'::TIMESTAMP", "-infinity", '"-infinity"', False),
    ("DATE far future", "'294247-01-10'::DATE", "294247-01-10", '"294247-01-10"', False),
    ("TIMESTAMP far future", "'294247-01-10 04:00:54'::TIMESTAMP", "294247-01-10 04:00:54",
     '"294247-01-10 04:00:54"', False),
    ("DATE BC", "'0044-03-15 (BC)'::DATE", "0044-03-15 (BC)", '"0044-03-15 (BC)"', False),
    ("BLOB, not UTF-8", "'\\xFF\\x00ab'::BLOB", "\\xFF\\x00ab", '"\\\\xFF\\\\x00ab"', False),
    ("UUID", "'00000000-0000-0000-0000-000000000001'::UUID", "00000000-0000-0000-0000-000000000001",
     '"00000000-0000-0000-0000-000000000001"', False),
    ("ENUM", "'b'::ENUM('a', 'b')", "b", '"b"', False),
    ("UNION", "union_value(k := 'x')::UNION(i INTEGER, k VARCHAR)", "x", '{"k": "x"}', False),
    ("UNION of a UHUGEINT", "union_value(u := 340282366920938463463374607431768211455::UHUGEINT)::UNION(u UHUGEINT, "
     "k VARCHAR)", "340282366920938463463374607431768211455", '{"u": 340282366920938463463374607431768211455}', False),
    ("MAP", "MAP {'k': 1, 'j': 2}", "{k=1, j=2}", '{"k": 1, "j": 2}', False),
    ("MAP of BIT to FLOAT", "MAP {'01'::BIT: 1.1::FLOAT}", "{01=1.1}", '{"01": 1.1}', False),
    ("STRUCT", "{'a': 1, 'b': 'x', 'c': NULL}", "{'a': 1, 'b': x, 'c': NULL}", '{"a": 1, "b": "x", "c": null}', False),
    ("STRUCT of BIT, TIMETZ and UHUGEINT[]", "{'b': '01'::BIT, 't': '12:00:00+05'::TIMETZ, "
     "'u': [340282366920938463463374607431768211455::UHUGEINT]}",
     "{'b': 01, 't': '12:00:00+05', 'u': [340282366920938463463374607431768211455]}",
     '{"b": "01", "t": "12:00:00+05", "u": [340282366920938463463374607431768211455]}', False),
    ("LIST of INTERVAL", "[interval '1 month', interval '2 days']", "[1 month, 2 days]", '["1 month", "2 days"]',
     False),
    ("LIST of LIST of BIGNUM", "[['1'::BIGNUM], ['-123456789012345678901234567890'::BIGNUM]]",
     "[[1], [-123456789012345678901234567890]]", "[[1], [-123456789012345678901234567890]]", False),
    ("ARRAY of FLOAT", "[1.1, 2.5]::FLOAT[2]", "[1.1, 2.5]", "[1.1, 2.5]", False),
    ("JSON", """'{"a": [1, 2.50], "b": null}'::JSON""", '{"a": [1, 2.50], "b": null}', '{"a": [1, 2.5], "b": null}',
     False),
    ("STRUCT of JSON", """{'j': '{"a": [1, 2.50]}'::JSON}""", """{'j': '{"a": [1, 2.50]}'}""", '{"j": {"a": [1, 2.5]}}',
     False),
]  # fmt: skip
ZONE = "SET TimeZone = 'Asia/Kolkata'; "


@pytest.mark.parametrize(("expr", "text", "as_json", "number"), [c[1:] for c in TYPES], ids=[c[0] for c in TYPES])
def test_every_type_prints_as_duckdb_writes_it(db: Path, expr: str, text: str, as_json: str, number: bool) -> None:
    query = f"{ZONE}select {expr} as v"
    assert fetch(db, f"{ZONE}select ({expr})::VARCHAR") == [(text,)]  # the expected text is DuckDB's own

    printed = {fmt: sql(query, fmt) for fmt in FORMATS}

    assert {fmt: (r.exit_code, r.stderr) for fmt, r in printed.items()} == dict.fromkeys(FORMATS, (0, ""))
    width = len(text)
    assert printed["table"].stdout == f"{'v'.rjust(width) if number else 'v'}\n{'-' * width}\n{text}\n"
    assert printed["csv"].stdout == f"v\n{csv_field(text)}\n"
    assert printed["jsonl"].stdout == f'{{"v": {as_json}}}\n'
    assert printed["json"].stdout == f'[{{"v": {as_json}}}]\n'
    assert printed["markdown"].stdout == f"| v |\n|---|\n| {text.replace('|', chr(92) + '|')} |\n"
    strict_json(printed["json"].stdout)


def test_numbers_in_json_are_exact_however_long(db: Path) -> None:
    result = sql(
        "select 340282366920938463463374607431768211455::UHUGEINT as u, ('-' || repeat('9', 45))::BIGNUM as b, "
        "1234567890123456789012345678.1234567891::DECIMAL(38,10) as d",
        "json",
    )

    parsed = json.loads(result.stdout, parse_float=Decimal)
    assert parsed == [{"u": 2**128 - 1, "b": -(10**45 - 1), "d": Decimal("1234567890123456789012345678.1234567891")}]


def test_a_long_list_shows_its_first_values_and_its_size_where_people_read_it(db: Path) -> None:
    query = "select [1.5, 2.25, 3.0, 4.0]::FLOAT[4] as v, [[1, 2], [3], [4], [5]] as l, [1, 2, 3] as s"

    printed = {fmt: sql(query, fmt).stdout for fmt in ("table", "markdown", "csv", "jsonl")}

    assert printed == {
        "table": "v                             l                               s\n"
        "----------------------------  ------------------------------  ---------\n"
        "[1.5, 2.25, 3.0, … 4 values]  [[1, 2], [3], [4], … 4 values]  [1, 2, 3]\n",
        "markdown": "| v | l | s |\n|---|---|---|\n"
        "| [1.5, 2.25, 3.0, … 4 values] | [[1, 2], [3], [4], … 4 values] | [1, 2, 3] |\n",
        "csv": 'v,l,s\n"[1.5, 2.25, 3.0, 4.0]","[[1, 2], [3], [4], [5]]","[1, 2, 3]"\n',
        "jsonl": '{"v": [1.5, 2.25, 3.0, 4.0], "l": [[1, 2], [3], [4], [5]], "s": [1, 2, 3]}\n',
    }


def test_null_and_the_empty_string_differ_in_csv_as_in_duckdbs_copy(db: Path, tmp_path: Path) -> None:
    query = "select '' as e, NULL::VARCHAR as n, 'a,b' as c"
    make_db(db, f"COPY ({query}) TO '{tmp_path / 'copy.csv'}'")

    result = sql(query, "csv")

    assert result.stdout == 'e,n,c\n"",,"a,b"\n'
    assert result.stdout == (tmp_path / "copy.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("query", "column", "value", "duckdb_type"),
    [
        ("select '0101'::BIT as v", pa.string(), "0101", "BIT"),
        ("select '-1'::BIGNUM as v", pa.string(), "-1", "BIGNUM"),
        ("select '12:00:00+05'::TIMETZ as v", pa.string(), "12:00:00+05", "TIME WITH TIME ZONE"),
        (f"select {2**127 + 1}::UHUGEINT as v", pa.string(), str(2**127 + 1), "UHUGEINT"),
        ("select ['01'::BIT] as v", pa.list_(pa.string()), ["01"], "BIT[]"),
        ("select (-170141183460469231731687303715884105728)::HUGEINT as v", pa.decimal128(38, 0),
         Decimal(-(2**127)), "HUGEINT"),
        ("""select '{"a": 1}'::JSON as v""", pa.string(), '{"a": 1}', "JSON"),
        ("select interval '1 month 2 days' as v", pa.month_day_nano_interval(),
         pa.MonthDayNano([1, 2, 0]), None),
        ("select 1.5::FLOAT as v", pa.float32(), 1.5, None),
    ],
    ids=["BIT", "BIGNUM", "TIMETZ", "UHUGEINT", "BIT[]", "HUGEINT", "JSON", "INTERVAL", "FLOAT"],
)  # fmt: skip
def test_the_python_api_gives_each_value_as_duckdb_holds_it(
    db: Path, query: str, column: pa.DataType, value: object, duckdb_type: str | None
) -> None:
    rows = embedsql.sql(query, db=db)

    field = rows.schema.field(0)
    assert field.type == column
    assert rows.column(0).to_pylist() == [value]
    assert (field.metadata or {}).get(DUCKDB_TYPE) == (duckdb_type.encode() if duckdb_type else None)


def test_render_prints_what_the_api_returned_the_same_as_the_cli(db: Path) -> None:
    query = f"select '0101'::BIT as b, {2**128 - 1}::UHUGEINT as u, ['12:00:00+05'::TIMETZ] as t"

    rows = embedsql.sql(query, db=db)

    assert render(rows, "csv") == sql(query, "csv").stdout == f"b,u,t\n0101,{2**128 - 1},['12:00:00+05']\n"


# --- control characters --------------------------------------------------------------------------------

# (case, SQL expression, the value, as the table and markdown formats show it)
CONTROLS = [
    ("ANSI colour", "chr(27) || '[31mred' || chr(27) || '[0m'", "\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("clear screen", "chr(27) || '[2J' || chr(27) || '[H'", "\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
    ("window title (OSC)", "chr(27) || ']0;owned' || chr(7)", "\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
    ("C1 CSI", "chr(155) || '2J'", "\x9b2J", "\\x9b2J"),
    ("newline, tab, return", "'a' || chr(10) || 'b' || chr(9) || 'c' || chr(13)", "a\nb\tc\r", "a\\nb\\tc\\r"),
    ("NUL, backspace, DEL", "'a' || chr(0) || chr(8) || chr(127)", "a\x00\x08\x7f", "a\\x00\\x08\\x7f"),
    ("right-to-left override", "'abc' || chr(8238) || 'fed'", "abc\u202efed", "abc\\u202efed"),
    ("plain Unicode kept", "'naïve café 東京 🙂'", "naïve café 東京 🙂", "naïve café 東京 🙂"),
]


@pytest.mark.parametrize("color", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize(("expr", "value", "visible"), [c[1:] for c in CONTROLS], ids=[c[0] for c in CONTROLS])
def test_control_characters_are_kept_by_machine_formats_and_shown_escaped_to_people(
    db: Path, expr: str, value: str, visible: str, color: bool
) -> None:
    printed = {fmt: sql(f"select {expr} as v", fmt, color=color) for fmt in FORMATS}

    assert {fmt: (r.exit_code, r.stderr) for fmt, r in printed.items()} == dict.fromkeys(FORMATS, (0, ""))
    assert printed["csv"].stdout == f"v\n{csv_field(value)}\n"
    assert printed["jsonl"].stdout == json.dumps({"v": value}, ensure_ascii=False) + "\n"
    assert strict_json(printed["json"].stdout) == [{"v": value}]
    assert printed["table"].stdout == f"v\n{'-' * len(visible)}\n{visible}\n"
    assert printed["markdown"].stdout == f"| v |\n|---|\n| {visible} |\n"


@pytest.mark.parametrize("color", [False, True], ids=["piped", "terminal"])
def test_control_characters_in_column_names_and_nested_values(db: Path, color: bool) -> None:
    query = "select [chr(27) || '[1m'] as \"\x1b[2J\", {'k': chr(10)} as s"

    printed = {fmt: sql(query, fmt, color=color).stdout for fmt in ("table", "markdown", "csv", "jsonl")}

    assert printed == {
        "table": "\\x1b[2J      s\n-----------  -----------\n['\\x1b[1m']  {'k': '\\n'}\n",
        "markdown": "| \\x1b[2J | s |\n|---|---|\n| ['\\x1b[1m'] | {'k': '\\n'} |\n",
        "csv": "\x1b[2J,s\n['\x1b[1m'],\"{'k': '\n'}\"\n",
        "jsonl": '{"\\u001b[2J": ["\\u001b[1m"], "s": {"k": "\\n"}}\n',
    }


def test_a_real_pipe_gets_every_byte(db: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "embedsql.cli", "sql", "select chr(27) || '[31mred' as v", "--format", "csv"],
        env={**os.environ, "EMBEDSQL_DB": str(db)},
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )

    assert (result.returncode, result.stdout, result.stderr) == (0, b"v\n\x1b[31mred\n", b"")


# --- NaN and infinities in JSON ------------------------------------------------------------------------

NOT_FINITE = (
    "select 'nan'::DOUBLE as a, 'inf'::FLOAT as b, '-inf'::DOUBLE as c, NULL::DOUBLE as d, "
    "['nan'::DOUBLE, 1.5] as e, {'x': '-inf'::FLOAT} as f, MAP {'k': 'inf'::DOUBLE} as g, "
    """'{"j": NaN}'::JSON as h, {'j': '[NaN, -Infinity]'::JSON} as i, -('nan'::DOUBLE) as n"""
)
NOT_FINITE_OBJECT = (
    '{"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": null, "e": ["NaN", 1.5], "f": {"x": "-Infinity"}, '
    '"g": {"k": "Infinity"}, "h": {"j": "NaN"}, "i": {"j": ["NaN", "-Infinity"]}, "n": "NaN"}'
)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_nan_and_infinities_are_json_strings_never_null(db: Path, fmt: str) -> None:
    result = sql(NOT_FINITE, fmt)

    assert result.exit_code == 0, result.output
    assert result.stdout == (f"[{NOT_FINITE_OBJECT}]\n" if fmt == "json" else f"{NOT_FINITE_OBJECT}\n")
    parsed = strict_json(result.stdout)
    row = parsed[0] if isinstance(parsed, list) else parsed
    assert (row["a"], row["b"], row["c"], row["d"]) == ("NaN", "Infinity", "-Infinity", None)


def test_nan_and_infinities_in_the_other_formats_are_duckdbs_text(db: Path) -> None:
    query = "select 'nan'::DOUBLE as a, 'inf'::FLOAT as b, '-inf'::DOUBLE as c, NULL::DOUBLE as d, ['nan'::DOUBLE] as e"

    printed = {fmt: sql(query, fmt).stdout for fmt in ("table", "csv", "markdown")}

    assert printed == {
        "table": "  a    b     c     d  e\n---  ---  ----  ----  -----\nnan  inf  -inf  NULL  [nan]\n",
        "csv": "a,b,c,d,e\nnan,inf,-inf,,[nan]\n",
        "markdown": "| a | b | c | d | e |\n|---|---|---|---|---|\n| nan | inf | -inf | NULL | [nan] |\n",
    }


def test_a_result_without_columns_prints_nothing(db: Path) -> None:
    printed = {fmt: render(pa.table({}), fmt) for fmt in FORMATS}

    assert printed == {"table": "", "csv": "", "json": "[]\n", "jsonl": "", "markdown": ""}


def test_a_statement_prints_duckdbs_result_of_it(db: Path) -> None:
    result = sql("create table made as select 1 as x", "csv")

    assert (result.exit_code, result.stdout) == (0, "Count\n1\n")
    assert fetch(db, "SELECT x FROM made") == [(1,)]
