import { describe, expect, it } from 'vitest';
import { compareCodePoints, PyFloat, pythonJsonDumps } from '../src/python-json.js';

// Expected strings were produced with CPython 3:
// json.dumps(v, sort_keys=True, ensure_ascii=True, separators=(",", ":"))

describe('pythonJsonDumps: numbers', () => {
  it.each([
    [new PyFloat(1), '1.0'],
    [new PyFloat(0), '0.0'],
    [new PyFloat(-0), '-0.0'],
    [-0, '-0.0'],
    [new PyFloat(1e16), '1e+16'],
    [new PyFloat(1e15), '1000000000000000.0'],
    [new PyFloat(1e22), '1e+22'],
    [1e-5, '1e-05'],
    [0.0001, '0.0001'],
    [0.1, '0.1'],
    [123.456, '123.456'],
    [1.5e-7, '1.5e-07'],
    [-2.5e-300, '-2.5e-300'],
    [5e-324, '5e-324'],
    [new PyFloat(1.7976931348623157e308), '1.7976931348623157e+308'],
    [123456789012345.6, '123456789012345.6'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity'],
  ])('dumps float %s as %s', (value, expected) => {
    expect(pythonJsonDumps(value)).toBe(expected);
  });

  it.each([
    [0, '0'],
    [1, '1'],
    [-42, '-42'],
    [2 ** 31, '2147483648'],
    // An integral double beyond 2^53 is printed in full, as Python prints the parsed int.
    [1e22, '10000000000000000000000'],
    [10n ** 22n, '10000000000000000000000'],
    // A plain integral number is an int even when Python wrote it as a float (`1e+16`).
    [1e16, '10000000000000000'],
  ])('dumps integer %s as %s', (value, expected) => {
    expect(pythonJsonDumps(value)).toBe(expected);
  });

  it('PyFloat behaves as its number elsewhere and stays a float in JSON', () => {
    const f = new PyFloat(2);
    expect(+f).toBe(2);
    expect(JSON.stringify({ f })).toBe('{"f":2.0}');
    expect(JSON.stringify([new PyFloat(Number.NaN)])).toBe('[null]');
  });
});

describe('pythonJsonDumps: strings', () => {
  it('escapes non-BMP characters as lowercase surrogate pairs', () => {
    expect(pythonJsonDumps('😀')).toBe('"\\ud83d\\ude00"');
    expect(pythonJsonDumps('\ufffd😀')).toBe('"\\ufffd\\ud83d\\ude00"');
  });

  it('escapes non-ASCII BMP characters and lone surrogates', () => {
    expect(pythonJsonDumps('é€\ud800x\udfff')).toBe('"\\u00e9\\u20ac\\ud800x\\udfff"');
  });

  it('uses short escapes where Python does and \\u00XX for other control characters', () => {
    expect(pythonJsonDumps('\x00\x01\x1f\x7f\b\f\n\r\t"\\')).toBe(
      '"\\u0000\\u0001\\u001f\\u007f\\b\\f\\n\\r\\t\\"\\\\"',
    );
  });

  it('does not escape the slash', () => {
    expect(pythonJsonDumps('a/b')).toBe('"a/b"');
    expect(pythonJsonDumps('</script>')).toBe('"</script>"');
  });

  it('leaves printable ASCII alone', () => {
    expect(pythonJsonDumps(" !#$%&'()*+,-.09:;<=>?@AZ[]^_`az{|}~")).toBe(
      `" !#$%&'()*+,-.09:;<=>?@AZ[]^_\`az{|}~"`,
    );
  });
});

describe('pythonJsonDumps: containers', () => {
  it('sorts keys by code point, putting astral characters after U+FFFF', () => {
    const value = { '\uffff': 1, '😀': 2, '\ue000': 3, z: 4, A: 5, '': 6 };
    expect(pythonJsonDumps(value)).toBe(
      '{"":6,"A":5,"z":4,"\\ue000":3,"\\uffff":1,"\\ud83d\\ude00":2}',
    );
  });

  it('sorts nested objects, keeps array order, and writes literals', () => {
    const value = { b: { y: [1, { d: null, c: true }], x: false }, a: [] };
    expect(pythonJsonDumps(value)).toBe('{"a":[],"b":{"x":false,"y":[1,{"c":true,"d":null}]}}');
  });

  it('skips undefined object values and writes null for undefined array items', () => {
    expect(pythonJsonDumps({ a: undefined, b: [undefined, 1] })).toBe('{"b":[null,1]}');
  });

  it('escapes keys like values', () => {
    expect(pythonJsonDumps({ 'é\n': 'x' })).toBe('{"\\u00e9\\n":"x"}');
  });

  it('rejects circular structures and top-level undefined', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => pythonJsonDumps(a)).toThrow(/Circular/);
    expect(() => pythonJsonDumps(undefined)).toThrow(TypeError);
  });

  it('sorts objects with many keys as it sorts few', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `k${(i * 7) % 40}`);
    const value = Object.fromEntries(keys.map((key) => [key, 0]));
    const sorted = [...keys].sort().map((key) => `"${key}":0`);
    expect(pythonJsonDumps(value)).toBe(`{${sorted.join(',')}}`);
  });

  it('leaves ignored keys out of plain objects at every depth, lists included', () => {
    class Span {
      score = 0.5;
    }
    const value = { score: 1, spans: [{ start: 0, score: 0.9 }, new Span()], meta: { score: 2 } };
    expect(pythonJsonDumps(value, new Set(['score']))).toBe(
      '{"meta":{},"spans":[{"start":0},{"score":0.5}]}',
    );
  });

  it('allows the same object twice when it is not its own ancestor', () => {
    const shared = { k: 1 };
    expect(pythonJsonDumps([shared, shared])).toBe('[{"k":1},{"k":1}]');
  });
});

describe('compareCodePoints', () => {
  it('orders as Python sorts str, lone surrogates included', () => {
    // sorted(['\ud83d', '\U0001F600', '\ue000', '\ud83dz']) in CPython:
    const sorted = ['😀', '\ue000', '\ud83dz', '\ud83d'].sort(compareCodePoints);
    expect(sorted).toEqual(['\ud83d', '\ud83dz', '\ue000', '😀']);
  });
});
