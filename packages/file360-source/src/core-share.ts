// Every wire call of Sluice to a File 360 tenant on OpenText Core Share, source and sink alike:
// Core Share's REST API (/api/v1, and /api/v3 for uploads) with OTDS OAuth tokens, over
// fetch. Ids are 19-digit strings and stay strings. The calls pyxecm (OpenText's Python
// library, coreshare.py) makes are followed as it makes them: tokens, folder listings,
// deletion by state; reading a document, its content, and uploads are not in it (see the
// test kit's Core Share server for what is inferred).
import { openAsBlob } from 'node:fs';
import {
  byteRange,
  type RetryPolicy,
  responseBody,
  SluiceError,
  sendWithRetry,
} from '@sluice/core';
import {
  dateOf,
  debug,
  FILE360_CONNECTOR,
  type File360Api,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  isNotFound,
  resolveConnection,
  type Upload,
} from './file360.js';
import { OtdsTokens } from './otds.js';

/** Children per listing page. */
const PAGE_SIZE = 100;

/** The words of an error body, whatever its shape. */
function apiMessage(body: string): string {
  try {
    const data = JSON.parse(body) as Record<string, unknown>;
    const error = data.error as { message?: unknown } | string | undefined;
    const text = [
      data.message,
      typeof error === 'string' ? error : error?.message,
      data.error_description,
    ].find((value) => typeof value === 'string' && value);
    return (text as string | undefined) ?? '';
  } catch {
    return '';
  }
}

const httpError = (status: number, body: string) =>
  new File360HttpError(
    status,
    apiMessage(body),
    status === 404 ? 'not-found' : status === 409 ? 'name-taken' : undefined,
  );

/** A folder or document as Core Share describes it. */
function nodeOf(data: Record<string, unknown>): File360Node {
  const type = String(data.resourceType ?? '');
  const folder = type === 'folder' || type === '1';
  const document = type === 'document' || type === '2';
  const version = Number(data.currentVersionNumber);
  return {
    id: String(data.id),
    parentId:
      data.parentId === null || data.parentId === undefined ? undefined : String(data.parentId),
    name: String(data.name ?? ''),
    kind: folder ? 'folder' : document ? 'document' : 'other',
    container: folder,
    type: `resource type ${type}`,
    mimeType: typeof data.mimeType === 'string' ? data.mimeType : undefined,
    size: document && data.size !== undefined ? Number(data.size) : undefined,
    modified: dateOf(data.lastModified),
    version: Number.isInteger(version) && version > 0 ? version : undefined,
  };
}

type RequestInit = {
  method?: string;
  json?: unknown;
  /** Made once per attempt: a retried request sends its body again. */
  form?: () => FormData;
  signal?: AbortSignal;
  headers?: Record<string, string>;
};

/**
 * The Core Share REST client. Every request carries an OTDS access token; a token refused
 * (401) is renewed and the request sent once more, as pyxecm does.
 */
export class CoreShare implements File360Api {
  readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly retry: RetryPolicy | undefined;
  private readonly otds: OtdsTokens | undefined;
  private readonly token: string | undefined;

  constructor(options: File360ConnectionOptions = {}) {
    const connection = resolveConnection({ ...options, api: 'core-share' });
    this.base = connection.base;
    this.token = connection.token;
    this.fetch = options.fetch ?? fetch;
    this.retry = options.retry;
    this.otds = connection.otds && new OtdsTokens(connection.otds, this.fetch);
    debug('client: %s (Core Share), %s', this.base, this.otds ? 'OTDS client' : 'bearer token');
  }

  /** A request with a token; a refused token is renewed (with OTDS credentials) and sent again. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (init.json !== undefined) headers['content-type'] = 'application/json';
    for (let renewed = false; ; renewed = true) {
      const token = this.otds
        ? await (renewed ? this.otds.renew() : this.otds.token())
        : this.token;
      const response = await sendWithRetry(
        () =>
          this.fetch(`${this.base}${path}`, {
            method,
            headers: { ...headers, authorization: `Bearer ${token}` },
            body: init.json !== undefined ? JSON.stringify(init.json) : init.form?.(),
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
      const text = await response.text().catch(() => '');
      if (response.status === 401 && this.otds && !renewed) {
        debug('token refused: asking OTDS for another');
        continue;
      }
      throw httpError(response.status, text);
    }
  }

  private async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  /** A folder or a document: ids do not tell which, so the folder is asked for first. */
  async node(id: string, signal?: AbortSignal): Promise<File360Node | undefined> {
    for (const kind of ['folders', 'documents']) {
      try {
        return nodeOf(await this.json(`/api/v1/${kind}/${encodeURIComponent(id)}`, { signal }));
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    return undefined;
  }

  async *children(
    id: string,
    options: { signal?: AbortSignal; containers?: boolean; name?: string; newest?: boolean } = {},
  ): AsyncGenerator<File360Node> {
    const { signal, containers, name, newest } = options;
    const query = new URLSearchParams({
      limit: String(PAGE_SIZE),
      offset: '0',
      order: newest ? 'lastModified:desc' : 'name:asc',
      filter: containers ? 'folders' : newest ? 'documents' : 'any',
    });
    const path = `/api/v1/folders/${encodeURIComponent(id)}/children`;
    let next: string | undefined = `${path}?${query}`;
    while (next && !signal?.aborted) {
      const data: {
        results?: Array<Record<string, unknown>>;
        _links?: { next?: { href?: string } };
      } = await this.json(next, { signal });
      const results = data.results ?? [];
      debug('listed %d children of %s', results.length, id);
      for (const result of results) {
        if (result.isDeleted === true) continue;
        const node = nodeOf(result);
        if (name === undefined || node.name === name) yield node;
      }
      // The link's query on the path asked for; a page without results is the end.
      const href = data._links?.next?.href;
      next =
        results.length && href?.includes('?')
          ? `${path}${href.slice(href.indexOf('?'))}`
          : undefined;
    }
  }

  async download(
    id: string,
    options: { start?: number; end?: number; version?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<Uint8Array>> {
    const { start, end, version, signal } = options;
    const range = byteRange(start, end);
    const content = version ? `versions/${version}/content` : 'content';
    const response = await this.request(`/api/v1/documents/${encodeURIComponent(id)}/${content}`, {
      signal,
      headers: { accept: '*/*', ...(range ? { range } : {}) },
    });
    return responseBody(response, { start, end });
  }

  async createFolder(parent: string, name: string): Promise<File360Node> {
    return nodeOf(
      await this.json('/api/v1/folders', { method: 'POST', json: { name, parentId: parent } }),
    );
  }

  /** A multipart upload: the file, its name, and the description. */
  private async upload(path: string, file: Upload): Promise<Record<string, unknown>> {
    const blob = await openAsBlob(file.path, { type: file.contentType });
    return this.json(path, {
      method: 'POST',
      form: () => {
        const form = new FormData();
        form.append('file', blob, file.name);
        form.append('name', file.name);
        if (file.description) form.append('description', file.description);
        return form;
      },
    });
  }

  async createDocument(parent: string, file: Upload): Promise<File360Node> {
    return nodeOf(
      await this.upload(`/api/v3/folders/${encodeURIComponent(parent)}/documents`, file),
    );
  }

  async addVersion(id: string, file: Upload): Promise<number> {
    const data = await this.upload(`/api/v3/documents/${encodeURIComponent(id)}/versions`, file);
    const version = nodeOf(data).version;
    if (!version) {
      throw new SluiceError(`document ${id}: no version number in the answer`, {
        code: 'IO',
        connector: FILE360_CONNECTOR,
      });
    }
    return version;
  }

  /** Moves a node to the trash, as pyxecm deletes (`{"state": "deleted"}`). */
  async delete(id: string): Promise<void> {
    for (const kind of ['documents', 'folders']) {
      try {
        await this.request(`/api/v1/${kind}/${encodeURIComponent(id)}`, {
          method: 'PUT',
          json: { state: 'deleted' },
        });
        return;
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
  }
}
