import { afterEach, describe, expect, it } from 'vitest';
import { MediaServer, mediaPath } from '../src/media.js';

const body = Buffer.from('0123456789');

describe('media proxy server', () => {
  let server: MediaServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  async function start() {
    server = new MediaServer({
      port: 0,
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

  it('maps item URIs to stable, escaped paths', () => {
    expect(mediaPath('s3://bucket/dir/a b.png')).toBe('/s3/bucket/dir/a%20b.png');
    expect(mediaPath('file:///home/u/x#1.png')).toBe('/file//home/u/x%231.png');
  });

  it('answers ranges like a file server: suffix ranges, 416 past the end, HEAD without a body', async () => {
    const media = await start();
    const url = media.urlFor('s3://bucket/dir/a b.png');
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
    const preflight = await fetch(url, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toBe('Range');
  });

  it('refuses a port in use with a hint', async () => {
    const media = await start();
    const port = Number(new URL(media.url).port);
    const second = new MediaServer({ port, resolve: async () => undefined });
    await expect(second.start()).rejects.toThrow(
      /cannot serve media on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/,
    );
  });
});
