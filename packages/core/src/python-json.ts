/**
 * A number that serializes as a Python float even when it is integral.
 * JSON.parse turns both `1` and `1.0` into the number 1, but Python's json.dumps writes them
 * differently, and Prodigy's hashes are computed over Python's output. `literal` is the text
 * the number was read from; JSON.stringify writes it back as it was (`43.0`, `1e16`).
 */
export class PyFloat {
  constructor(
    readonly value: number,
    readonly literal?: string,
  ) {}

  valueOf(): number {
    return this.value;
  }

  toJSON(): unknown {
    if (this.literal !== undefined) return rawJson(this.literal);
    // JSON has no NaN or Infinity: JSON.stringify writes null for them, as for plain numbers.
    return Number.isFinite(this.value) ? rawJson(pythonFloatRepr(this.value)) : null;
  }
}

/**
 * An integer beyond 2^53, kept digit for digit: JSON.parse would round it to the nearest
 * double (a tweet id `1453...` changes), Python's json reads it exactly.
 */
export class PyInt {
  constructor(readonly literal: string) {}

  valueOf(): number {
    return Number(this.literal);
  }

  toJSON(): unknown {
    return rawJson(this.literal);
  }
}

// JSON.rawJSON (Node 21+; we require 22) lets JSON.stringify write a number's own text.
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** The number inside a {@link PyFloat} or {@link PyInt}, or the value itself. */
export function numberOf(value: unknown): unknown {
  return value instanceof PyFloat || value instanceof PyInt ? value.valueOf() : value;
}

// A line can hold a number JSON.parse would misrepresent only if it has a digit before `.`,
// `e` or `E`, sixteen digits in a row, or a `-0`. Most lines have none; those that do (a price
// in a text) are scanned outside their strings before paying for the reviver.
const MAYBE_LITERALS = /[0-9](?:[.eE]|[0-9]{15})|-0(?![0-9.eE])/;
const FLOAT_LITERAL = /[.eE]/;

/** What a number literal becomes when read as Python reads it. */
function pythonNumber(value: number, literal: string): unknown {
  if (FLOAT_LITERAL.test(literal)) {
    // A float with a fraction prints the same in both languages; integral ones, -0.0 and
    // overflows to Infinity do not.
    return Number.isInteger(value) || !Number.isFinite(value) ? new PyFloat(value, literal) : value;
  }
  if (Object.is(value, -0)) return 0; // `-0` is the int 0 to Python
  return Number.isSafeInteger(value) ? value : new PyInt(literal);
}

function keepLiteral(_key: string, value: unknown, context?: { source?: string }): unknown {
  return typeof value === 'number' && context?.source !== undefined
    ? pythonNumber(value, context.source)
    : value;
}

/** Whether a number outside the strings of `text` reads differently in Python. */
function hasPythonOnlyNumbers(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip a string, escapes included.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      let float = false;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (d === 0x2e || d === 0x45 || d === 0x65) float = true;
        else if (!((d >= 0x30 && d <= 0x39) || d === 0x2b || d === 0x2d)) break;
      }
      // Short integers (the token offsets of an NER task) read the same; `-0` does not.
      if (float || end - i >= 16) {
        const literal = text.slice(i, end);
        if (typeof pythonNumber(Number(literal), literal) !== 'number') return true;
      } else if (c === 0x2d && end - i === 2 && text.charCodeAt(i + 1) === 0x30) {
        return true;
      }
      i = end - 1;
    }
  }
  return false;
}

/**
 * Parses JSON text as Python's json.loads reads its numbers: an integral float (`43.0`,
 * `1e16`) becomes a {@link PyFloat} and an integer beyond 2^53 a {@link PyInt}, so hashes
 * and the JSON written back match what Python holds. Everything else is JSON.parse's.
 */
export function parsePythonJson(text: string): unknown {
  return MAYBE_LITERALS.test(text) && hasPythonOnlyNumbers(text)
    ? JSON.parse(text, keepLiteral as (key: string, value: unknown) => unknown)
    : JSON.parse(text);
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
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function dumpString(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
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

const SURROGATE = /[\ud800-\udfff]/;

/**
 * Sorts keys in place as Python sorts str: by code point, which differs from UTF-16 order only
 * around surrogates. Objects have few keys, and insertion sort beats `Array.prototype.sort`
 * several times over on those.
 */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 16) keys.sort();
  else {
    for (let i = 1; i < keys.length; i++) {
      const key = keys[i] as string;
      let j = i - 1;
      for (; j >= 0 && (keys[j] as string) > key; j--) keys[j + 1] = keys[j] as string;
      keys[j + 1] = key;
    }
  }
  for (const key of keys) if (SURROGATE.test(key)) return keys.sort(compareCodePoints);
  return keys;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// `ignore` drops keys of plain objects at every depth, lists included; it does not reach into
// other objects (class instances are dumped whole).
// Python's own json.dumps fails deeper than its recursion limit (1000 by default), so no task
// Prodigy can hash nests this deep; a circular reference always does.
const MAX_DEPTH = 1000;

function dump(
  value: unknown,
  depth: number,
  ignore: ReadonlySet<string> | undefined,
): string | undefined {
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
  if (value instanceof PyInt) return value.literal;
  const obj = value as object;
  if (depth >= MAX_DEPTH) {
    throw new TypeError(`Circular reference detected, or a value nested over ${MAX_DEPTH} deep`);
  }
  let out: string;
  if (Array.isArray(obj)) {
    // Like JSON.stringify, holes and unserializable items become null so positions survive.
    out = '[';
    for (let i = 0; i < obj.length; i++) {
      out += `${i ? ',' : ''}${dump(obj[i], depth + 1, ignore) ?? 'null'}`;
    }
    out += ']';
  } else {
    const record = obj as Record<string, unknown>;
    const skip = ignore && isPlainObject(obj) ? ignore : undefined;
    out = dumpRecord(Object.keys(record), (key) => record[key], depth + 1, skip);
  }
  return out;
}

// `skip` holds the keys to drop here and below; undefined for objects `ignore` does not reach.
function dumpRecord(
  keys: string[],
  get: (key: string) => unknown,
  depth: number,
  skip: ReadonlySet<string> | undefined,
): string {
  let out = '{';
  for (const key of sortKeys(keys)) {
    if (skip?.has(key)) continue;
    const dumped = dump(get(key), depth, skip);
    if (dumped !== undefined) out += `${out.length > 1 ? ',' : ''}${dumpString(key)}:${dumped}`;
  }
  return `${out}}`;
}

/**
 * Serializes a value byte for byte as Python's
 * `json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))`.
 * With `ignore`, those keys are left out of its plain objects at every depth (lists included),
 * as if they had been deleted first.
 */
export function pythonJsonDumps(value: unknown, ignore?: ReadonlySet<string>): string {
  const out = dump(value, 0, ignore);
  if (out === undefined) throw new TypeError(`cannot serialize a value of type ${typeof value}`);
  return out;
}

/**
 * {@link pythonJsonDumps} of a record as if `replace` were assigned over its own keys
 * (an `undefined` value drops the key): Prodigy's whole-task dump without copying the task.
 */
export function pythonJsonDumpsRecord(
  record: Record<string, unknown>,
  replace: Record<string, unknown>,
  ignore: ReadonlySet<string>,
): string {
  const keys = Object.keys(record);
  for (const key of Object.keys(replace)) if (!Object.hasOwn(record, key)) keys.push(key);
  const get = (key: string) => (Object.hasOwn(replace, key) ? replace[key] : record[key]);
  return dumpRecord(keys, get, 1, ignore);
}
