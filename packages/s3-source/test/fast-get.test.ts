import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3_SERVERS, useS3 } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { createFastGet } from '../src/fast-get.js';

async function bytes(body: AsyncIterable<Uint8Array> | undefined): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body ?? []) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

// The lean GET path the CLIs use: same bytes as the SDK, and anything unusual handed back.
describe.each(S3_SERVERS)('fast GET on %s', (name) => {
  const kit = useS3(name, 'fast');

  it('reads whole objects and ranges of keys that need escaping', async () => {
    const key = "dir/with space/it's (1)+ü*.txt";
    await kit.s3.send(new PutObjectCommand({ Bucket: 'fast', Key: key, Body: 'hello, world' }));
    const fast = await createFastGet(kit.s3, 'fast', 4);
    expect(fast).toBeDefined();
    expect(await bytes(await fast?.get(key, {}))).toBe('hello, world');
    expect(await bytes(await fast?.get(key, { start: 7 }))).toBe('world');
    fast?.close();
  });

  it('hands a missing key back to the SDK', async () => {
    const fast = await createFastGet(kit.s3, 'fast', 4);
    expect(await fast?.get('not-here.txt', {})).toBeUndefined();
    fast?.close();
  });

  // s3rver ignores If-Match; moto answers 412 as S3 does.
  it.skipIf(name !== 'moto')('hands a failed precondition back to the SDK', async () => {
    await kit.s3.send(new PutObjectCommand({ Bucket: 'fast', Key: 'here.txt', Body: 'x' }));
    const fast = await createFastGet(kit.s3, 'fast', 4);
    expect(await fast?.get('here.txt', { start: 0, ifMatch: '"0000"' })).toBeUndefined();
    fast?.close();
  });

  it('is off when there are no credentials to sign with', async () => {
    const anonymous = new S3Client({
      ...kit.server.clientConfig,
      credentials: () => Promise.reject(new Error('no credentials')),
    });
    expect(await createFastGet(anonymous, 'fast', 4)).toBeUndefined();
    anonymous.destroy();
  });
});
