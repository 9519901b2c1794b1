import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
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

  // About 12 MB in one part: three 5 MiB multipart chunks, sent while the part is staged.
  const large = Array.from(
    { length: 12_000 },
    (_, i) =>
      `${JSON.stringify({ text: `${i} ${'lorem ipsum '.repeat(80)}`, answer: 'accept' })}\n`,
  );
  async function* lines(items: string[]) {
    for (const item of items) yield Buffer.from(item);
  }
  // s3rver does not implement ListMultipartUploads: checked on moto.
  const pendingUploads = async () =>
    name === 's3rver'
      ? []
      : ((await kit.s3.send(new ListMultipartUploadsCommand({ Bucket: 'out' }))).Uploads ?? []);
  /** Names of the S3 operations sent while `run` runs. */
  async function operations(run: () => Promise<unknown>): Promise<string[]> {
    const seen: string[] = [];
    kit.s3.middlewareStack.add(
      (next, context) => (args) => {
        seen.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'countOperations' },
    );
    try {
      await run();
    } finally {
      kit.s3.middlewareStack.remove('countOperations');
    }
    return seen;
  }

  it('uploads a part larger than the multipart threshold intact, and a rerun writes nothing', async () => {
    const sink = () =>
      s3Sink({ url: 's3://out/large', client: kit.s3, partSize: 5 * 1024 * 1024, dataset: 'big' });
    const result = await sink().writeJsonl(lines(large));
    const [part] = result.manifest.parts;
    expect(part?.bytes).toBeGreaterThan(10 * 1024 * 1024);
    const bytes = await get(`large/${part?.key}`);
    expect(bytes.equals(Buffer.from(large.join('')))).toBe(true);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(part?.sha256);
    const head = await kit.s3.send(
      new HeadObjectCommand({ Bucket: 'out', Key: `large/${part?.key}` }),
    );
    expect(head.Metadata?.dataset).toBe('big');
    expect(await pendingUploads()).toEqual([]);
    const again = await sink().writeJsonl(lines(large));
    expect(again.status).toBe('unchanged');
  });

  it('leaves nothing behind when a bad line comes after a large part began uploading', async () => {
    const broken = [...large, '{"text": "cut off\n', ...large.slice(0, 10)];
    const sent = await operations(() =>
      expect(
        s3Sink({ url: 's3://out/broken', client: kit.s3, partSize: 5 * 1024 * 1024 }).writeJsonl(
          lines(broken),
        ),
      ).rejects.toThrow(/input line 12001: invalid JSON/),
    );
    expect(sent).toContain('UploadPartCommand'); // the upload had begun
    expect(sent).toContain('AbortMultipartUploadCommand');
    expect(sent).not.toContain('CompleteMultipartUploadCommand');
    const listed = await kit.s3.send(
      new ListObjectsV2Command({ Bucket: 'out', Prefix: 'broken/' }),
    );
    expect(listed.KeyCount).toBe(0);
    expect(await pendingUploads()).toEqual([]);
  });

  it('routes examples to a review prefix that a source reads back with hashes intact', async () => {
    const exported = sampleExport();
    const { manifest } = await s3Sink({
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
    expect(reread[0]?.meta?.source).toBe(`s3://out/review/${manifest.parts[0]?.key}`);
    expect(reread[0]?.meta?.origin).toBe('s3://raw/tickets/a.jsonl');
  });
});
