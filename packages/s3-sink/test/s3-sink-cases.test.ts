import { createHash } from 'node:crypto';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import type { Task } from '@sluice/core';
import { collect, sampleExport } from '@sluice/core/testing';
import { s3Source } from '@sluice/s3-source';
import { S3_SERVERS, useS3 } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { s3Sink } from '../src/s3-sink.js';

describe.each(S3_SERVERS)('s3 sink on %s', (name) => {
  const kit = useS3(name, 'out');
  const get = async (key: string) => {
    const answer = await kit.s3.send(new GetObjectCommand({ Bucket: 'out', Key: key }));
    return Buffer.from(
      await (answer.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
  };

  it('keeps a dataset name in any script in object metadata, and stores gzip parts as gzip', async () => {
    const result = await s3Sink({
      url: 's3://out/intl',
      client: kit.s3,
      dataset: 'новости',
      format: 'jsonl.gz',
    }).write(sampleExport());
    const key = `intl/${result.manifest.parts[0]?.key}`;
    const head = await kit.s3.send(new HeadObjectCommand({ Bucket: 'out', Key: key }));
    expect(decodeURIComponent(head.Metadata?.dataset ?? '')).toBe('новости');
    expect(head.ContentType).toBe('application/gzip');
    expect(head.ContentEncoding).toBeUndefined();
    expect((await get(key)).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
  });

  it('uploads a part larger than the multipart threshold intact', async () => {
    // About 12 MB in one part: three 5 MiB multipart chunks.
    const tasks: Task[] = Array.from({ length: 12_000 }, (_, i) => ({
      text: `${i} ${'lorem ipsum '.repeat(80)}`,
      answer: 'accept',
    }));
    const result = await s3Sink({
      url: 's3://out/large',
      client: kit.s3,
      partSize: 5 * 1024 * 1024,
    }).write(tasks);
    const [part] = result.manifest.parts;
    expect(part?.bytes).toBeGreaterThan(10 * 1024 * 1024);
    const bytes = await get(`large/${part?.key}`);
    expect(bytes.length).toBe(part?.bytes);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(part?.sha256);
  });

  it('routes examples to a review prefix that a source reads back with hashes intact', async () => {
    const exported = sampleExport();
    await s3Sink({
      url: 's3://out/review',
      client: kit.s3,
      flagged: true,
      answer: ['ignore'],
      match: 'any',
    }).write(exported);
    const warnings: string[] = [];
    const reread = await collect(
      s3Source({
        url: 's3://out/review/',
        client: kit.s3,
        onWarning: (message) => warnings.push(message),
      }),
    );
    expect(warnings.join('\n')).toMatch(/skipping Sluice export files/); // manifest.json is no task
    const expected = exported.filter((task) => task.flagged || task.answer === 'ignore');
    expect(reread.map((task) => [task.text, task._input_hash, task._task_hash])).toEqual(
      expected.map((task) => [task.text, task._input_hash, task._task_hash]),
    );
    expect(reread[0]?.meta?.source).toBe('s3://out/review/part-00000.jsonl');
    expect(reread[0]?.meta?.origin).toBe('s3://raw/tickets/a.jsonl');
  });
});
