import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { testSink } from '@sluice/core/testing';
import { S3_SERVERS, type S3Server, startS3 } from '@sluice/testkit';
import { afterAll, beforeAll, describe } from 'vitest';
import { s3Sink } from '../src/s3-sink.js';

// The shared sink suites, against two independent S3 implementations.
describe.each(S3_SERVERS)('on %s', (name) => {
  let server: S3Server;
  let s3: S3Client;
  let runs = 0;
  beforeAll(async () => {
    server = await startS3(name);
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'exports' }));
  }, 60_000);
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
  });

  testSink({
    connector: `s3 (${name})`,
    async setup() {
      const prefix = `run-${++runs}`;
      return {
        url: `s3://exports/${prefix}`,
        async list() {
          const keys: string[] = [];
          let token: string | undefined;
          do {
            const page = await s3.send(
              new ListObjectsV2Command({
                Bucket: 'exports',
                Prefix: `${prefix}/`,
                ContinuationToken: token,
              }),
            );
            for (const object of page.Contents ?? [])
              keys.push((object.Key as string).slice(prefix.length + 1));
            token = page.NextContinuationToken;
          } while (token);
          return keys.sort();
        },
        async get(key) {
          try {
            const answer = await s3.send(
              new GetObjectCommand({ Bucket: 'exports', Key: `${prefix}/${key}` }),
            );
            return Buffer.from(
              await (
                answer.Body as { transformToByteArray(): Promise<Uint8Array> }
              ).transformToByteArray(),
            );
          } catch {
            return undefined;
          }
        },
        cleanup: async () => {},
      };
    },
    sink: (url, options) => s3Sink({ ...options, url, client: s3 }),
  });
});
