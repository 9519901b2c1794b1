#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSinkCli } from '@sluice/core';
import { fsSink } from './fs-sink.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSinkCli(
  {
    bin: 'fs-sink',
    packageName: name,
    version,
    description:
      'Export Prodigy JSONL (prodigy db-out) from stdin into a local folder: parts first, manifest.json last.',
    url: 'export root: a path or file:// URL, with {dataset} {date} {timestamp} {answer} {label} placeholders',
    examples: [
      "prodigy db-out news | fs-sink './exports/{dataset}/{date}' --dataset news",
      "prodigy db-out news | fs-sink './exports/{dataset}/{answer}' --dataset news --format jsonl.gz",
      'prodigy db-out news | fs-sink ./review --flagged --answer ignore --max-score 0.6 --match any',
      'fs-sink ./exports/news < news.jsonl --skip-invalid --dry-run',
    ],
  },
  (url, options) => fsSink({ ...options, url }),
);
