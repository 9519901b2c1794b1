#!/usr/bin/env node
import { createRequire } from 'node:module';
import { type CliInfo, runDocumentCli, runSourceCli } from '@sluice/core';
import { confluenceConnectionFlags, confluenceConnectionFromFlags } from './confluence.js';
import { confluenceSource, SPLITS } from './confluence-source.js';
import { readGuidelines, readLabels } from './documents.js';
import type { Split } from './storage.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

const info: CliInfo = {
  bin: 'confluence-source',
  packageName: name,
  version,
  description:
    'Stream Prodigy tasks from Confluence as JSONL on stdout: page bodies as clean text (or HTML), whole or split by section or paragraph, and attachments through the converters; or a page as guidelines or labels. Site: CONFLUENCE_URL. Credentials: CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (Cloud), or CONFLUENCE_TOKEN (an OAuth access token, or a Data Center personal access token).',
  url: 'confluence://SPACEKEY, confluence://page/<id>[,<id>...], or confluence://search with --cql',
  examples: [
    `confluence-source confluence://POLICY --cql 'label = "policy"' --split section | prodigy spans.manual policies blank:en - --label RISK,OBLIGATION`,
    'confluence-source confluence://page/65601 --recursive --state .sluice/kb.json | prodigy textcat.manual kb - --label OUTDATED',
    "confluence-source confluence://page/70001 --attachments --no-pages --include '*.jsonl' > corrections.jsonl",
    'confluence-source guidelines confluence://page/65540 --children --out instructions.html',
    'confluence-source labels confluence://page/65541 --out labels.txt',
  ],
};

const code = await runDocumentCli(
  info,
  {
    guidelines: (url, flags) =>
      readGuidelines(url, {
        ...confluenceConnectionFromFlags(flags),
        children: flags.children === true,
      }),
    labels: (url, flags) =>
      readLabels(url, {
        ...confluenceConnectionFromFlags(flags),
        column: flags.column as string | undefined,
        descriptionColumn: flags.descriptionColumn as string | undefined,
      }),
  },
  (program) => {
    confluenceConnectionFlags(program);
    if (program.name().endsWith(' guidelines')) {
      program.option('--children', 'add the pages below the page, in their order');
    }
  },
);

if (code === undefined) {
  await runSourceCli(
    info,
    (url, options, flags) =>
      confluenceSource({
        ...options,
        ...confluenceConnectionFromFlags(flags),
        url,
        cql: flags.cql as string | undefined,
        labels: flags.label as string[] | undefined,
        ancestor: flags.ancestor as string | undefined,
        recursive: flags.recursive === true,
        split: flags.split as Split | undefined,
        html: flags.html === true,
        attachments: flags.attachments === true,
        pages: flags.pages !== false,
      }),
    (program) => {
      confluenceConnectionFlags(program);
      program.option('--cql <query>', 'only pages matching this CQL, e.g. \'label = "policy"\'');
      program.option(
        '--label <labels>',
        'only pages with one of these labels (comma-separated)',
        (value: string, previous: string[] = []) => [
          ...previous,
          ...value
            .split(',')
            .map((label) => label.trim())
            .filter(Boolean),
        ],
      );
      program.option('--ancestor <id>', 'only pages below this page, at any depth');
      program.option('-r, --recursive', 'with confluence://page/<id>: the pages below it too');
      program.option(
        '--split <unit>',
        `a task per ${SPLITS.join(', ')} (default page); the heading path goes in meta.headings`,
      );
      program.option('--html', 'HTML tasks (for the html view) instead of clean text');
      program.option('--attachments', "the pages' attachments too, through the converters");
      program.option('--no-pages', 'with --attachments: attachments only, not page bodies');
    },
  );
}
