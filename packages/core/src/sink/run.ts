// A sink run: read and check every line into local staging, then publish through the commit
// protocol (commit.ts). The connector only supplies a driver.
import { isUtf8 } from 'node:buffer';
import { rm, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { SluiceError, usageError } from '../errors.js';
import { maxLineBytesOf, scanJsonl } from '../jsonl.js';
import { type Task, validateTask } from '../task.js';
import {
  assertSafeKey,
  isSafeKey,
  renderTemplate,
  type TemplateKey,
  templateKeys,
} from '../template.js';
import type { BlockTally } from './check.js';
import { type Block, BlockCheckers, BlockReader, checkThreads } from './checkers.js';
import { type LiveExport, Publication, readLive } from './commit.js';
import type { PartStream, SinkDriver, StagedPart } from './driver.js';
import { groupLabel, labelsOf, scoreProblem, type TaskFilters, taskFilter } from './filters.js';
import {
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  manifestFiles,
  sameExport,
} from './manifest.js';
import {
  caseDistinct,
  escapeReserved,
  MANIFEST_KEY,
  newRunTag,
  REJECTS_KEY,
  REVIEW_KEY,
  splitTemplate,
  taggedKey,
} from './naming.js';
import { REVIEW_COLUMNS, reviewRow } from './review.js';
import {
  CONTENT_TYPES,
  createStaging,
  EXTENSIONS,
  guidelinesName,
  SINK_FORMATS,
  type SinkFormat,
  StagedFile,
  stageGuidelines,
  stagingError,
  sweepStaging,
} from './staging.js';

export interface SinkOptions extends TaskFilters {
  /** Dataset name: fills `{dataset}` and is recorded in the manifest. */
  dataset?: string;
  /** Part name template under the export root (default `part-{part}`; the extension is added). */
  name?: string;
  /** Serialization of parts (default jsonl). */
  format?: SinkFormat;
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
  /** Aborting stops the run: before the manifest is committed, nothing of it is published. */
  signal?: AbortSignal;
  /** Receives warnings (a store that ignores conditional writes, leftovers that could not be removed); the library never prints them. */
  onWarning?: (message: string) => void;
}

export interface SinkResult {
  /** `written`, `unchanged` (same export already there), `skipped` (--if-exists skip) or `dry-run`. */
  status: 'written' | 'unchanged' | 'skipped' | 'dry-run';
  root: string;
  manifestKey: string;
  /** The manifest at the root after the run (for a dry run, the one it would write). */
  manifest: Manifest;
  /** Keys written (files, then the manifest); for a dry run, the names of the files it would write. */
  written: string[];
  /** Keys of the export this run replaced that the new one no longer lists. */
  removed: string[];
  /** Keys left by earlier runs that failed, lost or were killed, removed by this run. */
  swept: string[];
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

const MAX_LINEAGE_SOURCES = 10_000;

/** A line (or a task given as an object) on its way into staging. */
interface SinkRecord {
  line: number;
  /** The task, or with input bytes only the fields a sink reads (see scanTaskLine). */
  task?: unknown;
  /** Why the record is not a valid task. */
  problem?: string;
  /** The line's own bytes, stored as they are; absent for tasks given as objects. */
  bytes?: Buffer;
  /** A piece of a line too long to hold: `bytes` continue it, `last` ends it. */
  spill?: { first: boolean; last: boolean };
}

/** Lines checked off this thread that go into a part as they came, with their tallies. */
interface CleanBlock {
  block: Buffer;
  /** Number of the block's last line. */
  lastLine: number;
  tally: BlockTally;
  /** Where each record of the block ends (after its LF). */
  ends: number[];
}

/** The record as rejects.jsonl keeps it: text, or base64 when the bytes are not UTF-8. */
function rawOf(record: SinkRecord): { raw: string } | { raw_base64: string } {
  const { bytes } = record;
  if (!bytes) return { raw: JSON.stringify(record.task) ?? '' };
  return isUtf8(bytes) ? { raw: bytes.toString('utf8') } : { raw_base64: bytes.toString('base64') };
}

/** Base64 of bytes that arrive in pieces: whole 3-byte groups as they come, the rest at the end. */
class Base64Pieces {
  private rest = Buffer.alloc(0);
  push(bytes: Buffer): string {
    const all = this.rest.length ? Buffer.concat([this.rest, bytes]) : bytes;
    const whole = all.length - (all.length % 3);
    this.rest = Buffer.from(all.subarray(whole));
    return all.subarray(0, whole).toString('base64');
  }
  end(): string {
    return this.rest.toString('base64');
  }
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

function increment(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

interface Group {
  /** Sort key: the group's placeholder values. */
  id: string;
  values: Partial<Record<TemplateKey, string>>;
  files: StagedFile[];
}

/** A file of the new export on its way to the store. */
interface Outgoing {
  name: string;
  /** The extension the run's tag goes before. */
  ext: string;
  staged: StagedPart;
  streamed?: PartStream;
  /** The key, once decided: a fresh tagged one, or an unchanged file's key in the live export. */
  key?: string;
  reused?: boolean;
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
  private readonly keeps: (task: Task) => boolean;
  /** With a score filter, a score that is not a number is bad input, not a silent drop. */
  private readonly scoreFiltered: boolean;
  private readonly tag = newRunTag();

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
    if (keys.has('dataset') && !options.dataset) {
      throw usageError(
        `${url} uses {dataset} but no dataset was given`,
        'pass --dataset NAME (the Prodigy dataset you exported)',
      );
    }
    this.keeps = taskFilter(options);
    this.scoreFiltered = options.minScore !== undefined || options.maxScore !== undefined;
  }

  /**
   * The input's lines, checked in worker threads a block at a time (see checkers.ts): a block
   * whose lines all go into a part as they came stays whole, others come line by line. A line
   * too long for a block, and everything after it, is read line by line here.
   */
  async *checked(
    input: AsyncIterable<Uint8Array | string>,
  ): AsyncGenerator<SinkRecord | CleanBlock> {
    const { options } = this;
    const { answer, flagged, minScore, maxScore, label, match } = options;
    const maxLineBytes = maxLineBytesOf(options);
    const checkers = new BlockCheckers({
      filters: { answer, flagged, minScore, maxScore, label, match },
      scoreFiltered: this.scoreFiltered,
      summaries:
        this.format === 'jsonl' && !this.groupBy.answer && !this.groupBy.label && !options.csv,
      maxLineBytes,
    });
    const reader = new BlockReader(input, checkers, maxLineBytes);
    try {
      for (;;) {
        const next = await reader.next();
        if (next === undefined) return;
        let from: Block | undefined;
        if (!('long' in next)) {
          const result = await next.result;
          if ('clean' in result) {
            const lastLine = next.firstLine + result.lines - 1;
            yield { block: next.bytes, lastLine, tally: result.clean, ends: result.ends };
            continue;
          }
          if ('records' in result) {
            for (const { line, start, end, task, problem } of result.records) {
              yield { line, task, problem, bytes: next.bytes.subarray(start, end) };
            }
            continue;
          }
          from = next;
        }
        yield* scanJsonl(reader.rest(from), {
          name: options.inputName ?? 'input',
          maxLineBytes,
          invalid: options.skipInvalid ? 'yield' : 'throw',
          firstLine: from?.firstLine ?? (next as { long: number }).long,
        });
        return;
      }
    } finally {
      await checkers.close();
    }
  }

  private filters(): Record<string, unknown> {
    const { answer, flagged, minScore, maxScore, label, match, maxPartRecords } = this.options;
    return Object.fromEntries(
      Object.entries({ answer, flagged, minScore, maxScore, label, match, maxPartRecords }).filter(
        ([, value]) => value !== undefined,
      ),
    );
  }

  /** The values of the run placeholders: {dataset}, {date}, {timestamp}. */
  private runValues(): Partial<Record<TemplateKey, string>> {
    const iso = (this.options.now ?? new Date()).toISOString();
    return {
      dataset: this.options.dataset,
      date: iso.slice(0, 10),
      timestamp: iso.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z'),
    };
  }

  private warn(message: string): void {
    this.options.onWarning?.(message);
  }

  private interrupted(begun: boolean | undefined, cause?: unknown): SluiceError {
    return new SluiceError(
      begun
        ? 'interrupted before the export was committed: nothing was published, and what this run wrote is removed (an upload cut short, by the next run)'
        : 'interrupted: nothing was written',
      { code: 'INTERRUPTED', cause },
    );
  }

  async run(records: AsyncIterable<SinkRecord | CleanBlock>): Promise<SinkResult> {
    const { options } = this;
    const now = options.now ?? new Date();
    const runValues = this.runValues();
    // The destination is checked before stdin is read, so a wrong URL fails at once.
    const driver = await this.openDriver(renderTemplate(this.rootTemplate, runValues));
    let staging: string | undefined;
    let publication: Publication | undefined;
    const streams: PartStream[] = [];
    try {
      await driver.check?.();
      // Read first: it is needed anyway, and it proves the destination and credentials work
      // before stdin is read.
      const live = await readLive(driver);
      await sweepStaging();
      staging = await createStaging();
      const folder = staging;
      const stage = async (name: string, body: Buffer) => {
        const path = join(folder, name);
        await writeFile(path, body).catch((error: unknown) => {
          throw stagingError(error);
        });
        return path;
      };
      const started = new Publication(driver, this.tag, live, stage, (m) => this.warn(m));
      publication = started;
      // The guidelines are copied first: a wrong path fails before stdin is read.
      const guidelines = options.guidelines
        ? await stageGuidelines(options.guidelines, join(staging, 'guidelines'))
        : undefined;
      // A root with no export has nothing to compare with or protect: large parts upload
      // while staged, once the run's marker is there.
      const streaming =
        !live.manifest && !options.dryRun && this.streamable && driver.stream !== undefined;
      if (streaming) await started.begin();
      const staged = await this.stage(records, folder, driver, streaming, streams, started);
      const { input, counts, lineage, groups, rejects, review } = staged;
      if (options.signal?.aborted) throw this.interrupted(publication?.begun);
      if (input.lines === 0 && !options.allowEmpty) {
        throw new SluiceError(`${options.inputName ?? 'input'} is empty: nothing to export`, {
          code: 'BAD_INPUT',
          hint: 'check the command before the pipe (prodigy db-out DATASET); --allow-empty writes an empty export',
        });
      }
      const parts = await this.finishParts(groups, guidelines?.name);
      this.stats.parts = parts.length;
      const rejectsFile = rejects
        ? { name: REJECTS_KEY, ext: '.jsonl', staged: await rejects.finish() }
        : undefined;
      const reviewFile = review
        ? {
            name: REVIEW_KEY,
            ext: '.csv',
            staged: { ...(await review.finish()), contentType: 'text/csv; charset=utf-8' },
          }
        : undefined;
      const guidelinesFile = guidelines && { ...guidelines, ext: extname(guidelines.name) };
      const outgoing: Outgoing[] = parts.map(({ file }) => file);
      for (const file of [rejectsFile, reviewFile, guidelinesFile]) if (file) outgoing.push(file);
      const partFiles = new Set(parts.map(({ file }) => file));
      const manifest = (): Manifest => {
        const entry = (file: Outgoing): ManifestFile => ({
          key: file.key ?? file.name,
          name: file.name,
          bytes: file.staged.bytes,
          sha256: file.staged.sha256,
        });
        return {
          sluice: MANIFEST_VERSION,
          run: this.tag,
          dataset: options.dataset ?? null,
          root: driver.root,
          created: now.toISOString(),
          tool: options.tool ?? { name: '@sluice/core', version: '0' },
          format: this.format,
          filters: this.filters(),
          input,
          counts,
          parts: parts.map(({ file, records, group }) => ({
            ...entry(file),
            records,
            ...(group.answer !== undefined ? { answer: group.answer } : {}),
            ...(group.label !== undefined ? { label: group.label } : {}),
          })),
          rejects: rejectsFile ? { ...entry(rejectsFile), records: input.rejected } : null,
          review: reviewFile ? { ...entry(reviewFile), records: counts.records } : null,
          ...(guidelinesFile
            ? { guidelines: { ...entry(guidelinesFile), name: guidelinesFile.original } }
            : {}),
          lineage,
        };
      };
      const result = (
        status: SinkResult['status'],
        shown: Manifest,
        written: string[] = [],
        removed: string[] = [],
        swept: string[] = [],
      ): SinkResult => ({
        status,
        root: driver.root,
        manifestKey: MANIFEST_KEY,
        manifest: shown,
        written,
        removed,
        swept,
      });
      const draft = manifest();
      if (live.manifest && sameExport(live.manifest, draft)) {
        return result('unchanged', live.manifest, [], [], await this.tidy(started));
      }
      if (options.dryRun) {
        return result('dry-run', draft, [...outgoing.map((f) => f.name), MANIFEST_KEY]);
      }
      if (live.manifest && options.ifExists === 'skip') {
        return result('skipped', live.manifest, [], [], await this.tidy(started));
      }
      if (live.manifest && options.ifExists === 'fail') {
        throw new SluiceError(`${driver.root} already holds a different export`, {
          code: 'CONFLICT',
          connector: driver.connector,
          hint: 'pass --if-exists overwrite, or put {timestamp} in the URL for versioned exports',
        });
      }
      await started.begin();
      this.decideKeys(outgoing, live, started.atomic);
      const written: string[] = [];
      try {
        for (const file of outgoing) {
          if (options.signal?.aborted) throw this.interrupted(publication?.begun);
          const key = file.key as string;
          if (!file.reused) {
            // A part streamed while staged is there once its upload is done; one whose stream
            // failed goes up from its staged file, as other parts do (with the store's retries).
            const streamed = await file.streamed?.done.then(
              () => true,
              () => false,
            );
            if (!streamed) {
              const metadata = { sha256: file.staged.sha256, ...this.dataset };
              await started.write(key, { ...file.staged, metadata }, options.signal);
            }
            written.push(key);
          }
          if (partFiles.has(file)) this.stats.written++;
        }
        if (options.signal?.aborted) throw this.interrupted(publication?.begun);
        await started.commit(manifest());
      } catch (error) {
        throw this.unpublished(await started.explain(error), driver, live, started.uncertain);
      }
      written.push(MANIFEST_KEY);
      // Committed: the export is published. A signal from here on changes nothing.
      let tidied = { removed: [] as string[], swept: [] as string[] };
      try {
        tidied = await started.finish();
      } catch (error) {
        this.warn(
          `the export is committed, but removing the files it replaced failed (${(error as Error).message}); the next run removes them`,
        );
      }
      return result('written', manifest(), written, tidied.removed, tidied.swept);
    } catch (error) {
      // Nothing of a failed run may appear: uploads still open are dropped, files written go.
      const begun = publication?.begun;
      await Promise.allSettled(streams.map((started) => started.abort()));
      await publication?.abandon();
      // Stopping stdin mid-read surfaces as a stream error; the user asked for it.
      if (
        options.signal?.aborted &&
        !(error instanceof SluiceError && error.code === 'INTERRUPTED')
      ) {
        throw this.interrupted(begun, error);
      }
      throw error;
    } finally {
      if (staging) await rm(staging, { recursive: true, force: true });
      await driver.close?.();
    }
  }

  /** A failure while publishing says whether anything was published (unless it says so already). */
  private unpublished(
    error: unknown,
    driver: SinkDriver,
    live: LiveExport,
    uncertain: boolean,
  ): unknown {
    if (!(error instanceof SluiceError) || ['INTERRUPTED', 'CONFLICT'].includes(error.code)) {
      return error;
    }
    const kept = live.manifest ? `: ${driver.root} still holds the previous export` : '';
    const what = uncertain
      ? 'the store did not answer the commit: run again to finish or undo it'
      : `nothing was published${kept}`;
    return new SluiceError(`${error.message} (${what})`, {
      code: error.code,
      connector: error.connector,
      hint: error.hint,
      cause: error.cause ?? error,
      retryable: error.retryable,
    });
  }

  /** For a run that writes nothing: removes what crashed runs left, without failing the run. */
  private async tidy(publication: Publication): Promise<string[]> {
    try {
      return (await publication.finish()).swept;
    } catch (error) {
      this.warn(`could not remove files that earlier runs left: ${(error as Error).message}`);
      return [];
    }
  }

  /**
   * Reads, checks, filters and serializes every record into staging. A bad line stops here,
   * before anything is written to the store.
   */
  private async stage(
    records: AsyncIterable<SinkRecord | CleanBlock>,
    folder: string,
    driver: SinkDriver,
    streaming: boolean,
    streams: PartStream[],
    publication: Publication,
  ) {
    const { options } = this;
    const runValues = this.runValues();
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
    const newFile = () => join(folder, `${files++}`);
    const review = options.csv ? new StagedFile(newFile(), 'jsonl') : undefined;
    review?.add(REVIEW_COLUMNS.join(','));
    let spill: Base64Pieces | undefined;
    const { stream } = driver;
    const early = (values: Group['values'], index: number) =>
      streaming && stream
        ? {
            from: driver.streamFrom ?? 8 * 1024 * 1024,
            open: () => {
              const key = taggedKey(
                this.partName(values, index),
                EXTENSIONS[this.format],
                this.tag,
              );
              const started = stream.call(driver, key, {
                contentType: CONTENT_TYPES[this.format],
                metadata: this.dataset,
              });
              publication.wrote(key);
              streams.push(started);
              return started;
            },
          }
        : undefined;
    const addSource = (source: string, by: number) => {
      const seen = lineage.sources[source];
      if (seen !== undefined) lineage.sources[source] = seen + by;
      else if (lineageSize < MAX_LINEAGE_SOURCES) {
        lineage.sources[source] = by;
        lineageSize++;
      } else lineage.truncated = true;
    };
    const groupOf = (answer: string | undefined, label: string | undefined): Group => {
      const id = `${answer ?? ''}\u0000${label ?? ''}`;
      let group = groups.get(id);
      if (!group) {
        const values: Partial<Record<TemplateKey, string>> = { ...runValues };
        if (answer !== undefined) values.answer = answer;
        if (label !== undefined) values.label = label;
        group = { id, values, files: [] };
        groups.set(id, group);
      }
      return group;
    };
    /** The group's open part, a new one when it is full. */
    const fileOf = async (group: Group): Promise<StagedFile> => {
      let file = group.files.at(-1);
      if (!file || (options.maxPartRecords && file.records >= options.maxPartRecords)) {
        await file?.finish(); // a full part closes now, so open files stay one per group
        file = new StagedFile(newFile(), this.format, early(group.values, group.files.length));
        group.files.push(file);
      }
      return file;
    };
    for await (const record of records) {
      if (options.signal?.aborted) break;
      if ('block' in record) {
        // Checked off this thread and kept whole: tallies and bytes as they came.
        const { block, tally, ends } = record;
        input.lines = record.lastLine;
        this.stats.lines = record.lastLine;
        input.valid += tally.records;
        counts.records += tally.records;
        for (const [answer, n] of tally.answers) increment(counts.answers, answer, n);
        for (const [label, n] of tally.labels) increment(counts.labels, label, n);
        counts.flagged += tally.flagged;
        for (const [annotator, n] of tally.annotators) increment(counts.annotators, annotator, n);
        for (const [source, n] of tally.sources) addSource(source, n);
        const group = groupOf(undefined, undefined);
        for (let done = 0, from = 0; done < tally.records; ) {
          const file = await fileOf(group);
          const left = tally.records - done;
          const take = options.maxPartRecords
            ? Math.min(left, options.maxPartRecords - file.records)
            : left;
          const to = take === left ? block.length : (ends[done + take - 1] as number);
          const full = file.addBlock(block.subarray(from, to), take);
          done += take;
          from = to;
          if (full) await full;
        }
        continue;
      }
      input.lines = record.line;
      this.stats.lines = record.line;
      const task = record.task as Task | undefined;
      const problem =
        record.problem ?? (this.scoreFiltered && task ? scoreProblem(task) : undefined);
      if (problem !== undefined) {
        if (!options.skipInvalid) {
          throw new SluiceError(`${options.inputName ?? 'input'} line ${record.line}: ${problem}`, {
            code: 'BAD_INPUT',
            hint: 'fix the line, or pass --skip-invalid to set bad lines aside in a rejects part',
          });
        }
        rejects ??= new StagedFile(newFile(), 'jsonl');
        if (record.spill) {
          // An over-long line streams into rejects as base64, never held whole in memory.
          if (record.spill.first) {
            input.rejected++;
            spill = new Base64Pieces();
            const head = `{"line":${record.line},"error":${JSON.stringify(problem)},"raw_base64":"`;
            await rejects.addPiece(head, false);
          }
          const piece = (spill as Base64Pieces).push(record.bytes as Buffer);
          const tail = record.spill.last ? `${(spill as Base64Pieces).end()}"}` : '';
          await rejects.addPiece(piece + tail, record.spill.last);
          continue;
        }
        input.rejected++;
        await rejects.add(JSON.stringify({ line: record.line, error: problem, ...rawOf(record) }));
        continue;
      }
      input.valid++;
      if (!this.keeps(task as Task)) {
        input.filtered++;
        continue;
      }
      this.count(task as Task, counts);
      if (review) await review.add(reviewRow(task as Task));
      const source = task?.meta?.source;
      if (typeof source === 'string') addSource(source, 1);
      const answer = this.groupBy.answer ? ((task as Task).answer ?? 'none') : undefined;
      const label = this.groupBy.label ? groupLabel(task as Task) : undefined;
      const file = await fileOf(groupOf(answer, label));
      // The line as it came (db-out's own bytes: `1.0` stays `1.0`), or the task serialized.
      const full = file.add(record.bytes ?? JSON.stringify(task));
      if (full) await full;
    }
    return { input, counts, lineage, groups, rejects, review };
  }

  private count(task: Task, counts: Manifest['counts']): void {
    counts.records++;
    increment(counts.answers, task.answer ?? 'none');
    for (const label of labelsOf(task)) increment(counts.labels, label);
    if (task.flagged === true) counts.flagged++;
    const annotator = task._annotator_id ?? task._session_id;
    if (typeof annotator === 'string') increment(counts.annotators, annotator);
  }

  /** A part's name: the template filled in, values escaped, reserved names kept out of reach. */
  private partName(values: Group['values'], index: number, sha256 = ''): string {
    const name = renderTemplate(this.keyTemplate, {
      ...values,
      part: String(index).padStart(5, '0'),
      hash: sha256.slice(0, 16),
    });
    return escapeReserved(assertSafeKey(name));
  }

  private async finishParts(groups: Map<string, Group>, guidelines: string | undefined) {
    const ext = EXTENSIONS[this.format];
    const parts: Array<{
      file: Outgoing;
      records: number;
      group: { answer?: string; label?: string };
    }> = [];
    const sorted = [...groups.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const group of sorted) {
      for (const [i, file] of group.files.entries()) {
        const staged = await file.finish();
        parts.push({
          file: {
            name: this.partName(group.values, i, staged.sha256),
            ext,
            staged,
            streamed: file.streamed,
          },
          records: file.records,
          group: { answer: group.values.answer, label: group.values.label },
        });
      }
    }
    const names = caseDistinct(
      parts.map(({ file }) => file.name),
      ext,
    );
    const taken = new Set([MANIFEST_KEY, REJECTS_KEY, REVIEW_KEY, guidelines ?? MANIFEST_KEY]);
    for (const [i, { file }] of parts.entries()) {
      const name = names[i] as string;
      if (taken.has(name.toLowerCase()) || taken.has(name)) {
        throw usageError(
          `part key ${name} would overwrite another part, ${MANIFEST_KEY}, ${REJECTS_KEY}, ${REVIEW_KEY} or the guidelines`,
          'put {part} (or {hash}) in --name so that every part gets a key of its own',
        );
      }
      taken.add(name).add(name.toLowerCase());
      if (file.streamed && name !== file.name) {
        throw new SluiceError(`streamed part ${file.name} was renamed to ${name}`, {
          code: 'INTERNAL',
        });
      }
      file.name = name;
      if (file.streamed) file.key = taggedKey(name, ext, this.tag);
    }
    return parts;
  }

  /**
   * Gives every file its key: an unchanged file keeps its key in the live export (only where
   * commits are enforced, so that no other export can have listed it meanwhile), and every
   * other file a fresh key with this run's tag.
   */
  private decideKeys(files: Outgoing[], live: LiveExport, reuse: boolean): void {
    const before = new Map<string, ManifestFile>();
    if (reuse && live.manifest) {
      for (const file of manifestFiles(live.manifest)) {
        const name = file === live.manifest.guidelines ? guidelinesName(file.name) : file.name;
        before.set(name, file);
      }
    }
    for (const file of files) {
      if (file.key) continue; // streamed
      const old = before.get(file.name);
      if (old && old.sha256 === file.staged.sha256 && old.bytes === file.staged.bytes) {
        file.key = old.key;
        file.reused = true;
        continue;
      }
      file.key = taggedKey(file.name, file.ext, this.tag);
    }
  }
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
        checkThreads() > 0
          ? run.checked(input)
          : // Every line in this thread, one at a time: the reference the blocks are held to.
            scanJsonl(input, {
              name: options.inputName ?? 'input',
              maxLineBytes: options.maxLineBytes,
              invalid: options.skipInvalid ? 'yield' : 'throw',
            }),
      ),
  };
}
