import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Stub } from '../src/s3-stub.js';

// The benchmark stub, checked with the real SDK: paging, delimiters, ranges, uploads of both
// kinds (aws-chunked single PUTs and multipart) and S3's error codes.
describe('S3Stub', () => {
  const stub = new S3Stub([
    { name: 'small', keys: 2500, size: 2048, ext: 'jsonl' },
    { name: 'tree', keys: 3, size: 10, ext: 'txt', prefix: 'a/b/' },
  ]);
  let s3: S3Client;
  beforeAll(async () => {
    const endpoint = await stub.listen();
    s3 = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'stub', secretAccessKey: 'stub' },
    });
  });
  afterAll(async () => {
    s3?.destroy();
    await stub.close();
  });

  it('lists generated keys in order, page by page', async () => {
    const keys: string[] = [];
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: 'small' })) {
      pages++;
      for (const object of page.Contents ?? []) keys.push(object.Key as string);
    }
    expect(pages).toBe(3);
    expect(keys).toHaveLength(2500);
    expect(keys[0]).toBe('data/0000.jsonl');
    expect(keys).toEqual([...keys].sort());
    const after = await s3.send(
      new ListObjectsCommand({ Bucket: 'small', Marker: 'data/2497.jsonl', MaxKeys: 10 }),
    );
    expect(after.Contents?.map((c) => c.Key)).toEqual(['data/2498.jsonl', 'data/2499.jsonl']);
  });

  it('groups keys under a delimiter', async () => {
    const top = await s3.send(new ListObjectsCommand({ Bucket: 'tree', Delimiter: '/' }));
    expect(top.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/']);
    expect(top.Contents).toBeUndefined();
  });

  it('serves bodies, ranges and heads, and S3 errors', async () => {
    const whole = await s3.send(new GetObjectCommand({ Bucket: 'small', Key: 'data/0001.jsonl' }));
    const text = await whole.Body?.transformToString();
    expect(text?.length).toBeGreaterThanOrEqual(2048);
    expect(JSON.parse(text?.split('\n')[0] as string).text).toContain('invoice');
    const part = await s3.send(
      new GetObjectCommand({ Bucket: 'small', Key: 'data/0001.jsonl', Range: 'bytes=10-19' }),
    );
    expect(await part.Body?.transformToString()).toBe(text?.slice(10, 20));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'small', Key: 'data/0001.jsonl' }));
    expect(head.ContentLength).toBe(Buffer.byteLength(text as string));
    await expect(
      s3.send(new GetObjectCommand({ Bucket: 'small', Key: 'nope' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(s3.send(new GetObjectCommand({ Bucket: 'nope', Key: 'x' }))).rejects.toMatchObject(
      { name: 'NoSuchBucket' },
    );
  });

  it('keeps small uploads, streamed or not, and measures multipart ones', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'small', Key: 'up/plain.json', Body: '{"a":1}' }));
    await new Upload({
      client: s3,
      params: { Bucket: 'small', Key: 'up/streamed.json', Body: Readable.from(['{"b":', '2}']) },
    }).done();
    for (const [key, body] of [
      ['up/plain.json', '{"a":1}'],
      ['up/streamed.json', '{"b":2}'],
    ]) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'small', Key: key }));
      expect(await got.Body?.transformToString()).toBe(body);
    }
    const big = Buffer.alloc(12 * 1024 * 1024, 7);
    await new Upload({
      client: s3,
      params: { Bucket: 'small', Key: 'up/big.bin', Body: big },
      partSize: 5 * 1024 * 1024,
    }).done();
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'small', Key: 'up/big.bin' }));
    expect(head.ContentLength).toBe(big.length);
    expect(head.ETag).toMatch(/-3"$/);
    expect(stub.requests.UploadPart).toBe(3);
    await s3.send(new DeleteObjectCommand({ Bucket: 'small', Key: 'up/big.bin' }));
    await expect(
      s3.send(new HeadObjectCommand({ Bucket: 'small', Key: 'up/big.bin' })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });

  it('honours conditional writes and lists the multipart uploads left open', async () => {
    const put = (extra: Record<string, string>) =>
      s3.send(
        new PutObjectCommand({ Bucket: 'small', Key: 'cas/manifest.json', Body: 'x', ...extra }),
      );
    const first = await put({ IfNoneMatch: '*' });
    await expect(put({ IfNoneMatch: '*' })).rejects.toMatchObject({ name: 'PreconditionFailed' });
    await expect(put({ IfMatch: '"0000"' })).rejects.toMatchObject({
      $metadata: { httpStatusCode: 412 },
    });
    await put({ IfMatch: first.ETag as string });
    await expect(
      s3.send(
        new PutObjectCommand({ Bucket: 'small', Key: 'cas/none', Body: 'x', IfMatch: first.ETag }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchKey' });
    const { UploadId } = await s3.send(
      new CreateMultipartUploadCommand({ Bucket: 'small', Key: 'cas/part.jsonl' }),
    );
    const open = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: 'small', Prefix: 'cas/' }),
    );
    expect(open.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([['cas/part.jsonl', UploadId]]);
    await s3.send(
      new AbortMultipartUploadCommand({ Bucket: 'small', Key: 'cas/part.jsonl', UploadId }),
    );
    const none = await s3.send(
      new ListMultipartUploadsCommand({ Bucket: 'small', Prefix: 'cas/' }),
    );
    expect(none.Uploads ?? []).toEqual([]);
  });
});
