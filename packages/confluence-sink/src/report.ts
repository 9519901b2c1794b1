// `report`: a dataset's progress and quality figures as a Confluence page.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Confluence } from '@sluice/confluence-source';
import {
  type DatasetReport,
  type Manifest,
  parseManifest,
  ReportBuilder,
  SluiceError,
  toLocalPath,
} from '@sluice/core';
import {
  esc,
  type Input,
  loadParent,
  marker,
  type PublishOptions,
  publishPage,
  readTasks,
  renderTitle,
  table,
} from './publish.js';

export interface ReportOptions extends PublishOptions {
  /** An export manifest (a local file) whose location and checksums the page names. */
  manifest?: string;
}

export interface ReportResult {
  title: string;
  report: DatasetReport;
  /** The page, unless a dry run. */
  page?: { id: string; version: number; url: string; created: boolean };
  body: string;
}

export const DEFAULT_REPORT_TITLE = 'Annotation report: {dataset}';

const percent = (part: number, whole: number) =>
  whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '';

/** Rows of a count record, largest first. */
function sorted(counts: Record<string, number>): Array<[string, number]> {
  return Object.entries(counts).sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1));
}

const ANSWERS = ['accept', 'reject', 'ignore'];

/** Reads an export manifest; its checksums go on the page. */
async function readManifest(path: string): Promise<{ manifest: Manifest; sha256: string }> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path.startsWith('file:') ? toLocalPath(path, 'source') : path);
  } catch (error) {
    throw new SluiceError(`--manifest ${path}: cannot read it (${(error as Error).message})`, {
      code: 'NOT_FOUND',
      hint: 'give the manifest.json a sink wrote (download it first when it is in a bucket)',
      cause: error,
    });
  }
  // Any manifest version a sink wrote (manifest/1 and manifest/2 list parts alike).
  const manifest = parseManifest(bytes);
  if (!manifest) {
    throw new SluiceError(`--manifest ${path}: not a Sluice manifest`, {
      code: 'BAD_INPUT',
      hint: 'give the manifest.json a Sluice sink wrote',
    });
  }
  return { manifest, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function manifestSection(manifest: Manifest, sha256: string, path: string): string {
  const location = `${manifest.root.replace(/\/+$/, '')}/manifest.json`;
  const parts = manifest.parts.map((part) => [
    esc(part.key),
    esc(part.records),
    esc(part.bytes),
    `<code>${esc(part.sha256)}</code>`,
  ]);
  return [
    '<h2>Export</h2>',
    `<p>Manifest: <code>${esc(location)}</code> (read from ${esc(path)}), written ${esc(manifest.created)} by ${esc(manifest.tool.name)} ${esc(manifest.tool.version)}; ${esc(manifest.counts.records)} records; SHA-256 of the manifest <code>${esc(sha256)}</code>.</p>`,
    table(['Part', 'Records', 'Bytes', 'SHA-256'], parts),
  ].join('\n');
}

/** The report page's storage-format body. */
export function reportBody(
  report: DatasetReport,
  context: {
    dataset?: string;
    now: Date;
    tool: { name: string; version: string };
    input: { lines: number; sha256: string };
    manifest?: string;
  },
): string {
  const n = report.examples;
  const answers = table(
    ['Answer', 'Examples', 'Share'],
    sorted(report.answers).map(([answer, count]) => [esc(answer), esc(count), percent(count, n)]),
  );
  const labels = sorted(report.labels).map(([label, count]) => [
    esc(label),
    esc(count),
    ...ANSWERS.map((answer) => esc(report.labelAnswers[label]?.[answer] ?? 0)),
  ]);
  const annotators = Object.entries(report.annotators)
    .map(([name, counts]) => {
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      return { name, total, counts };
    })
    .sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1))
    .map(({ name, total, counts }) => [
      esc(name),
      esc(total),
      ...ANSWERS.map((answer) => esc(counts[answer] ?? 0)),
    ]);
  const { agreement } = report;
  const agreementText =
    agreement.items === 0
      ? '<p>No question was answered by more than one annotator, so there is no agreement to measure.</p>'
      : `<p>${agreement.items} questions were answered by two or more annotators; ${agreement.unanimous} of them (${percent(agreement.unanimous, agreement.items)}) unanimously. Pairwise agreement (same answer and same spans or choices): <strong>${percent(agreement.agreeing, agreement.pairs)}</strong> (${agreement.agreeing} of ${agreement.pairs} pairs).</p>\n${table(
          ['Annotators', 'Shared questions', 'Agreeing', 'Agreement'],
          Object.entries(agreement.byPair).map(([pair, counts]) => [
            esc(pair),
            esc(counts.shared),
            esc(counts.agreeing),
            percent(counts.agreeing, counts.shared),
          ]),
        )}`;
  const span =
    report.first && report.last
      ? `<p>From ${esc(report.first.toISOString())} to ${esc(report.last.toISOString())} (UTC): ${((report.last.getTime() - report.first.getTime()) / 3_600_000).toFixed(1)} hours.</p>`
      : '<p>The examples carry no timestamps (_timestamp).</p>';
  return [
    marker('report'),
    `<p>${context.dataset ? `Dataset <strong>${esc(context.dataset)}</strong>: ` : ''}<strong>${n}</strong> examples, ${report.flagged} flagged. Published ${esc(context.now.toISOString())} by ${esc(context.tool.name)} ${esc(context.tool.version)}; this page's history keeps every earlier report.</p>`,
    '<h2>Answers</h2>',
    answers,
    '<h2>Labels</h2>',
    labels.length
      ? table(['Label', 'Examples', ...ANSWERS], labels)
      : '<p>No labels (task label, spans or accepted options).</p>',
    '<h2>Annotators</h2>',
    annotators.length
      ? table(['Annotator', 'Examples', ...ANSWERS], annotators)
      : '<p>No annotator ids (_annotator_id or _session_id).</p>',
    '<h2>Sessions</h2>',
    Object.keys(report.sessions).length
      ? table(
          ['Session', 'Examples'],
          sorted(report.sessions).map(([session, count]) => [esc(session), esc(count)]),
        )
      : '<p>No session ids (_session_id).</p>',
    '<h2>Agreement</h2>',
    agreementText,
    '<h2>Time span</h2>',
    span,
    '<h2>Input</h2>',
    `<p>${context.input.lines} lines of <code>prodigy db-out</code>, SHA-256 <code>${esc(context.input.sha256)}</code>.</p>`,
    context.manifest ?? '',
  ]
    .filter(Boolean)
    .join('\n');
}

/** Reads db-out JSONL and publishes (or, dry, prints) the report page. */
export async function publishReport(input: Input, options: ReportOptions): Promise<ReportResult> {
  const now = options.now ?? new Date();
  const tool = options.tool ?? { name: '@sluice/confluence-sink', version: '0' };
  const title = renderTitle(
    options.title ?? (options.dataset ? DEFAULT_REPORT_TITLE : 'Annotation report'),
    options.dataset,
    now,
  );
  const manifest = options.manifest ? await readManifest(options.manifest) : undefined;
  // The destination is checked before stdin is read.
  const client = options.dryRun ? undefined : (options.client ?? new Confluence(options));
  const parent = client ? await loadParent(client, options.url) : undefined;
  const hash = createHash('sha256');
  const counted = async function* () {
    for await (const chunk of input) {
      hash.update(chunk);
      yield chunk;
    }
  };
  const builder = new ReportBuilder();
  let lines = 0;
  for await (const { task, line } of readTasks(counted(), options)) {
    builder.add(task);
    lines = line;
  }
  const report = builder.result();
  const body = reportBody(report, {
    dataset: options.dataset,
    now,
    tool,
    input: { lines, sha256: hash.digest('hex') },
    manifest:
      manifest && options.manifest
        ? manifestSection(manifest.manifest, manifest.sha256, options.manifest)
        : undefined,
  });
  if (!client || !parent) {
    (options.out ?? process.stdout).write(`${body}\n`);
    return { title, report, body };
  }
  const published = await publishPage(client, parent, {
    title,
    body,
    kind: 'report',
    message: `${report.examples} examples`,
  });
  return {
    title,
    report,
    body,
    page: {
      id: published.page.id,
      version: published.page.version,
      url: client.pageUrl(published.page.id),
      created: published.created,
    },
  };
}
