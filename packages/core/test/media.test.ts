import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  defaultMediaKeyPath,
  loadMediaKey,
  type MediaItem,
  MediaServer,
  mediaPath,
  parseOrigins,
  prodigyOrigins,
} from '../src/media.js';
import { freePort } from '../src/testing/index.js';

const body = Buffer.from('0123456789');
const key = Buffer.alloc(32, 7);

describe('media proxy server', () => {
  let server: MediaServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  async function start(options: { port?: number; baseUrl?: string; origins?: string[] } = {}) {
    server = new MediaServer({
      port: 0,
      key,
      ...options,
      resolve: async (uri) =>
        uri === 's3://bucket/dir/a b.png'
          ? {
              size: body.length,
              contentType: 'image/png',
              version: 'v1',
              open: async (range) =>
                (async function* () {
                  yield range ? body.subarray(range.start, range.end + 1) : body;
                })(),
            }
          : undefined,
    });
    await server.start();
    return server;
  }

  it('names an item by an HMAC of its URI under the key: stable, escaped, unguessable without the key', () => {
    const path = mediaPath('s3://bucket/dir/a b.png', key, 'dir/a b.png');
    expect(path).toMatch(/^\/[A-Za-z0-9_-]{22}\/a%20b\.png$/);
    expect(mediaPath('s3://bucket/dir/a b.png', key, 'dir/a b.png')).toBe(path);
    expect(mediaPath('s3://bucket/dir/a b.png', Buffer.alloc(32, 8), 'dir/a b.png')).not.toBe(path);
    expect(mediaPath('s3://bucket/dir/c.png', key, 'dir/a b.png')).not.toBe(path);
  });

  it('answers ranges like a file server: suffix ranges, 416 past the end, HEAD without a body', async () => {
    const media = await start();
    const url = media.add('s3://bucket/dir/a b.png', 'dir/a b.png');
    const suffix = await fetch(url, { headers: { Range: 'bytes=-3' } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe('bytes 7-9/10');
    expect(await suffix.text()).toBe('789');
    const past = await fetch(url, { headers: { Range: 'bytes=20-' } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe('bytes */10');
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('10');
    expect(head.headers.get('etag')).toBe('"v1"');
    expect((await fetch(url, { method: 'POST' })).status).toBe(405);
    const preflight = await fetch(url, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:8080', 'Access-Control-Request-Headers': 'range' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toBe('Range');
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://localhost:8080');
  });

  it('serves only items added to it, and only to the origins it was given', async () => {
    const media = await start({ origins: ['https://prodigy.acme.com'] });
    const base = media.url;
    // The item exists for resolve, but this server never handed out its URL.
    expect(
      (await fetch(`${base}${mediaPath('s3://bucket/dir/a b.png', key, 'a b.png')}`)).status,
    ).toBe(404);
    const url = media.add('s3://bucket/dir/a b.png', 'dir/a b.png');
    expect((await fetch(url)).status).toBe(200);
    // The same token under another name is another URL: not served.
    expect((await fetch(url.replace(/a%20b\.png$/, 'x.png'))).status).toBe(404);
    const allowed = await fetch(url, { headers: { Origin: 'https://prodigy.acme.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://prodigy.acme.com');
    expect(allowed.headers.get('vary')).toBe('Origin');
    expect((await fetch(url, { headers: { Origin: 'http://localhost:8080' } })).status).toBe(403);
    expect((await fetch(url, { headers: { Origin: 'null' } })).status).toBe(403);
  });

  it('accepts the host of --media-base-url besides loopback names', async () => {
    const port = await freePort();
    const media = await start({ port, baseUrl: 'http://annotate.acme.com:9000' });
    const { pathname } = new URL(media.add('s3://bucket/dir/a b.png', 'dir/a b.png'));
    const status = (host: string) =>
      new Promise<number>((resolve, reject) => {
        get(`http://127.0.0.1:${port}${pathname}`, { headers: { host } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        }).once('error', reject);
      });
    expect(await status('annotate.acme.com:9000')).toBe(200);
    expect(await status('localhost')).toBe(200);
    expect(await status('127.0.0.1:1234')).toBe(200);
    expect(await status('[::1]:8099')).toBe(200);
    expect(await status('evil.example')).toBe(403);
    expect(await status('127.0.0.1.evil.example')).toBe(403);
  });

  it('refuses a port in use with a hint', async () => {
    const media = await start();
    const port = Number(new URL(media.url).port);
    const second = new MediaServer({ port, key, resolve: async () => undefined });
    await expect(second.start()).rejects.toThrow(
      /cannot serve media on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/,
    );
  });

  it("takes Prodigy's origins from PRODIGY_PORT and PRODIGY_HOST, and checks --media-origin", () => {
    expect(prodigyOrigins({})).toEqual(['http://localhost:8080', 'http://127.0.0.1:8080']);
    expect(prodigyOrigins({ PRODIGY_PORT: '9000', PRODIGY_HOST: '0.0.0.0' })).toEqual([
      'http://localhost:9000',
      'http://127.0.0.1:9000',
    ]);
    expect(prodigyOrigins({ PRODIGY_HOST: 'annotate.lan' })).toContain('http://annotate.lan:8080');
    expect(parseOrigins(['https://prodigy.acme.com/'])).toEqual(['https://prodigy.acme.com']);
    expect(() => parseOrigins(['prodigy.acme.com'])).toThrow(/not an origin/);
    expect(() => parseOrigins(['http://x.com/app'])).toThrow(/not an origin/);
  });
});

describe('media proxy: reading ahead', () => {
  let server: MediaServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  /** A store of images, each its own bytes, that records every read of a body. */
  function store(
    sizes: Record<string, number>,
    options: { gate?: Promise<void>; failOnce?: string } = {},
  ) {
    const reads: string[] = [];
    const bodyOf = (name: string) => Buffer.alloc(sizes[name] as number, name);
    let failed = false;
    const item = (name: string, sized = true): MediaItem => ({
      size: sized ? sizes[name] : undefined,
      contentType: 'image/png',
      version: `v-${name}`,
      open: async (range?: { start: number; end: number }) => {
        reads.push(range ? `${name} ${range.start}-${range.end}` : name);
        await options.gate;
        if (options.failOnce === name && !failed) {
          failed = true;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        const body = bodyOf(name);
        return [range ? body.subarray(range.start, range.end + 1) : body];
      },
    });
    const resolve = async (uri: string) => {
      const name = uri.slice('s3://bucket/'.length);
      return name in sizes ? item(name) : undefined;
    };
    return { reads, resolve, bodyOf, item };
  }

  async function start(
    resolve: (uri: string) => Promise<MediaItem | undefined>,
    options: { prefetch?: number; prefetchBytes?: number } = {},
  ) {
    server = new MediaServer({ port: 0, key, resolve, ...options });
    await server.start();
    return server;
  }

  const names = (n: number) => Array.from({ length: n }, (_, i) => `img/${i + 1}.png`);
  /** Adds an item as a source does, with the item as listed. */
  const add = (media: MediaServer, name: string, listed?: MediaItem) =>
    media.add(`s3://bucket/${name}`, name, listed);
  const bytesOf = async (url: string, init?: RequestInit) =>
    Buffer.from(await (await fetch(url, init)).arrayBuffer());

  it('reads the next images before the browser asks, and answers from memory', async () => {
    const sizes = Object.fromEntries(names(3).map((name) => [name, 1000]));
    const { reads, resolve, bodyOf, item } = store(sizes);
    const media = await start(resolve);
    const urls = names(3).map((name) => add(media, name, item(name)));
    await vi.waitFor(() => expect(reads.sort()).toEqual(names(3)));
    for (const [i, url] of urls.entries()) {
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/png');
      expect(response.headers.get('etag')).toBe(`"v-img/${i + 1}.png"`);
      expect(response.headers.get('content-length')).toBe('1000');
      expect(Buffer.from(await response.arrayBuffer())).toEqual(bodyOf(`img/${i + 1}.png`));
    }
    // No request reached the store: each image was read once, ahead of it.
    expect(reads).toHaveLength(3);
    // Served whole, an image is no longer held: asked again, it is read from the store.
    expect(await bytesOf(urls[0] as string)).toEqual(bodyOf('img/1.png'));
    expect(reads).toHaveLength(4);
  });

  it('holds no more items and bytes than it is given, and reads on as the browser takes them', async () => {
    const sizes = Object.fromEntries(names(8).map((name) => [name, 10]));
    const { reads, resolve, item } = store(sizes);
    const media = await start(resolve, { prefetch: 3 });
    const urls = names(8).map((name) => add(media, name, item(name)));
    await vi.waitFor(() => expect(reads).toHaveLength(3));
    await new Promise((r) => setTimeout(r, 50));
    expect(reads.sort()).toEqual(names(3));
    await bytesOf(urls[0] as string);
    await vi.waitFor(() => expect(reads).toContain('img/4.png'));
    expect(reads).toHaveLength(4);

    await server?.close();
    const byBytes = store(sizes);
    const small = await start(byBytes.resolve, { prefetchBytes: 25 });
    for (const name of names(8)) add(small, name, byBytes.item(name));
    await vi.waitFor(() => expect(byBytes.reads).toHaveLength(2));
    await new Promise((r) => setTimeout(r, 50));
    expect(byBytes.reads).toHaveLength(2);
  });

  it('streams an item too large to hold, of known or unknown size, from the store when asked', async () => {
    const { reads, resolve, bodyOf, item } = store({
      'big.mp4': 100,
      'unsized.mp4': 100,
      'a.png': 10,
    });
    const media = await start(resolve, { prefetchBytes: 50 });
    const big = add(media, 'big.mp4', item('big.mp4'));
    const unsized = add(media, 'unsized.mp4', item('unsized.mp4', false));
    add(media, 'a.png', item('a.png'));
    // The item of unknown size is read until it passes the limit, then let go.
    await vi.waitFor(() => expect(reads.sort()).toEqual(['a.png', 'unsized.mp4']));
    expect(await bytesOf(big)).toEqual(bodyOf('big.mp4'));
    expect(await bytesOf(unsized)).toEqual(bodyOf('unsized.mp4'));
    expect(reads.sort()).toEqual(['a.png', 'big.mp4', 'unsized.mp4', 'unsized.mp4']);
  });

  it('makes room past the items the browser skipped (Prodigy left them out)', async () => {
    const sizes = Object.fromEntries(names(10).map((name) => [name, 10]));
    const { reads, resolve, bodyOf, item } = store(sizes);
    const media = await start(resolve, { prefetch: 2 });
    const urls = names(10).map((name) => add(media, name, item(name)));
    await vi.waitFor(() => expect(reads).toHaveLength(2));
    // Items 1 and 2 were excluded by Prodigy: the browser's first image is the sixth.
    expect(await bytesOf(urls[5] as string)).toEqual(bodyOf('img/6.png'));
    await vi.waitFor(() =>
      expect(reads).toEqual(expect.arrayContaining(['img/7.png', 'img/8.png'])),
    );
    const before = reads.length;
    expect(await bytesOf(urls[6] as string)).toEqual(bodyOf('img/7.png'));
    expect(await bytesOf(urls[7] as string)).toEqual(bodyOf('img/8.png'));
    expect(reads.slice(before)).not.toContain('img/7.png');
    expect(reads.slice(before)).not.toContain('img/8.png');
    expect(reads).not.toContain('img/3.png');
  });

  it('answers a request for an item being read with that read, not a second one', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const { reads, resolve, bodyOf, item } = store({ 'a.png': 10 }, { gate });
    const media = await start(resolve);
    const url = add(media, 'a.png', item('a.png'));
    await vi.waitFor(() => expect(reads).toEqual(['a.png']));
    const response = bytesOf(url);
    setTimeout(open, 20);
    expect(await response).toEqual(bodyOf('a.png'));
    expect(reads).toEqual(['a.png']);
  });

  it('serves ranges and HEAD from memory, and keeps the item until it is served whole', async () => {
    const { reads, resolve, bodyOf, item } = store({ 'a.png': 10 });
    const media = await start(resolve);
    const url = add(media, 'a.png', item('a.png'));
    await vi.waitFor(() => expect(reads).toEqual(['a.png']));
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('10');
    const ranged = await fetch(url, { headers: { Range: 'bytes=2-4' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe('bytes 2-4/10');
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(bodyOf('a.png').subarray(2, 5));
    expect(await bytesOf(url)).toEqual(bodyOf('a.png'));
    expect(reads).toEqual(['a.png']);
  });

  it('falls back to the store when reading ahead failed, and keeps the Host and Origin checks', async () => {
    const { reads, resolve, bodyOf, item } = store(
      { 'a.png': 10, 'b.png': 10 },
      { failOnce: 'a.png' },
    );
    const media = await start(resolve);
    const a = add(media, 'a.png', item('a.png'));
    const b = add(media, 'b.png', item('b.png'));
    await vi.waitFor(() => expect(reads.sort()).toEqual(['a.png', 'b.png']));
    expect(await bytesOf(a)).toEqual(bodyOf('a.png'));
    expect(reads.filter((name) => name === 'a.png')).toHaveLength(2);
    // Held in memory or not, an item goes only to Prodigy's pages and loopback names.
    expect((await fetch(b, { headers: { Origin: 'https://evil.example' } })).status).toBe(403);
    const status = await new Promise<number>((done, reject) => {
      get(b, { headers: { host: 'evil.example' } }, (response) => {
        response.resume();
        done(response.statusCode ?? 0);
      }).once('error', reject);
    });
    expect(status).toBe(403);
    expect(await bytesOf(b)).toEqual(bodyOf('b.png'));
    expect(reads.filter((name) => name === 'b.png')).toHaveLength(1);
  });

  it('looks up an item added without its listing, reading nothing the source would not serve; and nothing with --media-prefetch 0', async () => {
    const { reads, resolve, item } = store({ 'a.png': 10, 'b.png': 10 });
    const media = await start(async (uri) => (uri.endsWith('/a.png') ? resolve(uri) : undefined));
    const a = add(media, 'a.png');
    const b = add(media, 'b.png');
    await vi.waitFor(() => expect(reads).toEqual(['a.png']));
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toEqual(['a.png']);
    expect((await fetch(b)).status).toBe(404);
    expect((await fetch(a)).status).toBe(200);
    expect(reads).toEqual(['a.png']);
    reads.length = 0;
    await server?.close();
    const off = await start(resolve, { prefetch: 0 });
    const again = add(off, 'a.png', item('a.png'));
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toEqual([]);
    expect((await fetch(again)).status).toBe(200);
    expect(reads).toEqual(['a.png']);
  });
});

describe('media key', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-media-key-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is made on first use, private to its owner, and the same afterwards', async () => {
    const path = join(dir, 'conf', 'sluice', 'media.key');
    const made = await Promise.all([loadMediaKey(path), loadMediaKey(path), loadMediaKey(path)]);
    expect(made[0]).toHaveLength(32);
    expect(made[1]).toEqual(made[0]);
    expect(made[2]).toEqual(made[0]);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'conf', 'sluice'))).mode & 0o077).toBe(0);
    expect(await loadMediaKey(path)).toEqual(made[0]);
    expect(defaultMediaKeyPath({ XDG_CONFIG_HOME: '/x' })).toBe('/x/sluice/media.key');
  });

  it('refuses a key others may read, a link, and a file that is no key', async () => {
    const path = join(dir, 'media.key');
    await loadMediaKey(path);
    await chmod(path, 0o644);
    await expect(loadMediaKey(path)).rejects.toThrow(/other users may read it/);
    await chmod(path, 0o600);
    const link = join(dir, 'link.key');
    await symlink(path, link);
    await expect(loadMediaKey(link)).rejects.toThrow(/is a symbolic link/);
    const bad = join(dir, 'bad.key');
    await writeFile(bad, 'hello\n', { mode: 0o600 });
    await expect(loadMediaKey(bad)).rejects.toThrow(/not a Sluice media key/);
    expect((await readFile(path, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
  });
});
