/**
 * The sink's hot path: checks that a line of UTF-8 bytes is one JSON value and turns it into
 * the few fields of the task a sink reads (answer, labels, flags, meta...), without building
 * the rest. `JSON.parse` would build every token object of an NER answer only for the sink to
 * drop it and store the line's own bytes.
 *
 * The scanner follows RFC 8259 as `JSON.parse` does, except that it refuses nesting deeper
 * than 900 levels: Python's json (what reads the parts back) fails near 995 levels when
 * called at the top of a program (Python 3.6 to 3.11, default recursion limit 1,000), and
 * sooner from inside a loader; 900 leaves a reader 100 frames. Large top-level values the
 * sink does not read are checked for syntax only and left out of the parse.
 */
import { validateTask } from './task.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_DEPTH = 900;
/** Values shorter than this are parsed even when unread: cutting them saves nothing. */
const CUT_MIN = 128;

/** Top-level fields the sink reads (validation, filters, counts, lineage, grouping). */
const READ = new Set([
  'text',
  'label',
  '_input_hash',
  '_task_hash',
  'answer',
  'flagged',
  'meta',
  'spans',
  'options',
  'accept',
  'score',
  '_annotator_id',
  '_session_id',
]);
/** Fields whose type alone is checked: a long string is replaced by an empty one. */
const TYPE_ONLY = new Set(['image', 'audio', 'video', 'html']);

// Scanner state, module-level: plain functions over these are much faster than methods.
let b: Buffer = Buffer.alloc(0);
let end = 0;
let failure = '';
let failedAt = 0;
let escaped = false;
/** End of the last key scanned (after its closing quote), and whether it had escapes. */
let keyEnd = 0;
let keyEscaped = false;
/** Replaced ranges of the top-level object: [from, to, replacement index]... */
const cuts: number[] = [];
const REPLACEMENTS = ['0', '""'];

function fail(message: string, at: number): number {
  if (failure === '') {
    failure = message;
    failedAt = at;
  }
  return -1;
}

function skipSpace(i: number): number {
  let c = b[i];
  while (i < end && (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a)) c = b[++i];
  return i;
}

function isHex(c: number): boolean {
  const lower = c | 0x20;
  return (c >= 0x30 && c <= 0x39) || (lower >= 0x61 && lower <= 0x66);
}

// Relies on the byte at `end` being a line ending or past the buffer: scans stop there.
function scanString(i: number): number {
  escaped = false;
  i++;
  for (;;) {
    const c = b[i] as number;
    if (c === QUOTE) return i + 1;
    if (c >= 0x20 && c !== BACKSLASH) {
      i++;
      continue;
    }
    if (i >= end || c === undefined) return fail('a string is not closed', i);
    if (c !== BACKSLASH) return fail('a control character must be escaped in a string', i);
    escaped = true;
    const e = b[i + 1];
    if (e === 0x75) {
      if (
        !(
          isHex(b[i + 2] ?? 0) &&
          isHex(b[i + 3] ?? 0) &&
          isHex(b[i + 4] ?? 0) &&
          isHex(b[i + 5] ?? 0)
        )
      ) {
        return fail('\\u must be followed by four hex digits', i);
      }
      i += 6;
    } else if (
      e === QUOTE ||
      e === BACKSLASH ||
      e === 0x2f ||
      e === 0x62 ||
      e === 0x66 ||
      e === 0x6e ||
      e === 0x72 ||
      e === 0x74
    ) {
      i += 2;
    } else {
      return fail('unknown escape in a string', i);
    }
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function scanNumber(i: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) i++;
  else if (isDigit(b[i])) while (isDigit(b[++i]));
  else return fail('a number must start with a digit', i);
  if (b[i] === 0x2e) {
    if (!isDigit(b[++i])) return fail('a digit must follow the decimal point', i);
    while (isDigit(b[++i]));
  }
  if (b[i] === 0x65 || b[i] === 0x45) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return fail('an exponent needs digits', i);
    while (isDigit(b[++i]));
  }
  return i;
}

function scanWord(i: number, word: string): number {
  for (let k = 0; k < word.length; k++) {
    if (b[i + k] !== word.charCodeAt(k)) return fail('expected a value', i);
  }
  return i + word.length;
}

function scanValue(i: number, depth: number): number {
  const c = b[i];
  if (c === QUOTE) return scanString(i);
  if (c === 0x7b) return scanObject(i, depth + 1);
  if (c === 0x5b) return scanArray(i, depth + 1);
  if (c === 0x2d || isDigit(c)) return scanNumber(i);
  if (c === 0x74) return scanWord(i, 'true');
  if (c === 0x66) return scanWord(i, 'false');
  if (c === 0x6e) return scanWord(i, 'null');
  return fail(i >= end ? 'the line ends where a value should be' : 'expected a value', i);
}

/** After a member or element: the position of the `,` or closing bracket that follows. */
function afterItem(i: number, close: number): number {
  if ((b[i] as number) <= 0x20) i = skipSpace(i);
  const c = b[i];
  if (c === 0x2c || c === close) return i;
  return fail(`expected ',' or '${String.fromCharCode(close)}'`, i);
}

/** After a `,`: the position of the next member or element. */
function nextItem(i: number): number {
  i++;
  return (b[i] as number) <= 0x20 ? skipSpace(i) : i;
}

/** Scans a key and its colon; returns the value's position. */
function scanKey(i: number): number {
  if (b[i] !== QUOTE) return fail('expected a key in double quotes', i);
  i = scanString(i);
  if (i < 0) return i;
  keyEnd = i;
  keyEscaped = escaped;
  if ((b[i] as number) <= 0x20) i = skipSpace(i);
  if (b[i] !== 0x3a) return fail("expected ':' after a key", i);
  i++;
  return (b[i] as number) <= 0x20 ? skipSpace(i) : i;
}

function scanObject(i: number, depth: number): number {
  if (depth > MAX_DEPTH) return fail(`nested deeper than ${MAX_DEPTH} levels`, i);
  i = skipSpace(i + 1);
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    i = scanKey(i);
    if (i < 0) return i;
    i = scanValue(i, depth);
    if (i < 0) return i;
    i = afterItem(i, 0x7d);
    if (i < 0) return i;
    if (b[i] === 0x7d) return i + 1;
    i = nextItem(i);
  }
}

function scanArray(i: number, depth: number): number {
  if (depth > MAX_DEPTH) return fail(`nested deeper than ${MAX_DEPTH} levels`, i);
  i = skipSpace(i + 1);
  if (b[i] === 0x5d) return i + 1;
  for (;;) {
    i = scanValue(i, depth);
    if (i < 0) return i;
    i = afterItem(i, 0x5d);
    if (i < 0) return i;
    if (b[i] === 0x5d) return i + 1;
    i = nextItem(i);
  }
}

function text(from: number, to: number): string {
  return b.toString('utf8', from, to);
}

/** The name of the key whose quoted string spans [from, to). */
function keyName(from: number, to: number, escapes: boolean): string {
  return escapes ? (JSON.parse(text(from, to)) as string) : text(from + 1, to - 1);
}

/** The top-level object: notes which large values the parse can do without. */
function scanTask(i: number): number {
  i = skipSpace(i + 1);
  if (b[i] === 0x7d) return i + 1;
  for (;;) {
    const key = i;
    i = scanKey(i);
    if (i < 0) return i;
    const to = keyEnd;
    const escapes = keyEscaped;
    const at = i;
    i = scanValue(i, 1);
    if (i < 0) return i;
    if (i - at >= CUT_MIN) {
      const name = keyName(key, to, escapes);
      if (TYPE_ONLY.has(name)) {
        if (b[at] === QUOTE) cuts.push(at, i, 1);
      } else if (!READ.has(name)) cuts.push(at, i, 0);
    }
    i = afterItem(i, 0x7d);
    if (i < 0) return i;
    if (b[i] === 0x7d) return i + 1;
    i = nextItem(i);
  }
}

/** What a sink needs from one line. */
export interface ScannedLine {
  /** The task with only the fields a sink reads, when the line is a valid task. */
  task?: Record<string, unknown>;
  /** Why the line is not a valid task. */
  problem?: string;
}

/**
 * Checks the JSON line at `bytes[from, to)` (no line ending; the byte at `to` must be a line
 * ending or past the buffer) and returns the fields of the task a sink reads, or the problem.
 */
export function scanTaskLine(bytes: Buffer, from: number, to: number): ScannedLine {
  b = bytes;
  end = to;
  failure = '';
  cuts.length = 0;
  let i = skipSpace(from);
  const top = i;
  i = b[i] === 0x7b ? scanTask(i) : scanValue(i, 0);
  if (i >= 0) {
    i = skipSpace(i);
    if (i < to) fail('unexpected text after the JSON value', i);
  }
  if (failure !== '') {
    const column = text(from, Math.min(failedAt, to)).length + 1;
    return { problem: `invalid JSON (${failure}, at column ${column})` };
  }
  let json = '';
  let last = top;
  for (let k = 0; k < cuts.length; k += 3) {
    json += text(last, cuts[k] as number) + REPLACEMENTS[cuts[k + 2] as number];
    last = cuts[k + 1] as number;
  }
  json = last === top ? text(top, to) : json + text(last, to);
  const value = JSON.parse(json) as unknown;
  const problem = validateTask(value, { tokens: false });
  return problem === undefined ? { task: value as Record<string, unknown> } : { problem };
}
