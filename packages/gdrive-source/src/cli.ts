#!/usr/bin/env node
import { createRequire } from 'node:module';
import { type CliInfo, integerFlag, runDocumentCli, runSourceCli } from '@sluice/core';
import { readGuidelines, readLabels } from './documents.js';
import { driveConnectionFlags, driveConnectionFromFlags } from './drive.js';
import { DOCS_MODES, type DocsMode, gdriveSource } from './gdrive-source.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

const info: CliInfo = {
  bin: 'gdrive-source',
  packageName: name,
  version,
  description:
    'Stream Prodigy tasks from Google Drive as JSONL on stdout: files in a folder (Docs as text, Sheets as rows, Slides as text, images as media), or a Doc or Sheet as guidelines or labels. Credentials: GOOGLE_OAUTH_ACCESS_TOKEN, --key-file, or Application Default Credentials.',
  url: 'gdrive://folder/<id> (the files in a folder) or gdrive://file/<id> (one file)',
  examples: [
    'gdrive-source gdrive://folder/1AbC --recursive | prodigy textcat.manual tickets - --label BUG,BILLING',
    'gdrive-source gdrive://folder/1AbC --watch 60 --state .sluice/inbox.json | prodigy ner.manual inbox blank:en - --label ORG',
    "gdrive-source gdrive://folder/1AbC --type 'image/*' | prodigy image.manual defects - --label DENT",
    'gdrive-source guidelines gdrive://file/1XyZ --out instructions.html',
    'gdrive-source labels gdrive://file/1XyZ --out labels.txt --column label',
  ],
};

const code = await runDocumentCli(
  info,
  {
    guidelines: (url, flags) => readGuidelines(url, driveConnectionFromFlags(flags)),
    labels: (url, flags) =>
      readLabels(url, {
        ...driveConnectionFromFlags(flags),
        column: flags.column as string | undefined,
        descriptionColumn: flags.descriptionColumn as string | undefined,
      }),
  },
  driveConnectionFlags,
);

if (code === undefined) {
  await runSourceCli(
    info,
    (url, options, flags) =>
      gdriveSource({
        ...options,
        ...driveConnectionFromFlags(flags),
        url,
        recursive: flags.recursive === true,
        docs: flags.docs as DocsMode | undefined,
        pageSize: flags.pageSize as number | undefined,
      }),
    (program) => {
      driveConnectionFlags(program);
      program.option('-r, --recursive', 'go through subfolders and shortcuts to folders too');
      program.option(
        '--docs <mode>',
        `Google Docs as ${DOCS_MODES.join(', ')} (default text: a task per Doc)`,
      );
      program.option(
        '--page-size <n>',
        'files per listing page (default 1000)',
        integerFlag('--page-size', 1, 1000),
      );
    },
  );
}
