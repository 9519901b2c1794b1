#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSinkCli } from '@sluice/core';
import { quietSdkNotices, s3ConnectionFlags, s3ConnectionFromFlags } from '@sluice/s3-source';
import { s3Sink } from './s3-sink.js';

const { name, version } = createRequire(import.meta.url)('../package.json');
quietSdkNotices();

await runSinkCli(
  {
    bin: 's3-sink',
    packageName: name,
    version,
    description:
      'Export Prodigy JSONL (prodigy db-out) from stdin to Amazon S3 or an S3-compatible store: parts first (multipart when large), manifest.json last.',
    url: 'export root: s3://bucket/prefix/, with {dataset} {date} {timestamp} {answer} {label} placeholders',
    examples: [
      "prodigy db-out news | s3-sink 's3://acme-labels/{dataset}/{date}/' --dataset news",
      "prodigy db-out news | s3-sink 's3://acme-labels/{dataset}/{timestamp}/' --dataset news --format jsonl.gz",
      "prodigy db-out news | s3-sink 's3://acme-review/news/' --flagged --answer ignore --max-score 0.6 --match any",
    ],
  },
  (url, options, flags) => s3Sink({ ...options, ...s3ConnectionFromFlags(flags), url }),
  s3ConnectionFlags,
);
