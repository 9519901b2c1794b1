#!/usr/bin/env node
import { createRequire } from 'node:module';
import { integerFlag, runSourceCli } from '@sluice/core';
import { quietSdkNotices, s3ConnectionFlags, s3ConnectionFromFlags } from './s3.js';
import { s3Source } from './s3-source.js';

const { name, version } = createRequire(import.meta.url)('../package.json');
quietSdkNotices();

await runSourceCli(
  {
    bin: 's3-source',
    packageName: name,
    version,
    description:
      'Stream Prodigy tasks from Amazon S3 or an S3-compatible store as JSONL on stdout. Credentials come from the AWS SDK chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, instance roles).',
    url: 's3://bucket/prefix/ (a folder of objects) or s3://bucket/key (one object)',
    examples: [
      "s3-source s3://acme-raw/tickets/ --include '*.jsonl' | prodigy textcat.manual tickets blank:en - --label BUG,BILLING",
      's3-source s3://acme-raw/photos/ | prodigy image.manual defects - --label SCRATCH,DENT',
      's3-source s3://acme-raw/inbox/ --state .sluice/inbox.json --watch 60 | prodigy ner.manual inbox blank:en - --label ORG',
      's3-source s3://bucket/data/ --endpoint http://127.0.0.1:9000 | head -5   # MinIO, R2, Ceph ...',
    ],
  },
  (url, options, flags) =>
    s3Source({
      ...options,
      ...s3ConnectionFromFlags(flags),
      url,
      pageSize: flags.pageSize as number | undefined,
    }),
  (program) => {
    s3ConnectionFlags(program);
    program.option(
      '--page-size <n>',
      'keys per listing page (default 1000)',
      integerFlag('--page-size', 1, 1000),
    );
  },
);
