import { createHmac, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, link, mkdir, open, unlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SluiceError } from './errors.js';

/**
 * How media items (images, audio, video) reach Prodigy's web app:
 * - `proxy`: a local HTTP server streams bytes from the store under stable URLs (default),
 * - `inline`: a base64 data URI in the task, for small files,
 * - `signed`: a presigned URL with a TTL (the task hash then changes between runs).
 */
export type MediaMode = 'proxy' | 'inline' | 'signed';
export const MEDIA_MODES: readonly MediaMode[] = ['proxy', 'inline', 'signed'];

/** Fixed by default so that proxy URLs, and with them Prodigy's task hashes, are the same on every run. */
export const DEFAULT_MEDIA_PORT = 8099;
export const DEFAULT_INLINE_MAX_BYTES = 5 * 1024 * 1024;
/** Media items the proxy reads ahead of the browser by default: more than Prodigy's batch of 10. */
export const DEFAULT_MEDIA_PREFETCH = 16;
/** Memory the items read ahead may take by default. */
export const DEFAULT_MEDIA_PREFETCH_BYTES = 64 * 1024 * 1024;

/** What the media server needs to stream one item. */
export interface MediaItem {
  size?: number;
  contentType: string;
  version?: string;
  open(
    range?: { start: number; end: number },
    signal?: AbortSignal,
  ): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

export interface MediaServerOptions {
  host?: string;
  port?: number;
  /** Public base URL when Prodigy's browser reaches the server through a proxy or another host name. */
  baseUrl?: string;
  /** The secret that makes URLs unguessable yet the same on every run (see {@link loadMediaKey}). */
  key: Uint8Array;
  /** Origins of Prodigy's web app that may read media across origins (default {@link prodigyOrigins}). */
  origins?: string[];
  /** Maps the canonical URI of an item added to the server to the item, or undefined (404). */
  resolve(uri: string): Promise<MediaItem | undefined>;
  /** Items read into memory ahead of the browser, in the order they were added (default {@link DEFAULT_MEDIA_PREFETCH}; 0: none). */
  prefetch?: number;
  /** Memory those items may take, in bytes (default {@link DEFAULT_MEDIA_PREFETCH_BYTES}); a larger item is streamed when asked for. */
  prefetchBytes?: number;
}

/**
 * The path of an item under the proxy: `/<token>/<name>`, where the token is an HMAC of the
 * item's canonical URI under the media key and `name` the last segment of its key. Without
 * the key nobody can tell an item's URL, yet with it the URL is the same on every run, as
 * Prodigy's task hashes need.
 */
export function mediaPath(uri: string, key: Uint8Array, name: string): string {
  const token = createHmac('sha256', key).update(uri).digest('base64url').slice(0, 22);
  return `/${token}/${encodeURIComponent(name.slice(name.lastIndexOf('/') + 1) || 'item')}`;
}

/**
 * Origins of Prodigy's web app: `http://localhost:<port>` and `http://127.0.0.1:<port>`, the
 * port being PRODIGY_PORT or 8080, and PRODIGY_HOST's when it names a host.
 */
export function prodigyOrigins(env: NodeJS.ProcessEnv = process.env): string[] {
  const port = /^\d+$/.test(env.PRODIGY_PORT ?? '') ? (env.PRODIGY_PORT as string) : '8080';
  const hosts = ['localhost', '127.0.0.1'];
  const host = env.PRODIGY_HOST?.trim();
  if (host && !hosts.includes(host) && !WILDCARD_HOSTS.has(host)) hosts.push(host);
  return hosts.map((name) => `http://${name.includes(':') ? `[${name}]` : name}:${port}`);
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

/** Host names a browser reaches only on this machine, which DNS rebinding cannot point elsewhere. */
function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  return (
    name === 'localhost' ||
    name.endsWith('.localhost') ||
    name === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name)
  );
}

/** The host name of a Host header (`127.0.0.1:8099`, `[::1]:8099`), lower case, or undefined. */
function hostnameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  try {
    return new URL(`http://${header}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Checks `--media-origin` values: each an origin such as `http://localhost:8080`. */
export function parseOrigins(values: string[]): string[] {
  return values.map((value) => {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {}
    if (!url || !/^https?:$/.test(url.protocol) || url.origin !== value.replace(/\/+$/, '')) {
      throw new SluiceError(`--media-origin: not an origin: ${value}`, {
        code: 'USAGE',
        hint: "give the scheme, host and port Prodigy's web app is opened at, e.g. http://localhost:8080",
      });
    }
    return url.origin;
  });
}

function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | 'invalid' | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined; // multi-range and other units: serve the whole body, as RFC 9110 allows
  const [, from, to] = match as unknown as [string, string, string];
  if (from === '' && to === '') return 'invalid';
  let start: number;
  let end: number;
  if (from === '') {
    start = Math.max(0, size - Number(to));
    end = size - 1;
  } else {
    start = Number(from);
    end = to === '' ? size - 1 : Math.min(Number(to), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}

/** An item read ahead, whole, as the browser will ask for it. */
interface Prefetched {
  contentType: string;
  version?: string;
  body: Buffer;
}

interface HeldItem {
  /** Its place in the order items were added. */
  seq: number;
  /** Bytes it holds (or, while it is read, reserves). */
  bytes: number;
  ready: Promise<Prefetched | undefined>;
  value?: Prefetched;
  settled: boolean;
}

/** Items read ahead at once: enough to keep up with a browser, few enough for any store's rate limits. */
const PREFETCH_PARALLEL = 4;

/**
 * Reads media items into memory ahead of the browser, in the order the source added them
 * (the order Prodigy shows them in), so that the browser's request is answered without a
 * round trip to the store. At most `limit` items and `maxBytes` bytes are held or being read.
 * An item leaves memory once it is served whole; items the browser went past (Prodigy left
 * them out, another annotator has them) make room for the next ones when room runs out.
 * Nothing here widens what is served: an item is read through `load`, which resolves it as a
 * request would, and only items added to the server are ever read.
 */
class Prefetcher {
  /** Items in the order they were added, from position `base` on: their path, and the item as listed when known. */
  private order: { path: string; listed?: MediaItem }[] = [];
  private base = 0;
  /** Position of the next item to read ahead. */
  private next = 0;
  /** Position after the furthest item the browser asked for. */
  private cursor = 0;
  private readonly held = new Map<string, HeldItem>();
  private bytes = 0;
  private reading = 0;
  private readonly abort = new AbortController();

  constructor(
    private readonly limit: number,
    private readonly maxBytes: number,
    /** The position of the item a path stands for now. */
    private readonly position: (path: string) => number | undefined,
    /** The item to read: the one listed, or the path's item resolved afresh. */
    private readonly load: (path: string, listed?: MediaItem) => Promise<MediaItem | undefined>,
  ) {}

  /** Queues an item added at position `seq` (an item added again is read again). */
  added(path: string, seq: number, listed?: MediaItem): void {
    this.drop(path);
    this.order.push({ path, listed });
    if (seq !== this.base + this.order.length - 1) throw new Error('media items out of order');
    this.pump();
  }

  /** The item read ahead for `path`, waiting for a read under way; notes how far the browser got. */
  async get(path: string): Promise<Prefetched | undefined> {
    const seq = this.position(path);
    if (seq !== undefined && seq >= this.cursor) this.cursor = seq + 1;
    const entry = this.held.get(path);
    this.pump();
    return entry?.ready;
  }

  /** Frees an item served whole. */
  release(path: string): void {
    this.drop(path);
    this.pump();
  }

  close(): void {
    this.abort.abort();
    this.held.clear();
    this.order = [];
    this.bytes = 0;
  }

  private drop(path: string): void {
    const entry = this.held.get(path);
    if (!entry) return;
    this.held.delete(path);
    this.bytes -= entry.bytes;
  }

  /** Makes room by dropping the earliest item the browser went past; false when there is none. */
  private evictPassed(): boolean {
    let earliest: [string, HeldItem] | undefined;
    for (const held of this.held) {
      const [, entry] = held;
      if (entry.settled && entry.seq < this.cursor && (!earliest || entry.seq < earliest[1].seq)) {
        earliest = held;
      }
    }
    if (!earliest) return false;
    this.drop(earliest[0]);
    return true;
  }

  private pump(): void {
    while (this.reading < PREFETCH_PARALLEL && !this.abort.signal.aborted) {
      if (this.next < this.cursor) this.next = this.cursor;
      if (this.next >= this.base + this.order.length) break;
      const seq = this.next;
      const { path, listed } = this.order[seq - this.base] as { path: string; listed?: MediaItem };
      // Added again further on, or read already: its later place counts.
      if (this.position(path) !== seq || this.held.has(path)) {
        this.next++;
        continue;
      }
      const size = listed?.size ?? 0;
      if (size > this.maxBytes) {
        this.next++; // never fits: streamed when asked for
        continue;
      }
      while (this.held.size >= this.limit || this.bytes + size > this.maxBytes) {
        if (!this.evictPassed()) return;
      }
      this.next++;
      this.read(path, seq, size, listed);
    }
    // Positions behind the reader are looked up no more.
    const behind = this.next - this.base;
    if (behind > 1024 && behind * 2 > this.order.length) {
      this.order = this.order.slice(behind);
      this.base = this.next;
    }
  }

  private read(path: string, seq: number, size: number, listed?: MediaItem): void {
    const entry: HeldItem = { seq, bytes: size, ready: undefined as never, settled: false };
    this.held.set(path, entry);
    this.bytes += size;
    this.reading++;
    const current = () => this.held.get(path) === entry;
    entry.ready = (async (): Promise<Prefetched | undefined> => {
      try {
        const signal = this.abort.signal;
        const item = await this.load(path, listed);
        if (!item || !current()) return undefined;
        const chunks: Buffer[] = [];
        let got = 0;
        for await (const chunk of await item.open(undefined, signal)) {
          got += chunk.byteLength;
          // Only bytes beyond what was reserved count against the budget (a size unknown, or wrong).
          if (got > entry.bytes) {
            if (!current() || this.bytes + got - entry.bytes > this.maxBytes) return undefined;
            this.bytes += got - entry.bytes;
            entry.bytes = got;
          }
          chunks.push(Buffer.from(chunk));
        }
        if (!current()) return undefined;
        entry.value = {
          contentType: item.contentType,
          version: item.version,
          body: Buffer.concat(chunks, got),
        };
        return entry.value;
      } catch {
        return undefined; // the browser's request reads the store itself and reports what fails
      } finally {
        entry.settled = true;
        this.reading--;
        if (!entry.value && current()) this.drop(path);
        this.pump();
      }
    })();
  }
}

/**
 * The local HTTP server behind `proxy` media mode: GET and HEAD with Range, for the items
 * added to it only, to requests naming a loopback host or the base URL's host (so a page
 * that rebinds its own DNS name to 127.0.0.1 gets nothing), readable across origins by
 * Prodigy's web app only.
 */
export class MediaServer {
  private server: Server | undefined;
  private origin = '';
  /** Items served, by URL path: their URI and the order they were added in. */
  private readonly items = new Map<string, { uri: string; seq: number }>();
  private added = 0;
  private readonly origins: Set<string>;
  private readonly hosts = new Set<string>();
  private readonly prefetcher: Prefetcher | undefined;

  constructor(private readonly options: MediaServerOptions) {
    const ahead = options.prefetch ?? DEFAULT_MEDIA_PREFETCH;
    if (ahead > 0) {
      this.prefetcher = new Prefetcher(
        ahead,
        options.prefetchBytes ?? DEFAULT_MEDIA_PREFETCH_BYTES,
        (path) => this.items.get(path)?.seq,
        // An item just listed is read as listed, in the version its task names, with no
        // second look-up; the browser's own requests resolve the item afresh.
        async (path, listed) => {
          const uri = this.items.get(path)?.uri;
          return listed ?? (uri === undefined ? undefined : options.resolve(uri));
        },
      );
    }
    this.origins = new Set(options.origins ?? prodigyOrigins());
    const host = options.host ?? '127.0.0.1';
    if (!WILDCARD_HOSTS.has(host))
      this.hosts.add(hostnameOf(host.includes(':') ? `[${host}]` : host) ?? host);
    const base = options.baseUrl ? hostnameOf(new URL(options.baseUrl).host) : undefined;
    if (base) this.hosts.add(base);
  }

  /** Starts listening; fails with a clear error when the port is taken. */
  async start(): Promise<void> {
    if (this.server) return;
    const host = this.options.host ?? '127.0.0.1';
    const port = this.options.port ?? DEFAULT_MEDIA_PORT;
    const server = createServer((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(502).end('upstream read failed\n');
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(
          new SluiceError(
            `cannot serve media on ${host}:${port} (${error.code ?? error.message})`,
            {
              code: 'USAGE',
              hint:
                error.code === 'EADDRINUSE'
                  ? 'another process (perhaps another sluice source) uses that port: pass --media-port'
                  : 'check --media-host and --media-port',
              cause: error,
            },
          ),
        );
      });
      server.listen(port, host, () => resolve());
    });
    const address = server.address() as AddressInfo;
    this.server = server;
    this.origin =
      this.options.baseUrl?.replace(/\/+$/, '') ??
      `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  }

  /** The base URL tasks point at, once started. */
  get url(): string {
    return this.origin;
  }

  /**
   * Serves an item from now on, and returns its URL; `name` is its key (or file name). Items
   * are read ahead in the order they are added: `listed`, the item as just listed, saves
   * looking it up again.
   */
  add(uri: string, name: string, listed?: MediaItem): string {
    const path = mediaPath(uri, this.options.key, name);
    const seq = this.added++;
    this.items.set(path, { uri, seq });
    this.prefetcher?.added(path, seq, listed);
    return this.origin + path;
  }

  async close(): Promise<void> {
    this.prefetcher?.close();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hostname = hostnameOf(req.headers.host);
    if (!hostname || !(isLoopbackName(hostname) || this.hosts.has(hostname))) {
      res.writeHead(403, { 'Content-Type': 'text/plain' }).end('host not served\n');
      return;
    }
    res.setHeader('Vary', 'Origin');
    // A request that names its origin (fetch, XHR, a preflight) comes from a page: only
    // Prodigy's may read media. Plain <img> and <audio> loads send no origin.
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!this.origins.has(origin)) {
        res.writeHead(403, { 'Content-Type': 'text/plain' }).end('origin not allowed\n');
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader(
        'Access-Control-Expose-Headers',
        'Content-Length, Content-Range, Accept-Ranges, ETag',
      );
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS',
        'Access-Control-Allow-Headers': 'Range',
      });
      res.end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD, OPTIONS' }).end();
      return;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const uri = this.items.get(path)?.uri;
    const ahead = uri === undefined ? undefined : await this.prefetcher?.get(path);
    const item = ahead || uri === undefined ? undefined : await this.options.resolve(uri);
    const about = ahead
      ? { size: ahead.body.length, contentType: ahead.contentType, version: ahead.version }
      : item;
    if (!about) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const headers: Record<string, string | number> = {
      'Content-Type': about.contentType,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'private, max-age=3600',
    };
    if (about.version) headers.ETag = `"${about.version.replace(/"/g, '')}"`;
    let range: { start: number; end: number } | undefined;
    if (about.size !== undefined) {
      const requested = req.headers.range ? parseRange(req.headers.range, about.size) : undefined;
      if (requested === 'invalid') {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${about.size}` }).end();
        return;
      }
      range = requested;
      headers['Content-Length'] = range ? range.end - range.start + 1 : about.size;
      if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${about.size}`;
    }
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (ahead) {
      // Served whole, it is held no longer; after a range (a seek) more may follow.
      if (!range || range.end - range.start + 1 === about.size) this.prefetcher?.release(path);
      res.end(range ? ahead.body.subarray(range.start, range.end + 1) : ahead.body);
      return;
    }
    // pipeline destroys the body when the browser aborts (it does, on every seek).
    await pipeline(Readable.from(await (item as MediaItem).open(range)), res);
  }
}

/** Where the media key is kept: `$XDG_CONFIG_HOME/sluice/media.key`, else `~/.config/sluice/media.key`. */
export function defaultMediaKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'sluice', 'media.key');
}

const KEY_HINT =
  'delete it and run again: a new key is made (media URLs, and so the hashes of media tasks, change once)';

function keyError(path: string, problem: string, hint = KEY_HINT, cause?: unknown): SluiceError {
  return new SluiceError(`media key ${path}: ${problem}`, { code: 'USAGE', hint, cause });
}

/**
 * Reads the per-user secret behind media URLs, making it on first use: 32 random bytes in a
 * file only its owner may read (0600). A key file others may read, another user's, or a
 * symbolic link is refused, since whoever reads the key can tell every media URL.
 */
export async function loadMediaKey(path = defaultMediaKeyPath()): Promise<Buffer> {
  for (let attempt = 0; ; attempt++) {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && attempt === 0) {
        await makeMediaKey(path);
        continue;
      }
      if (code === 'ELOOP') {
        throw keyError(
          path,
          'is a symbolic link',
          'point --media-key-file at the file itself',
          error,
        );
      }
      throw keyError(
        path,
        `cannot be read (${code ?? (error as Error).message})`,
        'check --media-key-file and the permissions of its folder',
        error,
      );
    }
    try {
      const stats = await handle.stat();
      if (process.platform !== 'win32') {
        if (stats.uid !== process.getuid?.()) {
          throw keyError(
            path,
            'belongs to another user',
            'use a key file of your own (--media-key-file)',
          );
        }
        if ((stats.mode & 0o077) !== 0) {
          throw keyError(path, 'other users may read it', `make it private: chmod 600 ${path}`);
        }
      }
      const text = (await handle.readFile('utf8')).trim();
      if (!/^[0-9a-f]{64}$/.test(text)) throw keyError(path, 'not a Sluice media key');
      return Buffer.from(text, 'hex');
    } finally {
      await handle.close();
    }
  }
}

/** Writes a new key where none is: a private temporary file, linked into place unless another process was first. */
async function makeMediaKey(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const temp = join(dir, `.media.key.${randomBytes(8).toString('hex')}.tmp`);
    await writeFile(temp, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await unlink(temp);
    }
  } catch (error) {
    throw keyError(
      path,
      `cannot be made (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      'pass --media-key-file with a path you may write, or use --media inline',
      error,
    );
  }
}

/** Reads a media item into a data URI, refusing items above `maxBytes`. */
export async function toDataUri(
  body: AsyncIterable<Uint8Array>,
  contentType: string,
  maxBytes: number,
  name: string,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      throw new SluiceError(`${name}: larger than ${maxBytes} bytes, too large to inline`, {
        code: 'CONVERT',
        hint: 'use --media proxy (the default), or raise --inline-max-bytes',
      });
    }
    chunks.push(Buffer.from(chunk));
  }
  return `data:${contentType};base64,${Buffer.concat(chunks).toString('base64')}`;
}
