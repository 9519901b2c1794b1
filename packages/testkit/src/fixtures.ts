// Test-only helpers (they use vitest hooks); the standalone serve command does not load them.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { type S3Server, type S3ServerName, startS3 } from './s3.js';

/**
 * For a test file: starts the named server before its tests with the buckets created, and
 * stops it after them. Read `server` and `s3` inside tests (they are set by then).
 */
export function useS3(
  name: S3ServerName,
  ...buckets: string[]
): { server: S3Server; s3: S3Client } {
  const context = {} as { server: S3Server; s3: S3Client };
  beforeAll(async () => {
    context.server = await startS3(name);
    context.s3 = new S3Client(context.server.clientConfig);
    for (const bucket of buckets)
      await context.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }, 60_000);
  afterAll(async () => {
    context.s3?.destroy();
    await context.server?.stop();
  });
  return context;
}
