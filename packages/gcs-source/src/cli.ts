#!/usr/bin/env node
import { createRequire } from 'node:module';
import { integerFlag, runSourceCli } from '@sluice/core';
import { gcsConnectionFlags, gcsConnectionFromFlags } from './gcs.js';
import { gcsSource } from './gcs-source.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

await runSourceCli(
  {
    bin: 'gcs-source',
    packageName: name,
    version,
    description:
      'Stream Prodigy tasks from Google Cloud Storage as JSONL on stdout. Credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, the metadata server) or --key-file.',
    url: 'gs://bucket/prefix/ (a folder of objects) or gs://bucket/name (one object)',
    examples: [
      'gcs-source gs://acme-raw/photos/ | prodigy image.manual defects - --label SCRATCH,DENT',
      "gcs-source gs://acme-raw/tickets/ --include '*.jsonl' | prodigy textcat.manual tickets blank:en - --label BUG,BILLING",
      'gcs-source gs://acme-raw/inbox/ --state .sluice/inbox.json --watch 60 | prodigy ner.manual inbox blank:en - --label ORG',
      'gcs-source gs://acme-raw/photos/ --media signed --key-file sa.json | prodigy image.manual defects - --label DENT',
    ],
  },
  (url, options, flags) =>
    gcsSource({
      ...options,
      ...gcsConnectionFromFlags(flags),
      url,
      pageSize: flags.pageSize as number | undefined,
    }),
  (program) => {
    gcsConnectionFlags(program);
    program.option(
      '--page-size <n>',
      'objects per listing page (default 1000)',
      integerFlag('--page-size', 1, 1000),
    );
  },
);
