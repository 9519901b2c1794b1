#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSourceCli } from '@sluice/core';
import { file360ConnectionFlags, file360ConnectionFromFlags } from './file360.js';
import { file360Source } from './file360-source.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSourceCli(
  {
    bin: 'file360-source',
    packageName: name,
    version,
    description:
      'Stream Prodigy tasks from OpenText File 360 (Content Server REST, or Core Share REST) as JSONL on stdout: the documents in a folder, converted by type (text, CSV, JSONL, HTML, PDF text; images and audio as media). Server: FILE360_URL (FILE360_API=core-share for Core Share, chosen by itself for core.opentext.*). Credentials: FILE360_USERNAME and FILE360_PASSWORD (Content Server: a ticket, renewed when it expires), FILE360_CLIENT_ID and FILE360_CLIENT_SECRET (OTDS OAuth, renewed; FILE360_OTDS_URL), or FILE360_TOKEN (a bearer token).',
    url: 'file360://node/<id>: a folder (or one document) by its node id',
    examples: [
      'file360-source file360://node/48213 --recursive | prodigy ner.manual contracts blank:en - --label PARTY,DATE',
      'file360-source file360://node/48213 --watch 60 --state .sluice/inbox.json | prodigy textcat.manual inbox - --label URGENT',
      "file360-source file360://node/48213 --type 'image/*' --media proxy | prodigy image.manual scans - --label STAMP",
      "file360-source file360://node/51877 --include 'review.*.csv' > corrections.jsonl",
    ],
  },
  (url, options, flags) =>
    file360Source({
      ...options,
      ...file360ConnectionFromFlags(flags),
      url,
      recursive: flags.recursive === true,
    }),
  (program) => {
    file360ConnectionFlags(program);
    program.option('-r, --recursive', 'go through subfolders (and workspaces) too');
  },
);
