#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/fuzz_decode.c into tests/fuzz/corpus/.

Each seed is: type index (into fuzz_decode.c's oids[]), mode, payload. The
payloads are wire bytes PostgreSQL sends (taken from its *_send functions)
plus a few malformed ones, so the fuzzer starts from every decoder's valid
shape. Run it again after changing the table; the seeds are committed
(tests/core/test_fuzz.py checks they are current). An argument names
another directory to write to.
"""
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Must match oids[] in fuzz_decode.c, in order.
TYPES = [
    "bool", "bytea", "char", "name", "int8", "int2", "int2vector", "int4", "text", "oid",
    "oidvector", "json", "float4", "float8", "unknown", "bpchar", "varchar", "date", "time",
    "timestamp", "timestamptz", "interval", "timetz", "numeric", "uuid", "jsonb",
    "json[]", "bool[]", "bytea[]", "char[]", "name[]", "int2[]", "int4[]", "text[]",
    "bpchar[]", "varchar[]", "int8[]", "float4[]", "float8[]", "oid[]", "timestamp[]",
    "date[]", "time[]", "timestamptz[]", "interval[]", "numeric[]", "timetz[]", "uuid[]",
    "jsonb[]", "inet", "point", "enum",
]
DECODE, NUMERIC_TEXT, REBUILD, JSON_TEXT = 0, 1, 2, 3


def arr(elem_oid, dims, items, lbounds=None):
    """array_send's layout: items are bytes or None (NULL)."""
    lbounds = lbounds or [1] * len(dims)
    out = len(dims).to_bytes(4, "big")
    out += (1 if any(i is None for i in items) else 0).to_bytes(4, "big")
    out += elem_oid.to_bytes(4, "big")
    for d, lb in zip(dims, lbounds):
        out += d.to_bytes(4, "big") + lb.to_bytes(4, "big", signed=True)
    for i in items:
        out += b"\xff\xff\xff\xff" if i is None else len(i).to_bytes(4, "big") + i
    return out


h = bytes.fromhex
SEEDS = {
    ("bool", "true"): h("01"),
    ("int2", "min"): h("8000"),
    ("int4", "max"): h("7fffffff"),
    ("int8", "min"): h("8000000000000000"),
    ("oid", "max"): h("ffffffff"),
    ("float4", "nan"): h("7fc00000"),
    ("float8", "neg_inf"): h("fff0000000000000"),
    ("float8", "tiny"): h("0000000000000001"),
    ("text", "utf8"): "héllo ✓".encode(),
    ("char", "high"): h("80"),
    ("name", "name"): b"pg_catalog",
    ("bpchar", "padded"): b"ab   ",
    ("bytea", "bytes"): h("00ff00"),
    ("uuid", "uuid"): h("a0eebc999c0b4ef8bb6d6bb9bd380a11"),
    ("json", "obj"): b'{"a": [1, 2.5]}',
    ("jsonb", "obj"): h("01") + b'{"a": 1}',
    ("numeric", "neg"): h("0002000040000002000c1388"),
    ("numeric", "tiny"): h("0001fffb000000140001"),
    ("numeric", "zero_scale"): h("0000000000000002"),
    ("numeric", "big"): h("000400010000000804d2162e223d10e1"),
    ("numeric", "nan"): h("00000000c0000000"),
    ("numeric", "ninf"): h("00000000f0000020"),
    ("numeric", "wide"): h("00017fff00003fff0001"),
    ("date", "bc"): h("ffda97a7"),
    ("date", "inf"): h("7fffffff"),
    ("time", "midnight24"): h("000000141dd76000"),
    ("timetz", "plus2"): h("0000000a0efaf240ffffe3e0"),
    ("timestamp", "min"): h("fd0f7cc1411fa000"),
    ("timestamptz", "max"): h("7fffff5bb3b29fff"),
    ("interval", "mixed"): h("000000036c8bc087fffffffd0000000e"),
    ("int4[]", "2d"): arr(23, [2, 2], [h("00000001"), h("00000002"), None, h("00000004")],
                          [0, -1]),
    ("int4[]", "empty"): arr(23, [], []),
    ("text[]", "strs"): arr(25, [3], [b"a b", None, b""]),
    ("numeric[]", "nums"): arr(1700, [3], [h("00020000000000010001" + "1388"), None,
                                           h("0001000040000000" + "0002")]),
    ("date[]", "3d"): arr(1082, [1, 2, 1], [h("00000000"), h("7fffffff")]),
    ("timetz[]", "one"): arr(1266, [1], [h("0000000a0efaf240ffffe3e0")]),
    ("jsonb[]", "one"): arr(3802, [1], [h("01") + b"[]"]),
    ("uuid[]", "one"): arr(2950, [1], [bytes(16)]),
    ("bool[]", "nulls"): arr(16, [2], [None, h("00")]),
    ("int2vector", "vec"): arr(21, [2], [h("0001"), h("0002")], [0]),
    ("enum", "label"): b"happy",
    ("enum", "enum_array"): arr(99999, [2], [b"sad", None]),
    ("inet", "raw"): h("02200004c0a80001"),
    # malformed on purpose
    ("int4[]", "truncated"): arr(23, [2], [h("00000001")]),
    ("numeric", "bad_digit"): h("00010000000000002710"),
    ("int8", "short"): h("000000"),
}
TEXT_SEEDS = {
    "canonical": b"-12.50",
    "exp": b"  1.5e-3 ",
    "inf": b"-inf",
    "nan": b"NaN",
    "point": b".5",
    "long": b"123456789012345678901234567890.123456789012345678901234567890",
    "huge_exp": b"1e131071",
    "bad": b"1.2.3",
}


# JSON text for the reader (mode 3): what jsonb's output looks like, and
# the corners of the grammar.
JSON_SEEDS = {
    "object": b'{"b": false, "n": 1, "s": "tag1"}',
    "nested": b'{"a": [1, {"b": null}, [[], {}]], "c": "x"}',
    "numbers": b'[0, -1, 1.5, -0.25e-10, 1E+300, 123456789012345678901234567890]',
    "escapes": b'"q\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"',
    "utf8": '"\u00e9t\u00e9 \u2603"'.encode(),
    "spaces": b' \t\r\n[ 1 , true , false , null ] ',
    "bad-surrogate": b'"\\ud83d"',
    "bad-trailing": b'[1,]',
    "deep": b"[" * 50 + b"]" * 50,
}


def main(out=None):
    out = Path(out) if out else HERE / "corpus"
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    for (tname, label), payload in SEEDS.items():
        idx = TYPES.index(tname)
        safe = tname.replace("[]", "_array")
        (out / f"decode-{safe}-{label}").write_bytes(bytes([idx, DECODE]) + payload)
        if tname.endswith("[]") or tname in ("int2vector", "enum"):
            (out / f"rebuild-{safe}-{label}").write_bytes(bytes([idx, REBUILD]) + payload)
    for label, text in TEXT_SEEDS.items():
        (out / f"numtext-{label}").write_bytes(bytes([TYPES.index("numeric"), NUMERIC_TEXT]) + text)
    for label, text in JSON_SEEDS.items():
        (out / f"json-{label}").write_bytes(bytes([TYPES.index("jsonb"), JSON_TEXT]) + text)
    # an oid given in full, not from the table
    (out / "decode-oid-explicit").write_bytes(bytes([0xFF, DECODE]) + (1700).to_bytes(4, "big")
                                              + h("0001000000000000" + "0007"))


if __name__ == "__main__":
    import sys
    main(sys.argv[1] if len(sys.argv) > 1 else None)
