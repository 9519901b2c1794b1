// Every wire call of Sluice to a File 360 tenant on OpenText Content Server, source and sink
// alike: Content Server REST (api/v1 and api/v2) over fetch. Requests are forms, as the API
// takes no JSON bodies.
import { openAsBlob } from 'node:fs';
import { byteRange, type RetryPolicy, responseBody, sendWithRetry } from '@sluice/core';
import {
  dateOf,
  debug,
  type File360Api,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  hasZone,
  isNotFound,
  resolveConnection,
  type Upload,
} from './file360.js';
import { OtdsTokens } from './otds.js';

/** Children per listing page. */
const PAGE_SIZE = 200;
/** The node fields a listing asks for, and the current version's number. */
const NODE_FIELDS = [
  'properties{id,parent_id,name,type,container,mime_type,size,modify_date}',
  'versions{version_number}.element(0)',
];
/** Content Server subtypes Sluice knows. */
const FOLDER = 0;
const DOCUMENT = 144;

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
 * An error answer, read: Content Server answers a node that does not exist or that the user
 * may not see with one text and any of 400, 404 or 500, and a taken name with 500 (v2) or 400.
 */
function httpError(status: number, body: string): File360HttpError {
  const message = apiMessage(body);
  const meaning =
    status === 404 ||
    /could not be accessed|could not get a node|could not locate node|invalid id/i.test(message)
      ? 'not-found'
      : /already exists/i.test(message)
        ? 'name-taken'
        : undefined;
  return new File360HttpError(status, message, meaning);
}

type NodeData = { properties?: Record<string, unknown>; versions?: unknown };

function nodeOf(data: NodeData, offsetMs: number): File360Node {
  const p = data.properties ?? {};
  const versions = data.versions as { version_number?: unknown } | undefined;
  const version = Number(versions?.version_number);
  const type = Number(p.type);
  const container = typeof p.container === 'boolean' ? p.container : type === FOLDER;
  return {
    id: String(p.id),
    parentId: p.parent_id === undefined ? undefined : String(p.parent_id),
    name: String(p.name ?? ''),
    kind: type === DOCUMENT ? 'document' : container ? 'folder' : 'other',
    container,
    type: `subtype ${p.type}`,
    mimeType: typeof p.mime_type === 'string' ? p.mime_type : undefined,
    size: type === DOCUMENT && typeof p.size === 'number' ? p.size : undefined,
    modified: dateOf(p.modify_date, offsetMs),
    version: Number.isInteger(version) && version > 0 ? version : undefined,
  };
}

/** Whether node data holds a date without a zone, which needs the server's offset. */
const zoneless = (items: NodeData[]) =>
  items.some((item) => {
    const date = item.properties?.modify_date;
    return typeof date === 'string' && date !== '' && !hasZone(date);
  });

type RequestInit = {
  method?: string;
  /** Made once per attempt: a retried request sends its body again. */
  form?: () => FormData | URLSearchParams;
  signal?: AbortSignal;
  headers?: Record<string, string>;
};

/**
 * The Content Server REST client. Every session is a ticket, renewed with each answer: asked
 * for with the user name and password (POST /api/v1/auth), or traded for a bearer token (GET
 * /api/v1/auth, as OpenText's pyxecm does), so that a long run outlives the token. When a
 * ticket expires (401) it signs in again, once, renewing the OTDS token where it has OTDS
 * credentials; a server that gives no ticket for a bearer token gets the token every time.
 */
export class ContentServer implements File360Api {
  readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly retry: RetryPolicy | undefined;
  private readonly token: string | undefined;
  private readonly otds: OtdsTokens | undefined;
  private readonly credentials: { username: string; password: string } | undefined;
  private ticket: string | undefined;
  /** The bearer token sent on every request, when the server gives no ticket for it. */
  private bearer: string | undefined;
  /** Logins so far: a request refused with an older ticket than the last login's just retries. */
  private logins = 0;
  private loggingIn: Promise<string> | undefined;
  private offset: Promise<number> | undefined;

  constructor(options: File360ConnectionOptions = {}) {
    const connection = resolveConnection({ ...options, api: 'content-server' });
    this.base = connection.base;
    this.token = connection.token;
    this.credentials = connection.login;
    this.fetch = options.fetch ?? fetch;
    this.retry = options.retry;
    this.otds = connection.otds && new OtdsTokens(connection.otds, this.fetch);
    const auth = this.credentials ? 'ticket' : this.otds ? 'OTDS client' : 'bearer token';
    debug('client: %s (Content Server), %s', this.base, auth);
  }

  /** A ticket (or, failing that, a bearer token): one sign-in however many requests wait. */
  private login(renewToken: boolean): Promise<string> {
    this.loggingIn ??= (async () => {
      try {
        if (this.credentials) {
          const response = await this.send('/api/v1/auth', {
            method: 'POST',
            form: () => new URLSearchParams(this.credentials),
          });
          const { ticket } = (await response.json()) as { ticket?: string };
          if (!ticket) throw new File360HttpError(response.status, 'no ticket in the answer');
          this.ticket = ticket;
        } else {
          await this.trade(renewToken);
        }
        this.logins++;
        return this.ticket ?? (this.bearer as string);
      } finally {
        this.loggingIn = undefined;
      }
    })();
    return this.loggingIn;
  }

  /** Trades a bearer token for a ticket; an OTDS token the server refuses is renewed once. */
  private async trade(renewToken: boolean): Promise<void> {
    const otds = this.otds;
    let token = otds ? await (renewToken ? otds.renew() : otds.token()) : (this.token as string);
    for (let renewed = renewToken; ; renewed = true) {
      try {
        const response = await this.send('/api/v1/auth', {}, { authorization: `Bearer ${token}` });
        await response.body?.cancel();
        this.ticket = response.headers.get('otcsticket') ?? undefined;
        this.bearer = this.ticket ? undefined : token;
        debug(this.ticket ? 'bearer token traded for a ticket' : 'no ticket: bearer on every call');
        return;
      } catch (error) {
        const refused = error instanceof File360HttpError && error.status === 401;
        if (!refused || !otds || renewed) throw error;
        token = await otds.renew();
      }
    }
  }

  /** One exchange, retried as the core policy says: throttling and unavailability, not 500. */
  async send(path: string, init: RequestInit, auth?: Record<string, string>): Promise<Response> {
    const url = `${this.base}${path}`;
    const method = init.method ?? 'GET';
    const response = await sendWithRetry(
      () =>
        this.fetch(url, {
          method,
          headers: { accept: 'application/json', ...auth, ...init.headers },
          body: init.form?.(),
          signal: init.signal,
        }),
      {
        method,
        policy: this.retry,
        signal: init.signal,
        onRetry: (reason, wait) => debug('%s %s: %s, again in %dms', method, path, reason, wait),
      },
    );
    debug('%s %s -> %d', method, path, response.status);
    if (response.ok) return response;
    throw httpError(response.status, await response.text().catch(() => ''));
  }

  /** A request with credentials; an expired session is renewed and the request sent again. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    for (let renewed = false; ; renewed = true) {
      const logins = this.logins;
      const held = this.ticket ?? this.bearer ?? (await this.login(false));
      try {
        const auth: Record<string, string> = this.ticket
          ? { otcsticket: held }
          : { authorization: `Bearer ${held}` };
        const response = await this.send(path, init, auth);
        // Each answer carries a fresh ticket; the next request uses it.
        const fresh = response.headers.get('otcsticket');
        if (fresh && this.ticket === held) this.ticket = fresh;
        return response;
      } catch (error) {
        if (!(error instanceof File360HttpError) || error.status !== 401 || renewed) throw error;
        // Expired: sign in again, unless a sign-in since this request went out did already.
        debug('session refused: signing in again');
        if (this.logins === logins) {
          this.ticket = undefined;
          this.bearer = undefined;
          await this.login(true);
        }
      }
    }
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  /**
   * How far the server's clocks run ahead of UTC, for dates older servers write without a
   * zone: its own time in /api/v1/serverinfo against the Date its answer carries, to the
   * quarter hour. Asked once, and only when such a date is seen.
   */
  private serverOffset(): Promise<number> {
    this.offset ??= (async () => {
      try {
        const response = await this.request('/api/v1/serverinfo');
        const info = (await response.json()) as { server?: { current_date?: string } };
        const local = Date.parse(`${info.server?.current_date ?? ''}Z`);
        const utc = Date.parse(response.headers.get('date') ?? '');
        if (Number.isNaN(local) || Number.isNaN(utc)) return 0;
        const quarter = 15 * 60_000;
        const offset = Math.round((local - utc) / quarter) * quarter;
        debug('server clocks: UTC%s%dmin', offset < 0 ? '' : '+', offset / 60_000);
        return offset;
      } catch (error) {
        debug('no server time (%s): dates without a zone read as UTC', (error as Error).message);
        return 0;
      }
    })();
    return this.offset;
  }

  /** Nodes from their data, with zone-less dates read on the server's clocks. */
  private async nodes(items: NodeData[]): Promise<File360Node[]> {
    const offset = zoneless(items) ? await this.serverOffset() : 0;
    return items.map((item) => nodeOf(item, offset));
  }

  async node(id: string, signal?: AbortSignal): Promise<File360Node | undefined> {
    const fields = NODE_FIELDS.map((f) => `fields=${encodeURIComponent(f)}`).join('&');
    try {
      const data = await this.json<{ results?: { data?: NodeData } }>(
        `/api/v2/nodes/${encodeURIComponent(id)}?${fields}`,
        { signal },
      );
      return (await this.nodes([data.results?.data ?? {}]))[0];
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async *children(
    id: string,
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
    if (name !== undefined) {
      // where_name matches parts of names: the exact name is picked below. A hidden item
      // holds its name too, so a lookup by name sees hidden items.
      query.set('where_name', name);
      query.set('show_hidden', 'true');
    }
    for (let page = 1; !signal?.aborted; page++) {
      query.set('page', String(page));
      const data = await this.json<{
        results?: Array<{ data?: NodeData }>;
        collection?: { paging?: { page_total?: number } };
      }>(`/api/v2/nodes/${encodeURIComponent(id)}/nodes?${query}`, { signal });
      const results = data.results ?? [];
      debug('listed %d children of %s (page %d)', results.length, id, page);
      for (const node of await this.nodes(results.map((r) => r.data ?? {}))) {
        if (name === undefined || node.name === name) yield node;
      }
      if (results.length === 0 || page >= (data.collection?.paging?.page_total ?? 0)) return;
    }
  }

  async download(
    id: string,
    options: { start?: number; end?: number; version?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<Uint8Array>> {
    const { start, end, version, signal } = options;
    const range = byteRange(start, end);
    const content = version ? `versions/${version}/content` : 'content';
    const response = await this.request(`/api/v1/nodes/${encodeURIComponent(id)}/${content}`, {
      signal,
      headers: { accept: '*/*', ...(range ? { range } : {}) },
    });
    return responseBody(response, { start, end });
  }

  private async create(form: () => FormData | URLSearchParams): Promise<File360Node> {
    const data = await this.json<{ results?: { data?: NodeData } }>('/api/v2/nodes', {
      method: 'POST',
      form,
    });
    return (await this.nodes([data.results?.data ?? {}]))[0] as File360Node;
  }

  createFolder(parent: string, name: string): Promise<File360Node> {
    // Ids go in the JSON as numbers, as Content Server wants; they stay below 2^53.
    const body = JSON.stringify({ type: FOLDER, parent_id: Number(parent), name });
    return this.create(() => new URLSearchParams({ body }));
  }

  async createDocument(parent: string, file: Upload): Promise<File360Node> {
    const blob = await openAsBlob(file.path, { type: file.contentType });
    return this.create(() => {
      const form = new FormData();
      const { name, description } = file;
      form.append(
        'body',
        JSON.stringify({ type: DOCUMENT, parent_id: Number(parent), name, description }),
      );
      form.append('file', blob, name);
      return form;
    });
  }

  async addVersion(id: string, file: Upload): Promise<number> {
    const blob = await openAsBlob(file.path, { type: file.contentType });
    const data = await this.json<{ results?: { data?: NodeData } }>(
      `/api/v2/nodes/${encodeURIComponent(id)}/versions`,
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
    return nodeOf(data.results?.data ?? {}, 0).version ?? 0;
  }

  async delete(id: string): Promise<void> {
    try {
      await this.request(`/api/v2/nodes/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (error) {
      // Gone already (a retried delete, or someone else's).
      if (!isNotFound(error)) throw error;
    }
  }
}
