import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { createGzip, type Gzip } from 'node:zlib';
import { SluiceError, usageError } from './errors.js';
import { scanJsonl } from './jsonl.js';
import { type Answer, type Task, validateTask } from './task.js';
import {
  assertSafeKey,
  isSafeKey,
  renderTemplate,
  type TemplateKey,
  templateKeys,
} from './template.js';

/** A staged part, complete on local disk, ready to upload. */
export interface StagedPart {
  /** Local file holding the exact bytes to store. */
  path: string;
  bytes: number;
  /** Hex sha256 of the bytes; drivers may send it as an integrity check. */
  sha256: string;
  contentType: string;
  /** Object metadata for stores that keep it (`sha256`, and `dataset` when known). */
  metadata?: Record<string, string>;
  /**
   * Write only if nothing exists under the key yet (with `--if-exists fail|skip`), so that a
   * concurrent writer cannot be overwritten unnoticed. Stores with conditional writes honour
   * it and answer a taken key with a SluiceError of code CONFLICT; others may ignore it.
   */
  ifAbsent?: boolean;
}

/**
 * What a connector implements to be a sink: read a small object (the previous manifest),
 * write a staged part, delete. Staging, naming, filters, manifest and idempotence are core's.
 */
export interface SinkDriver {
  readonly connector: string;
  /** Canonical URI of the export root that keys are relative to. */
  readonly root: string;
  /** Reads a small object under the root; undefined when it does not exist. */
  read(key: string): Promise<Buffer | undefined>;
  /** Writes a part so that readers see either the whole new object or the old one. */
  write(key: string, part: StagedPart): Promise<void>;
  delete(key: string): Promise<void>;
  close?(): Promise<void>;
  /**
   * Optional: starts writing a large part while it is still being staged, so that staging
   * and upload overlap (S3 feeds a multipart upload). Core uses it only for a fresh export
   * root (no earlier manifest), without {hash}, {answer} or {label} in the name, and only
   * once a part has grown past `streamFrom` bytes. The object may appear when its stream
   * ends, before the manifest, as staged parts do; its metadata holds what is known at the
   * start (the dataset; the sha256 is in the manifest).
   */
  stream?(key: string, part: StreamedPart): PartStream;
  /** Bytes a part must reach before it is streamed (default 8 MiB). */
  readonly streamFrom?: number;
}

/** What a driver knows of a part when its stream starts. */
export interface StreamedPart {
  contentType: string;
  metadata: Record<string, string>;
  ifAbsent?: boolean;
}

/** A part being written as it is staged. */
export interface PartStream {
  /** Takes the part's bytes in order; ended by core when the part is complete. */
  readonly body: NodeJS.WritableStream;
  /** Settles once the object is written, or rejects with the upload's error. */
  readonly done: Promise<void>;
  /** Stops the upload and discards what it sent; resolves once nothing will appear. */
  abort(): Promise<void>;
}

export type SinkFormat = 'jsonl' | 'jsonl.gz' | 'json';
export const SINK_FORMATS: readonly SinkFormat[] = ['jsonl', 'jsonl.gz', 'json'];

export interface SinkOptions {
  /** Dataset name: fills `{dataset}` and is recorded in the manifest. */
  dataset?: string;
  /** Part name template under the export root (default `part-{part}`; the extension is added). */
  name?: string;
  /** Serialization of parts (default jsonl). */
  format?: SinkFormat;
  /** Keep only these answers. */
  answer?: Answer[];
  /** Keep only flagged examples. */
  flagged?: boolean;
  /** Keep only examples whose score (`score` or `meta.score`) is at least this. */
  minScore?: number;
  /** Keep only examples whose score is at most this. */
  maxScore?: number;
  /** Keep only examples with one of these labels (task label, span labels or accepted options). */
  label?: string[];
  /** `all` (default): an example must pass every filter given; `any`: one is enough (review routing). */
  match?: 'all' | 'any';
  /** Start a new part after this many records. */
  maxPartRecords?: number;
  /** Set bad lines aside in a rejects part instead of failing. */
  skipInvalid?: boolean;
  /**
   * Also write the kept examples as review.csv, one row each (text, label, answer, score,
   * flagged, spans, hashes, source), safe to open in Google Sheets or Excel. Read back by a
   * source, its rows keep their hashes.
   */
  csv?: boolean;
  /**
   * A local file (the annotation guidelines: HTML, PDF, Markdown) to put next to the parts as
   * `guidelines.<ext>`, for reviewers; recorded in the manifest with its sha256.
   */
  guidelines?: string;
  /** When the export root holds a different export: overwrite (default), fail or skip. */
  ifExists?: 'overwrite' | 'fail' | 'skip';
  /** Compute everything, write nothing. */
  dryRun?: boolean;
  /** Longest input line accepted (default 64 MiB). */
  maxLineBytes?: number;
  /** Time of the run for `{date}` and `{timestamp}` (default now). */
  now?: Date;
  /** Recorded in the manifest. */
  tool?: { name: string; version: string };
  /** Name of the input in messages (default `input`; the CLIs pass `stdin`). */
  inputName?: string;
  /** Write an export even when the input has no lines at all (refused by default: a broken pipe upstream looks the same). */
  allowEmpty?: boolean;
  /** Aborting stops the run before anything is written. */
  signal?: AbortSignal;
}

export interface ManifestPart {
  key: string;
  records: number;
  bytes: number;
  sha256: string;
  answer?: string;
  label?: string;
}

/** The manifest written last: a reader that sees it sees a complete export. */
export interface Manifest {
  sluice: 'manifest/1';
  dataset: string | null;
  root: string;
  created: string;
  tool: { name: string; version: string };
  format: SinkFormat;
  filters: Record<string, unknown>;
  input: { lines: number; valid: number; rejected: number; filtered: number };
  counts: {
    records: number;
    answers: Record<string, number>;
    labels: Record<string, number>;
    flagged: number;
    annotators: Record<string, number>;
  };
  parts: ManifestPart[];
  rejects: ManifestPart | null;
  /** review.csv, with `csv`. */
  review: ManifestPart | null;
  /** The guidelines file, with `guidelines`: `name` is the file's own name. */
  guidelines?: { key: string; name: string; bytes: number; sha256: string };
  /** Where the records came from, by `meta.source`. */
  lineage: { sources: Record<string, number>; truncated: boolean };
}

export interface SinkResult {
  /** `written`, `unchanged` (same export already there), `skipped` (--if-exists skip) or `dry-run`. */
  status: 'written' | 'unchanged' | 'skipped' | 'dry-run';
  root: string;
  manifestKey: string;
  manifest: Manifest;
  /** Keys written (parts, rejects, manifest). */
  written: string[];
  /** Keys of an earlier export at the same root that are no longer part of it. */
  removed: string[];
}

/** Live counters of a sink run, for progress. */
export interface SinkStats {
  /** Input lines read so far. */
  lines: number;
  /** Parts to publish, known once staging is done. */
  parts: number;
  /** Parts published (written, or already there with the same bytes). */
  written: number;
}

export interface Sink {
  readonly stats: SinkStats;
  /** Exports tasks (objects). */
  write(tasks: AsyncIterable<Task> | Iterable<Task>): Promise<SinkResult>;
  /** Exports JSONL bytes, e.g. `prodigy db-out` on stdin. */
  writeJsonl(input: AsyncIterable<Uint8Array | string>): Promise<SinkResult>;
}

export const MANIFEST_KEY = 'manifest.json';
export const REJECTS_KEY = 'rejects.jsonl';
export const REVIEW_KEY = 'review.csv';
/** Guidelines go in as `guidelines` plus the file's extension. */
const GUIDELINES_KEY = 'guidelines';
const GUIDELINES_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.pdf': 'application/pdf',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
};
const MAX_LINEAGE_SOURCES = 10_000;
const CONTENT_TYPES: Record<SinkFormat, string> = {
  jsonl: 'application/x-ndjson',
  'jsonl.gz': 'application/gzip',
  json: 'application/json',
};
const EXTENSIONS: Record<SinkFormat, string> = {
  jsonl: '.jsonl',
  'jsonl.gz': '.jsonl.gz',
  json: '.json',
};

/** A task's score: `score`, else `meta.score`. */
export function scoreOf(task: Task): number | undefined {
  const score = task.score ?? task.meta?.score;
  return typeof score === 'number' ? score : undefined;
}

/** Every label a task mentions: its `label`, span labels and accepted option ids. */
export function labelsOf(task: Task): Set<string> {
  const labels = new Set<string>();
  if (typeof task.label === 'string') labels.add(task.label);
  for (const span of task.spans ?? []) if (typeof span.label === 'string') labels.add(span.label);
  if (Array.isArray(task.accept)) for (const id of task.accept) labels.add(String(id));
  return labels;
}

/** The filters of an export or a review selection. */
export type TaskFilters = Pick<
  SinkOptions,
  'answer' | 'flagged' | 'minScore' | 'maxScore' | 'label' | 'match'
>;

/** Whether a task passes the filters: every one given (`match: 'all'`, the default) or one. */
export function taskFilter(filters: TaskFilters): (task: Task) => boolean {
  const answers = filters.answer?.length ? new Set<string>(filters.answer) : undefined;
  const labels = filters.label?.length ? new Set(filters.label) : undefined;
  const { flagged, minScore, maxScore, match } = filters;
  return (task) => {
    const tests: boolean[] = [];
    if (answers) tests.push(answers.has(task.answer ?? ''));
    if (flagged) tests.push(task.flagged === true);
    if (minScore !== undefined || maxScore !== undefined) {
      const score = scoreOf(task);
      tests.push(
        score !== undefined &&
          (minScore === undefined || score >= minScore) &&
          (maxScore === undefined || score <= maxScore),
      );
    }
    if (labels) tests.push([...labelsOf(task)].some((label) => labels.has(label)));
    if (tests.length === 0) return true;
    return match === 'any' ? tests.includes(true) : !tests.includes(false);
  };
}

/** The value of `{label}` for one task: its single label, `mixed` for several, `none` for none. */
function groupLabel(task: Task): string {
  if (typeof task.label === 'string') return task.label;
  const labels = labelsOf(task);
  const [only] = labels;
  return labels.size === 0 ? 'none' : labels.size === 1 ? (only as string) : 'mixed';
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function stagingError(error: unknown): SluiceError {
  return new SluiceError(`cannot stage the export locally: ${(error as Error).message}`, {
    code: 'IO',
    hint: 'check free space and permissions of the temporary folder (set TMPDIR to move it)',
    cause: error,
  });
}

// Lines are gathered into slabs before they reach the file stream: one write per line would
// cost more than the copy, and with the stream's default 16 KiB buffer each few lines would
// wait for a round trip to the file system thread.
const SLAB_BYTES = 1024 * 1024;
const STAGING_BUFFER = 4 * 1024 * 1024;
const NEWLINE = Buffer.from('\n');
const JSON_SEPARATOR = Buffer.from(',\n');

const REVIEW_COLUMNS = [
  'text',
  'label',
  'answer',
  'score',
  'flagged',
  'spans',
  'accept',
  '_input_hash',
  '_task_hash',
  'source',
  'annotator',
] as const;

/**
 * A CSV cell a spreadsheet shows as written: quoted as RFC 4180 needs, and text that a
 * spreadsheet would run as a formula (a leading =, +, - or @) behind a `'`, which
 * spreadsheets hide and the source's CSV reader takes off again.
 */
export function sheetCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@]/.test(text) && !/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A review.csv row: what a reviewer reads and corrects, plus the hashes that tie it to the example. */
function reviewRow(task: Task): string {
  const text = typeof task.text === 'string' ? task.text : '';
  const spans = (task.spans ?? [])
    .map((span) =>
      typeof span.start === 'number' && typeof span.end === 'number'
        ? `${span.label ?? ''}: ${text.slice(span.start, span.end)}`
        : String(span.label ?? ''),
    )
    .join('; ');
  const values: Record<(typeof REVIEW_COLUMNS)[number], unknown> = {
    text,
    label: task.label,
    answer: task.answer,
    score: scoreOf(task),
    flagged: task.flagged === true ? 'true' : '',
    spans,
    accept: Array.isArray(task.accept) ? task.accept.join(', ') : '',
    _input_hash: task._input_hash,
    _task_hash: task._task_hash,
    source: task.meta?.source,
    annotator: task._annotator_id ?? task._session_id,
  };
  return REVIEW_COLUMNS.map((column) => sheetCell(values[column])).join(',');
}

/** One staged file being written, gzip-compressed or not, with backpressure, hashed as written. */
class StagedFile {
  records = 0;
  private readonly file: WriteStream;
  private readonly head: WriteStream | Gzip;
  private readonly hash = createHash('sha256');
  /** Rejects on the first error of either stream, so no write waits forever on a dead stream. */
  private readonly failure: Promise<never>;
  private finished: Promise<StagedPart> | undefined;
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;
  /** Staged bytes kept for a stream that has not started yet, and their size. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The part's stream once started. */
  streamed: PartStream | undefined;
  private readonly streamFailed: (error: unknown) => void;

  constructor(
    readonly path: string,
    private readonly format: SinkFormat,
    /** Starts streaming the part once it holds `from` bytes. */
    private readonly early?: { from: number; open: () => PartStream },
  ) {
    this.file = createWriteStream(path, { highWaterMark: STAGING_BUFFER });
    if (format === 'jsonl.gz') {
      const gzip = createGzip();
      gzip.on('data', (chunk: Buffer) => {
        this.hash.update(chunk);
        this.feed(chunk);
      });
      gzip.pipe(this.file);
      this.head = gzip;
    } else {
      this.head = this.file;
    }
    let fail: (error: unknown) => void = () => {};
    this.failure = new Promise<never>((_, reject) => {
      fail = reject;
      const broken = (error: unknown) => reject(stagingError(error));
      this.file.once('error', broken);
      if (this.head !== this.file) this.head.once('error', broken);
    });
    this.failure.catch(() => {});
    this.streamFailed = fail;
    if (format === 'json') this.append('[\n');
  }

  /** Adds one record; returns a promise only when the file or the stream asks to wait. */
  add(line: Buffer | string): Promise<void> | undefined {
    const json = this.format === 'json';
    if (json && this.records > 0) this.append(JSON_SEPARATOR);
    this.records++;
    this.append(line);
    if (!json) this.append(NEWLINE);
    if (this.used < SLAB_BYTES / 2) return undefined;
    const waits: Promise<unknown>[] = [];
    if (!this.flush()) waits.push(once(this.head, 'drain'));
    const body = this.streamed?.body as { writableNeedDrain?: boolean } | undefined;
    if (body?.writableNeedDrain)
      waits.push(once(this.streamed?.body as NodeJS.EventEmitter, 'drain'));
    return waits.length > 0
      ? Promise.race([Promise.all(waits), this.failure]).then(() => {})
      : undefined;
  }

  /** Passes staged bytes to the part's stream, starting it once the part is large enough. */
  private feed(chunk: Buffer): void {
    if (this.streamed) {
      this.streamed.body.write(chunk);
      return;
    }
    if (!this.early) return;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.early.from) return;
    const streamed = this.early.open();
    this.streamed = streamed;
    // An upload that fails stops staging at the next wait.
    streamed.done.catch(this.streamFailed);
    for (const held of this.held) streamed.body.write(held);
    this.held = [];
  }

  private append(data: Buffer | string): void {
    // A UTF-16 unit never takes more than 3 UTF-8 bytes.
    const bound = typeof data === 'string' ? data.length * 3 : data.length;
    if (this.used + bound > this.slab.length) {
      this.flush();
      if (bound > this.slab.length) {
        this.write(Buffer.from(data)); // a copy: the caller may reuse its buffer
        return;
      }
    }
    this.used +=
      typeof data === 'string' ? this.slab.write(data, this.used) : data.copy(this.slab, this.used);
  }

  /** Hands the slab to the stream; false when the stream asks to wait. */
  private flush(): boolean {
    if (this.used === 0) return true;
    const chunk = this.slab.subarray(0, this.used);
    this.slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.used = 0;
    return this.write(chunk);
  }

  private write(chunk: Buffer): boolean {
    if (this.head === this.file) {
      this.hash.update(chunk);
      this.feed(chunk);
    }
    return this.head.write(chunk);
  }

  /** Closes the file (once). */
  finish(): Promise<StagedPart> {
    this.finished ??= (async () => {
      if (this.format === 'json') this.append(`${this.records > 0 ? '\n' : ''}]\n`);
      this.flush();
      const closed = once(this.file, 'close');
      this.head.end();
      await Promise.race([closed, this.failure]);
      this.held = [];
      this.streamed?.body.end();
      return {
        path: this.path,
        bytes: this.file.bytesWritten,
        sha256: this.hash.digest('hex'),
        // gzip is the type, not a Content-Encoding: HTTP clients would unpack the latter
        // silently and the bytes would no longer match the manifest's sha256.
        contentType: CONTENT_TYPES[this.format],
      };
    })();
    return this.finished;
  }
}

interface Group {
  /** Sort key: the group's placeholder values. */
  id: string;
  values: Partial<Record<TemplateKey, string>>;
  files: StagedFile[];
}

/** Splits `url` + `name` into the export root and the part key template under it. */
export function splitTemplate(url: string, name: string): { root: string; key: string } {
  const full = `${url.replace(/\/+$/, '')}/${name}`;
  const first = full.search(/\{(answer|label|part|hash)\}/);
  const cut = full.lastIndexOf('/', first < 0 ? full.length : first);
  if (cut <= 0) {
    throw usageError(
      `${url}: the export root must come before {answer}, {label}, {part} or {hash}`,
      'start with a folder, e.g. ./exports/{answer}',
    );
  }
  const root = full.slice(0, cut);
  const key = full.slice(cut + 1);
  // Run placeholders shape the root, which the manifest describes; inside a part key they
  // would let two datasets share one root and replace each other's parts.
  const misplaced = key.match(/\{(dataset|date|timestamp)\}/);
  if (misplaced) {
    throw usageError(
      `${misplaced[0]} must be in a folder of its own, before {answer}, {label}, {part} or {hash}`,
      `e.g. ./exports/{dataset}/{answer} rather than ./exports/{answer}-{dataset}`,
    );
  }
  return { root, key };
}

class SinkRun {
  readonly stats: SinkStats = { lines: 0, parts: 0, written: 0 };
  private readonly format: SinkFormat;
  private readonly keyTemplate: string;
  private readonly rootTemplate: string;
  private readonly groupBy: { answer: boolean; label: boolean };
  /** Parts may stream while staged: one group at a time, keys known before the bytes. */
  private readonly streamable: boolean;
  /** Object metadata every part and the manifest carry. */
  private readonly dataset: Record<string, string>;
  /** With fail or skip, writes happen only when no export was there: nothing may appear meanwhile. */
  private readonly ifAbsent: boolean;
  private readonly keeps: (task: Task) => boolean;

  constructor(
    private readonly openDriver: (root: string) => SinkDriver | Promise<SinkDriver>,
    url: string,
    private readonly options: SinkOptions,
  ) {
    this.format = options.format ?? 'jsonl';
    if (!SINK_FORMATS.includes(this.format)) {
      throw usageError(`--format must be one of ${SINK_FORMATS.join(', ')}, got ${this.format}`);
    }
    let name = options.name ?? 'part-{part}';
    if (!name.endsWith(EXTENSIONS[this.format])) name += EXTENSIONS[this.format];
    // A name may add folders under the root, never climb out of it.
    if (!isSafeKey(name.replace(/\{[a-z_]+\}/g, 'x'))) {
      throw usageError(
        `--name ${name} would leave the export root`,
        'use a relative name such as part-{part} or {label}/part-{part}',
      );
    }
    const { root, key } = splitTemplate(url, name);
    this.rootTemplate = root;
    this.keyTemplate = key;
    const keys = new Set([...templateKeys(root), ...templateKeys(key)]);
    this.groupBy = { answer: keys.has('answer'), label: keys.has('label') };
    this.streamable = !keys.has('answer') && !keys.has('label') && !keys.has('hash');
    this.dataset = options.dataset === undefined ? {} : { dataset: options.dataset };
    this.ifAbsent = (options.ifExists ?? 'overwrite') !== 'overwrite';
    if (keys.has('dataset') && !options.dataset) {
      throw usageError(
        `${url} uses {dataset} but no dataset was given`,
        'pass --dataset NAME (the Prodigy dataset you exported)',
      );
    }
    this.keeps = taskFilter(options);
  }

  private filters(): Record<string, unknown> {
    const { answer, flagged, minScore, maxScore, label, match, maxPartRecords } = this.options;
    return Object.fromEntries(
      Object.entries({ answer, flagged, minScore, maxScore, label, match, maxPartRecords }).filter(
        ([, value]) => value !== undefined,
      ),
    );
  }

  async run(records: AsyncIterable<SinkRecord>): Promise<SinkResult> {
    const { options } = this;
    const now = options.now ?? new Date();
    const iso = now.toISOString();
    const runValues = {
      dataset: options.dataset,
      date: iso.slice(0, 10),
      timestamp: iso.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z'),
    };
    // The destination is checked before stdin is read, so a wrong URL fails at once.
    const driver = await this.openDriver(renderTemplate(this.rootTemplate, runValues));
    // Read first: it is needed anyway, and it proves the destination and credentials work
    // before stdin is read.
    let previous: Manifest | undefined;
    try {
      previous = await this.readManifest(driver);
    } catch (error) {
      await driver.close?.();
      throw error;
    }
    const staging = await mkdtemp(join(tmpdir(), 'sluice-sink-')).catch((error: unknown) => {
      throw stagingError(error);
    });
    const input = { lines: 0, valid: 0, rejected: 0, filtered: 0 };
    // Keys come from data (labels, annotators, sources): no prototype, so `constructor` is just a label.
    const tally = () => Object.create(null) as Record<string, number>;
    const counts: Manifest['counts'] = {
      records: 0,
      answers: tally(),
      labels: tally(),
      flagged: 0,
      annotators: tally(),
    };
    const lineage: Manifest['lineage'] = { sources: tally(), truncated: false };
    let lineageSize = 0;
    const groups = new Map<string, Group>();
    let files = 0;
    let rejects: StagedFile | undefined;
    const newFile = () => join(staging, `${files++}`);
    const review = options.csv ? new StagedFile(newFile(), 'jsonl') : undefined;
    review?.add(REVIEW_COLUMNS.join(','));
    // A fresh root has nothing to compare with or protect: large parts upload while staged.
    const streams: PartStream[] = [];
    const { stream } = driver;
    const streaming = !previous && !options.dryRun && this.streamable && stream !== undefined;
    const early = (values: Group['values'], index: number) =>
      streaming
        ? {
            from: driver.streamFrom ?? 8 * 1024 * 1024,
            open: () => {
              const started = stream.call(driver, this.partKey(values, index), {
                contentType: CONTENT_TYPES[this.format],
                metadata: this.dataset,
                ifAbsent: this.ifAbsent,
              });
              streams.push(started);
              return started;
            },
          }
        : undefined;
    try {
      // The guidelines are copied first: a wrong path fails before stdin is read.
      const guidelines = options.guidelines
        ? await stageGuidelines(options.guidelines, join(staging, GUIDELINES_KEY))
        : undefined;
      // Stage 1: validate, filter and serialize everything locally. A bad line stops here,
      // before anything is written to the store.
      for await (const record of records) {
        if (options.signal?.aborted) break;
        input.lines = record.line;
        this.stats.lines = record.line;
        const { problem } = record;
        if (problem !== undefined) {
          if (!options.skipInvalid) {
            throw new SluiceError(
              `${options.inputName ?? 'input'} line ${record.line}: ${problem}`,
              {
                code: 'BAD_INPUT',
                hint: 'fix the line, or pass --skip-invalid to set bad lines aside in a rejects part',
              },
            );
          }
          input.rejected++;
          rejects ??= new StagedFile(newFile(), 'jsonl');
          await rejects.add(
            JSON.stringify({ line: record.line, error: problem, ...rawOf(record) }),
          );
          continue;
        }
        input.valid++;
        const task = record.task as Task;
        if (!this.keeps(task)) {
          input.filtered++;
          continue;
        }
        this.count(task, counts);
        if (review) await review.add(reviewRow(task));
        const source = task.meta?.source;
        if (typeof source === 'string') {
          const seen = lineage.sources[source];
          if (seen !== undefined) lineage.sources[source] = seen + 1;
          else if (lineageSize < MAX_LINEAGE_SOURCES) {
            lineage.sources[source] = 1;
            lineageSize++;
          } else lineage.truncated = true;
        }
        const answer = this.groupBy.answer ? (task.answer ?? 'none') : undefined;
        const label = this.groupBy.label ? groupLabel(task) : undefined;
        const id = `${answer ?? ''}\u0000${label ?? ''}`;
        let group = groups.get(id);
        if (!group) {
          const values: Partial<Record<TemplateKey, string>> = { ...runValues };
          if (answer !== undefined) values.answer = answer;
          if (label !== undefined) values.label = label;
          group = { id, values, files: [] };
          groups.set(id, group);
        }
        let file = group.files.at(-1);
        if (!file || (options.maxPartRecords && file.records >= options.maxPartRecords)) {
          await file?.finish(); // a full part closes now, so open files stay one per group
          file = new StagedFile(newFile(), this.format, early(group.values, group.files.length));
          group.files.push(file);
        }
        // The line as it came (db-out's own bytes: `1.0` stays `1.0`), or the task serialized.
        const full = file.add(record.bytes ?? JSON.stringify(task));
        if (full) await full;
      }
      if (options.signal?.aborted) {
        throw new SluiceError('interrupted: nothing was written', { code: 'INTERRUPTED' });
      }
      if (input.lines === 0 && !options.allowEmpty) {
        throw new SluiceError(`${options.inputName ?? 'input'} is empty: nothing to export`, {
          code: 'BAD_INPUT',
          hint: 'check the command before the pipe (prodigy db-out DATASET); --allow-empty writes an empty export',
        });
      }
      const parts = await this.finishParts(groups);
      this.stats.parts = parts.length;
      const stagedRejects = rejects ? await rejects.finish() : undefined;
      const stagedReview = review
        ? { ...(await review.finish()), contentType: 'text/csv; charset=utf-8' }
        : undefined;
      const manifest: Manifest = {
        sluice: 'manifest/1',
        dataset: options.dataset ?? null,
        root: '',
        created: now.toISOString(),
        tool: options.tool ?? { name: '@sluice/core', version: '0' },
        format: this.format,
        filters: this.filters(),
        input,
        counts,
        parts: parts.map(({ entry }) => entry),
        rejects: stagedRejects
          ? {
              key: REJECTS_KEY,
              records: input.rejected,
              bytes: stagedRejects.bytes,
              sha256: stagedRejects.sha256,
            }
          : null,
        review: stagedReview
          ? {
              key: REVIEW_KEY,
              records: counts.records,
              bytes: stagedReview.bytes,
              sha256: stagedReview.sha256,
            }
          : null,
        ...(guidelines ? { guidelines: guidelines.entry } : {}),
        lineage,
      };
      return await this.publish(driver, previous, manifest, join(staging, MANIFEST_KEY), [
        ...parts.map(({ entry, staged, streamed }) => ({ key: entry.key, staged, streamed })),
        ...(stagedRejects ? [{ key: REJECTS_KEY, staged: stagedRejects }] : []),
        ...(stagedReview ? [{ key: REVIEW_KEY, staged: stagedReview }] : []),
        ...(guidelines ? [{ key: guidelines.entry.key, staged: guidelines.staged }] : []),
      ]);
    } catch (error) {
      // Nothing of a failed run may appear: uploads still open are dropped.
      await Promise.allSettled(streams.map((started) => started.abort()));
      // Stopping stdin mid-read surfaces as a stream error; the user asked for it.
      if (
        options.signal?.aborted &&
        !(error instanceof SluiceError && error.code === 'INTERRUPTED')
      ) {
        throw new SluiceError('interrupted: nothing was written', {
          code: 'INTERRUPTED',
          cause: error,
        });
      }
      throw error;
    } finally {
      await rm(staging, { recursive: true, force: true });
      await driver.close?.();
    }
  }

  private count(task: Task, counts: Manifest['counts']): void {
    counts.records++;
    increment(counts.answers, task.answer ?? 'none');
    for (const label of labelsOf(task)) increment(counts.labels, label);
    if (task.flagged === true) counts.flagged++;
    const annotator = task._annotator_id ?? task._session_id;
    if (typeof annotator === 'string') increment(counts.annotators, annotator);
  }

  private partKey(values: Group['values'], index: number, sha256 = ''): string {
    const key = renderTemplate(this.keyTemplate, {
      ...values,
      part: String(index).padStart(5, '0'),
      hash: sha256.slice(0, 16),
    });
    return assertSafeKey(key);
  }

  private async finishParts(groups: Map<string, Group>) {
    const parts: Array<{ entry: ManifestPart; staged: StagedPart; streamed?: PartStream }> = [];
    const sorted = [...groups.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const group of sorted) {
      for (const [i, file] of group.files.entries()) {
        const staged = await file.finish();
        const key = this.partKey(group.values, i, staged.sha256);
        parts.push({
          streamed: file.streamed,
          entry: {
            key,
            records: file.records,
            bytes: staged.bytes,
            sha256: staged.sha256,
            ...(group.values.answer !== undefined ? { answer: group.values.answer } : {}),
            ...(group.values.label !== undefined ? { label: group.values.label } : {}),
          },
          staged,
        });
      }
    }
    const keys = new Set<string>();
    for (const { entry } of parts) {
      if (
        keys.has(entry.key) ||
        [MANIFEST_KEY, REJECTS_KEY, REVIEW_KEY].includes(entry.key) ||
        entry.key.startsWith(`${GUIDELINES_KEY}.`)
      ) {
        throw usageError(
          `part key ${entry.key} would overwrite another part, ${MANIFEST_KEY}, ${REJECTS_KEY}, ${REVIEW_KEY} or the guidelines`,
          'put {part} (or {hash}) in --name so that every part gets a key of its own',
        );
      }
      keys.add(entry.key);
    }
    return parts;
  }

  private async publish(
    driver: SinkDriver,
    previous: Manifest | undefined,
    manifest: Manifest,
    manifestPath: string,
    files: Array<{ key: string; staged: StagedPart; streamed?: PartStream }>,
  ): Promise<SinkResult> {
    manifest.root = driver.root;
    const result = (
      status: SinkResult['status'],
      written: string[] = [],
      removed: string[] = [],
    ): SinkResult => ({
      status,
      root: driver.root,
      manifestKey: MANIFEST_KEY,
      manifest,
      written,
      removed,
    });
    if (previous && sameExport(previous, manifest)) return result('unchanged');
    if (this.options.dryRun) return result('dry-run', [...files.map((f) => f.key), MANIFEST_KEY]);
    if (previous && this.options.ifExists === 'skip') return result('skipped');
    if (previous && this.options.ifExists === 'fail') {
      throw new SluiceError(`${driver.root} already holds a different export`, {
        code: 'CONFLICT',
        connector: driver.connector,
        hint: 'pass --if-exists overwrite, or put {timestamp} in the URL for versioned exports',
      });
    }
    const before = new Map<string, string>();
    for (const part of [
      ...(previous?.parts ?? []),
      ...(previous?.rejects ? [previous.rejects] : []),
      ...(previous?.review ? [previous.review] : []),
      ...(previous?.guidelines ? [previous.guidelines] : []),
    ]) {
      before.set(part.key, part.sha256);
    }
    // The old manifest goes first, so no reader trusts it while parts change under it.
    if (previous) await driver.delete(MANIFEST_KEY);
    const written: string[] = [];
    const { dataset, ifAbsent } = this;
    try {
      for (const { key, staged, streamed } of files) {
        if (streamed) {
          await streamed.done;
          written.push(key);
        } else if (before.get(key) !== staged.sha256) {
          const metadata = { sha256: staged.sha256, ...dataset };
          await driver.write(key, { ...staged, metadata, ifAbsent });
          written.push(key);
        }
        this.stats.written++;
      }
      await this.writeManifest(driver, manifest, manifestPath);
    } catch (error) {
      if (ifAbsent && error instanceof SluiceError && error.code === 'CONFLICT') {
        // Another writer got there first; what was written here is not referenced by a manifest.
        if (this.options.ifExists === 'skip') return result('skipped', written);
        throw new SluiceError(`${driver.root}: another export appeared while writing this one`, {
          code: 'CONFLICT',
          connector: driver.connector,
          hint: 'another run is writing the same location: give each run its own ({timestamp}), or pass --if-exists overwrite',
          cause: error,
        });
      }
      throw error;
    }
    written.push(MANIFEST_KEY);
    const current = new Set(files.map((f) => f.key));
    const removed = [...before.keys()].filter((key) => !current.has(key));
    for (const key of removed) await driver.delete(assertSafeKey(key, driver.connector));
    return result('written', written, removed);
  }

  private async writeManifest(driver: SinkDriver, manifest: Manifest, path: string): Promise<void> {
    const body = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    await writeFile(path, body);
    const sha256 = createHash('sha256').update(body).digest('hex');
    await driver.write(MANIFEST_KEY, {
      path,
      bytes: body.length,
      sha256,
      contentType: 'application/json',
      metadata: { sha256, ...this.dataset },
      ifAbsent: this.ifAbsent,
    });
  }

  private async readManifest(driver: SinkDriver): Promise<Manifest | undefined> {
    const body = await driver.read(MANIFEST_KEY);
    if (!body) return undefined;
    try {
      const manifest = JSON.parse(body.toString('utf8')) as Manifest;
      return manifest?.sluice === 'manifest/1' ? manifest : undefined;
    } catch {
      return undefined; // not ours: treated as absent and replaced
    }
  }
}

/** Two exports are the same when their bytes and figures are; time and tool version don't count. */
function sameExport(a: Manifest, b: Manifest): boolean {
  const essence = (m: Manifest) =>
    JSON.stringify([
      m.dataset,
      m.format,
      m.filters,
      m.input,
      m.counts,
      m.parts,
      m.rejects,
      m.review ?? null,
      m.guidelines ?? null,
      m.lineage,
    ]);
  return essence(a) === essence(b);
}

/** Copies the guidelines file into staging, with its manifest entry. */
async function stageGuidelines(
  path: string,
  staged: string,
): Promise<{ entry: NonNullable<Manifest['guidelines']>; staged: StagedPart }> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw usageError(
      `--guidelines ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a folder, not a file' : (error as Error).message}`,
      'give the guidelines as one file (HTML, PDF, Markdown), e.g. from `confluence-source guidelines`',
    );
  }
  await writeFile(staged, body).catch((error: unknown) => {
    throw stagingError(error);
  });
  const extension = extname(path).toLowerCase();
  const sha256 = createHash('sha256').update(body).digest('hex');
  const key = `${GUIDELINES_KEY}${/^\.[a-z0-9]{1,8}$/.test(extension) ? extension : ''}`;
  return {
    entry: { key, name: basename(path), bytes: body.length, sha256 },
    staged: {
      path: staged,
      bytes: body.length,
      sha256,
      contentType: GUIDELINES_TYPES[extension] ?? 'application/octet-stream',
    },
  };
}

/** A line (or a task given as an object) on its way into staging. */
interface SinkRecord {
  line: number;
  /** The task, or with input bytes only the fields a sink reads (see scanTaskLine). */
  task?: unknown;
  /** Why the record is not a valid task. */
  problem?: string;
  /** The line's own bytes, stored as they are; absent for tasks given as objects. */
  bytes?: Buffer;
}

/** The record as rejects.jsonl keeps it: text, or base64 when the bytes are not UTF-8. */
function rawOf(record: SinkRecord): { raw: string } | { raw_base64: string } {
  const { bytes } = record;
  if (!bytes) return { raw: JSON.stringify(record.task) ?? '' };
  return isUtf8(bytes) ? { raw: bytes.toString('utf8') } : { raw_base64: bytes.toString('base64') };
}

async function* taskRecords(
  tasks: AsyncIterable<Task> | Iterable<Task>,
): AsyncGenerator<SinkRecord> {
  let line = 0;
  for await (const task of tasks) {
    line++;
    yield { line, task, problem: validateTask(task, { tokens: false }) };
  }
}

/**
 * For sinks on stores with real folders (Drive, File 360): the id of the folder at a path below
 * `root`, found (or made, when `create` is set) one segment at a time by `step`, once per run.
 * A path looked up and missing, or whose lookup failed, is looked up again next time.
 */
export function folderPaths<Id>(
  root: Id,
  step: (parent: Id, name: string, create: boolean) => Promise<Id | undefined>,
): (segments: string[], create: boolean) => Promise<Id | undefined> {
  const known = new Map<string, Promise<Id | undefined>>();
  const folderAt = (segments: string[], create: boolean): Promise<Id | undefined> => {
    if (segments.length === 0) return Promise.resolve(root);
    const path = segments.join('/');
    const seen = known.get(path);
    if (seen) return seen;
    const pending = folderAt(segments.slice(0, -1), create).then((parent) =>
      parent === undefined ? undefined : step(parent, segments.at(-1) as string, create),
    );
    known.set(path, pending);
    pending.then(
      (id) => id === undefined && known.delete(path),
      () => known.delete(path),
    );
    return pending;
  };
  return folderAt;
}

/**
 * Wraps a connector's driver into a sink. `url` is the export root template (run-level
 * placeholders); `openDriver` gets the rendered root URI.
 */
export function createSink(
  openDriver: (root: string) => SinkDriver | Promise<SinkDriver>,
  url: string,
  options: SinkOptions = {},
): Sink {
  const run = new SinkRun(openDriver, url, options);
  return {
    stats: run.stats,
    write: (tasks) => run.run(taskRecords(tasks)),
    writeJsonl: (input) =>
      run.run(
        scanJsonl(input, {
          name: options.inputName ?? 'input',
          maxLineBytes: options.maxLineBytes,
          invalid: options.skipInvalid ? 'yield' : 'throw',
        }),
      ),
  };
}
