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

/** The index of the `"` that closes the string opened at `open`, or -1. */
function closingQuote(text: string, open: number): number {
  for (let at = text.indexOf('"', open + 1); at !== -1; at = text.indexOf('"', at + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
  return -1;
}

/** Whether a number outside the strings of `text` reads differently in Python. */
function hasPythonOnlyNumbers(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Strings are skipped by a native search for their end.
      i = closingQuote(text, i);
      if (i === -1) return false; // not JSON: JSON.parse says why
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
  const value = JSON.parse(text);
  // Only a number read as an integer (or -0) can have been written otherwise; most tasks hold
  // none outside their strings, and then their text need not be looked at again.
  return hasIntegers(value, 0) && MAYBE_LITERALS.test(text) && hasPythonOnlyNumbers(text)
    ? JSON.parse(text, keepLiteral as (key: string, value: unknown) => unknown)
    : value;
}

/**
 * Whether a parsed value holds an integral or infinite number (`1e999`); past a depth it
 * answers yes, to be safe.
 */
function hasIntegers(value: unknown, depth: number): boolean {
  if (typeof value === 'number') return Number.isInteger(value) || !Number.isFinite(value);
  if (typeof value !== 'object' || value === null) return false;
  if (depth > 64) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (hasIntegers(item, depth + 1)) return true;
    return false;
  }
  for (const key in value) {
    if (hasIntegers((value as Record<string, unknown>)[key], depth + 1)) return true;
  }
  return false;
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
  for (const key of keys) {
    // A loop, not a regular expression: keys are short, and this runs for every key hashed.
    for (let i = 0; i < key.length; i++) {
      const unit = key.charCodeAt(i);
      if (unit >= 0xd800 && unit <= 0xdfff) return keys.sort(compareCodePoints);
    }
  }
  return keys;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether an object member or array item is left out (as json.dumps never sees it). */
function isAbsent(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

// Python's ensure_ascii leaves only printable ASCII (space to `~`) unescaped, DEL included in
// the escaped set. Working on UTF-16 code units yields surrogate pairs for astral characters and
// \udXXX for lone surrogates, both exactly as Python writes them.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
/** The letter after `\` of the short escapes Python writes, by code unit (0: none). */
const SHORT_ESCAPES = new Uint8Array(128);
for (const [unit, letter] of [
  [8, 'b'],
  [9, 't'],
  [10, 'n'],
  [12, 'f'],
  [13, 'r'],
  [34, '"'],
  [92, '\\'],
] as const) {
  SHORT_ESCAPES[unit] = letter.charCodeAt(0);
}
const HEX = Buffer.from('0123456789abcdef');
// Below this length a string is copied in the loop; above, a native check and copy win.
const NATIVE_COPY_FROM = 24;
// Python's own json.dumps fails deeper than its recursion limit (1000 by default), so no task
// Prodigy can hash nests this deep; a circular reference always does.
const MAX_DEPTH = 1000;

/**
 * Writes Python's `json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))`
 * as bytes into one reused buffer. The hashes run over these bytes, so no string is built for
 * them: concatenating, flattening and encoding strings cost more than the dump itself. The
 * output is ASCII (ensure_ascii), so its bytes and characters are one.
 */
export class PyDumpWriter {
  /** The bytes written since the last {@link reset}, from 0 to {@link length}. */
  bytes: Buffer = Buffer.allocUnsafe(16 * 1024);
  length = 0;
  // The last long string written, and its bytes: a task's text goes into both of its hashes.
  private lastString: string | undefined;
  private lastBytes = Buffer.allocUnsafe(0);
  private lastLength = 0;

  reset(): this {
    this.length = 0;
    return this;
  }

  /** Text as UTF-8, as it is (a hash's `key=` and prefix). */
  text(s: string): void {
    this.room(s.length * 3);
    const bytes = this.bytes;
    let at = this.length;
    for (let i = 0; i < s.length; i++) {
      const unit = s.charCodeAt(i);
      if (unit > 0x7f) {
        this.length += this.bytes.write(s, this.length, 'utf8');
        return;
      }
      bytes[at++] = unit;
    }
    this.length = at;
  }

  /**
   * Writes `value` as json.dumps does; false when there is nothing to write (undefined, a
   * function, a symbol). With `ignore`, those keys are left out of its plain objects at every
   * depth (lists included), as if they had been deleted first; other objects are written whole.
   */
  value(value: unknown, ignore?: ReadonlySet<string>, depth = 0): boolean {
    if (value === null) {
      this.ascii('null');
      return true;
    }
    switch (typeof value) {
      case 'string':
        this.string(value);
        return true;
      case 'number':
        this.ascii(dumpNumber(value));
        return true;
      case 'boolean':
        this.ascii(value ? 'true' : 'false');
        return true;
      case 'bigint':
        this.ascii(value.toString());
        return true;
      case 'undefined':
      case 'function':
      case 'symbol':
        return false;
    }
    if (value instanceof PyFloat) {
      this.ascii(pythonFloatRepr(value.value));
      return true;
    }
    if (value instanceof PyInt) {
      this.ascii(value.literal);
      return true;
    }
    if (depth >= MAX_DEPTH) {
      throw new TypeError(`Circular reference detected, or a value nested over ${MAX_DEPTH} deep`);
    }
    if (Array.isArray(value)) {
      // Like JSON.stringify, holes and unserializable items become null so positions survive.
      this.byte(0x5b);
      for (let i = 0; i < value.length; i++) {
        if (i > 0) this.byte(0x2c);
        if (!this.value(value[i], ignore, depth + 1)) this.ascii('null');
      }
      this.byte(0x5d);
      return true;
    }
    const record = value as Record<string, unknown>;
    const skip = ignore && isPlainObject(record) ? ignore : undefined;
    this.record(record, Object.keys(record), undefined, skip, depth + 1);
    return true;
  }

  /**
   * Writes a record as if `replace` were assigned over its own keys (an `undefined` value
   * drops the key): Prodigy's whole-task dump, without copying the task.
   */
  replaced(
    record: Record<string, unknown>,
    replace: Record<string, unknown>,
    ignore: ReadonlySet<string>,
  ): void {
    const keys = Object.keys(record);
    for (const key of Object.keys(replace)) if (!Object.hasOwn(record, key)) keys.push(key);
    this.record(record, keys, replace, ignore, 1);
  }

  /** The bytes written, as text. */
  toString(): string {
    return this.bytes.toString('latin1', 0, this.length);
  }

  // `skip` holds the keys to drop here and below; undefined for objects `ignore` does not reach.
  private record(
    record: Record<string, unknown>,
    keys: string[],
    replace: Record<string, unknown> | undefined,
    skip: ReadonlySet<string> | undefined,
    depth: number,
  ): void {
    this.byte(0x7b);
    let first = true;
    for (const key of sortKeys(keys)) {
      if (skip?.has(key)) continue;
      const member = replace && Object.hasOwn(replace, key) ? replace[key] : record[key];
      if (isAbsent(member)) continue;
      if (!first) this.byte(0x2c);
      first = false;
      this.string(key);
      this.byte(0x3a);
      this.value(member, skip, depth);
    }
    this.byte(0x7d);
  }

  private room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.length + n));
    this.bytes.copy(bigger, 0, 0, this.length);
    this.bytes = bigger;
  }

  private byte(c: number): void {
    this.room(1);
    this.bytes[this.length++] = c;
  }

  /** ASCII text as it is: numbers, literals. */
  private ascii(s: string): void {
    this.room(s.length);
    const bytes = this.bytes;
    let at = this.length;
    for (let i = 0; i < s.length; i++) bytes[at++] = s.charCodeAt(i);
    this.length = at;
  }

  private string(s: string): void {
    const n = s.length;
    this.room(n * 6 + 2); // every unit escaped as \uXXXX at worst
    const bytes = this.bytes;
    let at = this.length;
    if (n >= NATIVE_COPY_FROM && s === this.lastString) {
      this.length += this.lastBytes.copy(bytes, at, 0, this.lastLength);
      return;
    }
    bytes[at++] = 0x22;
    if (n >= NATIVE_COPY_FROM && PLAIN.test(s)) {
      at += bytes.write(s, at, 'latin1');
    } else {
      for (let i = 0; i < n; i++) {
        const unit = s.charCodeAt(i);
        if (unit >= 0x20 && unit <= 0x7e && unit !== 0x22 && unit !== 0x5c) {
          bytes[at++] = unit;
          continue;
        }
        bytes[at++] = 0x5c;
        const short = unit < 128 ? (SHORT_ESCAPES[unit] as number) : 0;
        if (short !== 0) {
          bytes[at++] = short;
          continue;
        }
        bytes[at++] = 0x75;
        bytes[at++] = HEX[(unit >> 12) & 15] as number;
        bytes[at++] = HEX[(unit >> 8) & 15] as number;
        bytes[at++] = HEX[(unit >> 4) & 15] as number;
        bytes[at++] = HEX[unit & 15] as number;
      }
    }
    bytes[at++] = 0x22;
    if (n >= NATIVE_COPY_FROM) {
      const size = at - this.length;
      if (this.lastBytes.length < size) this.lastBytes = Buffer.allocUnsafe(Math.max(size, 4096));
      bytes.copy(this.lastBytes, 0, this.length, at);
      this.lastString = s;
      this.lastLength = size;
    }
    this.length = at;
  }
}

let shared: PyDumpWriter | undefined = new PyDumpWriter();

/**
 * The module's reused writer, reset, until {@link releasePyDumpWriter}; a call made while it
 * is taken (a getter that dumps) gets a writer of its own.
 */
export function takePyDumpWriter(): PyDumpWriter {
  if (shared === undefined) return new PyDumpWriter();
  const writer = shared.reset();
  shared = undefined;
  return writer;
}

/** Gives a writer from {@link takePyDumpWriter} back. */
export function releasePyDumpWriter(writer: PyDumpWriter): void {
  shared = writer;
}

/**
 * Serializes a value byte for byte as Python's
 * `json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))`.
 * With `ignore`, those keys are left out of its plain objects at every depth (lists included),
 * as if they had been deleted first.
 */
export function pythonJsonDumps(value: unknown, ignore?: ReadonlySet<string>): string {
  const writer = takePyDumpWriter();
  try {
    if (!writer.value(value, ignore)) {
      throw new TypeError(`cannot serialize a value of type ${typeof value}`);
    }
    return writer.toString();
  } finally {
    releasePyDumpWriter(writer);
  }
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
  const writer = takePyDumpWriter();
  try {
    writer.replaced(record, replace, ignore);
    return writer.toString();
  } finally {
    releasePyDumpWriter(writer);
  }
}
