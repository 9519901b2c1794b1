import { createSign } from 'node:crypto';
import { get } from 'node:http';
import { gzipSync } from 'node:zlib';
import { ApiError, Storage } from '@google-cloud/storage';
import { OAuth2Client } from 'google-auth-library';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cBase64 } from '../src/crc32c.js';
import { useGcs } from '../src/fixtures.js';
import { serviceAccount } from '../src/gcs-server.js';

describe('crc32c', () => {
  it('matches the Castagnoli check value and the encoding Cloud Storage uses', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32cBase64(Buffer.from('hello world'))).toBe('yZRlqg==');
  });
});

describe('the Cloud Storage test server', () => {
  const kit = useGcs(['b1']);
  const json = async (path: string, init?: RequestInit) => {
    const response = await fetch(`${kit.url}${path}`, init);
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked by value below
    const body: any = await response.json();
    return { status: response.status, headers: response.headers, body };
  };

  it('pages listings with prefixes, counting both toward maxResults, and honours fields', async () => {
    for (const name of ['d/a.txt', 'd/b/1.txt', 'd/b/2.txt', 'd/c.txt', 'd/e/1.txt', 'x.txt']) {
      kit.server.putObject('b1', name, name);
    }
    const bucket = kit.storage.bucket('b1');
    const pages: Array<{ items: string[]; prefixes: string[] }> = [];
    let query: Record<string, unknown> | null = {
      prefix: 'd/',
      delimiter: '/',
      maxResults: 2,
      autoPaginate: false,
    };
    while (query) {
      const [files, next, raw] = (await bucket.getFiles(query)) as unknown as [
        Array<{ name: string }>,
        Record<string, unknown> | null,
        { prefixes?: string[] },
      ];
      pages.push({ items: files.map((f) => f.name), prefixes: raw.prefixes ?? [] });
      query = next;
    }
    expect(pages).toEqual([
      { items: ['d/a.txt'], prefixes: ['d/b/'] },
      { items: ['d/c.txt'], prefixes: ['d/e/'] },
    ]);
    const partial = await json(
      '/storage/v1/b/b1/o?prefix=d%2F&fields=items(name,size),nextPageToken',
    );
    expect(partial.body.items[0]).toEqual({ name: 'd/a.txt', size: '7' });
    expect(partial.body.kind).toBeUndefined();
  });

  it('answers errors with the JSON API body, and 412 on a failed precondition', async () => {
    const missing = await json('/storage/v1/b/b1/o/no%2Fsuch');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({
      error: {
        code: 404,
        message: 'No such object: b1/no/such',
        errors: [{ message: 'No such object: b1/no/such', domain: 'global', reason: 'notFound' }],
      },
    });
    kit.server.putObject('b1', 'taken.txt', 'x');
    const error = await kit.storage
      .bucket('b1')
      .file('taken.txt')
      .save('y', { resumable: false, preconditionOpts: { ifGenerationMatch: 0 } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: 412, errors: [{ reason: 'conditionNotMet' }] });
    expect(kit.server.getObject('b1', 'taken.txt')?.data.toString()).toBe('x');
  });

  it('serves ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    kit.server.putObject('b1', 'r.txt', '0123456789');
    const part = await fetch(`${kit.url}/storage/v1/b/b1/o/r.txt?alt=media`, {
      headers: { range: 'bytes=2-4' },
    });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 2-4/10');
    expect(await part.text()).toBe('234');
    const [tail] = await kit.storage.bucket('b1').file('r.txt').download({ start: 7 });
    expect(tail.toString()).toBe('789');
    const beyond = await fetch(`${kit.url}/storage/v1/b/b1/o/r.txt?alt=media`, {
      headers: { range: 'bytes=20-' },
    });
    expect(beyond.status).toBe(416);
  });

  it('takes resumable uploads in 256 KiB chunks and reports progress with 308 and Range', async () => {
    const data = Buffer.alloc(600_000, 7);
    await kit.storage
      .bucket('b1')
      .file('big.bin')
      .save(data, { resumable: true, chunkSize: 262_144 });
    expect(kit.server.getObject('b1', 'big.bin')?.data.equals(data)).toBe(true);

    const start = await fetch(
      `${kit.url}/upload/storage/v1/b/b1/o?uploadType=resumable&name=manual.bin`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      },
    );
    await start.arrayBuffer();
    const session = start.headers.get('location') as string;
    const put = async (range: string, body: Buffer) => {
      // 308 is Resume Incomplete here, not a redirect to follow.
      const response = await fetch(session, {
        method: 'PUT',
        headers: { 'content-range': range },
        body,
        redirect: 'manual',
      });
      const text = await response.text();
      return { status: response.status, range: response.headers.get('range'), text };
    };
    expect(await put('bytes */*', Buffer.alloc(0))).toMatchObject({ status: 308, range: null });
    const odd = await put('bytes 0-999/*', Buffer.alloc(1000));
    expect(odd.status).toBe(400);
    expect(JSON.parse(odd.text).error.message).toMatch(
      /required to be equal or greater than 262144/,
    );
    expect(await put('bytes 0-262143/*', Buffer.alloc(262_144, 1))).toMatchObject({
      status: 308,
      range: 'bytes=0-262143',
    });
    const last = await put('bytes 262144-262153/262154', Buffer.alloc(10, 2));
    expect(last.status).toBe(200);
    expect(JSON.parse(last.text).size).toBe('262154');
  });

  it('grants tokens for a signed JWT and refuses requests without one when auth is required', async () => {
    // A second server that requires auth.
    const { startGcsServer } = await import('../src/gcs-server.js');
    const { server, url, stop } = await startGcsServer({ requireAuth: true });
    try {
      server.createBucket('private');
      server.putObject('private', 'a.txt', 'secret text');
      const account = serviceAccount('reader@sluice-test.iam.gserviceaccount.com');
      server.addServiceAccount(account.client_email, account.public_key);
      const anonymous = await fetch(`${url}/storage/v1/b/private/o/a.txt`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toMatchObject({ error: { errors: [{ reason: 'required' }] } });

      const now = Math.floor(Date.now() / 1000);
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const unsigned = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({
        iss: account.client_email,
        scope: 'https://www.googleapis.com/auth/devstorage.read_only',
        aud: `${url}/token`,
        iat: now,
        exp: now + 3600,
      })}`;
      const signature = createSign('RSA-SHA256').update(unsigned).sign(account.private_key);
      const grant = await fetch(`${url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
          assertion: `${unsigned}.${signature.toString('base64url')}`,
        }),
      });
      const { access_token: token } = (await grant.json()) as { access_token: string };
      const auth = new OAuth2Client();
      auth.setCredentials({ access_token: token });
      const storage = new Storage({
        apiEndpoint: url,
        projectId: 'sluice-test',
        authClient: auth,
        useAuthWithCustomEndpoint: true,
      });
      const [body] = await storage.bucket('private').file('a.txt').download();
      expect(body.toString()).toBe('secret text');

      const forged = await fetch(`${url}/storage/v1/b/private/o/a.txt`, {
        headers: { authorization: 'Bearer ya29.forged' },
      });
      expect(forged.status).toBe(401);
      expect(await forged.json()).toMatchObject({ error: { errors: [{ reason: 'authError' }] } });
    } finally {
      await stop();
    }
  });

  it('transcodes gzip-encoded objects as Cloud Storage does, unless asked not to', async () => {
    const text = 'a line of text that compresses\n'.repeat(100);
    const gzip = gzipSync(text);
    kit.server.putObject('b1', 'z/plain.txt', gzip, { contentEncoding: 'gzip' });
    kit.server.putObject('b1', 'z/kept.txt', gzip, {
      contentEncoding: 'gzip',
      cacheControl: 'no-transform',
    });
    // A raw GET, so nothing on this side decodes the body.
    const raw = (name: string, headers: Record<string, string>) =>
      new Promise<{ status?: number; headers: Record<string, unknown>; body: Buffer }>(
        (resolve, reject) => {
          get(
            `${kit.url}/storage/v1/b/b1/o/${encodeURIComponent(name)}?alt=media`,
            { headers },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (chunk: Buffer) => chunks.push(chunk));
              res.on('end', () =>
                resolve({
                  status: res.statusCode,
                  headers: res.headers,
                  body: Buffer.concat(chunks),
                }),
              );
            },
          ).on('error', reject);
        },
      );
    // Decompressed, Range ignored, the stored object's hashes.
    const transcoded = await raw('z/plain.txt', { range: 'bytes=10-19' });
    expect(transcoded.status).toBe(200);
    expect(transcoded.body.toString()).toBe(text);
    expect(transcoded.headers).toMatchObject({
      'x-goog-stored-content-encoding': 'gzip',
      'x-goog-stored-content-length': String(gzip.length),
      warning: '214 UploadServer gunzipped',
    });
    expect(transcoded.headers['content-encoding']).toBeUndefined();
    expect(transcoded.headers['content-length']).toBeUndefined();
    // As stored, when the client takes gzip or the object says no-transform; ranges apply.
    const asked = await raw('z/plain.txt', { 'accept-encoding': 'gzip' });
    expect(asked.body).toEqual(gzip);
    expect(asked.headers['content-encoding']).toBe('gzip');
    const kept = await raw('z/kept.txt', { 'accept-encoding': 'identity', range: 'bytes=0-9' });
    expect(kept.status).toBe(206);
    expect(kept.body).toEqual(gzip.subarray(0, 10));
    expect(kept.headers).toMatchObject({
      'content-encoding': 'gzip',
      'cache-control': 'no-transform',
    });
  });
});
