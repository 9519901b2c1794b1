#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSinkCli } from '@sluice/core';
import { gcsConnectionFlags, gcsConnectionFromFlags } from '@sluice/gcs-source';
import { gcsSink } from './gcs-sink.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSinkCli(
  {
    bin: 'gcs-sink',
    packageName: name,
    version,
    description:
      'Export Prodigy JSONL (prodigy db-out) from stdin to Google Cloud Storage: parts first (resumable uploads when large), manifest.json last.',
    url: 'export root: gs://bucket/prefix/, with {dataset} {date} {timestamp} {answer} {label} placeholders',
    examples: [
      "prodigy db-out defects | gcs-sink 'gs://acme-labels/{dataset}/{date}/' --dataset defects",
      "prodigy db-out defects | gcs-sink 'gs://acme-labels/{dataset}/{timestamp}/' --dataset defects --if-exists fail",
      "prodigy db-out defects | gcs-sink 'gs://acme-review/defects/' --flagged --answer ignore --max-score 0.6 --match any",
    ],
  },
  (url, options, flags) => gcsSink({ ...options, ...gcsConnectionFromFlags(flags), url }),
  gcsConnectionFlags,
);
