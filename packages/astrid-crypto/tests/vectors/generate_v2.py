# ruff: noqa: E501  (the vectors are long JSON lines, kept whole)
"""Write canonical_v2.json: the RFC 8785 (JCS) vectors of canonical JSON format v2.

    uv run python packages/astrid-crypto/tests/vectors/generate_v2.py

The expected texts are written here by hand (from RFC 8785 and its Appendix B) or checked by
hand, never computed by the code under test; test_jcs.py checks astrid_crypto and rfc8785
against them.
"""

import json
from pathlib import Path

# RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS text (published by the RFC).
APPB = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
numbers = [{"ieee_hex": h, "canonical": t} for h, t in APPB]
values = [
    {
        "source": "RFC 8785 section 3.2.2 example",
        "json": '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
        "canonical": '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    },
    {
        "source": "RFC 8785 section 3.2.3 sorting example",
        "json": '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}',
        "canonical": '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    },
    {
        "source": "astrid: an MCP call with floats",
        "json": '{"amount": 98.70, "rate": 0.1, "whole": 1.0, "neg_zero": -0.0, "small": 1e-7, "big": 1e21, "count": 3}',
        "canonical": '{"amount":98.7,"big":1e+21,"count":3,"neg_zero":0,"rate":0.1,"small":1e-7,"whole":1}',
    },
    {
        "source": "astrid: safe integer limits and big integers that are doubles",
        "json": '{"max": 9007199254740991, "min": -9007199254740991, "two53": 9007199254740992, "e20": 100000000000000000000}',
        "canonical": '{"e20":100000000000000000000,"max":9007199254740991,"min":-9007199254740991,"two53":9007199254740992}',
    },
    {
        "source": "astrid: unicode, controls and nesting",
        "json": '{"z": [{"b": [], "a": {}}, "\\u2028\\u0000\\u001f\\u007f"], "\\uffff": 1, "\\ud83d\\ude00": 2, "é": [true, null, "x"]}',
        "canonical": '{"z":[{"a":{},"b":[]},"\u2028\\u0000\\u001f\u007f"],"\u00e9":[true,null,"x"],"\U0001f600":2,"\uffff":1}',
    },
]
refused = [
    {"json": '{"a": 9007199254740993}', "error": "beyond"},
    {"json": '{"a": [-9007199254740993]}', "error": "beyond"},
    {"json": '{"a": 1152921504606846976}', "error": "beyond"},
    {"json": '{"a": NaN}', "error": "NaN"},
    {"json": '{"a": Infinity}', "error": "Infinity"},
    {"json": '{"a": -Infinity}', "error": "Infinity"},
    {"json": '{"a": "\\ud800"}', "error": "Unicode"},
]
for v in values:  # check our expectations parse
    json.loads(v["json"])
(Path(__file__).parent / "canonical_v2.json").write_text(
    json.dumps(
        {
            "description": "Canonical JSON format v2 = RFC 8785 (JCS). 'json' is parsed with Python's json.loads; its canonical UTF-8 text must be 'canonical', from astrid_crypto.canonical_json(value, 2) and from rfc8785.dumps alike. Numbers: RFC 8785 Appendix B bit patterns.",
            "numbers": numbers,
            "values": values,
            "refused": refused,
        },
        ensure_ascii=False,
        indent=1,
    )
)
