// What `report` and `review` share: reading db-out, the page title, storage-format markup, and
// publishing a page so that a rerun adds a version to the same page instead of a new page.

import {
  CONFLUENCE_CONNECTOR,
  type Confluence,
  type ConfluenceConnectionOptions,
  ConfluenceHttpError,
  confluenceError,
  type Page,
  parseConfluenceUrl,
} from '@sluice/confluence-source';
import { parseJsonl, SluiceError, type Task, usageError, validateTask } from '@sluice/core';

/** Options every publishing command takes. */
export interface PublishOptions extends ConfluenceConnectionOptions {
  /** `confluence://page/<id>`: the page to publish under. */
  url: string;
  /** Page title; `{dataset}`, `{date}` and `{timestamp}` are filled in. */
  title?: string;
  dataset?: string;
  /** Print the storage-format body instead of publishing (no credentials needed). */
  dryRun?: boolean;
  /** Time of the run (default now). */
  now?: Date;
  /** Name of the input in messages (default `stdin`). */
  inputName?: string;
  /** Longest input line accepted (default 64 MiB). */
  maxLineBytes?: number;
  /** The tool and version named on the page. */
  tool?: { name: string; version: string };
  /** The client (needed unless `dryRun`). */
  client?: Confluence;
  /** Where a dry run prints (default stdout). */
  out?: NodeJS.WritableStream;
  /** Aborting stops reading; nothing is published then. */
  signal?: AbortSignal;
}

/** The parent page id of a publishing URL. */
export function parentIdOf(url: string): string {
  const target = parseConfluenceUrl(url);
  if (target.kind !== 'pages' || target.ids.length !== 1) {
    throw usageError(
      `${url}: publish under one page`,
      'use confluence://page/<id> of the parent page (the number in its link)',
    );
  }
  return target.ids[0] as string;
}

/** Fills `{dataset}`, `{date}` and `{timestamp}` into a title. */
export function renderTitle(template: string, dataset: string | undefined, now: Date): string {
  const iso = now.toISOString();
  const values: Record<string, string | undefined> = {
    dataset,
    date: iso.slice(0, 10),
    timestamp: iso.slice(0, 19).replace('T', ' '),
  };
  const title = template.replace(/\{([a-z_]+)\}/g, (whole, key: string) => {
    if (!(key in values)) {
      throw usageError(
        `--title ${template}: unknown placeholder ${whole}`,
        'use {dataset}, {date} or {timestamp}',
      );
    }
    const value = values[key];
    if (value === undefined) {
      throw usageError(
        `--title ${template} uses {dataset} but no dataset was given`,
        'pass --dataset NAME',
      );
    }
    return value;
  });
  if (title.trim() === '' || title.length > 255) {
    throw usageError(`--title: a page title has 1 to 255 characters, got ${title.length}`);
  }
  return title.trim();
}

/** Input lines: a stream (stdin), or chunks already in memory. */
export type Input = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

async function* chunks(input: Input): AsyncGenerator<Uint8Array | string> {
  for await (const chunk of input) yield chunk;
}

/** The tasks of db-out JSONL; a bad line stops the run before anything is published. */
export async function* readTasks(
  input: Input,
  options: PublishOptions,
): AsyncGenerator<{ task: Task; line: number; raw: string }> {
  const name = options.inputName ?? 'stdin';
  let lines = 0;
  for await (const record of parseJsonl(chunks(input), {
    name,
    maxLineBytes: options.maxLineBytes,
  })) {
    lines++;
    const problem = record.error ?? validateTask(record.value, { tokens: false });
    if (problem !== undefined) {
      throw new SluiceError(`${name} line ${record.line}: ${problem}`, {
        code: 'BAD_INPUT',
        hint: 'fix the line (prodigy db-out writes one task per line); nothing was published',
      });
    }
    yield { task: record.value as Task, line: record.line, raw: record.raw };
  }
  // Ctrl-C ends stdin early: what was read is not the dataset.
  if (options.signal?.aborted) {
    throw new SluiceError('interrupted: nothing was published', { code: 'INTERRUPTED' });
  }
  if (lines === 0) {
    throw new SluiceError(`${name} is empty: nothing to publish`, {
      code: 'BAD_INPUT',
      hint: 'check the command before the pipe (prodigy db-out DATASET)',
    });
  }
}

// Storage format is XHTML: text is escaped, and characters XML forbids are dropped.
export function esc(value: unknown): string {
  return (
    String(value ?? '')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: XML forbids these characters
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
  );
}

/** A table; cells are storage markup already (escape text with `esc`). */
export function table(header: string[], rows: string[][]): string {
  const head = `<tr>${header.map((cell) => `<th>${esc(cell)}</th>`).join('')}</tr>`;
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join('')}</tr>`);
  return `<table><tbody>${head}${body.join('')}</tbody></table>`;
}

/** A link to another page of the space, by title. */
export function pageLink(title: string): string {
  return `<ac:link><ri:page ri:content-title="${esc(title)}" /></ac:link>`;
}

/** A link to an attachment of the page. */
export function attachmentLink(filename: string): string {
  return `<ac:link><ri:attachment ri:filename="${esc(filename)}" /></ac:link>`;
}

/**
 * The mark a published page carries (an anchor macro, which shows nothing): a rerun updates
 * only a page that has it, never a page someone wrote under the same title.
 */
export function marker(kind: string): string {
  return `<ac:structured-macro ac:name="anchor"><ac:parameter ac:name="">sluice-${kind}</ac:parameter></ac:structured-macro>`;
}

const hasMarker = (body: string | undefined, kind: string) =>
  (body ?? '').includes(`>sluice-${kind}</ac:parameter>`);

/** The parent page, checked before stdin is read so that a wrong id fails at once. */
export async function loadParent(client: Confluence, url: string): Promise<Page> {
  const id = parentIdOf(url);
  try {
    const page = await client.page(id);
    if (!page) throw new ConfluenceHttpError(404, '');
    return page;
  } catch (error) {
    throw confluenceError(error, url);
  }
}

/**
 * Creates the page under `parent`, or, when Sluice published a page of that title in the
 * space before, saves the body as its next version (Confluence keeps the earlier ones).
 */
export async function publishPage(
  client: Confluence,
  parent: Page,
  page: { title: string; body: string; kind: string; message: string },
): Promise<{ page: Page; created: boolean }> {
  const what = `page "${page.title}"`;
  try {
    let existing = await client.findPage(parent, page.title);
    if (!existing) {
      return { page: await client.createPage(parent, page), created: true };
    }
    if (!hasMarker(existing.body, page.kind)) {
      throw new SluiceError(
        `${what}: a page of that title exists in the space (${client.pageUrl(existing.id)}) and was not published by Sluice`,
        {
          code: 'CONFLICT',
          connector: CONFLUENCE_CONNECTOR,
          hint: 'choose another --title (titles are unique within a space); Sluice never overwrites a page it did not publish',
        },
      );
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const updated = await client.updatePage({
          id: existing.id,
          title: page.title,
          body: page.body,
          version: existing.version + 1,
          message: page.message,
        });
        return { page: updated, created: false };
      } catch (error) {
        // Someone saved the page meanwhile: build on their version.
        if (!(error instanceof ConfluenceHttpError && error.status === 409) || attempt >= 2) {
          throw error;
        }
        existing = (await client.page(existing.id)) ?? existing;
      }
    }
  } catch (error) {
    throw confluenceError(error, what);
  }
}
