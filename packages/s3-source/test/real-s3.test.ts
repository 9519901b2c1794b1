import { randomUUID } from 'node:crypto';
import {
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { testSource } from '@sluice/core/testing';
import { describe } from 'vitest';
import { parseS3Url } from '../src/s3.js';
import { s3Source } from '../src/s3-source.js';

// Opt-in: the shared source suites against real S3 (see .env.example).
const url = process.env.SLUICE_REAL_S3_URL;
if (!url) console.warn('skipping real-S3 tests: set SLUICE_REAL_S3_URL (see .env.example)');

describe.skipIf(!url)('against real S3', () => {
  const s3 = new S3Client({});
  const { bucket, prefix: base } = url ? parseS3Url(url) : { bucket: '', prefix: '' };
  testSource(
    {
      connector: 's3 (real)',
      async setup() {
        const prefix = `${base.replace(/\/?$/, '/')}${randomUUID()}`;
        return {
          url: `s3://${bucket}/${prefix}/`,
          uriPrefix: `s3://${bucket}/${prefix}`,
          put: async (key, body) => {
            await s3.send(
              new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}`, Body: body }),
            );
          },
          async cleanup() {
            const page = await s3.send(
              new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }),
            );
            for (const object of page.Contents ?? []) {
              await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
            }
          },
        };
      },
      source: (sourceUrl, options) =>
        s3Source({ ...options, url: sourceUrl, client: s3, pageSize: 20 }),
    },
    { skip: ['watch'] },
  );
});
