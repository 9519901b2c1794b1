// `review`: the examples that need a person's sign-off, as Confluence pages with the JSONL
// attached, so that corrections come back through confluence-source.

import { Confluence, type Page } from '@sluice/confluence-source';
import { scoreOf, type Task, type TaskFilters, taskFilter } from '@sluice/core';
import {
  attachmentLink,
  esc,
  type Input,
  loadParent,
  marker,
  type PublishOptions,
  pageLink,
  publishPage,
  readTasks,
  renderTitle,
  table,
} from './publish.js';

export interface ReviewOptions extends PublishOptions, TaskFilters {
  /** Examples per page; more make child pages of this many each (default 100). */
  batch?: number;
}

export interface ReviewResult {
  title: string;
  /** Examples read, and selected for review. */
  read: number;
  selected: number;
  /** Pages published (the review page first, then its batches), or none in a dry run. */
  pages: Array<{ id: string; title: string; version: number; url: string; created: boolean }>;
  /** Storage bodies by title. */
  bodies: Array<{ title: string; body: string }>;
}

export const DEFAULT_REVIEW_TITLE = 'Review: {dataset}';
export const REVIEW_ATTACHMENT = 'review.jsonl';
/** Characters of an example's text shown in the table; the attachment holds all of it. */
const SHOWN_TEXT = 1000;

const shorten = (text: string) =>
  text.length > SHOWN_TEXT ? `${text.slice(0, SHOWN_TEXT)}…` : text;

/** What was marked: spans with their text, a binary label, accepted options. */
function marked(task: Task): string {
  const items: string[] = [];
  const text = typeof task.text === 'string' ? task.text : '';
  for (const span of task.spans ?? []) {
    const covered =
      typeof span.text === 'string'
        ? span.text
        : text.slice(Number(span.start) || 0, Number(span.end) || 0);
    items.push(`<strong>${esc(span.label ?? '')}</strong> “${esc(covered)}”`);
  }
  if (typeof task.label === 'string') items.push(`label <strong>${esc(task.label)}</strong>`);
  if (Array.isArray(task.accept) && task.accept.length > 0) {
    items.push(`chosen: ${task.accept.map((id) => esc(id)).join(', ')}`);
  }
  return items.join('<br />');
}

function shown(task: Task): string {
  if (typeof task.text === 'string') return esc(shorten(task.text));
  if (typeof task.html === 'string') return esc(shorten(task.html));
  for (const key of ['image', 'audio', 'video'] as const) {
    const value = task[key];
    if (typeof value === 'string') {
      return value.startsWith('data:') ? `(${key}, inline)` : esc(value.slice(0, 300));
    }
  }
  return '';
}

function rows(tasks: Task[], first: number): string[][] {
  return tasks.map((task, i) => {
    const score = scoreOf(task);
    return [
      esc(first + i),
      shown(task),
      marked(task),
      esc(task.answer ?? ''),
      score === undefined ? '' : esc(score),
      task.flagged === true ? 'yes' : '',
      `<code>${esc(task._task_hash ?? '')}</code>`,
      esc(typeof task.meta?.source === 'string' ? task.meta.source : ''),
    ];
  });
}

const HEADER = ['#', 'Text', 'Marked', 'Answer', 'Score', 'Flagged', 'Task hash', 'Source'];

function describeFilters(filters: TaskFilters): string {
  const parts: string[] = [];
  if (filters.answer?.length) parts.push(`answer ${filters.answer.join(' or ')}`);
  if (filters.flagged) parts.push('flagged');
  if (filters.minScore !== undefined) parts.push(`score at least ${filters.minScore}`);
  if (filters.maxScore !== undefined) parts.push(`score at most ${filters.maxScore}`);
  if (filters.label?.length) parts.push(`label ${filters.label.join(' or ')}`);
  if (parts.length === 0) return 'every example';
  return parts.join(filters.match === 'any' ? ', or ' : ', and ');
}

const howTo = (pageId: string | undefined) =>
  `<p>To correct examples: download ${attachmentLink(REVIEW_ATTACHMENT)}, fix the lines (answer, spans, label), and attach the file back under another name, such as <code>corrections.jsonl</code>. Read it back with <code>confluence-source confluence://page/${esc(pageId ?? '&lt;id&gt;')} --attachments --no-pages --include corrections.jsonl</code>: the examples keep their hashes, so Prodigy sees them as the same questions.</p>`;

/** Reads db-out JSONL and publishes (or, dry, prints) the review page and its batches. */
export async function publishReview(input: Input, options: ReviewOptions): Promise<ReviewResult> {
  const now = options.now ?? new Date();
  const batch = options.batch ?? 100;
  const title = renderTitle(
    options.title ?? (options.dataset ? DEFAULT_REVIEW_TITLE : 'Review'),
    options.dataset,
    now,
  );
  const client = options.dryRun ? undefined : (options.client ?? new Confluence(options));
  const parent = client ? await loadParent(client, options.url) : undefined;
  const keeps = taskFilter(options);
  const selected: Array<{ task: Task; raw: string }> = [];
  let read = 0;
  for await (const { task, raw } of readTasks(input, options)) {
    read++;
    if (keeps(task)) selected.push({ task, raw });
  }
  const tasks = selected.map((entry) => entry.task);
  const jsonl = Buffer.from(selected.map((entry) => `${entry.raw}\n`).join(''));
  const batches: Array<{ title: string; first: number; tasks: Task[] }> = [];
  if (tasks.length > batch) {
    const count = Math.ceil(tasks.length / batch);
    for (let i = 0; i < count; i++) {
      batches.push({
        title: `${title} (${i + 1}/${count})`,
        first: i * batch + 1,
        tasks: tasks.slice(i * batch, (i + 1) * batch),
      });
    }
  }
  const intro = `<p>${tasks.length} of ${read} examples${options.dataset ? ` of <strong>${esc(options.dataset)}</strong>` : ''} selected for review: ${esc(describeFilters(options))}. Published ${esc(now.toISOString())}.</p>`;
  const mainBody = (pageId: string | undefined) =>
    [
      marker('review'),
      intro,
      howTo(pageId),
      tasks.length === 0
        ? '<p>Nothing to review.</p>'
        : batches.length > 0
          ? table(
              ['Batch', 'Examples', 'Page'],
              batches.map((b, i) => [
                esc(i + 1),
                esc(`${b.first} to ${b.first + b.tasks.length - 1}`),
                pageLink(b.title),
              ]),
            )
          : table(HEADER, rows(tasks, 1)),
    ].join('\n');
  const batchBody = (b: (typeof batches)[number]) =>
    [
      marker('review'),
      `<p>Examples ${b.first} to ${b.first + b.tasks.length - 1} of ${tasks.length} of ${pageLink(title)}; the examples are attached there as ${esc(REVIEW_ATTACHMENT)}.</p>`,
      table(HEADER, rows(b.tasks, b.first)),
    ].join('\n');
  const bodies = [
    { title, body: mainBody(undefined) },
    ...batches.map((b) => ({ title: b.title, body: batchBody(b) })),
  ];
  if (!client || !parent) {
    const out = options.out ?? process.stdout;
    for (const { title: t, body } of bodies) out.write(`<!-- page: ${t} -->\n${body}\n`);
    return { title, read, selected: tasks.length, pages: [], bodies };
  }
  const message = `${tasks.length} examples for review`;
  const pages: ReviewResult['pages'] = [];
  const record = (page: Page, created: boolean) =>
    pages.push({
      id: page.id,
      title: page.title,
      version: page.version,
      url: client.pageUrl(page.id),
      created,
    });
  // The page first (an attachment needs it), with the attachment before its final body,
  // so that the page never names examples its attachment lacks.
  const existing = await publishPage(client, parent, {
    title,
    body: mainBody(undefined),
    kind: 'review',
    message,
  });
  await client.putAttachment(existing.page.id, {
    name: REVIEW_ATTACHMENT,
    bytes: jsonl,
    contentType: 'application/x-ndjson',
    comment: message,
  });
  const main = await publishPage(client, parent, {
    title,
    body: mainBody(existing.page.id),
    kind: 'review',
    message,
  });
  record(main.page, existing.created);
  for (const b of batches) {
    const published = await publishPage(client, main.page, {
      title: b.title,
      body: batchBody(b),
      kind: 'review',
      message,
    });
    record(published.page, published.created);
  }
  return { title, read, selected: tasks.length, pages, bodies };
}
