// Test-only helpers (they use vitest hooks); the standalone serve command does not load them.
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { IdempotencyStrategy, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll } from 'vitest';
import {
  type GcsServer,
  type GcsServerOptions,
  serviceAccount,
  startGcsServer,
} from './gcs-server.js';
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

/**
 * For a test file: starts the Cloud Storage test server with the buckets created and a
 * service account registered (a key pair made for the run), and a `Storage` client that signs
 * URLs with that account. Read the fields inside tests.
 */
export function useGcs(
  buckets: string[],
  options: GcsServerOptions = {},
): {
  server: GcsServer;
  url: string;
  storage: Storage;
  credentials: { client_email: string; private_key: string };
} {
  const context = {} as ReturnType<typeof useGcs>;
  beforeAll(async () => {
    const { server, url } = await startGcsServer(options);
    const account = serviceAccount();
    server.addServiceAccount(account.client_email, account.public_key);
    for (const bucket of buckets) server.createBucket(bucket);
    context.server = server;
    context.url = url;
    context.credentials = {
      client_email: account.client_email,
      private_key: account.private_key,
    };
    context.storage = new Storage({
      apiEndpoint: url,
      projectId: 'sluice-test',
      credentials: context.credentials,
      // Set-up writes retry too (the default stops retrying a Storage after an upload
      // without preconditions), and retries wait at most a second.
      retryOptions: { maxRetryDelay: 1, idempotencyStrategy: IdempotencyStrategy.RetryAlways },
    });
  });
  afterAll(async () => {
    await context.server?.close();
  });
  return context;
}
