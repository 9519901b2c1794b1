import {
  createSource,
  type ListOptions,
  mapReadErrors,
  modifiedCursor,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  type Task,
  usageError,
} from '@sluice/core';
import {
  type Attachment,
  CONFLUENCE_CONNECTOR,
  Confluence,
  type ConfluenceConnectionOptions,
  ConfluenceHttpError,
  confluenceError,
  cqlDate,
  cqlString,
  type Page,
  parseConfluenceUrl,
} from './confluence.js';
import { type Split, storageSections } from './storage.js';

export const SPLITS: readonly Split[] = ['page', 'section', 'paragraph'];

/** Options of the Confluence source: core source options, the connection, and what to read. */
export interface ConfluenceSourceOptions extends SourceOptions, ConfluenceConnectionOptions {
  /** `confluence://SPACEKEY`, `confluence://page/<id>[,<id>...]` or `confluence://search` (with `cql`). */
  url: string;
  /** Only pages matching this CQL (`label = "policy" and created >= "2026-01-01"`). */
  cql?: string;
  /** Only pages with one of these labels. */
  labels?: string[];
  /** Only pages below this page, at any depth. */
  ancestor?: string;
  /** With page URLs: the pages below them too. */
  recursive?: boolean;
  /** A task per page (default), per section under a heading, or per paragraph. */
  split?: Split;
  /** HTML tasks (`html`, for Prodigy's html view) instead of plain text ones. */
  html?: boolean;
  /** Attachments of the pages too, through the core converters. */
  attachments?: boolean;
  /** Page bodies (default true; false with `attachments` reads attachments only). */
  pages?: boolean;
  /** A client of your own (default: one made from the connection options). */
  client?: Confluence;
}

/** A page or an attachment as the source lists it. */
export interface ConfluenceItem extends SourceItem {
  page?: Page;
  attachment?: Attachment;
}

/** Pages modified less than this before a saved position are listed again (search indexes a change late). */
const CURSOR_MARGIN_MS = 24 * 60 * 60 * 1000;
/** CQL dates are to the minute; a bound is moved this much earlier (the exact cut is made after). */
const MINUTE_MARGIN_MS = 60 * 1000;
/** When the account's time zone is unknown, the widest offset from UTC there is. */
const ZONE_MARGIN_MS = 14 * 60 * 60 * 1000;

/** A title as one path segment: titles may hold `/`. */
const segment = (title: string) => title.replaceAll('/', '%2F');

/** Splits CQL into its filter and its `order by` clause. */
function splitOrder(cql: string): { filter: string; order: string } {
  const at = cql.search(/\border\s+by\b/i);
  return at < 0
    ? { filter: cql.trim(), order: '' }
    : { filter: cql.slice(0, at).trim(), order: cql.slice(at).trim() };
}

export async function createConfluenceSourceDriver(
  options: ConfluenceSourceOptions,
): Promise<SourceDriver<ConfluenceItem>> {
  const target = parseConfluenceUrl(options.url);
  const split = options.split ?? 'page';
  if (!SPLITS.includes(split)) {
    throw usageError(`--split must be one of ${SPLITS.join(', ')}, got ${split}`);
  }
  if (target.kind === 'search' && !options.cql) {
    throw usageError(
      `${options.url} needs a query`,
      'pass --cql, e.g. --cql \'label = "policy"\', or name a space: confluence://SPACEKEY',
    );
  }
  if (options.ancestor !== undefined && !/^\d{1,20}$/.test(options.ancestor)) {
    throw usageError(`--ancestor expects a page id (a number), got "${options.ancestor}"`);
  }
  if (options.pages === false && !options.attachments) {
    throw usageError('--no-pages reads nothing without --attachments');
  }
  const client = options.client ?? new Confluence(options);
  const root = options.url.replace(/\/+$/, '');
  const wantPages = options.pages !== false;
  /** Media attachments listed, by URI: the media proxy serves only these. */
  const media = new Map<string, ConfluenceItem>();

  // Pages are listed through CQL search, on Cloud and Data Center alike: it takes every
  // selection, a last-modified bound for reruns, and gives each page's ancestors (its path).
  const filters: string[] = [];
  // An ordering the CQL reference documents; created, then title, keeps result pages stable.
  let order = 'order by created, title';
  if (options.cql) {
    const parts = splitOrder(options.cql);
    if (parts.filter) filters.push(`(${parts.filter})`);
    if (parts.order) order = parts.order;
  }
  if (options.labels?.length) {
    filters.push(`label in (${options.labels.map((l) => `"${cqlString(l)}"`).join(', ')})`);
  }
  if (options.ancestor) filters.push(`ancestor = ${options.ancestor}`);
  const scope =
    target.kind === 'space'
      ? `space = "${cqlString(target.key)}"`
      : target.kind === 'pages'
        ? options.recursive
          ? `(id in (${target.ids.join(', ')}) or ancestor in (${target.ids.join(', ')}))`
          : `id in (${target.ids.join(', ')})`
        : '';
  /** The search; `since` is written on the clocks of the account's zone, as CQL reads it. */
  const query = async (since?: Date) => {
    let bound: string | undefined;
    if (since) {
      const zone = await client.timeZone().catch(() => undefined);
      const at = new Date(since.getTime() - MINUTE_MARGIN_MS - (zone ? 0 : ZONE_MARGIN_MS));
      bound = `lastmodified >= "${cqlDate(at, zone)}"`;
    }
    return [scope, 'type = page', ...filters, ...(bound ? [bound] : [])]
      .filter(Boolean)
      .join(' and ')
      .concat(` ${order}`);
  };

  /**
   * A page as a folder of keys, as globs see it: the titles from the top of the space down
   * to it, or, for a page URL, from below the page named (whose own files have bare names).
   */
  const roots = new Set(target.kind === 'pages' ? target.ids : []);
  const dirOf = (page: Page): string => {
    if (roots.has(page.id)) return '';
    const above = page.ancestors ?? [];
    const from = above.findLastIndex((a) => roots.has(a.id)) + 1;
    return [...above.slice(from).map((a) => a.title), page.title].map(segment).join('/');
  };
  const pathOf = (page: Page) => dirOf(page) || segment(page.title);
  const spaced = (path: string, page: Page) => (page.spaceKey ? `${page.spaceKey}/${path}` : path);

  const pageItem = (page: Page): ConfluenceItem => ({
    key: pathOf(page),
    uri: client.pageUrl(page.id),
    path: spaced([...(page.ancestors ?? []), page].map((p) => segment(p.title)).join('/'), page),
    version: String(page.version),
    modified: page.modified,
    size: page.body === undefined ? undefined : Buffer.byteLength(page.body),
    contentType: 'text/html',
    page,
  });

  const attachmentItem = (page: Page, attachment: Attachment): ConfluenceItem => {
    const item: ConfluenceItem = {
      key: dirOf(page) ? `${dirOf(page)}/${attachment.title}` : attachment.title,
      uri: client.downloadUrl(
        `/download/attachments/${page.id}/${encodeURIComponent(attachment.title)}`,
      ),
      path: spaced(
        [...(page.ancestors ?? []), page, { title: attachment.title }]
          .map((p) => segment(p.title))
          .join('/'),
        page,
      ),
      version: String(attachment.version),
      modified: attachment.modified,
      size: attachment.size,
      contentType: attachment.mediaType,
      attachment,
    };
    if (/^(image|audio|video)\//.test(attachment.mediaType)) media.set(item.uri, item);
    return item;
  };

  const notFound = (id: string) =>
    confluenceError(new ConfluenceHttpError(404, ''), `confluence://page/${id}`);

  // The start is checked before anything streams, so a wrong space or page fails at once.
  try {
    if (target.kind === 'space' && client.cloud) await client.space(target.key);
    if (target.kind === 'pages') {
      const first = target.ids[0] as string;
      if (!(await client.page(first))) throw notFound(first);
    }
  } catch (error) {
    throw confluenceError(error, options.url);
  }

  return {
    connector: CONFLUENCE_CONNECTOR,
    root,
    async *list({ signal, cursor, setCursor }: ListOptions) {
      const position = modifiedCursor(cursor, CURSOR_MARGIN_MS);
      // A rerun asks only for pages modified since the saved position (less a margin), and
      // --since bounds the search too. Not with attachments: a page's last-modified date does
      // not move when a file is attached to it.
      const since = options.attachments
        ? undefined
        : [position.since, options.modifiedSince]
            .filter((d): d is Date => d instanceof Date && !Number.isNaN(d.getTime()))
            .sort((a, b) => b.getTime() - a.getTime())[0];
      try {
        for await (const page of client.search(await query(since), signal)) {
          position.see(page.modified);
          if (wantPages) yield pageItem(page);
          if (options.attachments) {
            for await (const attachment of client.attachments(page.id, signal)) {
              yield attachmentItem(page, attachment);
            }
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        throw confluenceError(error, root);
      }
      if (position.value && !signal.aborted) setCursor?.(position.value);
    },
    async tasks(item) {
      const page = item.page;
      if (!page) return undefined;
      let body = page.body;
      if (body === undefined) {
        try {
          body = (await client.page(page.id))?.body ?? '';
        } catch (error) {
          throw confluenceError(error, item.uri);
        }
      }
      return storageSections(body, split).map((piece): Task => {
        const meta: Record<string, unknown> = { title: page.title };
        if (page.spaceKey) meta.space = page.spaceKey;
        if (split !== 'page' && piece.headings.length > 0) {
          meta.headings = piece.headings.join(' > ');
        }
        return options.html ? { html: piece.html, meta } : { text: piece.text, meta };
      });
    },
    async open(item, { start, end, signal }) {
      const attachment = item.attachment as Attachment;
      try {
        const body = await client.download(attachment, { start, end, signal });
        return mapReadErrors(body, (error) => confluenceError(error, item.uri));
      } catch (error) {
        throw confluenceError(error, item.uri);
      }
    },
    async stat() {
      // Items are found by URI: see resolve.
      return undefined;
    },
    async resolve(uri) {
      const listed = media.get(uri);
      if (!listed?.attachment) return undefined;
      try {
        for await (const attachment of client.attachments(
          listed.attachment.pageId,
          undefined,
          listed.attachment.title,
        )) {
          if (attachment.title === listed.attachment.title) {
            return { ...listed, attachment, version: String(attachment.version) };
          }
        }
        return undefined;
      } catch (error) {
        throw confluenceError(error, uri);
      }
    },
  };
}

/** Streams Prodigy tasks from Confluence pages and attachments. */
export function confluenceSource(options: ConfluenceSourceOptions): Source {
  return createSource(createConfluenceSourceDriver(options), options);
}
