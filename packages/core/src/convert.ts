import { isUtf8 } from 'node:buffer';
import { type Duplex, pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { parse as parseCsv } from 'csv-parse';
import mime from 'mime-types';
import { SluiceError } from './errors.js';
import { notUtf8, parseJsonlBatches, readLineBatches } from './jsonl.js';
import { parsePythonJson } from './python-json.js';
import { type Task, validateTask } from './task.js';

/** Formats a source can turn into tasks. */
export const FORMATS = ['jsonl', 'json', 'csv', 'txt', 'html', 'image', 'audio', 'video'] as const;
export type Format = (typeof FORMATS)[number];
export type MediaFormat = 'image' | 'audio' | 'video';

export function isMediaFormat(format: Format): format is MediaFormat {
  return format === 'image' || format === 'audio' || format === 'video';
}

const EXTENSIONS: Record<string, Format> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  csv: 'csv',
  tsv: 'csv',
  txt: 'txt',
  text: 'txt',
  md: 'txt',
  html: 'html',
  htm: 'html',
};

function extensionOf(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1).toLowerCase();
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1);
}

/** Whether the item is gzip-compressed by its name (`.jsonl.gz`); its bytes are then decompressed first. */
export function isGzipped(key: string): boolean {
  return extensionOf(key) === 'gz';
}

function formatOfContentType(contentType: string | undefined): Format | undefined {
  if (!contentType) return undefined;
  const type = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type.startsWith('image/')) return 'image';
  if (type.startsWith('audio/')) return 'audio';
  if (type.startsWith('video/')) return 'video';
  if (type === 'application/x-ndjson' || type === 'application/jsonl') return 'jsonl';
  if (type === 'application/json') return 'json';
  if (type === 'text/csv' || type === 'text/tab-separated-values') return 'csv';
  if (type === 'text/html') return 'html';
  if (type === 'text/plain' || type === 'text/markdown') return 'txt';
  return undefined;
}

/**
 * Picks the converter for an item: the `--format` override, else the file extension
 * (ignoring a trailing `.gz`), else the store's content type. Undefined means unsupported.
 */
export function detectFormat(
  key: string,
  contentType?: string,
  override?: Format,
): Format | undefined {
  if (override) return override;
  const name = isGzipped(key) ? key.slice(0, -3) : key;
  const ext = extensionOf(name);
  const byExt =
    EXTENSIONS[ext] ?? formatOfContentType(ext ? mime.lookup(ext) || undefined : undefined);
  return byExt ?? formatOfContentType(contentType);
}

/** The content type to serve a media item with. */
export function contentTypeOf(key: string, fallback?: string): string {
  return mime.lookup(key) || fallback || 'application/octet-stream';
}

/** How plain text becomes tasks. */
export type TextMode = 'line' | 'file';

export interface ConvertOptions {
  /** Name used in error messages (the item's URI). */
  name: string;
  /** `.txt`: a task per line (default) or per file. */
  textMode?: TextMode;
  /** Longest line accepted in line-based formats. */
  maxLineBytes?: number;
  /** Largest whole-document input (json, html, txt per file), in bytes. */
  maxDocumentBytes?: number;
  /** CSV delimiter; tab for `.tsv` by default. */
  delimiter?: string;
}

/** A task with its position in the item. */
export interface Converted {
  task: Task;
  /** 1-based line number for jsonl and txt. */
  line?: number;
  /** 1-based data row (header excluded) for csv, or array index + 1 for json. */
  row?: number;
}

export const DEFAULT_MAX_DOCUMENT_BYTES = 256 * 1024 * 1024;

type Bytes = AsyncIterable<Uint8Array | string>;

function convertError(message: string, hint: string, cause?: unknown): SluiceError {
  return new SluiceError(message, { code: 'CONVERT', hint, cause });
}

const ITEM_HINT =
  'fix the item, leave it out with --exclude, or pass --skip-errors to go on without it';

function asTask(value: unknown, where: string): Task {
  const problem = validateTask(value);
  if (problem) throw convertError(`${where}: ${problem}`, ITEM_HINT);
  return value as Task;
}

async function readAll(input: Bytes, options: ConvertOptions): Promise<string> {
  const limit = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    const buffer =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += buffer.length;
    if (size > limit) {
      throw convertError(
        `${options.name}: document is larger than ${limit} bytes`,
        'use a line-based format (jsonl, txt) for large inputs, or raise --max-document-bytes',
      );
    }
    chunks.push(buffer);
  }
  const bytes = Buffer.concat(chunks);
  if (!isUtf8(bytes)) throw asItemError(notUtf8(options.name, lineOfInvalidUtf8(bytes)));
  let text = bytes.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/** The 1-based line of the first byte sequence that is not UTF-8 (RFC 3629), in a buffer that has one. */
function lineOfInvalidUtf8(bytes: Buffer): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    const size =
      b < 0x80
        ? 1
        : b >= 0xc2 && b <= 0xdf
          ? 2
          : b >= 0xe0 && b <= 0xef
            ? 3
            : b >= 0xf0 && b <= 0xf4
              ? 4
              : 0;
    if (size === 0 || !isUtf8(bytes.subarray(i, i + size))) break;
    i += size;
  }
  let line = 1;
  for (let at = bytes.indexOf(0x0a); at !== -1 && at < i; at = bytes.indexOf(0x0a, at + 1)) line++;
  return line;
}

/**
 * Passes bytes on once they are known to be UTF-8, whole lines at a time (so a character split
 * between chunks is never taken for a bad one), for converters that decode bytes themselves
 * (CSV). At the first line that is not UTF-8 it ends, after the lines before it, and leaves
 * the error in `found` for the converter to throw once it has made their tasks.
 */
async function* checkedUtf8(
  input: Bytes,
  name: string,
  found: { error?: unknown },
): AsyncGenerator<Buffer> {
  let line = 1;
  let held: Buffer[] = [];
  // The valid lines of `bytes`, counted; the error is noted when a line is not UTF-8.
  const valid = (bytes: Buffer): Buffer => {
    let end = bytes.length;
    if (!isUtf8(bytes)) {
      const bad = lineOfInvalidUtf8(bytes);
      found.error = asItemError(notUtf8(name, line + bad - 1));
      end = 0;
      for (let n = 1; n < bad; n++) end = bytes.indexOf(0x0a, end) + 1;
    }
    for (let at = bytes.indexOf(0x0a); at !== -1 && at < end; at = bytes.indexOf(0x0a, at + 1)) {
      line++;
    }
    return bytes.subarray(0, end);
  };
  for await (const chunk of input) {
    const buffer =
      typeof chunk === 'string'
        ? Buffer.from(chunk)
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const end = buffer.lastIndexOf(0x0a) + 1;
    if (end === 0) {
      held.push(buffer);
      continue;
    }
    const ready = valid(
      held.length > 0 ? Buffer.concat([...held, buffer.subarray(0, end)]) : buffer.subarray(0, end),
    );
    if (ready.length > 0) yield ready;
    if (found.error) return;
    held = end < buffer.length ? [buffer.subarray(end)] : [];
  }
  if (held.length > 0) {
    const rest = valid(Buffer.concat(held));
    if (rest.length > 0) yield rest;
  }
}

/** A codec error (bad line, not UTF-8) about an item: its hint speaks to sinks (--skip-invalid), a source skips items. */
function asItemError(error: unknown): unknown {
  if (error instanceof SluiceError && error.code === 'BAD_INPUT') {
    return convertError(error.message, ITEM_HINT, error);
  }
  return error;
}

/**
 * Turns each record of a batch into a task, yielding those before a record that is no task
 * and then throwing its error, as one-by-one conversion would.
 */
function* checkedTasks<T>(
  records: T[],
  toTask: (record: T, index: number) => Converted,
): Generator<Converted[]> {
  const batch: Converted[] = [];
  try {
    for (let i = 0; i < records.length; i++) batch.push(toTask(records[i] as T, i));
  } catch (error) {
    if (batch.length > 0) yield batch;
    throw error;
  }
  if (batch.length > 0) yield batch;
}

async function* fromJsonl(input: Bytes, options: ConvertOptions): AsyncGenerator<Converted[]> {
  const toTask = (record: { line: number; value?: unknown }): Converted => ({
    task: asTask(record.value, `${options.name} line ${record.line}`),
    line: record.line,
  });
  try {
    for await (const records of parseJsonlBatches(input, {
      name: options.name,
      maxLineBytes: options.maxLineBytes,
      numbers: 'python',
    })) {
      yield* checkedTasks(records, toTask);
    }
  } catch (error) {
    throw asItemError(error);
  }
}

async function* fromJson(input: Bytes, options: ConvertOptions): AsyncGenerator<Converted[]> {
  const text = await readAll(input, options);
  let value: unknown;
  try {
    value = parsePythonJson(text);
  } catch (error) {
    throw convertError(
      `${options.name}: invalid JSON (${(error as Error).message})`,
      'a .json item must hold one array of tasks or one task object; use .jsonl for one task per line',
      error,
    );
  }
  if (!Array.isArray(value)) {
    yield [{ task: asTask(value, options.name) }];
    return;
  }
  yield* checkedTasks(value, (task, i) => ({
    task: asTask(task, `${options.name} [${i}]`),
    row: i + 1,
  }));
}

// Prodigy's CSV convention: `text`/`Text` and `label`/`Label` columns become task fields;
// every other column (including Prodigy's `meta`) becomes a key of `meta`. Hash columns,
// as a review package's CSV has them, stay task fields, so that a corrected row keeps the
// hashes of the example it corrects.
const HASH_COLUMNS = new Set(['_input_hash', '_task_hash']);

/** Undoes the quote a spreadsheet-safe CSV puts before a leading =, +, - or @ (see sheetCell). */
function unquoteCell(value: string): string {
  return /^'[=+\-@]/.test(value) ? value.slice(1) : value;
}
async function* fromCsv(input: Bytes, options: ConvertOptions): AsyncGenerator<Converted[]> {
  const delimiter = options.delimiter ?? (/\.tsv(\.gz)?$/i.test(options.name) ? '\t' : ',');
  const parser = parseCsv({ bom: true, delimiter, skip_empty_lines: true });
  let header: string[] | undefined;
  let textColumn = -1;
  let row = 0;
  const utf8: { error?: unknown } = {};
  try {
    for await (const record of through<string[]>(checkedUtf8(input, options.name, utf8), parser)) {
      if (!header) {
        header = record.map((name) => name.trim());
        textColumn = header.findIndex((name) => name.toLowerCase() === 'text');
        if (textColumn < 0) {
          throw convertError(
            `${options.name}: no "text" column in the header (${header.join(', ')})`,
            'name the column holding the text "text" or "Text", as Prodigy expects',
          );
        }
        continue;
      }
      row++;
      const task: Task = { text: unquoteCell(record[textColumn] ?? '') };
      const meta: Record<string, string> = {};
      header.forEach((name, i) => {
        if (i === textColumn) return;
        const value = unquoteCell(record[i] ?? '');
        if (name.toLowerCase() === 'label') {
          if (value !== '') task.label = value;
        } else if (HASH_COLUMNS.has(name) && /^-?\d+$/.test(value)) {
          task[name] = Number(value);
        } else if (name !== '') {
          meta[name.toLowerCase() === 'meta' ? 'meta' : name] = value;
        }
      });
      if (Object.keys(meta).length > 0) task.meta = meta;
      yield [{ task, row }];
    }
    if (utf8.error) throw utf8.error;
  } catch (error) {
    // Bytes cut short at a line that is not UTF-8 may leave a quote open: the cause is the bytes.
    if (utf8.error) throw utf8.error;
    // Read errors (a broken gzip stream, a dropped connection) pass through as they are.
    if (!String((error as { code?: unknown }).code).startsWith('CSV_')) throw error;
    const line = (error as { lines?: number }).lines;
    throw convertError(
      `${options.name}${line ? ` line ${line}` : ''}: invalid CSV (${(error as Error).message})`,
      'check quoting and the number of columns, or pass --format txt',
      error,
    );
  } finally {
    parser.destroy();
  }
}

async function* fromText(input: Bytes, options: ConvertOptions): AsyncGenerator<Converted[]> {
  if (options.textMode === 'file') {
    // Line ends as in line mode: CRLF (Windows files, Google Docs exports) becomes LF.
    const text = (await readAll(input, options)).replace(/\r\n/g, '\n');
    if (text.trim() !== '') yield [{ task: { text } }];
    return;
  }
  try {
    for await (const lines of readLineBatches(input, {
      name: options.name,
      maxLineBytes: options.maxLineBytes,
    })) {
      const batch: Converted[] = [];
      for (const { line, text } of lines)
        if (text.trim() !== '') batch.push({ task: { text }, line });
      if (batch.length > 0) yield batch;
    }
  } catch (error) {
    throw asItemError(error);
  }
}

async function* fromHtml(input: Bytes, options: ConvertOptions): AsyncGenerator<Converted[]> {
  const html = await readAll(input, options);
  if (html.trim() !== '') yield [{ task: { html } }];
}

const CONVERTERS: Record<
  Exclude<Format, MediaFormat>,
  (input: Bytes, options: ConvertOptions) => AsyncGenerator<Converted[]>
> = {
  jsonl: fromJsonl,
  json: fromJson,
  csv: fromCsv,
  txt: fromText,
  html: fromHtml,
};

/** Turns an item's bytes into tasks, lazily. Media formats are not converted from bytes: see media.ts. */
export async function* convert(
  format: Exclude<Format, MediaFormat>,
  input: Bytes,
  options: ConvertOptions,
): AsyncGenerator<Converted> {
  for await (const batch of convertBatches(format, input, options)) yield* batch;
}

/**
 * {@link convert}, the tasks of each chunk of input at a time (one await a chunk, not one a
 * task). An item that fails ends the iteration with its error after the tasks before it.
 */
export function convertBatches(
  format: Exclude<Format, MediaFormat>,
  input: Bytes,
  options: ConvertOptions,
): AsyncGenerator<Converted[]> {
  return CONVERTERS[format](input, options);
}

/** Decompresses a gzip byte stream. */
export function gunzip(input: Bytes): AsyncIterable<Buffer> {
  return through<Buffer>(input, createGunzip());
}

/** Pipes bytes through a transform stream with backpressure; errors on either side end the iteration. */
function through<T>(input: Bytes, transform: Duplex): AsyncIterable<T> {
  return pipeline(Readable.from(input), transform, () => {});
}
