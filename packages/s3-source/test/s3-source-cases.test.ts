import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HeadObjectCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { Task } from '@sluice/core';
import { collect, freePort, startFaultProxy, TINY_PNG } from '@sluice/core/testing';
import { S3_SERVERS, useS3 } from '@sluice/testkit';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { s3Source } from '../src/s3-source.js';

describe.each(S3_SERVERS)('s3 source on %s', (name) => {
  const kit = useS3(name, 'raw');

  it('pages through more than 2,500 keys and emits each once', async () => {
    const keys = Array.from({ length: 2600 }, (_, i) => `many/${String(i).padStart(5, '0')}.txt`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(
        keys
          .slice(i, i + 50)
          .map((key) =>
            kit.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: key, Body: `${key}\n` })),
          ),
      );
    }
    const source = s3Source({ url: 's3://raw/many/', client: kit.s3, concurrency: 16 });
    const texts = (await collect(source)).map((task) => task.text);
    expect(texts).toHaveLength(2600);
    expect(new Set(texts).size).toBe(2600);
    expect(source.stats.listed).toBe(2600);
  }, 120_000);

  it('writes presigned URLs that a plain HTTP client can fetch', async () => {
    await kit.s3.send(
      new PutObjectCommand({ Bucket: 'raw', Key: 'media/pixel.png', Body: TINY_PNG }),
    );
    const [task] = await collect(
      s3Source({ url: 's3://raw/media/', client: kit.s3, media: 'signed', urlTtl: 600 }),
    );
    const url = new URL(task?.image as string);
    expect(url.searchParams.get('X-Amz-Expires')).toBe('600');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(TINY_PNG);
  });

  it('reads the images ahead of the browser, which then waits on no store request', async () => {
    const bodies = [1, 2, 3, 4].map((n) => Buffer.concat([TINY_PNG, Buffer.alloc(n * 1000, n)]));
    for (const [i, body] of bodies.entries()) {
      await kit.s3.send(
        new PutObjectCommand({ Bucket: 'raw', Key: `ahead/${i + 1}.png`, Body: body }),
      );
    }
    // Counts the reads of image bodies that reach the store.
    let reads = 0;
    const proxy = await startFaultProxy(kit.server.endpoint, [
      {
        match: ({ method, url }) => {
          if (method === 'GET' && url.startsWith('/raw/ahead/')) reads++;
          return false;
        },
      },
    ]);
    const client = new S3Client({ ...kit.server.clientConfig, endpoint: proxy.url });
    const dir = await mkdtemp(join(tmpdir(), 'sluice-ahead-'));
    const source = s3Source({
      url: 's3://raw/ahead/',
      client,
      order: 'listing',
      mediaPort: await freePort(),
      mediaKeyFile: join(dir, 'media.key'),
    });
    try {
      const tasks = await collect(source);
      await vi.waitFor(() => expect(reads).toBe(4));
      for (const [i, task] of tasks.entries()) {
        const response = await fetch(task.image as string);
        expect(Buffer.from(await response.arrayBuffer())).toEqual(bodies[i]);
      }
      expect(reads).toBe(4);
    } finally {
      await source.close();
      client.destroy();
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails on a URL that names neither an object nor a folder', async () => {
    await expect(
      collect(s3Source({ url: 's3://raw/no/such-key.txt', client: kit.s3 })),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 's3://raw/no/such-key.txt: no such object or folder',
    });
  });

  it('reads one object when the URL names it', async () => {
    await kit.s3.send(
      new PutObjectCommand({ Bucket: 'raw', Key: 'one/a.txt', Body: 'only this\n' }),
    );
    await kit.s3.send(
      new PutObjectCommand({ Bucket: 'raw', Key: 'one/a.txt.bak', Body: 'not this\n' }),
    );
    const tasks = await collect(s3Source({ url: 's3://raw/one/a.txt', client: kit.s3 }));
    expect(tasks.map((task) => [task.text, task.meta?.source])).toEqual([
      ['only this', 's3://raw/one/a.txt'],
    ]);
  });
  it('reads an object replaced after it was listed in its new version, through the SDK too', async () => {
    const put = (key: string, body: string) =>
      kit.s3.send(new PutObjectCommand({ Bucket: 'raw', Key: `replaced/${key}`, Body: body }));
    for (const fastGet of [false, true]) {
      await put('a.txt', 'first\n');
      await put('b.txt', 'before\n');
      const seen: Task[] = [];
      for await (const task of s3Source({
        url: 's3://raw/replaced/',
        client: kit.s3,
        fastGet,
        concurrency: 1,
        order: 'listing',
      })) {
        seen.push(task);
        if (task.text === 'first') await put('b.txt', 'after\n');
      }
      const head = await kit.s3.send(
        new HeadObjectCommand({ Bucket: 'raw', Key: 'replaced/b.txt' }),
      );
      expect(seen.map((task) => task.text)).toEqual(['first', 'after']);
      expect(seen[1]?.sluice?.source?.version).toBe(head.ETag?.replace(/"/g, ''));
    }
  });
});

describe.skipIf(!S3_SERVERS.includes('moto'))('s3 source on a versioned bucket (moto)', () => {
  const kit = useS3('moto', 'versioned');
  beforeAll(async () => {
    await kit.s3.send(
      new PutBucketVersioningCommand({
        Bucket: 'versioned',
        VersioningConfiguration: { Status: 'Enabled' },
      }),
    );
  });

  it('reads the current version, records its VersionId, and sees new versions on rerun', async () => {
    const put = (body: string) =>
      kit.s3.send(new PutObjectCommand({ Bucket: 'versioned', Key: 'doc.txt', Body: body }));
    await put('first draft\n');
    const second = await put('second draft\n');
    const dir = await mkdtemp(join(tmpdir(), 'sluice-s3-versions-'));
    const state = join(dir, 'state.json');
    try {
      const [task] = await collect(s3Source({ url: 's3://versioned/', client: kit.s3, state }));
      expect(task?.text).toBe('second draft');
      expect(task?.sluice?.source?.version).toMatch(new RegExp(`@${second.VersionId}$`));
      expect(await collect(s3Source({ url: 's3://versioned/', client: kit.s3, state }))).toEqual(
        [],
      );
      await put('third draft\n');
      const [third] = await collect(s3Source({ url: 's3://versioned/', client: kit.s3, state }));
      expect(third?.text).toBe('third draft');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
