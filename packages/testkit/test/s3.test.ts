import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { startFaultProxy } from '@sluice/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3_SERVERS, type S3Server, startS3 } from '../src/s3.js';

// The servers the S3 connector's conformance suites will run against, checked with the real
// SDK over loopback HTTP: keys that need escaping, pagination, ranges, and the SDK's own
// retries through injected faults.
describe.each(S3_SERVERS)('%s as a local S3 server', (name) => {
  let server: S3Server;
  let s3: S3Client;
  beforeAll(async () => {
    server = await startS3(name);
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'kit' }));
  }, 60_000);
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
  });

  const keys = ['plain.txt', 'with space.txt', 'ünïcødé/ß.jsonl', 'a+b%c#d.txt', 'deep/er/x.csv'];

  it('stores and returns objects whose keys need escaping, byte for byte', async () => {
    for (const key of keys) {
      await s3.send(new PutObjectCommand({ Bucket: 'kit', Key: key, Body: `body of ${key}\n` }));
    }
    for (const key of keys) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'kit', Key: key }));
      expect(await got.Body?.transformToString()).toBe(`body of ${key}\n`);
    }
  });

  it('pages listings with continuation tokens', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: 'kit', MaxKeys: 2, ContinuationToken: token }),
      );
      seen.push(...(page.Contents ?? []).map((object) => object.Key as string));
      token = page.NextContinuationToken;
      pages++;
    } while (token);
    expect(seen.sort()).toEqual([...keys].sort());
    expect(pages).toBe(3);
  });

  it('serves byte ranges', async () => {
    const got = await s3.send(
      new GetObjectCommand({ Bucket: 'kit', Key: 'plain.txt', Range: 'bytes=5-6' }),
    );
    expect(await got.Body?.transformToString()).toBe('of');
  });

  // moto accepts any credentials, so only s3rver can show a refusal.
  it.skipIf(name === 'moto')('refuses unknown credentials', async () => {
    const stranger = new S3Client({
      ...server.clientConfig,
      credentials: { accessKeyId: 'nobody', secretAccessKey: 'nothing' },
    });
    await expect(stranger.send(new ListObjectsV2Command({ Bucket: 'kit' }))).rejects.toMatchObject({
      name: 'InvalidAccessKeyId',
    });
    stranger.destroy();
  });

  it('lets the SDK retry through 503 SlowDown answers from the fault proxy', async () => {
    const proxy = await startFaultProxy(server.endpoint, [{ status: 503, every: 2, times: 3 }]);
    const client = new S3Client({ ...server.clientConfig, endpoint: proxy.url, maxAttempts: 4 });
    try {
      for (const key of keys.slice(0, 3)) {
        const got = await client.send(new GetObjectCommand({ Bucket: 'kit', Key: key }));
        expect(await got.Body?.transformToString()).toBe(`body of ${key}\n`);
      }
      expect(proxy.injected).toBe(3);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });
});
