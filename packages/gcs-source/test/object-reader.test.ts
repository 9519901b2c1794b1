import { gzipSync } from 'node:zlib';
import { Storage } from '@google-cloud/storage';
import { startFaultProxy } from '@sluice/core/testing';
import { startGcsServer, useGcs } from '@sluice/testkit';
import { OAuth2Client } from 'google-auth-library';
import { describe, expect, it } from 'vitest';
import { isMissingObject } from '../src/gcs.js';
import { createObjectReader } from '../src/object-reader.js';

async function text(body: Promise<AsyncIterable<Uint8Array>>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

/** A Cloud Storage error body, as the JSON API sends it. */
const apiError = (code: number, reason: string, message: string) =>
  JSON.stringify({ error: { code, message, errors: [{ message, domain: 'global', reason }] } });

// The one read path of source and sink: plain GETs, with the library's endpoint and credentials.
describe('object reads from Cloud Storage', () => {
  const kit = useGcs(['reads']);

  it('reads whole objects, ranges and generations of names that need escaping', async () => {
    const name = "dir/with space/it's (1)+ü*#?.txt";
    const stored = kit.server.putObject('reads', name, 'hello, world');
    const reader = createObjectReader(kit.storage, 'reads', 4);
    expect(await text(reader.read(name))).toBe('hello, world');
    expect(await text(reader.read(name, { start: 7, generation: stored.generation }))).toBe(
      'world',
    );
    expect(await text(reader.read(name, { start: 2, end: 3 }))).toBe('ll');
    reader.close();
  });

  it('names a missing object or a replaced generation as NOT_FOUND', async () => {
    const old = kit.server.putObject('reads', 'moving.txt', 'one');
    kit.server.putObject('reads', 'moving.txt', 'two');
    const reader = createObjectReader(kit.storage, 'reads', 4);
    for (const read of [
      reader.read('not-here.txt'),
      reader.read('moving.txt', { generation: old.generation }),
    ]) {
      const error = await read.catch((e) => e);
      expect(error).toMatchObject({ code: 'NOT_FOUND', retryable: false });
      expect(isMissingObject(error.cause)).toBe(true);
    }
    reader.close();
  });

  it('refuses a body that does not match its CRC32C', async () => {
    const stored = kit.server.putObject('reads', 'corrupt.txt', 'the real bytes');
    stored.crc32c = 'AAAAAA==';
    const reader = createObjectReader(kit.storage, 'reads', 4);
    await expect(text(reader.read('corrupt.txt'))).rejects.toThrow(
      /do not match the object's CRC32C/,
    );
    reader.close();
  });

  it('reads gzip-encoded objects decoded, from any byte, served compressed or decompressed', async () => {
    const plain = Array.from({ length: 500 }, (_, i) => `line ${i}\n`).join('');
    kit.server.putObject('reads', 'kept.txt', gzipSync(plain), {
      contentEncoding: 'gzip',
      cacheControl: 'no-transform',
    });
    kit.server.putObject('reads', 'transcoded.txt', gzipSync(plain), { contentEncoding: 'gzip' });
    const reader = createObjectReader(kit.storage, 'reads', 4);
    for (const name of ['kept.txt', 'transcoded.txt']) {
      const contentEncoding = 'gzip';
      expect(await text(reader.read(name, { contentEncoding }))).toBe(plain);
      expect(await text(reader.read(name, { contentEncoding, start: 1000 }))).toBe(
        plain.slice(1000),
      );
      // Without knowing the encoding, as the sink reads a manifest: the same bytes.
      expect(await text(reader.read(name))).toBe(plain);
    }
    // Decompressed on the fly, the whole object comes whatever Range asked for.
    expect(await text(reader.read('transcoded.txt', { start: 1000, end: 1009 }))).toBe(
      plain.slice(1000, 1010),
    );
    reader.close();
  });

  it("retries throttling and server errors with a caller's own client", async () => {
    kit.server.putObject('reads', 'busy.txt', 'eventually');
    const proxy = await startFaultProxy(kit.url, [
      { status: 503, body: apiError(503, 'backendError', 'Backend Error'), times: 1 },
      { status: 429, body: apiError(429, 'rateLimitExceeded', 'Rate limit'), times: 1 },
      {
        status: 403,
        body: apiError(403, 'userRateLimitExceeded', 'User Rate Limit Exceeded'),
        times: 1,
      },
    ]);
    try {
      // No retry options: the library's default (RetryConditional) would not even retry uploads.
      const storage = new Storage({ apiEndpoint: proxy.url, projectId: 'p' });
      const reader = createObjectReader(storage, 'reads', 4);
      expect(await text(reader.read('busy.txt'))).toBe('eventually');
      expect(proxy.injected).toBe(3);
      proxy.setRules([
        { status: 403, body: apiError(403, 'forbidden', 'no access to reads/busy.txt') },
      ]);
      await expect(reader.read('busy.txt')).rejects.toMatchObject({
        code: 'AUTH',
        message: 'gs://reads/busy.txt: access refused (403 forbidden)',
      });
      expect(proxy.injected).toBe(4);
      reader.close();
    } finally {
      await proxy.close();
    }
  });

  it('sends the credentials the client would send, and none to an emulator', async () => {
    const { server, url, stop } = await startGcsServer({ requireAuth: true });
    try {
      server.createBucket('private');
      server.putObject('private', 'a.txt', 'secret text');
      server.addToken('ya29.test-token');
      const auth = new OAuth2Client();
      auth.setCredentials({ access_token: 'ya29.test-token' });
      const storage = new Storage({
        apiEndpoint: url,
        projectId: 'p',
        authClient: auth,
        useAuthWithCustomEndpoint: true,
      });
      const reader = createObjectReader(storage, 'private', 4);
      expect(await text(reader.read('a.txt'))).toBe('secret text');
      reader.close();
      const anonymous = createObjectReader(
        new Storage({ apiEndpoint: url, projectId: 'p' }),
        'private',
        4,
      );
      await expect(anonymous.read('a.txt')).rejects.toMatchObject({ code: 'AUTH' });
      anonymous.close();
    } finally {
      await stop();
    }
  });
});
