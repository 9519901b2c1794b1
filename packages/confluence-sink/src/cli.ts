#!/usr/bin/env node
import { createRequire } from 'node:module';
import {
  confluenceConnectionFlags,
  confluenceConnectionFromFlags,
} from '@sluice/confluence-source';
import {
  filterFlags,
  filtersFromFlags,
  integerFlag,
  type PublishCommand,
  parseSize,
  runPublishCli,
} from '@sluice/core';
import type { PublishOptions } from './publish.js';
import { DEFAULT_REPORT_TITLE, publishReport } from './report.js';
import { DEFAULT_REVIEW_TITLE, publishReview } from './review.js';

const { name, version } = createRequire(import.meta.url)('../package.json');

const URL = 'confluence://page/<id> of the parent page';

function common(program: Parameters<PublishCommand['configure']>[0], title: string): void {
  confluenceConnectionFlags(program);
  program
    .option('--dataset <name>', 'Prodigy dataset name: fills {dataset}, shown on the page')
    .option(
      '--title <title>',
      `page title; {dataset}, {date} and {timestamp} are filled in (default "${title}"); a rerun with the same title adds a version to the same page`,
    )
    .option('--max-line-bytes <size>', 'longest input line accepted', '64MB');
}

function publishOptions(url: string, flags: Record<string, unknown>): PublishOptions {
  return {
    ...confluenceConnectionFromFlags(flags),
    url,
    title: flags.title as string | undefined,
    dataset: flags.dataset as string | undefined,
    dryRun: flags.dryRun === true,
    maxLineBytes: parseSize((flags.maxLineBytes as string) ?? '64MB', '--max-line-bytes'),
    tool: { name, version },
  };
}

const published = (page: { url: string; version: number; created: boolean }) =>
  `${page.url} (${page.created ? 'new page' : `version ${page.version}`})`;

await runPublishCli(
  {
    bin: 'confluence-sink',
    packageName: name,
    version,
    description:
      'Publish Prodigy annotations to Confluence (prodigy db-out on stdin): a progress and quality report page, or review pages for sign-off with the examples attached. Site: CONFLUENCE_URL. Credentials: CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (Cloud), or CONFLUENCE_TOKEN (an OAuth access token, or a Data Center personal access token).',
  },
  {
    report: {
      description:
        "Publish the dataset's figures as a page under the parent: counts by answer, label, annotator and session, agreement between annotators, the time span, and an export manifest's location and checksums. A rerun adds a version to the same page.",
      url: URL,
      examples: [
        "prodigy db-out news_ner | confluence-sink report confluence://page/65540 --dataset news_ner --title 'NER run {date}'",
        'prodigy db-out news_ner | confluence-sink report confluence://page/65540 --dataset news_ner --manifest exports/manifest.json',
        'prodigy db-out news_ner | confluence-sink report confluence://page/65540 --dry-run > report.xml',
      ],
      configure(program) {
        common(program, DEFAULT_REPORT_TITLE);
        program.option(
          '--manifest <path>',
          "an export's manifest.json (a local file): its location and checksums go on the page",
        );
      },
      async run({ url, flags, input, signal }) {
        const result = await publishReport(input, {
          ...publishOptions(url, flags),
          signal,
          manifest: flags.manifest as string | undefined,
        });
        const what = `report "${result.title}" (${result.report.examples} examples)`;
        return result.page
          ? `published ${what}: ${published(result.page)}`
          : `dry run: printed ${what}; nothing published`;
      },
    },
    review: {
      description:
        'Publish the examples that need review (flagged, ignored and low-score ones unless filters are given) as a page under the parent: a table with text, spans, answer, score and hash, in child pages of --batch examples when there are more, and the examples attached as review.jsonl for corrections.',
      url: URL,
      examples: [
        'prodigy db-out news_ner | confluence-sink review confluence://page/65540 --dataset news_ner',
        'prodigy db-out news_ner | confluence-sink review confluence://page/65540 --answer ignore --flagged',
        'prodigy db-out news_ner | confluence-sink review confluence://page/65540 --label PERSON --max-score 0.3 --match all --batch 50',
      ],
      configure(program) {
        common(program, DEFAULT_REVIEW_TITLE);
        filterFlags(program, 'any');
        program.option(
          '--batch <n>',
          'examples per page; more make child pages of N each',
          integerFlag('--batch', 1, 5000),
          100,
        );
      },
      async run({ url, flags, input, signal }) {
        const result = await publishReview(input, {
          ...publishOptions(url, flags),
          signal,
          ...filtersFromFlags(flags, true),
          batch: flags.batch as number,
        });
        const what = `${result.selected} of ${result.read} examples for review in "${result.title}"`;
        if (result.pages.length === 0) return `dry run: printed ${what}; nothing published`;
        const [main, ...children] = result.pages;
        return `published ${what}: ${published(main as (typeof result.pages)[number])}${children.length ? ` and ${children.length} batch pages` : ''}`;
      },
    },
  },
);
