import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { testSource } from '@sluice/core/testing';
import { S3_SERVERS, type S3Server, startS3 } from '@sluice/testkit';
import { afterAll, beforeAll, describe } from 'vitest';
import { s3Source } from '../src/s3-source.js';

// The shared source suites, against two independent S3 implementations.
describe.each(S3_SERVERS)('on %s', (name) => {
  let server: S3Server;
  let s3: S3Client;
  let runs = 0;
  beforeAll(async () => {
    server = await startS3(name);
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'conformance' }));
  }, 60_000);
  afterAll(async () => {
    s3?.destroy();
    await server?.stop();
  });

  testSource({
    connector: `s3 (${name})`,
    async setup() {
      const prefix = `run-${++runs}`;
      return {
        url: `s3://conformance/${prefix}/`,
        uriPrefix: `s3://conformance/${prefix}`,
        put: async (key, body) => {
          await s3.send(
            new PutObjectCommand({ Bucket: 'conformance', Key: `${prefix}/${key}`, Body: body }),
          );
        },
        cleanup: async () => {}, // each test has its own prefix; the server goes with the file
      };
    },
    // A small page size, so the lazy-listing case shows the listing stops early.
    source: (url, options) => s3Source({ ...options, url, client: s3, pageSize: 20 }),
  });
});
