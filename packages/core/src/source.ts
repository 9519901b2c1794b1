import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Converted,
  contentTypeOf,
  convert,
  DEFAULT_MAX_DOCUMENT_BYTES,
  detectFormat,
  type Format,
  gunzip,
  isGzipped,
  isMediaFormat,
  type MediaFormat,
  type TextMode,
} from './convert.js';
import { SluiceError, toSluiceError, usageError } from './errors.js';
import { murmurhash3_32, setHashes } from './hash.js';
import {
  DEFAULT_INLINE_MAX_BYTES,
  type MediaItem,
  type MediaMode,
  MediaServer,
  toDataUri,
} from './media.js';
import { createSelector, type Selection } from './select.js';
import { isExportFile, MANIFEST_KEY, REJECTS_KEY } from './sink/index.js';
import { Checkpoint, fileStateStore, type StateStore } from './state.js';
import type { Task } from './task.js';

/** One item of a store, as a driver lists it. */
export interface SourceItem {
  /** Path relative to the source root, `/`-separated: what globs, sampling and sharding see. */
  key: string;
  /** Canonical URI, stamped into `meta.source` (e.g. `s3://bucket/key`, `file:///abs/path`). */
  uri: string;
  size?: number;
  modified?: Date;
  /** Store version (ETag, generation, revision id); stamped into `meta.version` and kept in state. */
  version?: string;
  contentType?: string;
  /** The path the item was seen at, stamped into `meta.path`, when the URI does not show it (Drive ids). */
  path?: string;
  /** How the item converts, when the connector knows better than its name (an exported Google Doc). */
  format?: Format;
  /** Text mode of this item unless the user chose one (an exported document is one task). */
  textMode?: TextMode;
}

/** An item's bytes: a stream, or chunks already in memory. */
export type Bytes = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface OpenOptions {
  /** First byte to read (for resumed reads and media ranges). */
  start?: number;
  /** Last byte to read, inclusive. */
  end?: number;
  signal?: AbortSignal;
}

export interface ListOptions {
  signal: AbortSignal;
  /**
   * A change-feed position saved by an earlier pass or run (a driver that has a feed): the
   * driver may then list only what changed since. Undefined means list everything.
   */
  cursor?: string;
  /**
   * Called by a driver with a change feed once a listing has gone through everything up to a
   * position; core saves it with the checkpoint when every item listed is delivered.
   */
  setCursor?(cursor: string): void;
}

/**
 * What a connector implements to be a source: lazy listing, byte access and a stat by key.
 * Everything else (selection, conversion, media, state, watch, retries of broken reads) is core's.
 */
export interface SourceDriver<I extends SourceItem = SourceItem> {
  /** Connector name for messages and errors, e.g. `s3`. */
  readonly connector: string;
  /** Canonical URI of the root every item key is relative to. */
  readonly root: string;
  /** Lists items under the root lazily, page by page, as they are consumed. */
  list(options: ListOptions): AsyncIterable<I>;
  /** Opens an item's bytes. With `start`, must read the same version the item was listed at. */
  open(item: I, options: OpenOptions): Promise<Bytes>;
  /** Looks up one item by key (for the media proxy); undefined when it does not exist. */
  stat(key: string): Promise<I | undefined>;
  /**
   * For drivers whose item URIs are not the root plus the key (Drive's `gdrive://file/<id>`):
   * looks up, for the media proxy, an item by URI, and only one that this source listed.
   */
  resolve?(uri: string): Promise<I | undefined>;
  /**
   * For items a connector turns into tasks itself rather than through a converter (a
   * Confluence page split into sections): the item's tasks, or undefined to convert its bytes
   * as usual. Core stamps, hashes and checkpoints them as it does converted tasks.
   */
  tasks?(item: I, options: { signal: AbortSignal }): Promise<Task[] | undefined>;
  /** A URL the browser can fetch directly for `signed` media mode. */
  signedUrl?(item: I, ttlSeconds: number): Promise<string>;
  close?(): Promise<void>;
}

/** Options every source accepts, on top of the connector's own. */
export interface SourceOptions extends Selection {
  /** Converter to use for every item instead of guessing from extension and content type. */
  format?: Format;
  /** `.txt`: a task per line (default) or per file. */
  textMode?: TextMode;
  /** Longest line accepted in jsonl and txt items (default 64 MiB). */
  maxLineBytes?: number;
  /** Largest json, html or whole-file txt item (default 256 MiB). */
  maxDocumentBytes?: number;
  /** How media reaches Prodigy: `proxy` (default), `inline` or `signed`. */
  media?: MediaMode;
  /** Interface of the media proxy (default 127.0.0.1). */
  mediaHost?: string;
  /** Port of the media proxy (default 8099; fixed so URLs and task hashes are stable across runs). */
  mediaPort?: number;
  /** Base URL written into tasks instead of http://host:port, when Prodigy reaches the proxy another way. */
  mediaBaseUrl?: string;
  /** Lifetime of signed URLs, in seconds (default 3600). */
  urlTtl?: number;
  /** Largest media item turned into a data URI (default 5 MiB). */
  inlineMaxBytes?: number;
  /** Items fetched at once (default 8). */
  concurrency?: number;
  /** `fetched` (default) yields items as they arrive; `listing` keeps the listing order. */
  order?: 'fetched' | 'listing';
  /** Checkpoint file or store: a rerun emits only new or changed items. */
  state?: string | StateStore;
  /** Poll for new or changed items every this many seconds, until the signal aborts. */
  watch?: number;
  /** Report items that fail to read or convert and go on, instead of stopping. */
  skipErrors?: boolean;
  /** Set `_input_hash` and `_task_hash` where missing (default true). */
  hashes?: boolean;
  /** Save the checkpoint whenever the consumer has taken all tasks of a pass (default true). Off when the caller commits with `checkpoint(delivered)`. */
  autoCheckpoint?: boolean;
  signal?: AbortSignal;
  /** Called with warnings (skipped or unsupported items); they are never printed by the library. */
  onWarning?: (message: string) => void;
}

/** Counters of a source run, for progress and the final summary. */
export interface SourceStats {
  listed: number;
  selected: number;
  /** Skipped because the checkpoint holds the same version. */
  unchanged: number;
  /** Skipped because no converter applies. */
  unsupported: number;
  /** Failed and skipped with `skipErrors`. */
  failed: number;
  items: number;
  tasks: number;
  bytes: number;
}

/** A running source: an async iterable of tasks plus its controls. */
export interface Source extends AsyncIterable<Task> {
  readonly stats: SourceStats;
  /** Base URL of the media proxy once it serves, else undefined. */
  readonly mediaUrl: string | undefined;
  /** Records items whose tasks are all among the first `delivered` tasks yielded, and saves the checkpoint. */
  checkpoint(delivered: number): Promise<void>;
  /** Stops the media proxy and releases the driver. */
  close(): Promise<void>;
}

/** Bytes a small item is read into memory ahead of its turn; larger items stream when their turn comes. */
const PREFETCH_MAX_BYTES = 1024 * 1024;
const READ_RETRIES = 3;
const RETRYABLE_READ_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

function isRetryableRead(error: unknown): boolean {
  if (error instanceof SluiceError) return error.retryable;
  const e = error as { code?: string; name?: string; message?: string; $retryable?: unknown };
  return (
    RETRYABLE_READ_CODES.has(e?.code ?? '') ||
    e?.message === 'aborted' ||
    e?.name === 'TimeoutError' ||
    e?.$retryable !== undefined
  );
}

type Fetched =
  | { item: SourceItem; tasks: Converted[] }
  | { item: SourceItem; stream: true }
  /** Failed or unsupported: kept out of the checkpoint so a later run tries again. */
  | { item: SourceItem; tasks: []; skipped: true };

/** Maps items to results with at most `concurrency` in flight, pulling input only when there is room. */
async function* mapBounded<T, R>(
  input: AsyncIterable<T>,
  fn: (value: T) => Promise<R>,
  concurrency: number,
  ordered: boolean,
): AsyncGenerator<R> {
  const iterator = input[Symbol.asyncIterator]();
  const window = new Map<number, Promise<[number, { ok: R } | { error: unknown }]>>();
  let next = 0;
  let head = 0;
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && window.size < concurrency) {
        const step = await iterator.next();
        if (step.done) {
          exhausted = true;
          break;
        }
        const id = next++;
        window.set(
          id,
          fn(step.value).then(
            (ok) => [id, { ok }],
            (error) => [id, { error }],
          ),
        );
      }
      if (window.size === 0) return;
      const [id, result] = ordered
        ? await (window.get(head) as Promise<[number, { ok: R } | { error: unknown }]>)
        : await Promise.race(window.values());
      window.delete(id);
      if (ordered) head++;
      if ('error' in result) throw result.error;
      yield result.ok;
    }
  } finally {
    await iterator.return?.();
  }
}

class SourceRun implements Source {
  readonly stats: SourceStats = {
    listed: 0,
    selected: 0,
    unchanged: 0,
    unsupported: 0,
    failed: 0,
    items: 0,
    tasks: 0,
    bytes: 0,
  };
  private readonly state: Checkpoint;
  private readonly tracking: boolean;
  private readonly abort = new AbortController();
  private media: MediaServer | undefined;
  private mediaStarting: Promise<MediaServer> | undefined;
  private readonly warned = new Set<string>();
  private driver!: SourceDriver;
  private readonly selector: (item: SourceItem) => boolean;

  constructor(
    private readonly pending: Promise<SourceDriver>,
    private readonly options: SourceOptions,
  ) {
    const { state } = options;
    this.selector = createSelector(options);
    this.state = new Checkpoint(typeof state === 'string' ? fileStateStore(state) : state);
    // Remembering every emitted item costs memory, so only when a checkpoint or watch needs it.
    this.tracking = state !== undefined || options.watch !== undefined;
    if (
      options.concurrency !== undefined &&
      !(Number.isInteger(options.concurrency) && options.concurrency >= 1)
    ) {
      throw usageError(`--concurrency must be a positive integer, got ${options.concurrency}`);
    }
    // Every in-flight request listens on this signal; the default limit of 10 would warn.
    setMaxListeners(0, this.abort.signal);
    options.signal?.addEventListener('abort', () => this.abort.abort(options.signal?.reason), {
      once: true,
    });
  }

  get mediaUrl(): string | undefined {
    return this.media?.url;
  }

  async checkpoint(delivered: number): Promise<void> {
    await this.state.commit(delivered);
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.media?.close();
    const driver = await this.pending.catch(() => undefined);
    await driver?.close?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Task> {
    const { options } = this;
    this.driver = await this.pending;
    if (options.media === 'signed' && !this.driver.signedUrl) {
      throw usageError(
        `--media signed is not supported by ${this.driver.connector}`,
        'use --media proxy or --media inline',
      );
    }
    await this.state.load();
    const signal = this.abort.signal;
    // A change-feed position is only good for the same root and selection: items a different
    // selection left out never show up as changes.
    const cursorName = `${this.driver.root} ${selectionKey(options)}`;
    let cursor = this.tracking ? this.state.cursor(cursorName) : undefined;
    for (;;) {
      let reached: string | undefined;
      const failedBefore = this.stats.failed;
      const listing = { signal, cursor, setCursor: (value: string) => (reached = value) };
      const fetched = mapBounded(
        this.selected(listing),
        (item) => this.fetch(item),
        options.concurrency ?? 8,
        options.order === 'listing',
      );
      for await (const result of fetched) {
        const { item } = result;
        let failed = 'skipped' in result;
        try {
          const converted =
            'stream' in result ? this.convertItem(item, this.read(item)) : result.tasks;
          for await (const entry of converted) {
            this.stats.tasks++;
            yield this.stamp(entry, item);
          }
          if (!failed) this.stats.items++;
        } catch (error) {
          this.fail(item, error);
          failed = true;
        }
        // A failed item stays out of the checkpoint, so the next run tries it again.
        if (this.tracking && !failed) {
          this.state.complete(item.uri, versionOf(item), this.stats.tasks);
        }
      }
      // The feed moves on only past a pass that listed everything and lost nothing, so an item
      // that failed or was left beyond --limit comes up again.
      if (
        reached !== undefined &&
        this.tracking &&
        this.stats.failed === failedBefore &&
        !this.limitReached() &&
        !signal.aborted
      ) {
        cursor = reached;
        this.state.setCursor(cursorName, reached, this.stats.tasks);
      }
      if (options.autoCheckpoint !== false) await this.state.commit(this.stats.tasks);
      if (options.watch === undefined || signal.aborted || this.limitReached()) return;
      try {
        await sleep(options.watch * 1000, undefined, { signal });
      } catch {
        return;
      }
    }
  }

  private limitReached(): boolean {
    return this.options.limit !== undefined && this.stats.selected >= this.options.limit;
  }

  /** Listed items that pass selection and are not in the checkpoint, up to the limit. */
  private async *selected(listing: ListOptions): AsyncGenerator<SourceItem> {
    for await (const item of this.driver.list(listing)) {
      this.stats.listed++;
      if (!this.selector(item)) continue;
      // A review or export location read back holds Sluice's own files next to the tasks.
      if (isExportFile(item.key)) {
        this.warn(
          'export-files',
          `skipping Sluice export files (${MANIFEST_KEY}, ${REJECTS_KEY}) such as ${shown(item)}`,
        );
        continue;
      }
      if (this.tracking && this.state.has(item.uri, versionOf(item))) {
        this.stats.unchanged++;
        continue;
      }
      if (this.limitReached()) return;
      this.stats.selected++;
      yield item;
    }
  }

  /** Reads and converts a small item ahead of its turn; a large one is left to stream in order. */
  private async fetch(item: SourceItem): Promise<Fetched> {
    try {
      const own = await this.driver.tasks?.(item, { signal: this.abort.signal });
      if (own) return { item, tasks: own.map((task) => ({ task })) };
      const format = formatOf(item, this.options);
      if (!format) {
        this.stats.unsupported++;
        const ext = item.key.includes('.') ? item.key.slice(item.key.lastIndexOf('.')) : item.key;
        this.warn(
          `unsupported:${ext}`,
          `skipping ${shown(item)}: no converter for "${ext}" (use --format or --exclude)`,
        );
        return { item, tasks: [], skipped: true };
      }
      if (isMediaFormat(format))
        return { item, tasks: [{ task: await this.mediaTask(item, format) }] };
      if (item.size === undefined || item.size > PREFETCH_MAX_BYTES) return { item, stream: true };
      const tasks: Converted[] = [];
      for await (const entry of this.convertItem(item, this.read(item))) tasks.push(entry);
      return { item, tasks };
    } catch (error) {
      this.fail(item, error);
      return { item, tasks: [], skipped: true };
    }
  }

  private fail(item: SourceItem, error: unknown): void {
    const failure = itemError(item, error, this.driver.connector);
    if (!this.options.skipErrors || this.abort.signal.aborted) throw failure;
    this.stats.failed++;
    this.options.onWarning?.(`skipping ${shown(item)}: ${failure.message}`);
  }

  private warn(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.onWarning?.(message);
  }

  private convertItem(
    item: SourceItem,
    bytes: AsyncIterable<Uint8Array>,
  ): AsyncIterable<Converted> {
    const format = formatOf(item, this.options) as Exclude<Format, MediaFormat>;
    return convert(format, isGzipped(item.key) ? gunzip(bytes) : bytes, {
      name: shown(item),
      textMode: this.options.textMode ?? item.textMode,
      maxLineBytes: this.options.maxLineBytes,
      maxDocumentBytes: this.options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
    });
  }

  /** Streams an item's bytes; a read that breaks midway resumes from the last byte instead of starting over. */
  private async *read(
    item: SourceItem,
    range?: { start: number; end: number },
  ): AsyncGenerator<Uint8Array> {
    let offset = range?.start ?? 0;
    let failures = 0;
    const signal = this.abort.signal;
    for (;;) {
      const start = offset > 0 ? offset : undefined;
      try {
        const body = await this.driver.open(item, { start, end: range?.end, signal });
        for await (const chunk of body) {
          offset += chunk.byteLength;
          this.stats.bytes += chunk.byteLength;
          failures = 0;
          yield chunk;
        }
        return;
      } catch (error) {
        if (signal.aborted || !isRetryableRead(error) || ++failures > READ_RETRIES) throw error;
        await sleep(100 * 2 ** failures);
      }
    }
  }

  private async mediaTask(item: SourceItem, format: MediaFormat): Promise<Task> {
    const mode = this.options.media ?? 'proxy';
    let url: string;
    if (mode === 'inline') {
      url = await toDataUri(
        this.read(item),
        contentTypeOf(item.key, item.contentType),
        this.options.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES,
        item.uri,
      );
    } else if (mode === 'signed') {
      url = await (this.driver.signedUrl as NonNullable<SourceDriver['signedUrl']>)(
        item,
        this.options.urlTtl ?? 3600,
      );
    } else {
      url = (await this.mediaServer()).urlFor(item.uri);
    }
    return { [format]: url };
  }

  private mediaServer(): Promise<MediaServer> {
    this.mediaStarting ??= (async () => {
      const server = new MediaServer({
        host: this.options.mediaHost,
        port: this.options.mediaPort,
        baseUrl: this.options.mediaBaseUrl,
        resolve: (uri) => this.resolveMedia(uri),
      });
      await server.start();
      this.media = server;
      return server;
    })();
    return this.mediaStarting;
  }

  /**
   * Serves only media items this source would select (the proxy is reachable from any page in
   * the annotator's browser), looked up fresh so it keeps working after the stream ends.
   */
  private async resolveMedia(uri: string): Promise<MediaItem | undefined> {
    const item = this.driver.resolve ? await this.driver.resolve(uri) : await this.statUri(uri);
    if (!item || !this.selector(item)) return undefined;
    const format = formatOf(item, this.options);
    if (!format || !isMediaFormat(format)) return undefined;
    return {
      size: item.size,
      version: item.version,
      contentType: contentTypeOf(item.key, item.contentType),
      open: async (range) => this.driver.open(item, { start: range?.start, end: range?.end }),
    };
  }

  private statUri(uri: string): Promise<SourceItem | undefined> {
    const root = this.driver.root.endsWith('/') ? this.driver.root : `${this.driver.root}/`;
    if (!uri.startsWith(root)) return Promise.resolve(undefined);
    const key = uri.slice(root.length);
    if (key === '' || key.split('/').some((part) => part === '..' || part === '.')) {
      return Promise.resolve(undefined);
    }
    return this.driver.stat(key);
  }

  private stamp(entry: Converted, item: SourceItem): Task {
    const { task } = entry;
    // Object.assign, not a spread: V8 spreads objects made by JSON.parse twenty times slower.
    const meta: Record<string, unknown> = Object.assign({}, task.meta);
    // A task re-read from a review or export location keeps where it first came from.
    if (typeof meta.source === 'string' && meta.source !== item.uri && meta.origin === undefined) {
      meta.origin = meta.source;
    }
    meta.source = item.uri;
    if (item.path !== undefined) meta.path = item.path;
    if (item.version !== undefined) meta.version = item.version;
    if (entry.line !== undefined) meta.line = entry.line;
    if (entry.row !== undefined) meta.row = entry.row;
    task.meta = meta;
    return this.options.hashes === false ? task : setHashes(task);
  }
}

/**
 * A checkpoint position that is a modification time, for stores that can list what changed
 * since a time but have no change feed (Confluence, File 360). `since` is the saved time less
 * `marginMs` (undefined on a first run, or for a position that is not a time); `see` keeps the
 * newest modification met; `value` is the position to save: the newest seen, never earlier
 * than the saved one.
 */
export function modifiedCursor(cursor: string | undefined, marginMs: number) {
  const saved = cursor ? new Date(cursor) : undefined;
  let latest = saved && !Number.isNaN(saved.getTime()) ? saved : undefined;
  return {
    since: latest && new Date(latest.getTime() - marginMs),
    see(modified: Date | undefined): void {
      if (modified && (!latest || modified > latest)) latest = modified;
    },
    get value(): string | undefined {
      return latest?.toISOString();
    },
  };
}

/**
 * Passes a driver's download on, turning an error that breaks it midway into the one `map`
 * makes (a connector's error mapping, naming the item), as the errors of the request are.
 */
export async function* mapReadErrors(
  body: AsyncIterable<Uint8Array>,
  map: (error: unknown) => Error,
): AsyncGenerator<Uint8Array> {
  try {
    yield* body;
  } catch (error) {
    throw map(error);
  }
}

/**
 * Drops the first `bytes` bytes of a download: a resumed read from a server that cannot
 * start midway (a Drive export, a server that ignores Range) reads from the start again.
 */
export async function* skipBytes(
  body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  bytes: number,
): AsyncGenerator<Uint8Array> {
  let left = bytes;
  for await (const chunk of body) {
    if (left >= chunk.byteLength) {
      left -= chunk.byteLength;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

/** Every item failure names the item; a broken gzip stream is bad data, not a bug. */
function itemError(item: SourceItem, error: unknown, connector: string): SluiceError {
  const failure = toSluiceError(error, connector);
  if (failure.message.includes(item.uri)) return failure;
  const zlib = /^Z_/.test(String((error as { code?: unknown })?.code));
  return new SluiceError(`${shown(item)}: ${failure.message}`, {
    code: zlib ? 'CONVERT' : failure.code,
    connector: failure.connector,
    hint: zlib
      ? 'the item is not valid gzip: check it, or leave it out with --exclude'
      : failure.hint,
    cause: error,
    retryable: failure.retryable,
  });
}

/** An item in messages: its URI, and its path when the URI does not show it. */
function shown(item: SourceItem): string {
  return item.path ? `${item.uri} (${item.path})` : item.uri;
}

function formatOf(item: SourceItem, options: SourceOptions): Format | undefined {
  return detectFormat(item.key, item.contentType, options.format ?? item.format);
}

/** A short fingerprint of what selects items, apart from the limit. */
function selectionKey(options: SourceOptions): string {
  const { include, exclude, modifiedSince, modifiedBefore, minSize, maxSize, types } = options;
  const { sample, seed, shard } = options;
  const selection = [include, exclude, modifiedSince, modifiedBefore, minSize, maxSize, types];
  const text = JSON.stringify([...selection, sample, seed, shard]);
  return (murmurhash3_32(text) >>> 0).toString(16);
}

function versionOf(item: SourceItem): string {
  return item.version ?? `${item.size ?? ''}:${item.modified?.getTime() ?? ''}`;
}

/**
 * Wraps a connector's driver into a source: an async iterable of Prodigy tasks. The driver
 * may still be in the making (a promise); its errors then surface when iteration starts.
 */
export function createSource(
  driver: SourceDriver | Promise<SourceDriver>,
  options: SourceOptions = {},
): Source {
  const pending = Promise.resolve(driver);
  pending.catch(() => {}); // surfaced by iteration, not as an unhandled rejection
  return new SourceRun(pending, options);
}
