import { PutObjectCommand } from '@aws-sdk/client-s3';
import { testSource } from '@sluice/core/testing';
import { S3_SERVERS, useS3 } from '@sluice/testkit';
import { describe } from 'vitest';
import { s3Source } from '../src/s3-source.js';

// The shared source suites, against two independent S3 implementations.
describe.each(S3_SERVERS)('on %s', (name) => {
  const kit = useS3(name, 'conformance');
  let runs = 0;

  testSource({
    connector: `s3 (${name})`,
    async setup() {
      const prefix = `run-${++runs}`;
      return {
        url: `s3://conformance/${prefix}/`,
        uriPrefix: `s3://conformance/${prefix}`,
        put: async (key, body) => {
          await kit.s3.send(
            new PutObjectCommand({ Bucket: 'conformance', Key: `${prefix}/${key}`, Body: body }),
          );
        },
        cleanup: async () => {}, // each test has its own prefix; the server goes with the file
      };
    },
    // A small page size, so the lazy-listing case shows the listing stops early; GETs on the
    // lean path the CLI uses (the connector-specific cases cover the SDK's).
    source: (url, options) =>
      s3Source({ ...options, url, client: kit.s3, pageSize: 20, fastGet: true }),
  });
});
