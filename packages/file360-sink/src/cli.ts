#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSinkCli } from '@sluice/core';
import { file360ConnectionFlags, file360ConnectionFromFlags } from '@sluice/file360-source';
import { file360Sink } from './file360-sink.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSinkCli(
  {
    bin: 'file360-sink',
    packageName: name,
    version,
    description:
      'Export Prodigy JSONL (prodigy db-out) from stdin to an OpenText File 360 folder (Content Server REST, or Core Share REST): the folder path is created (existing folders reused), documents uploaded, manifest.json last; a rerun of a changed export adds a version to manifest.json. Server: FILE360_URL (FILE360_API=core-share for Core Share). Credentials: FILE360_USERNAME and FILE360_PASSWORD, FILE360_CLIENT_ID and FILE360_CLIENT_SECRET (OTDS OAuth; FILE360_OTDS_URL), or FILE360_TOKEN.',
    url: 'export root: file360://node/<folderId>/path, with {dataset} {date} {timestamp} {answer} {label} placeholders',
    examples: [
      "prodigy db-out contracts | file360-sink 'file360://node/48213/{dataset}/{date}' --dataset contracts",
      "prodigy db-out contracts | file360-sink 'file360://node/51877/review/{dataset}' --dataset contracts --review --guidelines guidelines.html",
      "prodigy db-out contracts | file360-sink 'file360://node/48213/{dataset}/{timestamp}' --dataset contracts --if-exists fail",
    ],
    replace: {
      name: 'version',
      help: 'version (replace it: new documents, then a new version of manifest.json)',
    },
  },
  (url, options, flags) => file360Sink({ ...options, ...file360ConnectionFromFlags(flags), url }),
  file360ConnectionFlags,
);
