#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSinkCli } from '@sluice/core';
import { driveConnectionFlags, driveConnectionFromFlags } from '@sluice/gdrive-source';
import { gdriveSink } from './gdrive-sink.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSinkCli(
  {
    bin: 'gdrive-sink',
    packageName: name,
    version,
    description:
      'Export Prodigy JSONL (prodigy db-out) from stdin to a Google Drive folder: the folder path is created (existing folders reused), parts go up as resumable uploads, manifest.json last; a rerun updates its own files. Credentials: GOOGLE_OAUTH_ACCESS_TOKEN, --key-file, or Application Default Credentials.',
    url: 'export root: gdrive://folder/<id>/path, with {dataset} {date} {timestamp} {answer} {label} placeholders',
    examples: [
      "prodigy db-out news | gdrive-sink 'gdrive://folder/1AbC/{dataset}/{date}' --dataset news",
      "prodigy db-out news | gdrive-sink 'gdrive://folder/1AbC/review/{dataset}' --dataset news --review",
      "prodigy db-out news | gdrive-sink 'gdrive://folder/1AbC/{dataset}/{timestamp}' --dataset news --if-exists fail",
    ],
  },
  (url, options, flags) => gdriveSink({ ...options, ...driveConnectionFromFlags(flags), url }),
  driveConnectionFlags,
);
