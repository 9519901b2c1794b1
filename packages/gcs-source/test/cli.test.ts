import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { hasStackTrace, runCli, startFaultProxy, TINY_PNG, taskLines } from '@sluice/core/testing';
import { type GcsServer, serviceAccount, startGcsServer } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

// Objects the suites do not use: awkward names, every text format, a zero-byte object.
const objects: Record<string, string> = {
  'data/tickets.jsonl': '{"text":"Refund not received"}\n{"text":"App crashes","meta":{"k":1}}\n',
  'data/with space/é ü.txt': 'line one\nline two\n',
  'data/a+b%c#d?.csv': 'text,label\n"Hello, world",GREETING\n',
  'data/nested/deeper/list.json': '[{"text":"from json"}]',
  'data/empty.txt': '',
  [`data/${'long-'.repeat(150)}name.txt`]: 'long name\n',
};

/** 3,000 rows of JSONL and what the CLI should make of them, as an object `name` holds them. */
const ROWS = 3000;
const rows = Array.from({ length: ROWS }, (_, i) => `{"text":"row ${i}"}\n`).join('');
const rowLines = (name: string) =>
  Array.from({ length: ROWS }, (_, i) => `gs://raw/${name}#${i + 1}=row ${i}`).sort();

// The JSON API's error body, as a fault.
const unavailable = JSON.stringify({
  error: {
    code: 503,
    message: 'We encountered an internal error. Please try again.',
    errors: [{ message: 'Backend Error', domain: 'global', reason: 'backendError' }],
  },
});

describe('gcs-source CLI against the test kit server', () => {
  let server: GcsServer;
  let url: string;
  let dir: string;
  let keyFile: string;
  beforeAll(async () => {
    ({ server, url } = await startGcsServer());
    server.createBucket('raw');
    for (const [name, body] of Object.entries(objects)) server.putObject('raw', name, body);
    server.putObject('raw', 'media/pixel.png', TINY_PNG, { contentType: 'image/png' });
    // As `gsutil cp -Z` and `gcloud storage cp --gzip-local-all` store files: served as stored.
    server.putObject('raw', 'gz/kept.jsonl', gzipSync(rows), {
      contentEncoding: 'gzip',
      cacheControl: 'no-transform',
    });
    // Stored gzip-encoded without no-transform: served decompressed, Range ignored.
    server.putObject('raw', 'gz/transcoded.jsonl', gzipSync(rows), { contentEncoding: 'gzip' });
    dir = await mkdtemp(join(tmpdir(), 'sluice-gcs-cli-'));
    const account = serviceAccount();
    server.addServiceAccount(account.client_email, account.public_key);
    keyFile = join(dir, 'key.json');
    const { public_key: _, ...key } = account;
    await writeFile(keyFile, JSON.stringify(key));
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams every object as tasks, awkward names included, with lineage', async () => {
    const run = await runCli(cli, ['gs://raw/data/', '--quiet', '--endpoint', url]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(taskLines(run.stdout)).toEqual([
      'gs://raw/data/a+b%c#d?.csv#1=Hello, world',
      `gs://raw/data/${'long-'.repeat(150)}name.txt#1=long name`,
      'gs://raw/data/nested/deeper/list.json#1=from json',
      'gs://raw/data/tickets.jsonl#1=Refund not received',
      'gs://raw/data/tickets.jsonl#2=App crashes',
      'gs://raw/data/with space/é ü.txt#1=line one',
      'gs://raw/data/with space/é ü.txt#2=line two',
    ]);
  });

  it('takes the endpoint from STORAGE_EMULATOR_HOST as emulators expect', async () => {
    const run = await runCli(cli, ['gs://raw/data/tickets.jsonl', '--quiet'], {
      env: { STORAGE_EMULATOR_HOST: url },
    });
    expect(run.code).toBe(0);
    expect(taskLines(run.stdout)).toEqual([
      'gs://raw/data/tickets.jsonl#1=Refund not received',
      'gs://raw/data/tickets.jsonl#2=App crashes',
    ]);
  });

  it('emits exactly the same tasks through 503s and bodies cut midway', async () => {
    const clean = await runCli(cli, ['gs://raw/data/', '--quiet', '--endpoint', url]);
    const proxy = await startFaultProxy(url, [
      { status: 503, body: unavailable, every: 3, times: 3 },
      {
        cutAfterBytes: 10,
        times: 2,
        match: ({ method, url: path }) => method === 'GET' && path.includes('tickets'),
      },
    ]);
    try {
      const faulty = await runCli(cli, [
        'gs://raw/data/',
        '--quiet',
        '--concurrency',
        '2',
        '--endpoint',
        proxy.url,
      ]);
      expect(faulty.stderr).toBe('');
      expect(faulty.code).toBe(0);
      expect(taskLines(faulty.stdout)).toEqual(taskLines(clean.stdout));
      expect(proxy.injected).toBe(5);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('reads objects stored gzip-encoded (gsutil cp -Z) as their rows', async () => {
    const run = await runCli(cli, ['gs://raw/gz/', '--quiet', '--endpoint', url]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(taskLines(run.stdout)).toEqual(
      [...rowLines('gz/kept.jsonl'), ...rowLines('gz/transcoded.jsonl')].sort(),
    );
  });

  it('resumes gzip-encoded objects cut midway without repeating or losing a row', async () => {
    const proxy = await startFaultProxy(url, [
      {
        cutAfterBytes: 20_000,
        times: 2,
        match: ({ method, url: path }) => method === 'GET' && path.includes('alt=media'),
      },
    ]);
    try {
      const run = await runCli(cli, ['gs://raw/gz/', '--quiet', '--endpoint', proxy.url]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(taskLines(run.stdout)).toEqual(
        [...rowLines('gz/kept.jsonl'), ...rowLines('gz/transcoded.jsonl')].sort(),
      );
      expect(proxy.injected).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('retries an object read that keeps failing, on every Node version', async () => {
    // Several answers in a row for one read: with the client library's streams this crashed
    // Node 24 (ERR_STREAM_UNABLE_TO_PIPE in teeny-request after a retry).
    const proxy = await startFaultProxy(url, [
      {
        status: 503,
        body: unavailable,
        times: 3,
        match: ({ url: path }) => path.includes('tickets.jsonl') && path.includes('alt=media'),
      },
    ]);
    try {
      // Three retries in a row wait up to 7 s, as the retry policy says.
      const run = await runCli(
        cli,
        ['gs://raw/data/tickets.jsonl', '--quiet', '--endpoint', proxy.url],
        { timeout: 50_000 },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(taskLines(run.stdout)).toEqual([
        'gs://raw/data/tickets.jsonl#1=Refund not received',
        'gs://raw/data/tickets.jsonl#2=App crashes',
      ]);
      expect(proxy.injected).toBe(3);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('writes V4 signed URLs with a key file, which a plain client fetches', async () => {
    const run = await runCli(cli, [
      'gs://raw/media/',
      '--quiet',
      '--endpoint',
      url,
      '--media',
      'signed',
      '--key-file',
      keyFile,
    ]);
    expect(run.code).toBe(0);
    const task = JSON.parse(run.stdout);
    const response = await fetch(task.image);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(TINY_PNG);
    // The key stays out of tasks and logs.
    expect(run.stdout + run.stderr).not.toMatch(/PRIVATE KEY/);
  });

  it('names a missing bucket in one line with a hint', async () => {
    const run = await runCli(cli, ['gs://no-such-bucket/x/', '--endpoint', url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/gcs-source: error: gs:\/\/no-such-bucket\/x\/: no such bucket/);
    expect(run.stderr).toMatch(/hint: check the bucket name/);
    expect(hasStackTrace(run.stderr)).toBe(false);
  });
});
