#!/usr/bin/env node
import { createRequire } from 'node:module';
import { runSourceCli } from '@sluice/core';
import { fsSource } from './fs-source.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSourceCli(
  {
    bin: 'fs-source',
    packageName: name,
    version,
    description: 'Stream Prodigy tasks from a local folder (or one file) as JSONL on stdout.',
    url: 'a folder or file: a path or a file:// URL',
    examples: [
      "fs-source ./data --include '*.jsonl' | prodigy ner.manual ds blank:en - --label PERSON,ORG",
      'fs-source ./images | prodigy image.manual ds - --label DEFECT',
      'fs-source ./inbox --state .sluice/inbox.json --watch 30 | prodigy textcat.manual ds - --label A,B',
      'fs-source ./tickets --sample 0.1 --seed pilot > pilot.jsonl   # a 10% sample of the files',
    ],
  },
  (url, options) => fsSource({ ...options, url }),
);
