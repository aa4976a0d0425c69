#!/usr/bin/env python3
"""Writes tests/fixtures/grammar/json_cases.tsv: JSON candidate strings with Python's verdict.

Each line is `<hex of the UTF-8 bytes>\t<1 if json.loads accepts it, else 0>`. The verdict is
Python's json module in strict mode (NaN / Infinity refused, as RFC 8259 does). Strings have no
trailing whitespace (our grammar ends a value at its last byte).
"""
import json
import os
import random

CASES = [
    '{}', '[]', '{"a":1}', '{"a": [1, 2, {"b": null}], "c": "x"}', '[1,2,3]', '""', '"abc"',
    'true', 'false', 'null', '0', '-0', '12', '-12.5e+3', '1E5', '0.5', '1.', '.5', '01', '-',
    '+1', '1e', '1e+', '--1', '0x10', 'NaN', 'Infinity', '-Infinity', 'tru', 'nul', 'True',
    '{"a"}', '{"a":}', '{a:1}', "{'a':1}", '{"a":1,}', '[1,]', '[,1]', '{,}', '[1 2]',
    '{"a":1 "b":2}', '"\\n\\t\\"\\\\\\/\\b\\f\\r"', '"\\u00e9\\uD83D\\uDE00"', '"\\x41"',
    '"\\u12"', '"\\u12g4"', '"tab\there"', '"new\nline"', '"\u00e9\u4e2d\U0001F600"',
    '  {"a" :  1 }', '\n[\n1\n]', '{"a":1}}', '[[[[]]]]', '[[[[]]]', '{"a":{"b":{"c":[true]}}}',
    '"unterminated', '{"a":"b"', '[1,2', '{"":0}', '{"a":1,"a":2}', '[1e400]', '-1.0E-2',
    '[0e0]', '[00]', '[-01]', '1.2.3', '{"a":[]}', '[{}]', '"\\ud800"', '[true,false,null]',
    '[truefalse]', '{"k":nulll}', '"\x7f"', '{"a" 1}', '[1:2]', '{"a":1;"b":2}',
]


def main():
    rng = random.Random(7)
    cases = list(CASES)
    # Random truncations of valid documents: mostly incomplete, hence refused.
    docs = [json.dumps({"name": "get_weather", "arguments": {"city": "Paris", "n": [1, 2.5]}}),
            json.dumps([{"x": "\u00e9"}, None, True, -3e-2])]
    for d in docs:
        for _ in range(10):
            cases.append(d[:rng.randrange(1, len(d))])
    out = os.path.join(os.path.dirname(__file__), '..', 'tests', 'fixtures', 'grammar')
    os.makedirs(out, exist_ok=True)

    def refuse(name):
        raise ValueError(name)

    with open(os.path.join(out, 'json_cases.tsv'), 'w') as f:
        for s in cases:
            data = s.rstrip(' \t\n\r').encode('utf-8')
            try:
                json.loads(data, parse_constant=refuse)
                ok = 1
            except (ValueError, UnicodeDecodeError):
                ok = 0
            f.write(f'{data.hex()}\t{ok}\n')
    # Raw invalid UTF-8 inside strings (json.loads of bytes decodes UTF-8 first).
    with open(os.path.join(out, 'json_cases.tsv'), 'a') as f:
        for raw in [b'"\xc3"', b'"\xc3\xa9"', b'"\xed\xa0\x80"', b'"\xe0\x80\x80"', b'"\xf4\x90\x80\x80"',
                    b'"\xf0\x9f\x98\x80"', b'"\xc0\xaf"', b'"\xff"']:
            try:
                # Strict UTF-8 first: json.loads(bytes) decodes with 'surrogatepass' and would
                # accept encoded surrogates, which are not UTF-8 (RFC 3629) and which our
                # detokenizer turns into U+FFFD.
                json.loads(raw.decode('utf-8'))
                ok = 1
            except (ValueError, UnicodeDecodeError):
                ok = 0
            f.write(f'{raw.hex()}\t{ok}\n')


if __name__ == '__main__':
    main()
