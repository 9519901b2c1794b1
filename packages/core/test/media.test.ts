import { chmod, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  defaultMediaKeyPath,
  loadMediaKey,
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
