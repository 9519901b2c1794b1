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

/** What the media server needs to stream one item. */
export interface MediaItem {
  size?: number;
  contentType: string;
  version?: string;
  open(range?: {
    start: number;
    end: number;
  }): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
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

/**
 * The local HTTP server behind `proxy` media mode: GET and HEAD with Range, for the items
 * added to it only, to requests naming a loopback host or the base URL's host (so a page
 * that rebinds its own DNS name to 127.0.0.1 gets nothing), readable across origins by
 * Prodigy's web app only.
 */
export class MediaServer {
  private server: Server | undefined;
  private origin = '';
  /** Items served, by URL path. */
  private readonly items = new Map<string, string>();
  private readonly origins: Set<string>;
  private readonly hosts = new Set<string>();

  constructor(private readonly options: MediaServerOptions) {
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

  /** Serves an item from now on, and returns its URL; `name` is its key (or file name). */
  add(uri: string, name: string): string {
    const path = mediaPath(uri, this.options.key, name);
    this.items.set(path, uri);
    return this.origin + path;
  }

  async close(): Promise<void> {
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
    const uri = this.items.get(new URL(req.url ?? '/', 'http://x').pathname);
    const item = uri === undefined ? undefined : await this.options.resolve(uri);
    if (!item) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const headers: Record<string, string | number> = {
      'Content-Type': item.contentType,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'private, max-age=3600',
    };
    if (item.version) headers.ETag = `"${item.version.replace(/"/g, '')}"`;
    let range: { start: number; end: number } | undefined;
    if (item.size !== undefined) {
      const requested = req.headers.range ? parseRange(req.headers.range, item.size) : undefined;
      if (requested === 'invalid') {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${item.size}` }).end();
        return;
      }
      range = requested;
      headers['Content-Length'] = range ? range.end - range.start + 1 : item.size;
      if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${item.size}`;
    }
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    // pipeline destroys the body when the browser aborts (it does, on every seek).
    await pipeline(Readable.from(await item.open(range)), res);
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
