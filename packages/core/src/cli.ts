import { closeSync, createReadStream, fstatSync, openSync } from 'node:fs';
import { devNull } from 'node:os';
import cliProgress from 'cli-progress';
import { Command, CommanderError, Option } from 'commander';
import { FORMATS, type Format } from './convert.js';
import {
  type FetchedImage,
  type LabelEntry,
  selfContainedHtml,
  writeGuidelines,
  writeLabelFiles,
} from './documents.js';
import { isSluiceError, redact, SluiceError, toSluiceError, usageError } from './errors.js';
import { keepHeapSmall } from './heap.js';
import { writeJsonl } from './jsonl.js';
import { DEFAULT_MEDIA_PREFETCH, MEDIA_MODES, type MediaMode, parseOrigins } from './media.js';
import { debugLog } from './redact.js';
import { parseShard, parseSize, parseTime } from './select.js';
import {
  SINK_FORMATS,
  type Sink,
  type SinkFormat,
  type SinkOptions,
  type SinkResult,
  type TaskFilters,
} from './sink/index.js';
import type { Source, SourceOptions } from './source.js';
import type { Answer } from './task.js';

const debug = debugLog('sluice');

/** Exit codes of every Sluice CLI. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130, terminated: 143 } as const;

/** What a connector tells the CLI kit about itself. */
export interface CliInfo {
  /** Bin name, e.g. `s3-source`. */
  bin: string;
  /** Package name and version, recorded in manifests and shown by --version. */
  packageName: string;
  version: string;
  /** One line on what the command does. */
  description: string;
  /** What the URL argument is, e.g. `s3://bucket/prefix`. */
  url: string;
  /** Example command lines for --help. */
  examples: string[];
  /**
   * Sinks: what `--if-exists` calls replacing an earlier export, with its help (default
   * `overwrite`). File 360 says `version`: its documents keep their earlier versions.
   * `overwrite` is accepted either way.
   */
  replace?: { name: string; help: string };
}

/** Parsed flags of a command: core's plus the connector's own. */
export type Flags = Record<string, unknown>;

interface Io {
  argv: string[];
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Sets the exit code; `now` ends the process at once, dropping output not yet written. */
  exit: (code: number, now?: boolean) => void;
}

/** Bytes a sink reads at once from a file given as stdin (`s3-sink URL < export.jsonl`). */
const FILE_STDIN_READ_BYTES = 1024 * 1024;

/**
 * Standard input; a regular file is read in 1 MiB reads from where its descriptor stands,
 * instead of the 64 KiB of `process.stdin` (4 to 13% of a 500 MB export's time to S3 in
 * bench/). A pipe or terminal is `process.stdin` itself.
 */
function standardInput(): Io['stdin'] {
  let file = false;
  try {
    file = fstatSync(0).isFile();
  } catch {
    // No descriptor 0 (a closed stdin): process.stdin says so when read.
  }
  return file
    ? createReadStream('', { fd: 0, autoClose: false, highWaterMark: FILE_STDIN_READ_BYTES })
    : process.stdin;
}

const defaultIo = (): Io => ({
  argv: process.argv,
  stdin: standardInput(),
  stdout: process.stdout,
  stderr: process.stderr,
  exit: (code, now) => {
    process.exitCode = code;
    if (now) process.exit(code);
  },
});

const list = (value: string, previous: string[] = []) => [
  ...previous,
  ...value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean),
];
const repeat = (value: string, previous: string[] = []) => [...previous, value];

function number(
  flag: string,
  { integer = false, min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY } = {},
) {
  return (value: string) => {
    const n = Number(value);
    const bad = value.trim() === '' || Number.isNaN(n) || (integer && !Number.isInteger(n));
    if (bad || n < min || n > max) {
      const range =
        max < Number.POSITIVE_INFINITY
          ? ` from ${min} to ${max}`
          : min > Number.NEGATIVE_INFINITY
            ? ` >= ${min}`
            : '';
      throw usageError(
        `${flag} expects ${integer ? 'an integer' : 'a number'}${range}, got "${value}"`,
      );
    }
    return n;
  };
}

/** A commander option parser for connector flags: an integer from `min` to `max`, or a usage error. */
export function integerFlag(flag: string, min: number, max?: number): (value: string) => number {
  return number(flag, { integer: true, min, max });
}

function choice<T extends string>(flag: string, choices: readonly T[]) {
  return (value: string) => {
    if (!choices.includes(value as T)) {
      throw usageError(`${flag} must be one of ${choices.join(', ')}, got "${value}"`);
    }
    return value as T;
  };
}

function baseCommand(info: CliInfo, io: Io): Command {
  // `--help | head` closes the pipe early: that is the reader's choice, not an error to print.
  io.stdout.on('error', (error) => {
    if (!isEpipe(error)) throw error;
  });
  const program = new Command(info.bin)
    .description(info.description)
    .version(info.version, '-V, --version')
    .argument('<url>', info.url)
    .option('-q, --quiet', 'print nothing on stderr but errors')
    .option('--json-summary', 'print the final summary as one JSON line on stderr')
    .showHelpAfterError(false)
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => toStderr(io, text),
    })
    .exitOverride();
  program.addHelpText(
    'after',
    `\nExamples:\n${info.examples.map((line) => `  $ ${line}`).join('\n')}\n\nExit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).\nDebug logging (stack traces of unexpected errors): NODE_DEBUG=sluice.\n`,
  );
  return program;
}

/** Adds every core source flag to a command. */
function sourceFlags(program: Command): void {
  program
    .option(
      '--include <glob>',
      'only keys matching this glob (repeatable; *.jpg matches at any depth)',
      repeat,
    )
    .option('--exclude <glob>', 'skip keys matching this glob (repeatable)', repeat)
    .option('--since <time>', 'only items modified since an ISO time or a duration ago (24h, 7d)')
    .option('--before <time>', 'only items modified before an ISO time or a duration ago')
    .option('--min-size <size>', 'only items of at least this size (bytes, 64k, 5MB)')
    .option('--max-size <size>', 'only items of at most this size')
    .option(
      '--type <types>',
      'only items of these content types, comma-separated (image/*, text/csv)',
      list,
    )
    .option(
      '--limit <n>',
      'stop after this many items',
      number('--limit', { integer: true, min: 0 }),
    )
    .option(
      '--sample <fraction>',
      'keep a deterministic fraction of items, e.g. 0.1',
      number('--sample'),
    )
    .option('--seed <seed>', 'seed of --sample (default: none)')
    .option('--shard <k/n>', 'keep only shard k of n (1-based), so n processes split a store')
    .addOption(
      new Option(
        '--format <format>',
        'convert every item with this format instead of guessing',
      ).argParser(choice('--format', FORMATS)),
    )
    .addOption(
      new Option(
        '--text-mode <mode>',
        'text items: a task per line or per file (default: line; a file for documents a connector exports, such as Google Docs)',
      ).argParser(choice('--text-mode', ['line', 'file'] as const)),
    )
    .addOption(
      new Option(
        '--media <mode>',
        'images, audio, video: proxy (local server, stable URLs), inline (data URI), or signed (URLs expire, so Prodigy task hashes change between runs)',
      )
        .argParser(choice('--media', MEDIA_MODES))
        .default('proxy'),
    )
    .option('--media-host <host>', 'interface of the media proxy', '127.0.0.1')
    .option(
      '--media-port <port>',
      'port of the media proxy (keep it fixed: task hashes include the URL)',
      number('--media-port', { integer: true, min: 0 }),
      8099,
    )
    .option('--media-base-url <url>', 'base URL written into tasks instead of http://host:port')
    .option(
      '--media-origin <origins>',
      "origins of Prodigy's web app that may read media, comma-separated (default: http://localhost:8080 and http://127.0.0.1:8080, on PRODIGY_PORT when set)",
      list,
    )
    .option(
      '--media-key-file <path>',
      'secret behind the media URLs, made on first use (default: ~/.config/sluice/media.key)',
    )
    .option(
      '--media-prefetch <n>',
      'media items the proxy reads ahead of the browser, in stream order (0: none)',
      number('--media-prefetch', { integer: true, min: 0 }),
      DEFAULT_MEDIA_PREFETCH,
    )
    .option('--media-prefetch-bytes <size>', 'memory the items read ahead may take', '64MB')
    .option(
      '--url-ttl <seconds>',
      'lifetime of signed URLs',
      number('--url-ttl', { integer: true, min: 1 }),
      3600,
    )
    .option('--inline-max-bytes <size>', 'largest media item to inline', '5MB')
    .option('--max-line-bytes <size>', 'longest line accepted in jsonl and txt items', '64MB')
    .option('--max-document-bytes <size>', 'largest json, html or whole-file txt item', '256MB')
    .option(
      '--concurrency <n>',
      'items fetched at once',
      number('--concurrency', { integer: true, min: 1 }),
      8,
    )
    .addOption(
      new Option('--order <order>', 'fetched: as items arrive; listing: in listing order')
        .argParser(choice('--order', ['fetched', 'listing'] as const))
        .default('fetched'),
    )
    .option('--state <path>', 'checkpoint file: a rerun emits only new or changed items')
    .option(
      '--watch <seconds>',
      'keep polling for new or changed items every N seconds',
      number('--watch', { min: 0.1 }),
    )
    .option('--skip-errors', 'report items that fail to read or convert, and go on')
    .option('--no-hashes', 'do not add _input_hash and _task_hash');
}

/** Turns parsed core source flags into source options. */
export function sourceOptionsFromFlags(flags: Flags): SourceOptions {
  const f = flags as Record<string, string | undefined> & Flags;
  return {
    include: flags.include as string[] | undefined,
    exclude: flags.exclude as string[] | undefined,
    modifiedSince: f.since ? parseTime(f.since, '--since') : undefined,
    modifiedBefore: f.before ? parseTime(f.before, '--before') : undefined,
    minSize: f.minSize ? parseSize(f.minSize, '--min-size') : undefined,
    maxSize: f.maxSize ? parseSize(f.maxSize, '--max-size') : undefined,
    types: flags.type as string[] | undefined,
    limit: flags.limit as number | undefined,
    sample: flags.sample as number | undefined,
    seed: f.seed,
    shard: f.shard ? parseShard(f.shard) : undefined,
    format: flags.format as Format | undefined,
    textMode: flags.textMode as 'line' | 'file' | undefined,
    media: flags.media as MediaMode,
    mediaHost: f.mediaHost,
    mediaPort: flags.mediaPort as number,
    mediaBaseUrl: f.mediaBaseUrl,
    mediaOrigins: flags.mediaOrigin ? parseOrigins(flags.mediaOrigin as string[]) : undefined,
    mediaKeyFile: f.mediaKeyFile,
    mediaPrefetch: flags.mediaPrefetch as number,
    mediaPrefetchBytes: parseSize(f.mediaPrefetchBytes ?? '64MB', '--media-prefetch-bytes'),
    urlTtl: flags.urlTtl as number,
    inlineMaxBytes: parseSize(f.inlineMaxBytes ?? '5MB', '--inline-max-bytes'),
    maxLineBytes: parseSize(f.maxLineBytes ?? '64MB', '--max-line-bytes'),
    maxDocumentBytes: parseSize(f.maxDocumentBytes ?? '256MB', '--max-document-bytes'),
    concurrency: flags.concurrency as number,
    order: flags.order as 'fetched' | 'listing',
    state: f.state,
    watch: flags.watch as number | undefined,
    skipErrors: flags.skipErrors === true,
    hashes: flags.hashes !== false,
  };
}

/** The flags that select examples (sinks and review commands); `match` is the default of --match. */
export function filterFlags(program: Command, match: 'all' | 'any'): void {
  program
    .option(
      '--answer <answers>',
      'keep only these answers (comma-separated: accept,reject,ignore)',
      list,
    )
    .option('--flagged', 'keep only flagged examples')
    .option(
      '--min-score <score>',
      'keep only examples scored at least this (score or meta.score)',
      number('--min-score'),
    )
    .option('--max-score <score>', 'keep only examples scored at most this', number('--max-score'))
    .option(
      '--label <labels>',
      'keep only examples with one of these labels (comma-separated)',
      list,
    )
    .addOption(
      new Option(
        '--match <mode>',
        'all: keep examples passing every filter; any: passing one (review routing)',
      )
        .argParser(choice('--match', ['all', 'any'] as const))
        .default(match),
    );
}

/** Adds every core sink flag to a command. */
function sinkFlags(program: Command, info: CliInfo): void {
  const replace = info.replace?.name ?? 'overwrite';
  filterFlags(program, 'all');
  program
    .option('--dataset <name>', 'Prodigy dataset name: fills {dataset}, recorded in the manifest')
    .option(
      '--name <template>',
      'part name under the export root; the extension is added',
      'part-{part}',
    )
    .addOption(
      new Option('--format <format>', 'part format')
        .argParser(choice('--format', SINK_FORMATS))
        .default('jsonl'),
    )
    .option(
      '--max-part-records <n>',
      'start a new part after N records (put {part} in --name)',
      number('--max-part-records', { integer: true, min: 1 }),
    )
    .option('--skip-invalid', 'set bad lines aside in rejects.jsonl instead of failing')
    .option(
      '--review',
      `a review package: adds review.csv (for Google Sheets or Excel) next to the JSONL, and, unless filters are given, keeps flagged, ignored and low-score (at most ${REVIEW_SCORE}) examples`,
    )
    .option('--csv', 'also write the kept examples as review.csv, one row each')
    .option(
      '--guidelines <file>',
      'put this file (annotation guidelines: HTML, PDF, Markdown) in the export as guidelines.<ext>, e.g. for reviewers',
    )
    .addOption(
      new Option(
        '--if-exists <policy>',
        `when the root holds a different export: ${info.replace?.help ?? replace}, fail or skip`,
      )
        .argParser((value: string) =>
          value === replace || value === 'overwrite'
            ? 'overwrite'
            : choice('--if-exists', [replace, 'fail', 'skip'])(value),
        )
        .default('overwrite', replace),
    )
    .option('--dry-run', 'show what would be written, write nothing')
    .option('--allow-empty', 'write an export even when stdin is empty (refused by default)')
    .option('--max-line-bytes <size>', 'longest input line accepted', '64MB');
}

/** Highest score `--review` sends to review when no filters are given. */
const REVIEW_SCORE = 0.5;

/**
 * The example filters the flags give. With `review` and none given, the review defaults:
 * flagged, ignored and low-score examples.
 */
export function filtersFromFlags(flags: Flags, review: boolean): TaskFilters {
  const answers = flags.answer as string[] | undefined;
  for (const answer of answers ?? []) {
    if (!['accept', 'reject', 'ignore'].includes(answer)) {
      throw usageError(
        `--answer: unknown answer "${answer}"`,
        'answers are accept, reject and ignore',
      );
    }
  }
  const filters = {
    answer: answers as Answer[] | undefined,
    flagged: flags.flagged === true ? true : undefined,
    minScore: flags.minScore as number | undefined,
    maxScore: flags.maxScore as number | undefined,
    label: flags.label as string[] | undefined,
  };
  if (review && Object.values(filters).every((value) => value === undefined)) {
    return { answer: ['ignore'], flagged: true, maxScore: REVIEW_SCORE, match: 'any' };
  }
  return { ...filters, match: flags.match === 'any' ? 'any' : undefined };
}

/** Turns parsed core sink flags into sink options. */
export function sinkOptionsFromFlags(flags: Flags, info: CliInfo): SinkOptions {
  const review = flags.review === true;
  return {
    dataset: flags.dataset as string | undefined,
    name: flags.name as string,
    format: flags.format as SinkFormat,
    ...filtersFromFlags(flags, review),
    csv: review || flags.csv === true,
    guidelines: flags.guidelines as string | undefined,
    maxPartRecords: flags.maxPartRecords as number | undefined,
    skipInvalid: flags.skipInvalid === true,
    ifExists: flags.ifExists as SinkOptions['ifExists'],
    dryRun: flags.dryRun === true,
    allowEmpty: flags.allowEmpty === true,
    maxLineBytes: parseSize((flags.maxLineBytes as string) ?? '64MB', '--max-line-bytes'),
    tool: { name: info.packageName, version: info.version },
    inputName: 'stdin',
  };
}

/** Every line on stderr passes through the one redaction rule: URLs keep no credentials. */
function toStderr(io: Io, text: string): void {
  io.stderr.write(redact(text));
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Progress on stderr: a bar on a TTY, a plain line every 10 s otherwise, nothing with --quiet. */
class Progress {
  private bar: cliProgress.SingleBar | undefined;
  private timer: NodeJS.Timeout | undefined;
  private read: (() => { done: number; total: number; line: string }) | undefined;

  constructor(
    private readonly io: Io,
    private readonly bin: string,
    private readonly quiet: boolean,
  ) {}

  start(read: () => { done: number; total: number; line: string }): void {
    if (this.quiet) return;
    this.read = read;
    if (this.io.stderr.isTTY) {
      this.showBar();
      this.timer = setInterval(() => {
        const now = read();
        this.bar?.setTotal(Math.max(now.total, 1));
        this.bar?.update(now.done, { line: now.line });
      }, 200);
    } else {
      this.timer = setInterval(() => this.line(read().line), 10_000);
    }
    this.timer.unref();
  }

  /** Prints a line above the bar, which is drawn again below it. */
  line(text: string): void {
    if (this.quiet) return;
    const redraw = this.bar !== undefined;
    this.bar?.stop();
    this.bar = undefined;
    toStderr(this.io, `${this.bin}: ${text}\n`);
    if (redraw) this.showBar();
  }

  stop(): void {
    clearInterval(this.timer);
    this.bar?.stop();
    this.bar = undefined;
    this.read = undefined;
  }

  private showBar(): void {
    if (!this.read) return;
    const now = this.read();
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.io.stderr as NodeJS.WriteStream,
        format: `${this.bin} [{bar}] {value}/{total} | {line}`,
        hideCursor: false,
        clearOnComplete: true,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(Math.max(now.total, 1), now.done, { line: now.line });
  }
}

/**
 * What surely reached the reader of stdout. A pipe holds output the reader may never read
 * (64 KiB on Linux, up to 1 MiB when the reader enlarges it), and Prodigy reads lazily, so
 * on a pipe the last MiB written counts as delivered only once more output follows it, even
 * at a normal end. A checkpoint then errs towards emitting a task again, which Prodigy skips
 * by its hash, rather than never emitting it. Written to a file, everything counts.
 */
class Delivery {
  private marks: Array<[lines: number, bytes: number]> = [];
  private lines = 0;
  private safe = 0;

  constructor(private readonly margin: number) {}

  flushed(lines: number, bytes: number): void {
    this.lines = lines;
    if (this.margin === 0) return;
    this.marks.push([lines, bytes]);
    // Marks a margin behind the latest byte are delivered: only the last of them matters, so
    // the list stays as short as the margin, however long the run.
    const limit = bytes - this.margin;
    let cut = 0;
    for (const [done, at] of this.marks) {
      if (at > limit) break;
      this.safe = done;
      cut++;
    }
    if (cut > 0) this.marks.splice(0, cut);
  }

  delivered(): number {
    return this.margin === 0 ? this.lines : this.safe;
  }
}

const PIPE_MARGIN_BYTES = 1024 * 1024;

function isPipe(stream: NodeJS.WritableStream): boolean {
  const fd = (stream as { fd?: unknown }).fd;
  if (typeof fd !== 'number') return false;
  try {
    const stats = fstatSync(fd);
    return stats.isFIFO() || stats.isSocket();
  } catch {
    return false;
  }
}

/** Resolves with the promise, or when the signal aborts, whichever comes first. */
function untilAborted(promise: Promise<unknown>, signal: AbortSignal): Promise<unknown> {
  return Promise.race([
    promise,
    new Promise((resolve) => {
      if (signal.aborted) resolve(undefined);
      signal.addEventListener('abort', resolve, { once: true });
    }),
  ]);
}

/** Prints an error the way every CLI does: one line, then the hint; a stack only with NODE_DEBUG=sluice. */
function report(io: Io, bin: string, error: unknown): number {
  if (error instanceof CommanderError) {
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.exitCode === 0
    ) {
      return EXIT.ok;
    }
    toStderr(io, `${bin}: run with --help for usage and examples\n`);
    return EXIT.usage;
  }
  const failure = toSluiceError(error);
  toStderr(io, `${bin}: error: ${failure.message.split('\n')[0]}\n`);
  if (failure.hint) toStderr(io, `${bin}: hint: ${failure.hint}\n`);
  if (failure.code === 'INTERNAL' || !isSluiceError(error)) {
    debug('%s', (error as Error)?.stack ?? error);
  }
  if (failure.code === 'INTERRUPTED') return EXIT.interrupted;
  return failure.code === 'USAGE' ? EXIT.usage : EXIT.failure;
}

async function parse(program: Command, io: Io): Promise<{ url: string; flags: Flags }> {
  await program.parseAsync(io.argv);
  return { url: program.args[0] as string, flags: program.opts() };
}

function isEpipe(error: unknown): boolean {
  return (
    (error as NodeJS.ErrnoException)?.code === 'EPIPE' ||
    (error as NodeJS.ErrnoException)?.code === 'ERR_STREAM_DESTROYED'
  );
}

/**
 * Ends stdout so its reader sees end of file while the process goes on serving media.
 * `process.stdout.end()` leaves fd 1 open, so fd 1 is closed and the null device takes its
 * number (the lowest free one), which keeps any stray later write harmless.
 */
async function endOutput(stdout: Io['stdout']): Promise<void> {
  await new Promise<void>((resolve) => stdout.end(resolve));
  if (stdout === process.stdout) {
    closeSync(1);
    openSync(devNull, 'w');
  }
}

/**
 * A program that runs a source as its child (the Python loader) sets SLUICE_PARENT_PID to its
 * own pid: when that process dies without stopping us, we are re-parented, and we stop as if
 * terminated instead of serving media for nobody.
 */
function watchParent(stop: () => void): NodeJS.Timeout | undefined {
  const parent = Number(process.env.SLUICE_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 0) return undefined;
  const timer = setInterval(() => {
    if (process.ppid !== parent) stop();
  }, 500);
  timer.unref();
  return timer;
}

/**
 * Runs a source CLI: parses core and connector flags, streams tasks as JSONL to stdout,
 * shows progress on stderr, saves the checkpoint after what it covers is flushed, and
 * exits quietly when the reader of stdout goes away.
 */
export async function runSourceCli(
  info: CliInfo,
  create: (url: string, options: SourceOptions, flags: Flags) => Source | Promise<Source>,
  configure?: (program: Command) => void,
  io: Io = defaultIo(),
): Promise<number> {
  keepHeapSmall();
  const program = baseCommand(info, io);
  sourceFlags(program);
  configure?.(program);
  const abort = new AbortController();
  let source: Source | undefined;
  let interrupted: NodeJS.Signals | undefined;
  const delivery = new Delivery(isPipe(io.stdout) ? PIPE_MARGIN_BYTES : 0);
  let progress: Progress | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = signal;
    abort.abort();
  };
  const onStdoutError = (error: unknown) => {
    if (isEpipe(error)) abort.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  io.stdout.on('error', onStdoutError);
  const orphaned = watchParent(() => onSignal('SIGTERM'));
  const started = Date.now();
  let code: number = EXIT.ok;
  try {
    const { url, flags } = await parse(program, io);
    const shown = new Progress(io, info.bin, flags.quiet === true);
    progress = shown;
    const options: SourceOptions = {
      ...sourceOptionsFromFlags(flags),
      signal: abort.signal,
      autoCheckpoint: false,
      onWarning: (message) => shown.line(`warning: ${message}`),
    };
    source = await create(url, options, flags);
    const running = source;
    shown.start(() => ({
      done: running.stats.items + running.stats.failed + running.stats.unsupported,
      total: running.stats.selected,
      line: `${running.stats.tasks} tasks, ${formatBytes(running.stats.bytes)}`,
    }));
    // A save that still fails after its retries stops the run: going on would emit tasks
    // that no checkpoint records (with --watch, for as long as it runs).
    let saveFailure: unknown;
    const checkpointTimer = setInterval(
      () =>
        void running.checkpoint(delivery.delivered()).catch((error) => {
          saveFailure ??= error;
          abort.abort();
        }),
      5_000,
    );
    checkpointTimer.unref();
    try {
      await writeJsonl(running, io.stdout, {
        signal: abort.signal,
        onFlushed: (lines, bytes) => delivery.flushed(lines, bytes),
      });
      // Lines count when their write callbacks ran; an empty write's callback runs after all of them.
      await untilAborted(new Promise((resolve) => io.stdout.write('', resolve)), abort.signal);
    } catch (error) {
      if (!(abort.signal.aborted || isEpipe(error))) throw error;
    } finally {
      clearInterval(checkpointTimer);
      if (saveFailure === undefined) await running.checkpoint(delivery.delivered());
    }
    if (saveFailure !== undefined) throw saveFailure;
    shown.stop();
    const stats = running.stats;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (flags.jsonSummary) {
      toStderr(
        io,
        `${JSON.stringify({ bin: info.bin, ...stats, seconds: Number(seconds), interrupted: interrupted !== undefined })}\n`,
      );
    } else {
      const skipped = [
        stats.unchanged ? `${stats.unchanged} unchanged` : '',
        stats.unsupported ? `${stats.unsupported} unsupported` : '',
        stats.failed ? `${stats.failed} failed` : '',
      ].filter(Boolean);
      shown.line(
        `${interrupted ? 'interrupted after' : 'done:'} ${plural(stats.tasks, 'task')} from ${plural(stats.items, 'item')} (${formatBytes(stats.bytes)}) in ${seconds}s${skipped.length ? `; skipped ${skipped.join(', ')}` : ''}`,
      );
    }
    if (running.mediaUrl && !abort.signal.aborted) {
      // Prodigy loads media from the proxy while annotators work, long after the stream ended.
      await endOutput(io.stdout);
      // Printed even with --quiet: the process is still running, and the Python loader waits for this line.
      toStderr(
        io,
        `${info.bin}: serving media at ${running.mediaUrl} until interrupted (Ctrl-C)\n`,
      );
      await new Promise((resolve) =>
        abort.signal.addEventListener('abort', resolve, { once: true }),
      );
    }
    if (interrupted) code = interrupted === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted;
  } catch (error) {
    progress?.stop();
    code = report(io, info.bin, error);
  } finally {
    clearInterval(orphaned);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await source?.close().catch(() => {});
  }
  // Output a stalled reader never took would keep the process alive after Ctrl-C: drop it.
  io.exit(code, interrupted !== undefined);
  return code;
}

function summarizeSink(result: SinkResult): string {
  const { manifest } = result;
  const records = plural(manifest.counts.records, 'record');
  const rejected = manifest.input.rejected
    ? `; ${plural(manifest.input.rejected, 'bad line')} set aside in rejects.jsonl`
    : '';
  const filtered = manifest.input.filtered ? `; ${manifest.input.filtered} filtered out` : '';
  switch (result.status) {
    case 'unchanged':
      return `unchanged: ${result.root} already holds this export (${records}, ${plural(manifest.parts.length, 'part')})${swept(result)}`;
    case 'skipped':
      return `skipped: ${result.root} holds a different export and --if-exists is skip${swept(result)}`;
    case 'dry-run':
      return `dry run: would write ${result.written.join(', ')} under ${result.root} (${records}${filtered}${rejected})`;
    default:
      return `wrote ${plural(manifest.parts.length, 'part')} (${records}${filtered}${rejected}) and ${result.manifestKey} to ${result.root}${result.removed.length ? `; removed ${plural(result.removed.length, 'file')} of the export it replaced` : ''}${swept(result)}`;
  }
}

/** What a run cleaned up after runs that failed or were killed, if anything. */
function swept(result: SinkResult): string {
  return result.swept.length
    ? `; removed ${plural(result.swept.length, 'file')} left by interrupted runs`
    : '';
}

/**
 * A command reading JSONL on stdin: refuses a terminal, and turns Ctrl-C or SIGTERM into an
 * aborted `signal` with stdin destroyed, so that the run stops reading and writes nothing.
 * A sink publishing when the signal comes stops before its commit and removes what it wrote;
 * once its manifest is committed, it finishes (exit 0). A second signal ends the process at
 * once. `exitCode` makes an interrupted run's code 143 when SIGTERM stopped it.
 */
function readingStdin(io: Io): {
  signal: AbortSignal;
  refuseTerminal(bin: string, url: string): void;
  exitCode(code: number): number;
  dispose(): void;
} {
  const abort = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    stoppedBy = signal;
    abort.abort();
    (io.stdin as { destroy?: () => void }).destroy?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: abort.signal,
    refuseTerminal(bin, url) {
      if (!io.stdin.isTTY) return;
      throw usageError(
        `${bin} reads JSONL on stdin`,
        `pipe an export into it: prodigy db-out DATASET | ${bin} ${url}`,
      );
    },
    exitCode: (code) =>
      code === EXIT.interrupted && stoppedBy === 'SIGTERM' ? EXIT.terminated : code,
    dispose() {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    },
  };
}

/** Runs a sink CLI: reads JSONL on stdin, exports it, prints progress and a summary on stderr. */
export async function runSinkCli(
  info: CliInfo,
  create: (url: string, options: SinkOptions, flags: Flags) => Sink | Promise<Sink>,
  configure?: (program: Command) => void,
  io: Io = defaultIo(),
): Promise<number> {
  const program = baseCommand(info, io);
  sinkFlags(program, info);
  configure?.(program);
  // Ctrl-C stops reading; the run then writes nothing and removes its staging copy.
  const stdin = readingStdin(io);
  let progress: Progress | undefined;
  let code: number = EXIT.ok;
  try {
    const { url, flags } = await parse(program, io);
    stdin.refuseTerminal(info.bin, url);
    const shown = new Progress(io, info.bin, flags.quiet === true || flags.jsonSummary === true);
    const options = {
      ...sinkOptionsFromFlags(flags, info),
      signal: stdin.signal,
      onWarning: (message: string) => shown.line(`warning: ${message}`),
    };
    const sink = await create(url, options, flags);
    progress = shown;
    shown.start(() => ({
      done: sink.stats.written,
      total: sink.stats.parts,
      line: `${sink.stats.lines} lines read, ${sink.stats.written}/${sink.stats.parts} parts written`,
    }));
    const result = await sink.writeJsonl(io.stdin as AsyncIterable<Uint8Array>);
    shown.stop();
    if (flags.jsonSummary) {
      toStderr(
        io,
        `${JSON.stringify({ bin: info.bin, status: result.status, root: result.root, records: result.manifest.counts.records, parts: result.manifest.parts.length, rejected: result.manifest.input.rejected, written: result.written, removed: result.removed, swept: result.swept })}\n`,
      );
    } else {
      shown.line(summarizeSink(result));
    }
  } catch (error) {
    progress?.stop();
    code = stdin.exitCode(report(io, info.bin, error));
  } finally {
    stdin.dispose();
  }
  io.exit(code);
  return code;
}

/** What a connector offers for `guidelines` and `labels` (documents it can read). */
export interface DocumentCommands {
  /** The document at the URL as HTML, its images still linked; `fetchImage` when images need the store's credentials. */
  guidelines?(
    url: string,
    flags: Flags,
  ): Promise<{ html: string; name: string; fetchImage?: (url: string) => Promise<FetchedImage> }>;
  /** The labels listed by the document at the URL (a list, or a table's column with `flags.column`). */
  labels?(url: string, flags: Flags): Promise<{ entries: LabelEntry[]; name: string }>;
}

/**
 * Runs `BIN guidelines URL --out FILE` or `BIN labels URL --out FILE` when the arguments
 * name one of them; returns undefined otherwise, so the caller runs its main command.
 */
export async function runDocumentCli(
  info: CliInfo,
  commands: DocumentCommands,
  configure?: (program: Command) => void,
  io: Io = defaultIo(),
): Promise<number | undefined> {
  const name = io.argv[2];
  if (name !== 'guidelines' && name !== 'labels') return undefined;
  if (!commands[name]) return undefined;
  const program = baseCommand(
    {
      ...info,
      bin: `${info.bin} ${name}`,
      description:
        name === 'guidelines'
          ? 'Write a document as one self-contained HTML file (images inlined) for Prodigy\'s "instructions" setting.'
          : 'Write the labels a document lists as a Prodigy label file (one per line, for --label), with descriptions in a JSON side file when it has them.',
      examples: info.examples.filter((line) => line.includes(` ${name} `)),
    },
    io,
  ).requiredOption(
    '-o, --out <path>',
    name === 'guidelines' ? 'HTML file to write' : 'label file to write',
  );
  if (name === 'labels') {
    program
      .option(
        '--column <name>',
        'column of a sheet or table holding the labels (default: label, name, tag, category, else the first)',
      )
      .option(
        '--description-column <name>',
        'column holding descriptions (default: description, definition, meaning, notes)',
      )
      .option(
        '--descriptions <path>',
        'JSON side file for descriptions (default: the label file with .json)',
      );
  }
  configure?.(program);
  let code: number = EXIT.ok;
  try {
    await program.parseAsync([io.argv[0] as string, io.argv[1] as string, ...io.argv.slice(3)]);
    const url = program.args[0] as string;
    const flags = program.opts();
    const quiet = flags.quiet === true;
    const say = (line: string) => {
      if (!quiet) toStderr(io, `${info.bin}: ${line}\n`);
    };
    const out = flags.out as string;
    if (name === 'guidelines') {
      const doc = await (commands.guidelines as NonNullable<DocumentCommands['guidelines']>)(
        url,
        flags,
      );
      const html = await selfContainedHtml(doc.html, {
        name: doc.name,
        fetchImage: doc.fetchImage,
      });
      await writeGuidelines(html, out);
      say(
        `wrote ${out} from ${doc.name} (${formatBytes(Buffer.byteLength(html))}); use it as "instructions" in prodigy.json`,
      );
    } else {
      const doc = await (commands.labels as NonNullable<DocumentCommands['labels']>)(url, flags);
      const written = await writeLabelFiles(doc.entries, out, {
        name: doc.name,
        descriptions: flags.descriptions as string | undefined,
        onWarning: (message) => say(`warning: ${message}`),
      });
      say(
        `wrote ${plural(written.labels, 'label')} to ${out}${written.descriptions ? ` and descriptions to ${written.descriptions}` : ''}; pass --label ${out} to a recipe`,
      );
    }
  } catch (error) {
    code = report(io, `${info.bin} ${name}`, error);
  }
  io.exit(code);
  return code;
}

/** A command that reads JSONL on stdin and publishes something from it (a report page). */
export interface PublishCommand {
  description: string;
  /** What the URL names. */
  url: string;
  examples: string[];
  /** Adds the command's flags. */
  configure(program: Command): void;
  /** Does the work; returns the summary line printed on stderr. */
  run(args: {
    url: string;
    flags: Flags;
    input: AsyncIterable<Uint8Array>;
    signal: AbortSignal;
    say: (line: string) => void;
  }): Promise<string>;
}

/**
 * Runs `BIN COMMAND URL [flags]` for a connector whose sink side is a set of commands
 * (Confluence's `report` and `review`), with the flags, messages and exit codes of the sinks.
 */
export async function runPublishCli(
  info: Omit<CliInfo, 'url' | 'examples'>,
  commands: Record<string, PublishCommand>,
  io: Io = defaultIo(),
): Promise<number> {
  const name = io.argv[2] ?? '';
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    const usage = Object.entries(commands)
      .map(([key, c]) => `  ${info.bin} ${key} ${c.url}\n      ${c.description}`)
      .join('\n');
    const asked = ['-h', '--help', '-V', '--version'].includes(name);
    if (name === '-V' || name === '--version') io.stdout.write(`${info.version}\n`);
    else {
      (asked ? io.stdout : io.stderr).write(
        `${info.description}\n\nUsage:\n${usage}\n\nRun ${info.bin} COMMAND --help for its flags.\n`,
      );
    }
    if (!asked) {
      toStderr(
        io,
        `${info.bin}: error: ${name ? `unknown command "${name}"` : 'no command given'}; expected ${Object.keys(commands).join(' or ')}\n`,
      );
    }
    const code = asked ? EXIT.ok : EXIT.usage;
    io.exit(code);
    return code;
  }
  const bin = `${info.bin} ${name}`;
  const program = baseCommand(
    {
      ...info,
      bin,
      description: command.description,
      url: command.url,
      examples: command.examples,
    },
    io,
  );
  program.option('--dry-run', 'print what would be published, publish nothing');
  command.configure(program);
  const stdin = readingStdin(io);
  let code: number = EXIT.ok;
  try {
    await program.parseAsync([io.argv[0] as string, io.argv[1] as string, ...io.argv.slice(3)]);
    const url = program.args[0] as string;
    const flags = program.opts();
    stdin.refuseTerminal(bin, url);
    const quiet = flags.quiet === true;
    const say = (line: string) => {
      if (!quiet) toStderr(io, `${bin}: ${line}\n`);
    };
    const summary = await command.run({
      url,
      flags,
      input: io.stdin as AsyncIterable<Uint8Array>,
      signal: stdin.signal,
      say,
    });
    if (stdin.signal.aborted) {
      throw new SluiceError('interrupted', { code: 'INTERRUPTED' });
    }
    say(summary);
  } catch (error) {
    code = stdin.exitCode(report(io, bin, error));
  } finally {
    stdin.dispose();
  }
  io.exit(code);
  return code;
}
