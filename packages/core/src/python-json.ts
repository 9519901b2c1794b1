/**
 * A number that must serialize as a Python float even when it is integral.
 * JSON.parse turns both `1` and `1.0` into the number 1, but Python's json.dumps writes them
 * differently, and Prodigy's hashes are computed over Python's output.
 */
export class PyFloat {
  constructor(readonly value: number) {}

  valueOf(): number {
    return this.value;
  }

  toJSON(): number {
    return this.value;
  }
}

const HEX = '0123456789abcdef';

function hex4(unit: number): string {
  return `\\u${HEX[(unit >> 12) & 15]}${HEX[(unit >> 8) & 15]}${HEX[(unit >> 4) & 15]}${HEX[unit & 15]}`;
}

const SHORT_ESCAPES: Record<number, string> = {
  8: '\\b',
  9: '\\t',
  10: '\\n',
  12: '\\f',
  13: '\\r',
  34: '\\"',
  92: '\\\\',
};

// Python's ensure_ascii leaves only printable ASCII (space to `~`) unescaped, DEL included in
// the escaped set. Working on UTF-16 code units yields surrogate pairs for astral characters and
// \udXXX for lone surrogates, both exactly as Python writes them.
function dumpString(s: string): string {
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i);
    if (unit >= 0x20 && unit <= 0x7e && unit !== 0x22 && unit !== 0x5c) continue;
    out += s.slice(runStart, i) + (SHORT_ESCAPES[unit] ?? hex4(unit));
    runStart = i + 1;
  }
  return `${out}${s.slice(runStart)}"`;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/**
 * Orders strings by Unicode code point, as Python sorts str. Plain `<` compares UTF-16 code
 * units, which puts astral characters (surrogates, 0xD800..) before U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // When the strings differ right after a shared high surrogate, the code point starts one
    // unit earlier (a pair in one string, a lone surrogate in the other).
    const at = i > 0 && isHighSurrogate(a.charCodeAt(i - 1)) ? i - 1 : i;
    const cx = a.codePointAt(at) as number;
    const cy = b.codePointAt(at) as number;
    return cx < cy ? -1 : 1;
  }
  return a.length - b.length;
}

/** Formats a number the way Python's float.__repr__ does. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Number.POSITIVE_INFINITY) return 'Infinity';
  if (x === Number.NEGATIVE_INFINITY) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() without an argument gives the shortest round-tripping digits, the same
  // digits Python's repr picks; only the layout differs.
  const expForm = Math.abs(x).toExponential();
  const ePos = expForm.indexOf('e');
  const digits = expForm.slice(0, ePos).replace('.', '');
  const exponent = Number(expForm.slice(ePos + 1));
  const sign = x < 0 ? '-' : '';
  // Python switches to scientific notation when the decimal exponent is < -4 or >= 16.
  if (exponent < -4 || exponent >= 16) {
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${mantissa}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const intLen = exponent + 1;
  if (digits.length <= intLen) return `${sign}${digits}${'0'.repeat(intLen - digits.length)}.0`;
  return `${sign}${digits.slice(0, intLen)}.${digits.slice(intLen)}`;
}

function dumpNumber(x: number): string {
  // -0 cannot be a Python int, so it only ever comes from a float such as `-0.0`.
  if (Number.isInteger(x) && !Object.is(x, -0)) {
    // BigInt prints integral doubles beyond 2^53 in full, as Python prints the int it parsed.
    return Number.isSafeInteger(x) ? String(x) : BigInt(x).toString();
  }
  return pythonFloatRepr(x);
}

function dump(value: unknown, ancestors: Set<object>): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return dumpString(value);
    case 'number':
      return dumpNumber(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value instanceof PyFloat) return pythonFloatRepr(value.value);
  const obj = value as object;
  if (ancestors.has(obj)) throw new TypeError('Circular reference detected');
  ancestors.add(obj);
  let out: string;
  if (Array.isArray(obj)) {
    // Like JSON.stringify, holes and unserializable items become null so positions survive.
    out = `[${obj.map((item) => dump(item, ancestors) ?? 'null').join(',')}]`;
  } else {
    const record = obj as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort(compareCodePoints)) {
      const dumped = dump(record[key], ancestors);
      if (dumped !== undefined) parts.push(`${dumpString(key)}:${dumped}`);
    }
    out = `{${parts.join(',')}}`;
  }
  ancestors.delete(obj);
  return out;
}

/**
 * Serializes a value byte for byte as Python's
 * `json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))`.
 */
export function pythonJsonDumps(value: unknown): string {
  const out = dump(value, new Set());
  if (out === undefined) throw new TypeError(`cannot serialize a value of type ${typeof value}`);
  return out;
}
