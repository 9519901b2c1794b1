import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { hasStackTrace, runCli, startFaultProxy, taskLines } from '@sluice/core/testing';
import { runMoto, type S3Server, startMoto, startS3rver } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

// Objects the suites do not use: awkward keys, every text format, a zero-byte object.
const objects: Record<string, string> = {
  'data/tickets.jsonl': '{"text":"Refund not received"}\n{"text":"App crashes","meta":{"k":1}}\n',
  'data/with space/é ü.txt': 'line one\nline two\n',
  'data/a+b%c#d.csv': 'text,label\n"Hello, world",GREETING\n',
  'data/nested/deeper/list.json': '[{"text":"from json"}]',
  'data/empty.txt': '',
  [`data/${'long-'.repeat(150)}key.txt`]: 'long key\n',
};

const env = (endpoint: string, extra: NodeJS.ProcessEnv = {}) => ({
  AWS_ACCESS_KEY_ID: 'sluice-test',
  AWS_SECRET_ACCESS_KEY: 'sluice-test-secret',
  AWS_REGION: 'us-east-1',
  AWS_ENDPOINT_URL_S3: endpoint,
  AWS_EC2_METADATA_DISABLED: 'true', // never probe for instance credentials
  ...extra,
});

describe.skipIf(!runMoto)('s3-source CLI against moto_server', () => {
  let server: S3Server;
  beforeAll(async () => {
    server = await startMoto();
    const s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'raw' }));
    for (const [key, body] of Object.entries(objects)) {
      await s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: body }));
    }
    s3.destroy();
  }, 60_000);
  afterAll(() => server?.stop());

  it('streams every object as tasks, awkward keys included, with lineage', async () => {
    const run = await runCli(cli, ['s3://raw/data/', '--quiet'], { env: env(server.endpoint) });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(taskLines(run.stdout)).toEqual([
      's3://raw/data/a+b%c#d.csv#1=Hello, world',
      `s3://raw/data/${'long-'.repeat(150)}key.txt#1=long key`,
      's3://raw/data/nested/deeper/list.json#1=from json',
      's3://raw/data/tickets.jsonl#1=Refund not received',
      's3://raw/data/tickets.jsonl#2=App crashes',
      's3://raw/data/with space/é ü.txt#1=line one',
      's3://raw/data/with space/é ü.txt#2=line two',
    ]);
  });

  it('emits exactly the same tasks through 503s and bodies cut midway', async () => {
    const clean = await runCli(cli, ['s3://raw/data/', '--quiet'], { env: env(server.endpoint) });
    const proxy = await startFaultProxy(server.endpoint, [
      { status: 503, every: 3 },
      {
        cutAfterBytes: 10,
        times: 2,
        match: ({ method, url }) => method === 'GET' && url.includes('tickets'),
      },
    ]);
    try {
      const faulty = await runCli(cli, ['s3://raw/data/', '--quiet', '--concurrency', '2'], {
        env: env(proxy.url),
      });
      expect(faulty.stderr).toBe('');
      expect(faulty.code).toBe(0);
      expect(taskLines(faulty.stdout)).toEqual(taskLines(clean.stdout));
      expect(proxy.injected).toBeGreaterThan(2);
    } finally {
      await proxy.close();
    }
  });

  it('resumes a cut read from a store that ignores Range without repeating a task', async () => {
    const clean = await runCli(cli, ['s3://raw/data/', '--quiet'], { env: env(server.endpoint) });
    const tickets = ({ method, url }: { method: string; url: string }) =>
      method === 'GET' && url.includes('tickets');
    const proxy = await startFaultProxy(server.endpoint, [
      { cutAfterBytes: 40, times: 1, match: tickets },
      // The resumed read asks for the rest; the answer is the whole object again.
      { ignoreRange: true, match: tickets },
    ]);
    try {
      const faulty = await runCli(cli, ['s3://raw/data/', '--quiet'], { env: env(proxy.url) });
      expect(faulty.stderr).toBe('');
      expect(faulty.code).toBe(0);
      expect(taskLines(faulty.stdout)).toEqual(taskLines(clean.stdout));
      expect(proxy.injected).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('names a missing bucket in one line with a hint', async () => {
    const run = await runCli(cli, ['s3://no-such-bucket/x/'], { env: env(server.endpoint) });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/s3-source: error: s3:\/\/no-such-bucket\/x\/: no such bucket/);
    expect(run.stderr).toMatch(/hint: check the bucket name/);
    expect(hasStackTrace(run.stderr)).toBe(false);
  });
});

describe('s3-source CLI against a server that checks credentials (s3rver)', () => {
  let server: S3Server;
  beforeAll(async () => {
    server = await startS3rver();
  }, 60_000);
  afterAll(() => server?.stop());

  it('refuses wrong credentials in one line, without printing them', async () => {
    const run = await runCli(cli, ['s3://raw/data/'], {
      env: env(server.endpoint, {
        AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG',
        AWS_SECRET_ACCESS_KEY: 'very-secret-value',
        AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      }),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/access refused \(InvalidAccessKeyId\)/);
    expect(run.stderr).toMatch(/hint: check the credentials/);
    expect(run.stderr).not.toMatch(/very-secret-value|AKIAWRONG/);
    expect(hasStackTrace(run.stderr)).toBe(false);
  });
});
