import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Converted,
  contentTypeOf,
  convertBatches,
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
import { TASK_BATCHES } from './jsonl.js';
import {
  DEFAULT_INLINE_MAX_BYTES,
  loadMediaKey,
  type MediaItem,
  type MediaMode,
  MediaServer,
  toDataUri,
} from './media.js';
import { serviceUrl } from './redact.js';
import { createSelector, type Selection } from './select.js';
import { isExportFile, MANIFEST_KEY, REJECTS_KEY } from './sink/index.js';
import { Checkpoint, fileStateStore, type StateStore } from './state.js';
import type { SourceLineage, Task } from './task.js';

/** One item of a store, as a driver lists it. */
export interface SourceItem {
  /** Path relative to the source root, `/`-separated: what globs, sampling and sharding see. */
  key: string;
  /** Canonical URI, stamped into `meta.source` (e.g. `s3://bucket/key`, `file:///abs/path`). */
  uri: string;
  size?: number;
  modified?: Date;
  /** Store version (ETag, generation, revision id); stamped into `sluice.source.version` and kept in state. */
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
  /** Tells the user about items the listing leaves out (the fs driver's links out of the folder). */
  warn?(message: string): void;
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
  /**
   * Opens an item's bytes, which must be those of the version `item.version` names: when the
   * store holds another version by now, throw a `CHANGED` SluiceError at once (a conditional
   * read: If-Match, a generation), or from the bytes when the item changes while they are
   * read. Core then reads the new version (looked up with `stat` or `resolve`) when none of
   * the item's tasks went out yet, and otherwise fails the item.
   */
  open(item: I, options: OpenOptions): Promise<Bytes>;
  /**
   * Looks up one item by key, as `list` would yield it now (for the media proxy, and for an
   * item that changed since it was listed); undefined when it does not exist.
   */
  stat(key: string): Promise<I | undefined>;
  /**
   * For drivers whose item URIs are not the root plus the key (Drive's `gdrive://file/<id>`):
   * looks up an item by URI, as `stat` does by key. Core asks only for items the source
   * listed (media this run selected, items that changed since they were listed).
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
  /** Origins of Prodigy's web app that may read media across origins (default: localhost and 127.0.0.1 on PRODIGY_PORT or 8080). */
  mediaOrigins?: string[];
  /** The file holding the per-user secret behind media URLs (default `~/.config/sluice/media.key`, made on first use). */
  mediaKeyFile?: string;
  /** Media items the proxy reads ahead of the browser, in stream order (default 16; 0: none). */
  mediaPrefetch?: number;
  /** Memory the items read ahead may take, in bytes (default 64 MiB). */
  mediaPrefetchBytes?: number;
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
  /**
   * Report items that fail to read or convert and go on, instead of stopping. An item's
   * tasks before the failure go out whatever its size, and the checkpoint records them.
   */
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
/** Times an item that changed while it was read is read again (in its new version). */
const CHANGE_RETRIES = 3;
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
  /** Read ahead: its tasks, and the error that stopped the item after them, if one did. */
  | { item: SourceItem; tasks: Converted[]; error?: unknown }
  | { item: SourceItem; stream: true }
  /** Unsupported: kept out of the checkpoint so a later run tries again. */
  | { item: SourceItem; skipped: true };

function isChanged(error: unknown): boolean {
  return error instanceof SluiceError && error.code === 'CHANGED';
}

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
    // Written into every media task: a URL with credentials in it would put them there.
    if (options.mediaBaseUrl !== undefined) {
      serviceUrl(options.mediaBaseUrl, '--media-base-url', {
        example: 'https://annotate.acme.com/media',
      });
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
    await this.state.close();
    const driver = await this.pending.catch(() => undefined);
    await driver?.close?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Task> {
    for await (const batch of this[TASK_BATCHES]()) yield* batch;
  }

  /** The tasks a chunk of input at a time, for writers that take them so (see {@link TASK_BATCHES}). */
  async *[TASK_BATCHES](): AsyncGenerator<Task[]> {
    const { options } = this;
    this.driver = await this.pending;
    if (options.media === 'signed' && !this.driver.signedUrl) {
      throw usageError(
        `--media signed is not supported by ${this.driver.connector}`,
        'use --media proxy or --media inline',
      );
    }
    // Before the first task: a checkpoint that cannot be saved, or that another run holds,
    // fails the run now rather than after everything went out.
    await this.state.load();
    try {
      yield* this.passes();
    } finally {
      // A caller that commits itself (the CLI) closes the source once it has.
      if (options.autoCheckpoint !== false) await this.state.close();
    }
  }

  private async *passes(): AsyncGenerator<Task[]> {
    const { options } = this;
    const signal = this.abort.signal;
    // A change-feed position is only good for the same root and selection: items a different
    // selection left out never show up as changes.
    const cursorName = `${this.driver.root} ${selectionKey(options)}`;
    let cursor = this.tracking ? this.state.cursor(cursorName) : undefined;
    for (;;) {
      let reached: string | undefined;
      const failedBefore = this.stats.failed;
      const listing: ListOptions = {
        signal,
        cursor,
        setCursor: (value: string) => (reached = value),
        warn: (message: string) => this.warn(`list:${message}`, message),
      };
      const fetched = mapBounded(
        this.selected(listing),
        (item) => this.fetch(item),
        options.concurrency ?? 8,
        options.order === 'listing',
      );
      for await (const result of fetched) {
        // Unsupported items stay out of the checkpoint, so a run with --format tries them.
        if ('skipped' in result) continue;
        const { item } = result;
        // An item that failed in an earlier run after some of its tasks went out: those are
        // not emitted again while the item keeps the same version.
        const before = this.tracking ? this.state.partial(item.uri) : undefined;
        let converted = 0;
        let failure = 'error' in result ? result.error : undefined;
        try {
          const batches =
            'stream' in result ? this.convertItem(item, this.read(item)) : [result.tasks];
          for await (const entries of batches) {
            const tasks: Task[] = [];
            try {
              for (const entry of entries) {
                converted++;
                if (before && converted <= before.tasks && before.version === versionOf(item)) {
                  continue;
                }
                tasks.push(this.stamp(entry, item));
              }
            } finally {
              // What was stamped before a failure goes out, as it would one by one.
              this.stats.tasks += tasks.length;
              if (tasks.length > 0) yield tasks;
            }
          }
        } catch (error) {
          failure = error;
        }
        const version = versionOf(item);
        if (failure === undefined) {
          this.stats.items++;
          if (this.tracking) this.state.complete(item.uri, version, this.stats.tasks);
          continue;
        }
        // What went out of a failed item is recorded, whatever its size, so the next run
        // neither loses nor repeats it; an item that gave nothing is simply tried again.
        const out = Math.max(converted, before?.version === version ? before.tasks : 0);
        if (this.tracking && out > 0) this.state.fail(item.uri, version, out, this.stats.tasks);
        this.fail(item, failure, out);
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

  /**
   * Reads and converts a small item ahead of its turn (again, from the start, when it changes
   * meanwhile); a large one is left to stream in order. A failure is handed on with the tasks
   * before it, so an item is treated the same whatever its size.
   */
  private async fetch(item: SourceItem): Promise<Fetched> {
    const tasks: Converted[] = [];
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
        return { item, skipped: true };
      }
      if (isMediaFormat(format))
        return { item, tasks: [{ task: await this.mediaTask(item, format) }] };
      for (let changes = 0; ; changes++) {
        if (item.size === undefined || item.size > PREFETCH_MAX_BYTES) {
          return { item, stream: true };
        }
        try {
          for await (const batch of this.convertItem(item, this.read(item))) tasks.push(...batch);
          return { item, tasks };
        } catch (error) {
          if (!isChanged(error) || changes >= CHANGE_RETRIES || this.abort.signal.aborted) {
            throw error;
          }
          tasks.length = 0;
          await this.refresh(item);
        }
      }
    } catch (error) {
      return { item, tasks, error };
    }
  }

  private fail(item: SourceItem, error: unknown, emitted: number): void {
    const failure = itemError(item, error, this.driver.connector);
    if (!this.options.skipErrors || this.abort.signal.aborted) throw failure;
    this.stats.failed++;
    const after = emitted > 0 ? ` after ${emitted} task${emitted === 1 ? '' : 's'}` : '';
    this.options.onWarning?.(`skipping the rest of ${shown(item)}${after}: ${failure.message}`);
  }

  /** Takes an item's current version (and size, type ...) after it changed since it was listed. */
  private async refresh(item: SourceItem): Promise<void> {
    const fresh = this.driver.resolve
      ? await this.driver.resolve(item.uri)
      : await this.driver.stat(item.key);
    if (!fresh) {
      throw new SluiceError(`${shown(item)}: removed while it was being read`, {
        code: 'NOT_FOUND',
        connector: this.driver.connector,
      });
    }
    // The item as listed keeps its name; the rest (version, size, type) is the store's now.
    Object.assign(item, fresh, { key: item.key, uri: item.uri, path: item.path });
  }

  private warn(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.options.onWarning?.(message);
  }

  private convertItem(
    item: SourceItem,
    bytes: AsyncIterable<Uint8Array>,
  ): AsyncIterable<Converted[]> {
    const format = formatOf(item, this.options) as Exclude<Format, MediaFormat>;
    return convertBatches(format, isGzipped(item.key) ? gunzip(bytes) : bytes, {
      name: shown(item),
      textMode: this.options.textMode ?? item.textMode,
      maxLineBytes: this.options.maxLineBytes,
      maxDocumentBytes: this.options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
    });
  }

  /**
   * Streams an item's bytes; a read that breaks midway resumes from the last byte instead of
   * starting over, and an item that changed before any of its bytes were passed on is read in
   * its new version.
   */
  private async *read(
    item: SourceItem,
    range?: { start: number; end: number },
  ): AsyncGenerator<Uint8Array> {
    const first = range?.start ?? 0;
    let offset = first;
    let failures = 0;
    let changes = 0;
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
        if (signal.aborted) throw error;
        if (isChanged(error)) {
          if (offset > first || ++changes > CHANGE_RETRIES) throw error;
          await this.refresh(item);
          continue;
        }
        if (!isRetryableRead(error) || ++failures > READ_RETRIES) throw error;
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
      // Only what this run selected is served, each under a URL nobody can guess.
      url = (await this.mediaServer()).add(item.uri, item.key, this.mediaItem(item));
    }
    // Prodigy's base64 removal (`image.manual --remove-base64`, `audio.manual`) puts `path`
    // back in place of inlined bytes, so the database keeps this reference, not the media.
    return { [format]: url, path: item.uri };
  }

  private mediaServer(): Promise<MediaServer> {
    this.mediaStarting ??= (async () => {
      const server = new MediaServer({
        host: this.options.mediaHost,
        port: this.options.mediaPort,
        baseUrl: this.options.mediaBaseUrl,
        origins: this.options.mediaOrigins,
        key: await loadMediaKey(this.options.mediaKeyFile),
        prefetch: this.options.mediaPrefetch,
        prefetchBytes: this.options.mediaPrefetchBytes,
        resolve: (uri) => this.resolveMedia(uri),
      });
      await server.start();
      this.media = server;
      return server;
    })();
    return this.mediaStarting;
  }

  /**
   * A media item this run made a task for, looked up fresh (so it keeps working after the
   * stream ends), and served only while it is still one the source would select.
   */
  private async resolveMedia(uri: string): Promise<MediaItem | undefined> {
    const item = this.driver.resolve ? await this.driver.resolve(uri) : await this.statUri(uri);
    if (!item || !this.selector(item)) return undefined;
    const format = formatOf(item, this.options);
    if (!format || !isMediaFormat(format)) return undefined;
    return this.mediaItem(item);
  }

  private mediaItem(item: SourceItem): MediaItem {
    return {
      size: item.size,
      version: item.version,
      contentType: contentTypeOf(item.key, item.contentType),
      open: async (range, signal) =>
        this.driver.open(item, { start: range?.start, end: range?.end, signal }),
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

  /**
   * Records where a task came from under keys Prodigy's hash ignores at any depth (`source`,
   * `path`), so a touched file or a same-bytes rewrite yields the same hashes:
   * `meta.source` (the item's URI), `meta.path` (where the URI does not show it), and
   * `sluice.source` (the item's version and the line or row), which hashes as an empty `{}`.
   */
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
    task.meta = meta;
    const lineage: SourceLineage = {};
    if (item.version !== undefined) lineage.version = item.version;
    if (entry.line !== undefined) lineage.line = entry.line;
    if (entry.row !== undefined) lineage.row = entry.row;
    task.sluice = { source: lineage };
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

/** A `Range` header for bytes `start` to `end` (inclusive), or undefined for the whole file. */
export function byteRange(start?: number, end?: number): string | undefined {
  return start !== undefined || end !== undefined ? `bytes=${start ?? 0}-${end ?? ''}` : undefined;
}

/**
 * The bytes `start` to `end` (inclusive) of an item from the answer to a ranged GET. A 206 must
 * start where asked (`Content-Range`); a 200 means the server ignored Range (Cloud Storage does
 * when it decompresses, so do some S3-compatible stores and proxies) and sent the whole item,
 * which is cut to the range here, so that a resumed read never repeats or corrupts data.
 */
export function rangedBody(
  body: AsyncIterable<Uint8Array> | null | undefined,
  answer: { status: number; contentRange?: string | null },
  range: { start?: number; end?: number } = {},
): AsyncIterable<Uint8Array> {
  const start = range.start ?? 0;
  if (!body) return skipBytes([], 0);
  if (answer.status === 206) {
    const first = Number(/^bytes (\d+)-/.exec(answer.contentRange ?? '')?.[1]);
    if (first !== start) {
      throw new SluiceError(
        `the server answered bytes ${answer.contentRange} for a read from byte ${start}`,
        { code: 'IO', hint: 'read the item again from its start' },
      );
    }
    return body;
  }
  if (start === 0 && range.end === undefined) return body;
  return upTo(skipBytes(body, start), range.end === undefined ? undefined : range.end - start + 1);
}

/** `rangedBody` of a fetch Response. */
export function responseBody(
  response: Response,
  range: { start?: number; end?: number } = {},
): AsyncIterable<Uint8Array> {
  return rangedBody(
    response.body as unknown as AsyncIterable<Uint8Array> | null,
    { status: response.status, contentRange: response.headers.get('content-range') },
    range,
  );
}

/** The first `bytes` bytes of a body (all of it when undefined). */
async function* upTo(
  body: AsyncIterable<Uint8Array>,
  bytes: number | undefined,
): AsyncGenerator<Uint8Array> {
  if (bytes === undefined) {
    yield* body;
    return;
  }
  let left = bytes;
  for await (const chunk of body) {
    if (left <= 0) return;
    yield chunk.byteLength > left ? chunk.subarray(0, left) : chunk;
    left -= chunk.byteLength;
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
