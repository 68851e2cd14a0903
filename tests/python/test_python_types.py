"""Values both ways: Python parameters as the server sees them, server values
as Python gets them, and round trips, for every kind of corm.h's corm_kind."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal

import pytest

import cormorant as cm

pytestmark = pytest.mark.database

UTC = dt.timezone.utc
U = uuid.UUID("12345678-1234-5678-1234-567812345678")

# (id, Python value, SQL literal of the same value, the engine's kind when it
#  is not obvious from the Python type, expected Python result)
CASES = [
    ("null", None, "NULL::int8", None, None),
    ("true", True, "true", None, True),
    ("false", False, "false", None, False),
    ("int", 42, "42::int8", None, 42),
    ("int-neg", -7, "(-7)::int8", None, -7),
    ("int-max", 2**63 - 1, "9223372036854775807::int8", None, 2**63 - 1),
    ("int-min", -(2**63), "(-9223372036854775808)::int8", None, -(2**63)),
    ("float", 1.5, "1.5::float8", None, 1.5),
    ("float-inf", math.inf, "'Infinity'::float8", None, math.inf),
    ("float-neginf", -math.inf, "'-Infinity'::float8", None, -math.inf),
    ("str", "héllo ☃ 'q'", "'héllo ☃ ''q'''::text", None, "héllo ☃ 'q'"),
    ("str-empty", "", "''::text", None, ""),
    ("bytes", b"\x00\x01\xff", "'\\x0001ff'::bytea", None, b"\x00\x01\xff"),
    ("bytearray", bytearray(b"ab"), "'ab'::bytea", None, b"ab"),
    ("memoryview", memoryview(b"xyz"), "'xyz'::bytea", None, b"xyz"),
    ("decimal", Decimal("12.50"), "12.50::numeric", "numeric", Decimal("12.50")),
    ("decimal-big", Decimal("-123456789012345678901234567890.000000001"),
     "(-123456789012345678901234567890.000000001)::numeric", "numeric",
     Decimal("-123456789012345678901234567890.000000001")),
    ("decimal-nan", Decimal("NaN"), "'NaN'::numeric", "numeric", Decimal("NaN")),
    ("timestamptz", dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
     "'2020-01-02 03:04:05.000006+00'::timestamptz", "timestamptz",
     dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
    ("timestamptz-offset", dt.datetime(2020, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "'2020-01-02 03:04:05+00'::timestamptz", "timestamptz",
     dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("timestamp", dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
     "'1999-12-31 23:59:59.999999'::timestamp", "timestamp",
     dt.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    ("timestamp-old", dt.datetime(1, 1, 1), "'0001-01-01 00:00:00'::timestamp", "timestamp",
     dt.datetime(1, 1, 1)),
    ("date", dt.date(2024, 2, 29), "'2024-02-29'::date", "date", dt.date(2024, 2, 29)),
    ("date-old", dt.date(1900, 3, 1), "'1900-03-01'::date", "date", dt.date(1900, 3, 1)),
    ("time", dt.time(13, 14, 15, 16), "'13:14:15.000016'::time", "time", dt.time(13, 14, 15, 16)),
    ("timetz", dt.time(13, 14, 15, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
     "'13:14:15-05'::timetz", "timetz",
     dt.time(13, 14, 15, tzinfo=dt.timezone(dt.timedelta(hours=-5)))),
    ("interval", dt.timedelta(days=3, seconds=4, microseconds=5),
     "'3 days 00:00:04.000005'::interval", "interval",
     dt.timedelta(days=3, seconds=4, microseconds=5)),
    ("interval-neg", dt.timedelta(days=-1, seconds=3600),
     "'-1 days +01:00:00'::interval", "interval", dt.timedelta(days=-1, seconds=3600)),
    ("uuid", U, f"'{U}'::uuid", None, U),
    ("json-dict", {"a": [1, 2, {"b": None}], "c": "é"}, "'{\"a\": [1, 2, {\"b\": null}], \"c\": \"é\"}'::jsonb",
     None, {"a": [1, 2, {"b": None}], "c": "é"}),
    ("json-list", [1, "two", 3.5, True], "'[1, \"two\", 3.5, true]'::jsonb", None,
     [1, "two", 3.5, True]),
]

RESULT_ONLY = [
    ("int2", "7::int2", 7),
    ("int4", "(-8)::int4", -8),
    ("oid", "26::oid", 26),
    ("float4", "1.25::float4", 1.25),
    ("varchar", "'v'::varchar(5)", "v"),
    ("bpchar", "'ab'::char(3)", "ab "),
    ("name", "'nm'::name", "nm"),
    ("json", "'{\"k\": 1}'::json", {"k": 1}),
    ("timestamptz-infinity", "'infinity'::timestamptz", dt.datetime.max.replace(tzinfo=UTC)),
    ("date-infinity", "'-infinity'::date", dt.date.min),
    ("timestamp-infinity", "'infinity'::timestamp", dt.datetime.max),
    ("timestamp-neginfinity", "'-infinity'::timestamp", dt.datetime.min),
    ("array-int", "ARRAY[1, 2, NULL]::int8[]", [1, 2, None]),
    ("array-text-2d", "ARRAY[['a', 'b'], ['c', 'd']]", [["a", "b"], ["c", "d"]]),
    ("array-empty", "'{}'::int4[]", []),
]


def _check_decoded(got, expected, what):
    assert not (isinstance(got, bytes) and not isinstance(expected, (bytes, type(None)))), \
        f"{what} arrived undecoded (CORM_RAW): {got!r}"


@pytest.fixture(scope="module")
def db_run(database_url):
    """run(fn) -> fn(db)'s result, with a fresh pool on a fresh loop."""
    import asyncio

    def run(fn):
        async def main():
            async with await cm.connect(database_url, max_size=2) as db:
                return await fn(db)
        return asyncio.run(main())
    return run


@pytest.mark.parametrize("value,literal,kind", [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
def test_parameter_reaches_server(db_run, value, literal, kind):
    async def check(db):
        return await db.fetchval(f"SELECT $1 IS NOT DISTINCT FROM {literal}", value)
    assert db_run(check) is True


@pytest.mark.parametrize("literal,expected", [(c[2], c[4]) for c in CASES if c[0] != "decimal-nan"],
                         ids=[c[0] for c in CASES if c[0] != "decimal-nan"])
def test_result_decodes(db_run, literal, expected):
    async def get(db):
        return await db.fetchval(f"SELECT {literal}")
    got = db_run(get)
    _check_decoded(got, expected, literal)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, dt.datetime):
        assert got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("literal,expected", [c[1:] for c in RESULT_ONLY], ids=[c[0] for c in RESULT_ONLY])
def test_result_only_types(db_run, literal, expected):
    async def get(db):
        return await db.fetchval(f"SELECT {literal}")
    got = db_run(get)
    _check_decoded(got, expected, literal)
    assert got == expected


def test_decimal_nan(db_run):
    async def get(db):
        return await db.fetchval("SELECT 'NaN'::numeric")
    got = db_run(get)
    _check_decoded(got, Decimal(0), "numeric")
    assert isinstance(got, Decimal) and got.is_nan()


def test_float_nan_round_trip(db_run):
    async def get(db):
        return await db.fetchval("SELECT $1", math.nan)
    assert math.isnan(db_run(get))


@pytest.mark.parametrize("value,kind,expected", [(c[1], c[3], c[4]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_round_trip(db_run, value, kind, expected):
    async def get(db):
        return await db.fetchval("SELECT $1", value)
    got = db_run(get)
    _check_decoded(got, expected, kind or type(value).__name__)
    if isinstance(expected, Decimal) and expected.is_nan():
        assert got.is_nan()
    else:
        assert got == expected


def test_every_type_in_one_row(db_run):
    """Many parameters of mixed kinds in one statement keep their order."""
    values = [c[1] for c in CASES]
    sql = "SELECT " + ", ".join(f"${i + 1} AS c{i}" for i in range(len(values)))

    async def get(db):
        return await db.fetchrow(sql, *values)
    row = db_run(get)
    assert len(row) == len(values)
    for got, want in zip(row, values):
        if isinstance(want, (bytearray, memoryview)):
            want = bytes(want)
        if isinstance(want, (float, Decimal)) and want != want:
            assert got != got  # NaN
        else:
            assert got == want


def test_str_takes_the_type_the_statement_gives_it(db_run):
    async def go(db):
        await db.execute("DROP TABLE IF EXISTS py_infer")
        await db.execute("DROP TYPE IF EXISTS py_mood")
        await db.execute("CREATE TYPE py_mood AS ENUM ('sad', 'happy')")
        await db.execute("CREATE TABLE py_infer (m py_mood, u uuid, n int4)")
        try:
            await db.execute("INSERT INTO py_infer VALUES ($1, $2, $3)", "happy", str(U), "7")
            return (await db.fetchval("SELECT $1::int8 + 1", "41"),
                    await db.fetchval("SELECT m::text FROM py_infer WHERE m = $1", "happy"),
                    await db.fetchval("SELECT u FROM py_infer WHERE n = $1", "7"),
                    await db.fetchval("SELECT $1 || $2::text", "a", "b"))
        finally:
            await db.execute("DROP TABLE py_infer")
            await db.execute("DROP TYPE py_mood")
    assert db_run(go) == (42, "happy", U, "ab")


def test_table_round_trip(db_run):
    async def go(db):
        await db.execute("DROP TABLE IF EXISTS py_types")
        await db.execute(
            "CREATE TABLE py_types (i int8, f float8, b bool, s text, by bytea, u uuid, j jsonb, i4 int4)")
        try:
            await db.execute("INSERT INTO py_types VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                             1, 2.5, True, "s", b"b", U, {"x": 1}, 5)
            return await db.fetchrow("SELECT * FROM py_types")
        finally:
            await db.execute("DROP TABLE py_types")
    row = db_run(go)
    assert tuple(row) == (1, 2.5, True, "s", b"b", U, {"x": 1}, 5)
    assert row.u == U and row.j == {"x": 1}


# ---- bad parameters fail before anything is sent ----------------------


@pytest.mark.parametrize("value,needle", [
    (2**63, "out of range"),
    (-(2**63) - 1, "out of range"),
    (object(), "unsupported parameter type"),
    ({1, 2}, "unsupported parameter type"),
    ({"k": object()}, "JSON"),
    ("a\x00b", "NUL"),
], ids=["int-too-big", "int-too-small", "object", "set", "json-unencodable", "nul-in-text"])
def test_bad_parameter_raises_before_sending(database_url, value, needle):
    import asyncio

    async def main():
        async with await cm.connect(database_url, max_size=1) as db:
            pool = db._pool
            # Raised by the call itself, synchronously: no future, no request.
            with pytest.raises(cm.DataError) as ei:
                pool.fetchval("SELECT $1", value)
            assert needle in str(ei.value)
            assert "$1" in str(ei.value) or needle == "NUL"
            # and the same through the public coroutine
            with pytest.raises(cm.DataError):
                await db.fetchval("SELECT 1, $1", value)
            # second parameter is named
            with pytest.raises(cm.DataError) as ei:
                pool.fetchval("SELECT $1, $2", 1, value)
            if needle != "NUL":
                assert "$2" in str(ei.value)
            assert await db.fetchval("SELECT 1") == 1
    asyncio.run(main())


def test_sql_must_be_str(database_url):
    import asyncio

    async def main():
        async with await cm.connect(database_url, max_size=1) as db:
            with pytest.raises(TypeError):
                await db.fetch(b"SELECT 1")
            with pytest.raises(TypeError):
                await db._pool.fetch("SELECT 1", nope=1)
    asyncio.run(main())


# JSON text as PostgreSQL returns it, for json (kept verbatim) and jsonb
# (normalised): the engine's reader builds the values; json.loads of the
# server's text is the reference.
JSON_DOCS = [
    '{"b": false, "n": 1, "s": "tag1"}',
    '[1, -2, 3.25, -0.5e-3, 1E+2, 12345678901234567890123, -9223372036854775809]',
    '{"nested": {"a": [[], {}, [null, true, false]], "é": "ü\\u00e9\\ud83d\\ude00"}}',
    '"esc\\"apes\\\\ \\/ \\b\\f\\n\\r\\t\\u0041"',
    '  {"spaces" :  [ 1 , 2 ] }  ',
    '{"dup": 1, "dup": 2}',
    '1e400',
    '"' + "x" * 5000 + '\\n"',
    '[' * 200 + ']' * 200,
]


@pytest.mark.parametrize("kind", ["json", "jsonb"])
@pytest.mark.parametrize("doc", JSON_DOCS, ids=[f"doc{i}" for i in range(len(JSON_DOCS))])
def test_json_values_match_json_loads(db_run, kind, doc):
    import json

    async def get(db):
        return await db.fetchrow(f"SELECT $1::text::{kind} AS v, $1::text::{kind}::text AS t", doc)
    row = db_run(get)
    assert row["v"] == json.loads(row["t"])
    assert type(row["v"]) is type(json.loads(row["t"]))


def test_json_the_reader_refuses_goes_through_json_loads(db_run):
    """A lone surrogate escape is valid json text (not jsonb), and nesting
    past the engine's depth limit is valid too: json.loads decides those,
    values and exceptions alike."""
    import json

    deep_text = "[" * 1001 + "]" * 1001
    try:
        expected = json.loads(deep_text)
    except RecursionError as e:
        expected = e

    async def get(db):
        lone = await db.fetchval("SELECT '\"a\\ud83d\"'::json")
        try:
            deep = await db.fetchval("SELECT $1::text::json", deep_text)
        except RecursionError as e:
            deep = e
        return lone, deep
    lone, deep = db_run(get)
    assert lone == json.loads('"a\\ud83d"')
    assert type(deep) is type(expected)
    if not isinstance(expected, Exception):
        assert deep == expected


def test_json_keys_are_shared_across_rows_but_values_are_not(db_run):
    async def get(db):
        return await db.fetch("SELECT jsonb_build_object('k', i, 'l', ARRAY[i]) AS j "
                              "FROM generate_series(1, 3) AS i")
    rows = db_run(get)
    assert [r["j"] for r in rows] == [{"k": i, "l": [i]} for i in (1, 2, 3)]
    rows[0]["j"]["l"].append(99)
    assert rows[1]["j"]["l"] == [2]


def test_uuid_results_behave_as_uuid(db_run):
    import copy
    import pickle

    async def get(db):
        return await db.fetchval("SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid")
    u = db_run(get)
    ref = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert type(u) is uuid.UUID
    assert u == ref and hash(u) == hash(ref) and str(u) == str(ref)
    assert u.version == 4 and u.is_safe is uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(u)) == ref and copy.deepcopy(u) == ref
    with pytest.raises(TypeError):
        u.int = 5


# Values sent as JSON: plain ones are written by the binding, the rest by
# json.dumps; the server must read what json.dumps would have written.
JSON_PARAMS = [
    {"b": False, "n": 1, "s": "tag1"},
    [1, -2, 3.25, 1e300, -0.0, 12345678901234567890123, None, True, "x"],
    {"nested": {"a": [[], {}, (1, 2)]}, "é": "ü\u00e9\U0001F600\x01\x1f\"\\/\b\f\n\r\t"},
    {"k": 0.1, "big": 2**63, "neg": -(2**63) - 1},
    {1: "int key", None: "none key", 2.5: "float key"},      # json.dumps's own rules
    {"decimal_inside": [Decimal("1.5")]},                   # not JSON: json.dumps refuses
    [float("nan")],                                         # json.dumps writes NaN; the server refuses
]


@pytest.mark.parametrize("value", JSON_PARAMS, ids=[f"p{i}" for i in range(len(JSON_PARAMS))])
def test_json_parameters_read_as_json_dumps_text(db_run, value):
    import json

    try:
        expected = json.dumps(value)
    except (TypeError, ValueError):
        expected = None

    async def send(db):
        try:
            return await db.fetchval("SELECT $1::jsonb = $2::text::jsonb", value,
                                     expected if expected is not None else "null")
        except cm.Error as e:
            return e
    got = db_run(send)
    if expected is None:
        assert isinstance(got, cm.DataError) and "JSON" in str(got)
    elif "NaN" in expected:
        assert isinstance(got, cm.Error)
    else:
        assert got is True
