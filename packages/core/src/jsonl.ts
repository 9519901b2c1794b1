import { isUtf8 } from 'node:buffer';
import { SluiceError } from './errors.js';
import { parsePythonJson } from './python-json.js';
import { scanTaskLine } from './scan.js';

/** Longest line accepted by default, in bytes (64 MiB): large enough for inline media, small enough to fail before memory does. */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** Options of {@link readLines}. */
export interface ReadLinesOptions {
  /** Longest line accepted, in bytes, not counting the line ending; default {@link DEFAULT_MAX_LINE_BYTES}. */
  maxLineBytes?: number;
  /** What the input is called in error messages: `stdin`, a file or an object name; default `input`. */
  name?: string;
  /** Number of the input's first line, when it continues an input read before (default 1). */
  firstLine?: number;
}

/** One line of text and its 1-based line number. */
export interface JsonlLine {
  line: number;
  text: string;
}

/** One parsed line: either `value`, or `error` when the line is not JSON (or too long, then `raw` is empty). */
export type JsonlRecord =
  | { line: number; raw: string; value: unknown; error?: undefined }
  | { line: number; raw: string; error: string; value?: undefined };

/** Options of {@link parseJsonl}. */
export interface ParseJsonlOptions extends ReadLinesOptions {
  /** `throw` (default) stops at the first bad line; `yield` hands bad lines over as records with `error`. */
  invalid?: 'throw' | 'yield';
  /**
   * `python` reads numbers as Python's json does (see {@link parsePythonJson}): integral
   * floats and integers beyond 2^53 keep their literal, for hashing and for writing back.
   */
  numbers?: 'js' | 'python';
}

/** What {@link writeJsonl} wrote. */
export interface WriteJsonlResult {
  lines: number;
  /** UTF-8 bytes, newlines included. */
  bytes: number;
}

/** Options of {@link writeJsonl}. */
export interface WriteJsonlOptions {
  /** Aborting rejects the write and stops pulling values. */
  signal?: AbortSignal;
  /** Called with the number of lines the output has accepted so far (its write callback ran), e.g. to checkpoint only what went downstream. */
  onFlushed?: (lines: number, bytes: number) => void;
}

/**
 * An iterable of values that can also hand them over in arrays (a source, a chunk of input at
 * a time) names the method here; {@link writeJsonl} then takes them so, one await an array.
 */
export const TASK_BATCHES: unique symbol = Symbol.for('sluice.batches');

/** Records handed over at once: few enough to die young (a batch that outlives the young generation costs a full collection). */
const BATCH_RECORDS = 256;

const NEWLINE = 0x0a;
/** Bytes of a chunk split into lines at once (see splitInput). */
const SPLIT_PIECE = 64 * 1024;
const CR = 0x0d;
const BOM = 0xfeff;
const LINE_TOO_LONG_HINT = 'raise --max-line-bytes, or check that the input is JSONL';
const BAD_JSON_HINT =
  'each line must be one JSON object; use --skip-invalid to set bad lines aside';

/**
 * A piece of a line longer than the limit, for a caller that keeps such lines (a sink's
 * rejects): `first` starts the line, `last` ends it, and pieces in between continue it.
 */
class SpilledPiece {
  constructor(
    readonly line: number,
    readonly bytes: Buffer,
    readonly first: boolean,
    readonly last: boolean,
  ) {}
}

/**
 * Cuts byte chunks into lines: decoded text, or with `bytes`, the lines' own bytes (views of
 * the chunk: use them before the next push). Lines are decoded only once complete, so a
 * multi-byte character split across chunks is never torn. A line longer than the limit is
 * reported as `null` in place of its text and its bytes are dropped as they arrive, so memory
 * stays bounded by the limit plus one chunk. In text mode a line that is not valid UTF-8 is
 * reported as `false`, never decoded into replacement characters.
 */
class LineSplitter<Line extends string | Buffer> {
  /** Lines completed by the last push() or end(); reused between calls. */
  readonly lines: (Line | null | false | SpilledPiece)[] = [];
  /** Line number of `lines[0]`. */
  first = 1;
  /** In byte mode: false when some line of the last push() may not be valid UTF-8. */
  utf8 = true;
  private next = 1;
  private readonly max: number;
  private carry: Buffer[] = [];
  private carryBytes = 0;
  private discarding = false;
  /** The line being discarded, when its pieces are spilled. */
  private spillLine = 0;

  constructor(
    maxLineBytes: number,
    private readonly bytes: Line extends Buffer ? true : false,
    /** Hands over lines longer than the limit in pieces instead of dropping them (byte mode). */
    private readonly spill = false,
    firstLine = 1,
  ) {
    this.max = maxLineBytes;
    this.next = firstLine;
  }

  push(chunk: Buffer): void {
    this.lines.length = 0;
    this.first = this.next;
    this.utf8 = true;
    const length = chunk.length;
    let start = 0;
    if (this.discarding || this.carryBytes > 0) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl === -1) {
        if (!this.discarding) this.hold(chunk, 0, length);
        else if (this.spill) this.lines.push(new SpilledPiece(this.spillLine, chunk, false, false));
        return;
      }
      if (this.discarding) {
        this.discarding = false;
        if (this.spill) {
          const end = nl > 0 && chunk[nl - 1] === CR ? nl - 1 : nl;
          this.lines.push(new SpilledPiece(this.spillLine, chunk.subarray(0, end), false, true));
        }
      } else this.completeCarry(chunk, nl);
      start = nl + 1;
    }
    const last = chunk.lastIndexOf(NEWLINE);
    if (last >= start) {
      if (last - start > this.max) this.splitBytes(chunk, start, last);
      else if (this.bytes) {
        // One native check for all complete lines of the chunk.
        if (!isUtf8(chunk.subarray(start, last))) this.utf8 = false;
        this.splitBytes(chunk, start, last);
      } else if (isUtf8(chunk.subarray(start, last))) {
        this.splitDecoded(chunk.toString('utf8', start, last));
      } else this.splitBytes(chunk, start, last); // finds the lines that are not UTF-8
      start = last + 1;
    }
    if (start < length) this.hold(chunk, start, length);
  }

  end(): void {
    this.lines.length = 0;
    this.first = this.next;
    if (this.discarding) {
      this.discarding = false;
      if (this.spill)
        this.lines.push(new SpilledPiece(this.spillLine, Buffer.alloc(0), false, true));
      return;
    }
    if (this.carryBytes === 0) return;
    const bytes = Buffer.concat(this.carry, this.carryBytes);
    this.carry = [];
    this.carryBytes = 0;
    if (this.bytes) this.utf8 = isUtf8(bytes);
    this.emitBytes(bytes, 0, bytes.length);
  }

  // One native decode for all complete lines of a chunk, then cheap string
  // slicing, keeps per-line work off the native boundary. Only used when no
  // line can exceed the limit, which the caller checked on the byte length.
  private splitDecoded(text: string): void {
    const lines = this.lines as (string | null)[];
    let from = 0;
    if (this.next === 1 && text.charCodeAt(0) === BOM) from = 1;
    for (;;) {
      const nl = text.indexOf('\n', from);
      const end = nl === -1 ? text.length : nl;
      lines.push(
        text.charCodeAt(end - 1) === CR ? text.slice(from, end - 1) : text.slice(from, end),
      );
      this.next++;
      if (nl === -1) return;
      from = nl + 1;
    }
  }

  // Byte mode, or a limit smaller than a chunk: line by line.
  private splitBytes(chunk: Buffer, start: number, last: number): void {
    let from = start;
    while (from <= last) {
      const nl = chunk.indexOf(NEWLINE, from);
      this.emitBytes(chunk, from, nl);
      from = nl + 1;
    }
  }

  private emitBytes(bytes: Buffer, from: number, to: number): void {
    const end = to > from && bytes[to - 1] === CR ? to - 1 : to;
    if (end - from > this.max) {
      this.lines.push(
        this.spill ? new SpilledPiece(this.next, bytes.subarray(from, end), true, true) : null,
      );
    } else if (this.bytes) {
      if (
        this.next === 1 &&
        bytes[from] === 0xef &&
        bytes[from + 1] === 0xbb &&
        bytes[from + 2] === 0xbf
      ) {
        from += 3;
      }
      (this.lines as (Buffer | null)[]).push(bytes.subarray(from, end));
    } else if (!isUtf8(bytes.subarray(from, end))) {
      this.lines.push(false);
    } else {
      let text = bytes.toString('utf8', from, end);
      if (this.next === 1 && text.charCodeAt(0) === BOM) text = text.slice(1);
      (this.lines as (string | null)[]).push(text);
    }
    this.next++;
  }

  private completeCarry(chunk: Buffer, nl: number): void {
    this.carry.push(chunk.subarray(0, nl));
    const bytes = Buffer.concat(this.carry, this.carryBytes + nl);
    this.carry = [];
    this.carryBytes = 0;
    if (this.bytes && !isUtf8(bytes)) this.utf8 = false;
    this.emitBytes(bytes, 0, bytes.length);
  }

  // Keeps the start of an unfinished line. Pieces are copied (the producer may
  // reuse its buffer) and joined once when the line ends, never one by one,
  // so a line spread over many chunks costs linear time.
  private hold(chunk: Buffer, from: number, to: number): void {
    const size = to - from;
    // One byte of slack: the line may end in CR, which does not count.
    if (this.carryBytes + size > this.max + 1) {
      if (this.spill) {
        const start = Buffer.concat([...this.carry, chunk.subarray(from, to)]);
        this.spillLine = this.next;
        this.lines.push(new SpilledPiece(this.next, start, true, false));
      } else this.lines.push(null);
      this.carry = [];
      this.carryBytes = 0;
      this.discarding = true;
      this.next++;
      return;
    }
    this.carry.push(Buffer.from(chunk.subarray(from, to)));
    this.carryBytes += size;
  }
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** The line limit of `options`, checked. */
export function maxLineBytesOf(options: ReadLinesOptions): number {
  const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (!Number.isSafeInteger(max) || max < 1) {
    throw new SluiceError(`maxLineBytes must be a positive integer, got ${max}`, {
      code: 'USAGE',
    });
  }
  return max;
}

/** Why a line that is not UTF-8 is refused, in the words the sinks use. */
const NOT_UTF8 = 'the line is not valid UTF-8 text';

/** A line that is not UTF-8: an error, never text quietly repaired with U+FFFD. */
export function notUtf8(name: string, line: number): SluiceError {
  return new SluiceError(`${name} line ${line}: ${NOT_UTF8}`, {
    code: 'BAD_INPUT',
    hint: 'save the input as UTF-8 (or convert it, e.g. with iconv)',
  });
}

function lineTooLong(name: string, line: number, max: number): SluiceError {
  return new SluiceError(`${name} line ${line}: line is longer than ${max} bytes`, {
    code: 'LINE_TOO_LONG',
    hint: LINE_TOO_LONG_HINT,
  });
}

// Yields the splitter after each piece of a chunk and once more after the input ends.
// Only this per-piece layer sits between the stream and the per-line loops,
// because every async layer a line passes through costs time on the hot path.
// A chunk goes in pieces of at most SPLIT_PIECE bytes so that the text decoded from one
// piece is used up before the next is decoded: text that outlives a few young-generation
// collections is copied by each and then moved to the old one, which costs full
// collections (7% of a large file's conversion with 1 MiB chunks).
async function* splitInput<Line extends string | Buffer>(
  input: AsyncIterable<Uint8Array | string>,
  splitter: LineSplitter<Line>,
): AsyncGenerator<LineSplitter<Line>> {
  for await (const chunk of input) {
    const bytes = toBuffer(chunk);
    for (let from = 0; from < bytes.length; from += SPLIT_PIECE) {
      splitter.push(bytes.subarray(from, from + SPLIT_PIECE));
      yield splitter;
    }
  }
  splitter.end();
  yield splitter;
}

/** Splits a byte stream into lines. */
export async function* readLines(
  input: AsyncIterable<Uint8Array | string>,
  options: ReadLinesOptions = {},
): AsyncGenerator<JsonlLine> {
  for await (const batch of readLineBatches(input, options)) yield* batch;
}

/**
 * {@link readLines}, the lines of each chunk at a time: bulk readers pay one await a chunk
 * instead of one a line. A bad line ends the iteration with its error after the lines before it.
 */
export async function* readLineBatches(
  input: AsyncIterable<Uint8Array | string>,
  options: ReadLinesOptions = {},
): AsyncGenerator<JsonlLine[]> {
  const max = maxLineBytesOf(options);
  const name = options.name ?? 'input';
  for await (const { lines, first } of splitInput(input, new LineSplitter<string>(max, false))) {
    const batch: JsonlLine[] = [];
    for (let i = 0; i < lines.length; i++) {
      const text = lines[i];
      let error: SluiceError | undefined;
      // Text mode never spills: a long line is `null`.
      if (text == null || text instanceof SpilledPiece) error = lineTooLong(name, first + i, max);
      else if (text === false) error = notUtf8(name, first + i);
      else {
        batch.push({ line: first + i, text });
        continue;
      }
      if (batch.length > 0) yield batch;
      throw error;
    }
    if (batch.length > 0) yield batch;
  }
}

/** Parses JSONL lazily. */
export async function* parseJsonl(
  input: AsyncIterable<Uint8Array | string>,
  options: ParseJsonlOptions = {},
): AsyncGenerator<JsonlRecord> {
  for await (const batch of parseJsonlBatches(input, options)) yield* batch;
}

/**
 * {@link parseJsonl}, the records of each chunk at a time: bulk readers pay one await a chunk
 * instead of one a line. With `invalid: 'throw'`, a bad line ends the iteration with its
 * error after the records before it.
 */
export async function* parseJsonlBatches(
  input: AsyncIterable<Uint8Array | string>,
  options: ParseJsonlOptions = {},
): AsyncGenerator<JsonlRecord[]> {
  const max = maxLineBytesOf(options);
  const name = options.name ?? 'input';
  const throwing = (options.invalid ?? 'throw') === 'throw';
  const parse = options.numbers === 'python' ? parsePythonJson : JSON.parse;
  for await (const { lines, first } of splitInput(input, new LineSplitter<string>(max, false))) {
    const batch: JsonlRecord[] = [];
    let error: SluiceError | undefined;
    for (let i = 0; i < lines.length; i++) {
      const text = lines[i];
      const line = first + i;
      if (batch.length === BATCH_RECORDS) yield batch.splice(0);
      if (text == null || text instanceof SpilledPiece) {
        if (throwing) error = lineTooLong(name, line, max);
        else batch.push({ line, raw: '', error: `line is longer than ${max} bytes` });
      } else if (text === false) {
        if (throwing) error = notUtf8(name, line);
        else batch.push({ line, raw: '', error: NOT_UTF8 });
      } else {
        const head = text.charCodeAt(0);
        // Tasks start with `{`, so they skip the blank-line test.
        if (head !== 0x7b && head !== 0x5b && text.trim() === '') continue;
        try {
          batch.push({ line, raw: text, value: parse(text) });
        } catch (cause) {
          const reason = `invalid JSON (${(cause as Error).message})`;
          if (throwing) {
            error = new SluiceError(`${name} line ${line}: ${reason}`, {
              code: 'BAD_INPUT',
              hint: BAD_JSON_HINT,
              cause,
            });
          } else batch.push({ line, raw: text, error: reason });
        }
      }
      if (error) break;
    }
    if (batch.length > 0) yield batch;
    if (error) throw error;
  }
}

/** One line as a sink sees it: its own bytes, and the task fields a sink reads or why it is no task. */
export interface ScannedRecord {
  line: number;
  /** The line's bytes, without its line ending (a view: copy it to keep it past the next line). */
  bytes: Buffer;
  task?: Record<string, unknown>;
  problem?: string;
  /** With `invalid: 'yield'`, a line longer than the limit comes in pieces: `bytes` is one. */
  spill?: { first: boolean; last: boolean };
}

function isBlank(bytes: Buffer): boolean {
  for (const c of bytes) if (c !== 0x20 && c !== 0x09 && c !== CR) return false;
  return true;
}

/**
 * Reads JSONL for a sink: each line is checked as a task without being fully parsed (see
 * {@link scanTaskLine}), and comes with its own bytes to store as they are. Lines longer than
 * the limit throw with `invalid: 'throw'`, or, with `'yield'`, come with a problem in pieces
 * (`spill`), so that their bytes can be kept without holding them in memory.
 */
export async function* scanJsonl(
  input: AsyncIterable<Uint8Array | string>,
  options: ParseJsonlOptions = {},
): AsyncGenerator<ScannedRecord> {
  const max = maxLineBytesOf(options);
  const name = options.name ?? 'input';
  const throwing = (options.invalid ?? 'throw') === 'throw';
  const tooLong = `line is longer than ${max} bytes`;
  for await (const { lines, first, utf8 } of splitInput(
    input,
    new LineSplitter<Buffer>(max, true, !throwing, options.firstLine),
  )) {
    let next = first;
    for (let i = 0; i < lines.length; i++) {
      // Byte mode checks UTF-8 per line here, so it never reports `false`.
      const bytes = lines[i] as Buffer | null | SpilledPiece;
      if (bytes instanceof SpilledPiece) {
        if (bytes.first) next++;
        const { line, first: starts, last } = bytes;
        yield { line, bytes: bytes.bytes, problem: tooLong, spill: { first: starts, last } };
        continue;
      }
      const line = next++;
      if (bytes == null) {
        throw lineTooLong(name, line, max);
      } else if (!utf8 && !isUtf8(bytes)) {
        yield { line, bytes, problem: 'the line is not valid UTF-8 text' };
      } else if (bytes[0] === 0x7b || !isBlank(bytes)) {
        const { task, problem } = scanTaskLine(bytes, 0, bytes.length);
        yield problem === undefined ? { line, bytes, task } : { line, bytes, problem };
      }
    }
  }
}

const SLAB_BYTES = 64 * 1024;

/**
 * Collects lines as UTF-8 bytes in 64 KiB slabs. Encoding each line straight
 * into the slab avoids building and flattening a joined string, and handing
 * out disjoint slices of one slab lets a partly filled slab be written early
 * and still be filled further.
 */
class LineBatch {
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private start = 0;
  private end = 0;
  /** Lines added and not yet taken. */
  private lines = 0;

  /** Adds one line; when the slab has no room left, first hands its contents to `write`. */
  add(text: string, write: (chunk: Buffer, lines: number) => void): void {
    const room = this.slab.length - this.end;
    // A UTF-16 unit never takes more than 3 UTF-8 bytes: measure only when that bound does not fit.
    const size = text.length * 3 + 1 <= room ? 0 : Buffer.byteLength(text) + 1;
    if (size > room) {
      this.take(write);
      if (size > SLAB_BYTES) {
        const chunk = Buffer.allocUnsafe(size);
        chunk.write(text, 0);
        chunk[size - 1] = NEWLINE;
        write(chunk, 1);
        return;
      }
      this.slab = Buffer.allocUnsafe(SLAB_BYTES);
      this.start = 0;
      this.end = 0;
    }
    this.end += this.slab.write(text, this.end);
    this.slab[this.end++] = NEWLINE;
    this.lines++;
  }

  /** Hands what was added since the last call to `write`. */
  take(write: (chunk: Buffer, lines: number) => void): void {
    if (this.end === this.start) return;
    const chunk = this.slab.subarray(this.start, this.end);
    const lines = this.lines;
    this.start = this.end;
    this.lines = 0;
    write(chunk, lines);
  }

  get full(): boolean {
    return this.end >= this.slab.length;
  }
}

function notSerializable(line: number, cause?: unknown): SluiceError {
  const reason = cause instanceof Error ? cause.message : 'JSON.stringify returned undefined';
  return new SluiceError(`value ${line} cannot be written as JSON: ${reason}`, {
    code: 'INTERNAL',
    cause,
  });
}

/** Serializes values as JSONL into a Writable, honouring backpressure. */
export function writeJsonl(
  values: AsyncIterable<unknown> | Iterable<unknown>,
  output: NodeJS.WritableStream,
  options: WriteJsonlOptions = {},
): Promise<WriteJsonlResult> {
  const { signal, onFlushed } = options;
  return new Promise<WriteJsonlResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const batches = (values as { [TASK_BATCHES]?: () => AsyncIterator<unknown[]> })[TASK_BATCHES];
    const isAsync =
      typeof batches === 'function' ||
      typeof (values as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function';
    const iterator: AsyncIterator<unknown> | Iterator<unknown> =
      typeof batches === 'function'
        ? batches.call(values)
        : isAsync
          ? (values as AsyncIterable<unknown>)[Symbol.asyncIterator]()
          : (values as Iterable<unknown>)[Symbol.iterator]();
    const batch = new LineBatch();
    let lines = 0;
    let written = 0;
    let bytes = 0;
    let settled = false;
    let pulling = false;
    let exhausted = false;
    // A stream that is already full must drain before we add to it.
    let blocked = (output as { writableNeedDrain?: boolean }).writableNeedDrain === true;
    let timer: NodeJS.Immediate | undefined;

    const cleanup = () => {
      if (timer !== undefined) clearImmediate(timer);
      timer = undefined;
      output.removeListener('error', onError);
      output.removeListener('drain', onDrain);
      output.removeListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: unknown, closeIterator: boolean) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (closeIterator) {
        // Not awaited: a generator stuck in an await settles return() only
        // when that await does, which may be never.
        try {
          const closing = iterator.return?.();
          if (closing instanceof Promise) closing.catch(() => {});
        } catch {
          // The producer's own clean-up failed; the first error is the one to report.
        }
      }
      reject(error);
    };
    const onError = (error: unknown) => fail(error, true);
    const onAbort = () => fail(signal?.reason, true);
    const onClose = () =>
      fail(
        new SluiceError('output closed before all lines were written', {
          code: 'IO',
          hint: 'the reading side of the pipe went away',
        }),
        true,
      );
    const onDrain = () => {
      blocked = false;
      if (!pulling && !settled && !exhausted) pump();
    };

    const write = (chunk: Buffer, count: number) => {
      bytes += chunk.length;
      written += count;
      let accepted: ((error?: Error | null) => void) | undefined;
      if (onFlushed) {
        const total = written;
        const totalBytes = bytes;
        accepted = (error) => {
          if (!error) onFlushed(total, totalBytes);
        };
      }
      if (!output.write(chunk, accepted)) blocked = true;
    };
    const flush = () => {
      if (timer !== undefined) clearImmediate(timer);
      timer = undefined;
      if (!settled) batch.take(write);
    };

    // Returns false when the value could not be serialized (the promise is then rejected).
    const append = (value: unknown): boolean => {
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        fail(notSerializable(lines + 1, error), true);
        return false;
      }
      if (text === undefined) {
        fail(notSerializable(lines + 1), true);
        return false;
      }
      batch.add(text, write);
      lines++;
      if (batch.full) flush();
      // A slow producer must not hold back what it already gave: flush once
      // the current burst of ready values is over.
      else if (timer === undefined) timer = setImmediate(flush);
      return true;
    };

    const finish = () => {
      exhausted = true;
      flush();
      if (settled) return;
      settled = true;
      cleanup();
      resolve({ lines, bytes });
    };

    const appendAll = (values: unknown[]): boolean => {
      for (const value of values) if (!append(value)) return false;
      return true;
    };
    const onStep = (step: IteratorResult<unknown>) => {
      pulling = false;
      if (settled) return;
      if (step.done) finish();
      else if (
        (typeof batches === 'function' ? appendAll(step.value as unknown[]) : append(step.value)) &&
        !blocked
      ) {
        pump();
      }
    };
    const onStepError = (error: unknown) => {
      pulling = false;
      fail(error, false);
    };

    // Pulls values until one is not ready yet or the output is full.
    const pump = () => {
      if (isAsync) {
        pulling = true;
        let next: Promise<IteratorResult<unknown>>;
        try {
          next = Promise.resolve((iterator as AsyncIterator<unknown>).next());
        } catch (error) {
          onStepError(error);
          return;
        }
        next.then(onStep, onStepError);
        return;
      }
      // A synchronous iterable would otherwise run to its end in one go and
      // starve the event loop (and the abort signal): yield after each flush.
      const sync = iterator as Iterator<unknown>;
      while (!settled && !blocked) {
        let step: IteratorResult<unknown>;
        try {
          step = sync.next();
        } catch (error) {
          fail(error, false);
          return;
        }
        if (step.done) {
          finish();
          return;
        }
        const before = bytes;
        if (!append(step.value)) return;
        if (bytes !== before && !blocked) {
          setImmediate(() => {
            if (!settled && !blocked) pump();
          });
          return;
        }
      }
    };

    output.on('error', onError);
    output.on('drain', onDrain);
    output.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (!blocked) pump();
  });
}
