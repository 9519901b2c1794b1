// Every Confluence wire call of Sluice, source and sink alike: Cloud (REST v2, plus v1 for CQL
// search and attachment upload, which v2 does not have) and Data Center (REST v1), over fetch.
import {
  apiError,
  debugLog,
  type KnownAnswer,
  SluiceError,
  serviceUrl,
  skipBytes,
  usageError,
} from '@sluice/core';

export const CONFLUENCE_CONNECTOR = 'confluence';
export const debug = debugLog('sluice:confluence');

export type Deployment = 'cloud' | 'datacenter';
export const DEPLOYMENTS: readonly Deployment[] = ['cloud', 'datacenter'];

/** How to reach Confluence. Shared by source and sink; unset fields come from the environment. */
export interface ConfluenceConnectionOptions {
  /** Base URL of the wiki: https://acme.atlassian.net/wiki (Cloud) or https://confluence.acme.com (Data Center). Default: CONFLUENCE_URL. */
  site?: string;
  /** Cloud: the Atlassian account's e-mail, with `apiToken` (default: CONFLUENCE_EMAIL). */
  email?: string;
  /** Cloud: an API token of that account (default: CONFLUENCE_API_TOKEN). */
  apiToken?: string;
  /** A bearer token: an OAuth 2.0 access token (Cloud) or a personal access token (Data Center). Default: CONFLUENCE_TOKEN. */
  token?: string;
  /** Cloud or Data Center (default: CONFLUENCE_DEPLOYMENT, else cloud for *.atlassian.net, else datacenter). */
  deployment?: Deployment;
  /** A fetch of your own (a proxy agent, a test double). */
  fetch?: typeof fetch;
}

/** A page as both APIs describe it, with its storage-format body when asked for. */
export interface Page {
  id: string;
  title: string;
  spaceId?: string;
  spaceKey?: string;
  parentId?: string;
  version: number;
  modified?: Date;
  body?: string;
  /** The pages above it, the top first (when the API gave them). */
  ancestors?: Array<{ id: string; title: string }>;
}

export interface Attachment {
  id: string;
  pageId: string;
  title: string;
  mediaType: string;
  size?: number;
  version: number;
  modified?: Date;
  /** Download link relative to the wiki base. */
  download: string;
}

export interface Space {
  id?: string;
  key: string;
}

const RETRIES = 4;
/** Results asked for in the first page of a list, so the first task comes quickly. */
const FIRST_PAGE = 25;
const PAGE_SIZE = 100;

/** Reads the connection from options and the environment, checking what is required. */
function resolveConnection(options: ConfluenceConnectionOptions) {
  const env = process.env;
  const site = (options.site ?? env.CONFLUENCE_URL ?? '').trim();
  if (!site) {
    throw usageError(
      'no Confluence site given',
      'set CONFLUENCE_URL (or --site) to the wiki, e.g. https://acme.atlassian.net/wiki',
    );
  }
  const url = new URL(
    serviceUrl(site, options.site ? '--site' : 'CONFLUENCE_URL', {
      example: 'https://acme.atlassian.net/wiki',
    }),
  );
  const atlassian = /\.atlassian\.net$|^api\.atlassian\.com$/i.test(url.hostname);
  const chosen = options.deployment ?? (env.CONFLUENCE_DEPLOYMENT as Deployment | undefined);
  if (chosen !== undefined && !DEPLOYMENTS.includes(chosen)) {
    throw usageError(
      `--deployment must be cloud or datacenter, got "${chosen}"`,
      'cloud for *.atlassian.net sites, datacenter for a self-hosted Confluence',
    );
  }
  const deployment: Deployment = chosen ?? (atlassian ? 'cloud' : 'datacenter');
  let base = url.href.replace(/\/+$/, '');
  // A Cloud site's wiki lives under /wiki.
  if (
    atlassian &&
    /\.atlassian\.net$/i.test(url.hostname) &&
    url.pathname.replace(/\/+$/, '') === ''
  ) {
    base += '/wiki';
  }
  const email = options.email ?? env.CONFLUENCE_EMAIL;
  const apiToken = options.apiToken ?? env.CONFLUENCE_API_TOKEN;
  const token = options.token ?? env.CONFLUENCE_TOKEN;
  let authorization: string;
  let auth: string;
  if (token) {
    authorization = `Bearer ${token}`;
    auth = 'bearer token';
  } else if (email && apiToken) {
    authorization = `Basic ${Buffer.from(`${email}:${apiToken}`).toString('base64')}`;
    auth = `api token of ${email}`;
  } else {
    throw new SluiceError('no Confluence credentials', {
      code: 'AUTH',
      connector: CONFLUENCE_CONNECTOR,
      hint:
        email || apiToken
          ? 'set both CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (Cloud), or CONFLUENCE_TOKEN'
          : 'Cloud: set CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (or CONFLUENCE_TOKEN to an OAuth access token); Data Center: set CONFLUENCE_TOKEN to a personal access token',
    });
  }
  return { base, deployment, authorization, auth };
}

/** An API error body's message: v2 `errors[].title`, v1 `message`. */
function apiMessage(body: string): string {
  try {
    const data = JSON.parse(body) as {
      errors?: Array<{ title?: string; detail?: string | null }>;
      message?: string;
    };
    const first = data.errors?.[0];
    if (first) return [first.title, first.detail].filter(Boolean).join(': ');
    if (typeof data.message === 'string') return data.message;
  } catch {
    // not JSON: an HTML error page of a proxy
  }
  return '';
}

/** An HTTP error from Confluence. */
export class ConfluenceHttpError extends Error {
  constructor(
    readonly status: number,
    readonly apiMessage: string,
  ) {
    super(`HTTP ${status}${apiMessage ? ` ${apiMessage}` : ''}`);
  }
}

/** The answers Confluence gives that Sluice names, by HTTP status. */
const KNOWN: Record<number, KnownAnswer> = {
  400: {
    code: 'BAD_INPUT',
    text: 'request refused (400)',
    hint: 'check the CQL, space key and page ids',
  },
  401: {
    code: 'AUTH',
    text: 'credentials refused (401)',
    hint: 'check CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (Cloud) or CONFLUENCE_TOKEN (an OAuth access token, or a Data Center personal access token); tokens expire',
  },
  403: {
    code: 'AUTH',
    text: 'not permitted (403)',
    hint: 'the account needs view permission on the space to read, and add-page and attachment permissions to publish',
  },
  404: {
    code: 'NOT_FOUND',
    text: 'not found',
    hint: 'check the space key or page id, and that the account may view it (Confluence answers 404 for pages it hides)',
  },
  409: {
    code: 'CONFLICT',
    text: 'changed by someone else meanwhile',
    hint: 'run the command again',
  },
};

/** Turns a failure into a SluiceError naming `what` (a page, a space); never includes credentials. */
export function confluenceError(error: unknown, what: string): SluiceError {
  const http = error instanceof ConfluenceHttpError ? error : undefined;
  return apiError(error, {
    connector: CONFLUENCE_CONNECTOR,
    what,
    status: http?.status,
    message: http?.apiMessage,
    known: http ? KNOWN[http.status] : undefined,
    unreachable: 'cannot reach Confluence: check CONFLUENCE_URL (or --site) and the network',
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A v2 page (or a v1 content object) as a Page. */
function pageOf(data: Record<string, unknown>): Page {
  const version = (data.version ?? {}) as { number?: number; createdAt?: string; when?: string };
  const body = data.body as
    | { storage?: { value?: string }; value?: string; representation?: string }
    | undefined;
  const space = data.space as { key?: string; id?: unknown } | undefined;
  const ancestors = data.ancestors as Array<{ id: string; title?: string }> | undefined;
  const when = version.createdAt ?? version.when;
  return {
    id: String(data.id),
    title: String(data.title ?? ''),
    spaceId: data.spaceId !== undefined ? String(data.spaceId) : undefined,
    spaceKey: space?.key,
    parentId:
      typeof data.parentId === 'string'
        ? data.parentId
        : ancestors?.length
          ? String(ancestors.at(-1)?.id)
          : undefined,
    version: Number(version.number ?? 1),
    modified: when ? new Date(when) : undefined,
    body: body?.storage?.value,
    ancestors: ancestors?.map((a) => ({ id: String(a.id), title: String(a.title ?? a.id) })),
  };
}

/** The Confluence REST client: the calls Sluice makes, for Cloud and Data Center alike. */
export class Confluence {
  readonly base: string;
  readonly deployment: Deployment;
  private readonly authorization: string;
  private readonly fetch: typeof fetch;
  private readonly origin: string;
  private readonly spaces = new Map<string, Space>();

  constructor(options: ConfluenceConnectionOptions = {}) {
    const connection = resolveConnection(options);
    this.base = connection.base;
    this.deployment = connection.deployment;
    this.authorization = connection.authorization;
    this.origin = new URL(this.base).origin;
    this.fetch = options.fetch ?? fetch;
    debug('client: %s (%s), %s', this.base, this.deployment, connection.auth);
  }

  get cloud(): boolean {
    return this.deployment === 'cloud';
  }

  /** The page as people open it; stable across renames and moves. */
  pageUrl(id: string): string {
    return `${this.base}/pages/viewpage.action?pageId=${id}`;
  }

  /** An attachment's download URL. */
  downloadUrl(link: string): string {
    return new URL(link.replace(/^\/+/, ''), `${this.base}/`).href;
  }

  /**
   * One request: JSON in and out unless `raw`, retried with backoff on 429 (after its
   * Retry-After), 5xx and dropped connections. Errors are ConfluenceHttpErrors.
   */
  async request(
    path: string,
    init: {
      method?: string;
      json?: unknown;
      form?: FormData;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    } = {},
  ): Promise<Response> {
    const url = /^https?:/.test(path) ? path : `${this.base}${path}`;
    const headers: Record<string, string> = {
      authorization: this.authorization,
      accept: 'application/json',
      ...init.headers,
    };
    let body: string | FormData | undefined;
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.form) {
      headers['x-atlassian-token'] = 'no-check';
      body = init.form;
    }
    const method = init.method ?? 'GET';
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetch(url, { method, headers, body, signal: init.signal });
      } catch (error) {
        if (init.signal?.aborted || attempt >= RETRIES) throw error;
        await sleep(200 * 2 ** attempt);
        continue;
      }
      debug('%s %s -> %d', method, url.slice(this.origin.length), response.status);
      if (response.ok) return response;
      const text = await response.text().catch(() => '');
      const retryable = response.status === 429 || response.status >= 500;
      if (retryable && attempt < RETRIES && method !== 'POST') {
        const after = Number(response.headers.get('retry-after'));
        await sleep(Number.isFinite(after) && after > 0 ? after * 1000 : 200 * 2 ** attempt);
        continue;
      }
      throw new ConfluenceHttpError(response.status, apiMessage(text));
    }
  }

  async json<T>(path: string, init?: Parameters<Confluence['request']>[1]): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  /**
   * A list followed lazily through `_links.next`: v2 links are relative to the site's origin
   * (they start with the context path), v1 links to the wiki base.
   */
  async *list<T>(path: string, signal?: AbortSignal): AsyncGenerator<T> {
    const v2 = path.startsWith('/api/v2/');
    let next: string | undefined = path;
    while (next && !signal?.aborted) {
      const data: { results?: T[]; _links?: { next?: string } } = await this.json(next, {
        signal,
      });
      yield* data.results ?? [];
      const link = data._links?.next;
      // After a short first page, so the first task comes quickly, full pages.
      next = link
        ? `${v2 ? this.origin : this.base}${link}`.replace(/([?&]limit=)\d+/, `$1${PAGE_SIZE}`)
        : undefined;
    }
  }

  /** A space by key, for its id (v2 calls name spaces by id); Cloud only. */
  async space(key: string): Promise<Space> {
    const known = this.spaces.get(key);
    if (known) return known;
    const data = await this.json<{ results: Array<{ id: string; key: string }> }>(
      `/api/v2/spaces?keys=${encodeURIComponent(key)}`,
    );
    const found = data.results.find((s) => s.key === key);
    if (!found) throw new ConfluenceHttpError(404, `no space with key ${key}`);
    const space = { id: String(found.id), key: found.key };
    this.spaces.set(key, space);
    return space;
  }

  /** Pages matching a CQL query, with their bodies, lazily. */
  async *search(cql: string, signal?: AbortSignal): AsyncGenerator<Page> {
    const path = `/rest/api/content/search?cql=${encodeURIComponent(cql)}&limit=${FIRST_PAGE}&expand=body.storage,version,space,ancestors`;
    for await (const content of this.list<Record<string, unknown>>(path, signal)) {
      if (content.type === undefined || content.type === 'page') yield pageOf(content);
    }
  }

  /** One page with its body; undefined when it does not exist. */
  async page(id: string, signal?: AbortSignal): Promise<Page | undefined> {
    try {
      if (this.cloud) {
        const page = pageOf(
          await this.json(`/api/v2/pages/${encodeURIComponent(id)}?body-format=storage`, {
            signal,
          }),
        );
        return page;
      }
      return pageOf(
        await this.json(
          `/rest/api/content/${encodeURIComponent(id)}?expand=body.storage,version,space,ancestors`,
          { signal },
        ),
      );
    } catch (error) {
      if (error instanceof ConfluenceHttpError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** The direct children of a page (ids and titles), lazily. */
  async *children(id: string, signal?: AbortSignal): AsyncGenerator<{ id: string; title: string }> {
    const path = this.cloud
      ? `/api/v2/pages/${id}/children?limit=${FIRST_PAGE}`
      : `/rest/api/content/${id}/child/page?limit=${FIRST_PAGE}`;
    for await (const child of this.list<{ id: string; title: string }>(path, signal)) {
      yield { id: String(child.id), title: child.title };
    }
  }

  /** A page's attachments, lazily; with `filename`, only that one. */
  async *attachments(
    pageId: string,
    signal?: AbortSignal,
    filename?: string,
  ): AsyncGenerator<Attachment> {
    const only = filename ? `&filename=${encodeURIComponent(filename)}` : '';
    const path = this.cloud
      ? `/api/v2/pages/${pageId}/attachments?limit=${FIRST_PAGE}${only}`
      : `/rest/api/content/${pageId}/child/attachment?limit=${FIRST_PAGE}&expand=version${only}`;
    for await (const data of this.list<Record<string, unknown>>(path, signal)) {
      const version = (data.version ?? {}) as {
        number?: number;
        createdAt?: string;
        when?: string;
      };
      const extensions = (data.extensions ?? {}) as { mediaType?: string; fileSize?: number };
      const links = (data._links ?? {}) as { download?: string };
      const when = version.createdAt ?? version.when;
      yield {
        id: String(data.id),
        pageId,
        title: String(data.title),
        mediaType: String(data.mediaType ?? extensions.mediaType ?? 'application/octet-stream'),
        size: Number(data.fileSize ?? extensions.fileSize ?? Number.NaN) || undefined,
        version: Number(version.number ?? 1),
        modified: when ? new Date(when) : undefined,
        download: String(data.downloadLink ?? links.download),
      };
    }
  }

  /** An attachment's bytes (or a range of them). */
  async download(
    attachment: Attachment,
    options: { start?: number; end?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<Uint8Array>> {
    const { start, end } = options;
    const range =
      start !== undefined || end !== undefined ? `bytes=${start ?? 0}-${end ?? ''}` : undefined;
    const response = await this.request(this.downloadUrl(attachment.download), {
      signal: options.signal,
      headers: { accept: '*/*', ...(range ? { range } : {}) },
    });
    const body = response.body as unknown as AsyncIterable<Uint8Array> | null;
    if (!body) return skipBytes([], 0);
    // A server that ignores Range sends the whole file: skip to the start.
    if (start && response.status === 200) return skipBytes(body, start);
    return body;
  }

  /** The current page titled `title` in the space of `near` (a page); undefined when there is none. */
  async findPage(near: Page, title: string): Promise<Page | undefined> {
    if (this.cloud) {
      const path = `/api/v2/pages?space-id=${near.spaceId}&title=${encodeURIComponent(title)}&body-format=storage`;
      for await (const page of this.list<Record<string, unknown>>(path)) {
        const found = pageOf(page);
        if (found.title === title) return found;
      }
      return undefined;
    }
    const path = `/rest/api/content?spaceKey=${encodeURIComponent(near.spaceKey ?? '')}&title=${encodeURIComponent(title)}&type=page&expand=body.storage,version,space,ancestors`;
    for await (const content of this.list<Record<string, unknown>>(path)) {
      const found = pageOf(content);
      if (found.title === title) return found;
    }
    return undefined;
  }

  /** Creates a page under `parent`, in its space. */
  async createPage(parent: Page, page: { title: string; body: string }): Promise<Page> {
    if (this.cloud) {
      return pageOf(
        await this.json('/api/v2/pages', {
          method: 'POST',
          json: {
            spaceId: parent.spaceId,
            status: 'current',
            title: page.title,
            parentId: parent.id,
            body: { representation: 'storage', value: page.body },
          },
        }),
      );
    }
    return pageOf(
      await this.json('/rest/api/content?expand=version,space,ancestors', {
        method: 'POST',
        json: {
          type: 'page',
          title: page.title,
          space: { key: parent.spaceKey },
          ancestors: [{ id: parent.id }],
          body: { storage: { value: page.body, representation: 'storage' } },
        },
      }),
    );
  }

  /** Saves a new version of a page; `version` is the new version number (current + 1). */
  async updatePage(page: {
    id: string;
    title: string;
    body: string;
    version: number;
    message?: string;
  }): Promise<Page> {
    if (this.cloud) {
      return pageOf(
        await this.json(`/api/v2/pages/${page.id}`, {
          method: 'PUT',
          json: {
            id: page.id,
            status: 'current',
            title: page.title,
            body: { representation: 'storage', value: page.body },
            version: { number: page.version, message: page.message ?? '' },
          },
        }),
      );
    }
    return pageOf(
      await this.json(`/rest/api/content/${page.id}?expand=version,space,ancestors`, {
        method: 'PUT',
        json: {
          id: page.id,
          type: 'page',
          title: page.title,
          version: { number: page.version, message: page.message ?? '' },
          body: { storage: { value: page.body, representation: 'storage' } },
        },
      }),
    );
  }

  /** Attaches a file to a page, or adds a new version of the attachment of that name. */
  async putAttachment(
    pageId: string,
    file: { name: string; bytes: Buffer; contentType: string; comment?: string },
  ): Promise<void> {
    const form = new FormData();
    form.append('file', new Blob([file.bytes], { type: file.contentType }), file.name);
    if (file.comment) form.append('comment', file.comment);
    form.append('minorEdit', 'true');
    // v1 on both: Cloud's v2 has no upload. PUT creates the attachment or adds a version.
    await this.request(`/rest/api/content/${pageId}/child/attachment`, { method: 'PUT', form });
  }
}

/** A value inside a double-quoted CQL string. */
export function cqlString(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** A Confluence URL: a space, some pages, or a search (with --cql). */
export type ConfluenceTarget =
  | { kind: 'space'; key: string }
  | { kind: 'pages'; ids: string[] }
  | { kind: 'search' };

/** Parses `confluence://SPACEKEY`, `confluence://page/<id>[,<id>...]` and `confluence://search`. */
export function parseConfluenceUrl(url: string): ConfluenceTarget {
  const hint =
    'use confluence://SPACEKEY, confluence://page/<id> (the number in the page link, pageId=... or /pages/<id>/) or confluence://search with --cql';
  const match = /^confluence:\/\/([^/?#]+)(?:\/([^/?#]*))?\/?$/.exec(url);
  if (!match) throw usageError(`not a Confluence URL: ${url}`, hint);
  const [, first, second] = match as unknown as [string, string, string | undefined];
  if (first === 'page') {
    const ids = (second ?? '').split(',').filter(Boolean);
    if (ids.length === 0 || ids.some((id) => !/^\d{1,20}$/.test(id))) {
      throw usageError(`${url}: page ids are numbers`, hint);
    }
    return { kind: 'pages', ids };
  }
  if (first === 'search' && second === undefined) return { kind: 'search' };
  if (second !== undefined || !/^~?[A-Za-z0-9_-]{1,255}$/.test(first)) {
    throw usageError(`not a Confluence URL: ${url}`, hint);
  }
  return { kind: 'space', key: first };
}

/** The connection flags every Confluence command takes. */
export function confluenceConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--site <url>',
    'the wiki: https://acme.atlassian.net/wiki or https://confluence.acme.com (default: CONFLUENCE_URL)',
  );
  program.option(
    '--deployment <kind>',
    'cloud or datacenter (default: CONFLUENCE_DEPLOYMENT, else cloud for *.atlassian.net)',
  );
}

/** Reads the connection flags back; credentials come from the environment only. */
export function confluenceConnectionFromFlags(
  flags: Record<string, unknown>,
): ConfluenceConnectionOptions {
  return {
    site: flags.site as string | undefined,
    deployment: flags.deployment as Deployment | undefined,
  };
}
