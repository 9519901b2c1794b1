import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  /** Maps a canonical item URI to the item, or undefined when it is not served (404). */
  resolve(uri: string): Promise<MediaItem | undefined>;
}

/** Maps `s3://bucket/a b.png` to `/s3/bucket/a%20b.png`: one path per item URI, stable across runs. */
export function mediaPath(uri: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(uri);
  if (!match) throw new SluiceError(`not a URI: ${uri}`, { code: 'INTERNAL' });
  const [, scheme, rest] = match as unknown as [string, string, string];
  return `/${scheme.toLowerCase()}/${rest.split('/').map(encodeURIComponent).join('/')}`;
}

function uriOfPath(path: string): string | undefined {
  const match = /^\/([a-z][a-z0-9+.-]*)\/(.*)$/.exec(path);
  if (!match) return undefined;
  try {
    return `${match[1]}://${match[2]?.split('/').map(decodeURIComponent).join('/')}`;
  } catch {
    return undefined;
  }
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

/** The local HTTP server behind `proxy` media mode: GET and HEAD with Range, CORS for Prodigy's app. */
export class MediaServer {
  private server: Server | undefined;
  private origin = '';

  constructor(private readonly options: MediaServerOptions) {}

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

  /** The stable URL of an item. */
  urlFor(uri: string): string {
    return this.origin + mediaPath(uri);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader(
      'Access-Control-Expose-Headers',
      'Content-Length, Content-Range, Accept-Ranges, ETag',
    );
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
    const uri = uriOfPath(path);
    const item = uri ? await this.options.resolve(uri) : undefined;
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
