import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { testSink } from '@sluice/core/testing';
import { S3_SERVERS, useS3 } from '@sluice/testkit';
import { describe } from 'vitest';
import { s3Sink } from '../src/s3-sink.js';

// The shared sink suites, against two independent S3 implementations.
describe.each(S3_SERVERS)('on %s', (name) => {
  const kit = useS3(name, 'exports');
  let runs = 0;

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
            const page = await kit.s3.send(
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
            const answer = await kit.s3.send(
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
    sink: (url, options) => s3Sink({ ...options, url, client: kit.s3 }),
    // s3rver ignores If-None-Match and If-Match on PUT: moto proves the guarantee.
    exclusive: name === 's3rver' ? 'never' : 'always',
  });
});
