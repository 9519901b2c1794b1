// Every wire call of Sluice to File 360, source and sink alike: OpenText Content Server REST
// (api/v1 and api/v2) over fetch. Requests are forms, as the API takes no JSON bodies.
import { openAsBlob } from 'node:fs';
import { SluiceError, serviceUrl, skipBytes, usageError } from '@sluice/core';
import {
  DOCUMENT,
  debug,
  FILE360_CONNECTOR,
  type File360Api,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  FOLDER,
  isNameTaken,
  isNotFound,
  type Upload,
} from './file360.js';

const RETRIES = 4;
/** Children per listing page. */
const PAGE_SIZE = 200;
/** The node fields a listing asks for, and the current version's number. */
const NODE_FIELDS = [
  'properties{id,parent_id,name,type,container,mime_type,size,modify_date}',
  'versions{version_number}.element(0)',
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads the connection from options and the environment, checking what is required. */
function resolveConnection(options: File360ConnectionOptions) {
  const env = process.env;
  const hint =
    'set FILE360_URL (or --base-url) to the Content Server CGI URL, e.g. https://otcs.acme.com/otcs/cs.exe';
  const given = (options.baseUrl ?? env.FILE360_URL ?? '').trim();
  if (!given) throw usageError('no File 360 server given', hint);
  const url = new URL(
    serviceUrl(given, options.baseUrl ? '--base-url' : 'FILE360_URL', {
      example: 'https://otcs.acme.com/otcs/cs.exe',
    }),
  );
  // The CGI URL, whether or not the API's own path was given too.
  const base = url.href.replace(/\/+$/, '').replace(/\/api(\/v\d+)?$/, '');
  const token = options.token ?? env.FILE360_TOKEN;
  const username = options.username ?? env.FILE360_USERNAME;
  const password = options.password ?? env.FILE360_PASSWORD;
  if (!token && !(username && password)) {
    throw new SluiceError('no File 360 credentials', {
      code: 'AUTH',
      connector: FILE360_CONNECTOR,
      hint:
        username || password
          ? 'set both FILE360_USERNAME and FILE360_PASSWORD, or FILE360_TOKEN'
          : 'set FILE360_USERNAME and FILE360_PASSWORD (a ticket is asked for and renewed), or FILE360_TOKEN to a bearer token',
    });
  }
  return { base, token, login: token ? undefined : { username, password } };
}

/** The `error` text of an API error body. */
function apiMessage(body: string): string {
  try {
    const data = JSON.parse(body) as { error?: unknown; errorDetail?: unknown };
    if (typeof data.error === 'string') {
      return [data.error, data.errorDetail].filter((s) => typeof s === 'string' && s).join(': ');
    }
  } catch {
    // not JSON: an HTML error page of a proxy
  }
  return '';
}

/**
 * A date as the API writes it: ISO 8601, with a Z on current servers; older ones leave the
 * zone out, read here as UTC, so dates of one server always compare alike.
 */
function dateOf(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

type NodeData = { properties?: Record<string, unknown>; versions?: unknown };

function nodeOf(data: NodeData): File360Node {
  const p = data.properties ?? {};
  const versions = data.versions as { version_number?: unknown } | undefined;
  const version = Number(versions?.version_number);
  const type = Number(p.type);
  return {
    id: Number(p.id),
    parentId: p.parent_id === undefined ? undefined : Number(p.parent_id),
    name: String(p.name ?? ''),
    type,
    container: typeof p.container === 'boolean' ? p.container : type === FOLDER,
    mimeType: typeof p.mime_type === 'string' ? p.mime_type : undefined,
    size: type === DOCUMENT && typeof p.size === 'number' ? p.size : undefined,
    modified: dateOf(p.modify_date),
    version: Number.isInteger(version) && version > 0 ? version : undefined,
  };
}

type RequestInit = {
  method?: string;
  /** Made once per attempt: a retried request sends its body again. */
  form?: () => FormData | URLSearchParams;
  signal?: AbortSignal;
  headers?: Record<string, string>;
};

/**
 * The Content Server REST client. Ticket auth logs in on first use, takes the fresh ticket
 * each answer carries, and logs in again once when a ticket has expired (401); a bearer token
 * goes with every request as it is.
 */
export class ContentServer implements File360Api {
  readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly token: string | undefined;
  private readonly credentials: { username?: string; password?: string } | undefined;
  private ticket: string | undefined;
  /** Logins so far: a request refused with an older ticket than the last login's just retries. */
  private logins = 0;
  private loggingIn: Promise<string> | undefined;

  constructor(options: File360ConnectionOptions = {}) {
    const connection = resolveConnection(options);
    this.base = connection.base;
    this.token = connection.token;
    this.credentials = connection.login;
    this.fetch = options.fetch ?? fetch;
    debug('client: %s, %s', this.base, this.token ? 'bearer token' : 'ticket');
  }

  /** A ticket: asks for one, once however many requests wait for it. */
  private login(): Promise<string> {
    this.loggingIn ??= (async () => {
      try {
        const { username = '', password = '' } = this.credentials ?? {};
        const response = await this.send('/api/v1/auth', {
          method: 'POST',
          form: () => new URLSearchParams({ username, password }),
        });
        const { ticket } = (await response.json()) as { ticket?: string };
        if (!ticket) throw new File360HttpError(response.status, 'no ticket in the answer');
        this.ticket = ticket;
        this.logins++;
        return ticket;
      } finally {
        this.loggingIn = undefined;
      }
    })();
    return this.loggingIn;
  }

  /** One exchange, retried with backoff on 429, 5xx and dropped connections (not POSTs). */
  private async send(path: string, init: RequestInit, auth?: Record<string, string>) {
    const url = `${this.base}${path}`;
    const method = init.method ?? 'GET';
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetch(url, {
          method,
          headers: { accept: 'application/json', ...auth, ...init.headers },
          body: init.form?.(),
          signal: init.signal,
        });
      } catch (error) {
        if (init.signal?.aborted || method === 'POST' || attempt >= RETRIES) throw error;
        await sleep(200 * 2 ** attempt);
        continue;
      }
      debug('%s %s -> %d', method, path, response.status);
      if (response.ok) return response;
      const error = new File360HttpError(
        response.status,
        apiMessage(await response.text().catch(() => '')),
      );
      // A 500 that names a missing node or a taken name is an answer, not a fault.
      const transient =
        (response.status === 429 || response.status >= 500) &&
        !isNotFound(error) &&
        !isNameTaken(error);
      if (!transient || method === 'POST' || attempt >= RETRIES) throw error;
      const after = Number(response.headers.get('retry-after'));
      await sleep(Number.isFinite(after) && after > 0 ? after * 1000 : 200 * 2 ** attempt);
    }
  }

  /** A request with credentials; an expired ticket is renewed and the request sent again. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    if (this.token) return this.send(path, init, { authorization: `Bearer ${this.token}` });
    for (let renewed = false; ; renewed = true) {
      const logins = this.logins;
      const ticket = this.ticket ?? (await this.login());
      try {
        const response = await this.send(path, init, { otcsticket: ticket });
        // Each answer carries a fresh ticket; the next request uses it.
        const fresh = response.headers.get('otcsticket');
        if (fresh && this.ticket === ticket) this.ticket = fresh;
        return response;
      } catch (error) {
        if (!(error instanceof File360HttpError) || error.status !== 401 || renewed) throw error;
        // Expired: log in again, unless a login since this request went out did already.
        debug('ticket refused: logging in again');
        if (this.logins === logins) this.ticket = undefined;
      }
    }
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  async node(id: number, signal?: AbortSignal): Promise<File360Node | undefined> {
    const fields = NODE_FIELDS.map((f) => `fields=${encodeURIComponent(f)}`).join('&');
    try {
      const data = await this.json<{ results?: { data?: NodeData } }>(
        `/api/v2/nodes/${id}?${fields}`,
        { signal },
      );
      return nodeOf(data.results?.data ?? {});
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async *children(
    id: number,
    options: { signal?: AbortSignal; containers?: boolean; name?: string; newest?: boolean } = {},
  ): AsyncGenerator<File360Node> {
    const { signal, containers, name, newest } = options;
    const query = new URLSearchParams({
      sort: newest ? 'desc_modify_date' : 'asc_name',
      limit: String(PAGE_SIZE),
    });
    for (const field of NODE_FIELDS) query.append('fields', field);
    if (containers) query.append('where_type', '-1');
    if (newest) query.append('where_type', String(DOCUMENT));
    // where_name matches parts of names: the exact name is picked below.
    if (name !== undefined) query.set('where_name', name);
    for (let page = 1; !signal?.aborted; page++) {
      query.set('page', String(page));
      const data = await this.json<{
        results?: Array<{ data?: NodeData }>;
        collection?: { paging?: { page_total?: number } };
      }>(`/api/v2/nodes/${id}/nodes?${query}`, { signal });
      const results = data.results ?? [];
      debug('listed %d children of %d (page %d)', results.length, id, page);
      for (const result of results) {
        const node = nodeOf(result.data ?? {});
        if (name === undefined || node.name === name) yield node;
      }
      if (results.length === 0 || page >= (data.collection?.paging?.page_total ?? 0)) return;
    }
  }

  async download(
    id: number,
    options: { start?: number; end?: number; version?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<Uint8Array>> {
    const { start, end, version, signal } = options;
    const range =
      start !== undefined || end !== undefined ? `bytes=${start ?? 0}-${end ?? ''}` : undefined;
    const path = version ? `/versions/${version}/content` : '/content';
    const response = await this.request(`/api/v1/nodes/${id}${path}`, {
      signal,
      headers: { accept: '*/*', ...(range ? { range } : {}) },
    });
    const body = response.body as unknown as AsyncIterable<Uint8Array> | null;
    if (!body) return skipBytes([], 0);
    // A server that ignores Range sends the whole document: skip to the start.
    return start && response.status === 200 ? skipBytes(body, start) : body;
  }

  private async create(form: () => FormData | URLSearchParams): Promise<File360Node> {
    const data = await this.json<{ results?: { data?: NodeData } }>('/api/v2/nodes', {
      method: 'POST',
      form,
    });
    return nodeOf(data.results?.data ?? {});
  }

  createFolder(parent: number, name: string): Promise<File360Node> {
    return this.create(
      () =>
        new URLSearchParams({ body: JSON.stringify({ type: FOLDER, parent_id: parent, name }) }),
    );
  }

  async createDocument(parent: number, file: Upload): Promise<File360Node> {
    const blob = await openAsBlob(file.path, { type: file.contentType });
    return this.create(() => {
      const form = new FormData();
      const { name, description } = file;
      form.append('body', JSON.stringify({ type: DOCUMENT, parent_id: parent, name, description }));
      form.append('file', blob, name);
      return form;
    });
  }

  async addVersion(id: number, file: Upload): Promise<number> {
    const blob = await openAsBlob(file.path, { type: file.contentType });
    const data = await this.json<{ results?: { data?: NodeData } }>(
      `/api/v2/nodes/${id}/versions`,
      {
        method: 'POST',
        form: () => {
          const form = new FormData();
          form.append('file', blob, file.name);
          if (file.description) form.append('description', file.description);
          return form;
        },
      },
    );
    return nodeOf(data.results?.data ?? {}).version ?? 0;
  }

  async delete(id: number): Promise<void> {
    try {
      await this.request(`/api/v2/nodes/${id}`, { method: 'DELETE' });
    } catch (error) {
      // Gone already (a retried delete, or someone else's).
      if (!isNotFound(error)) throw error;
    }
  }
}

/** The client the options ask for: one given, else Content Server REST. */
export function connect(options: File360ConnectionOptions): File360Api {
  return options.client ?? new ContentServer(options);
}
