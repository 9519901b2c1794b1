/**
 * An OpenText Core Share server for tests: Core Share is OpenText's SaaS file sharing (where a
 * File 360 tenant may live), with a REST API of its own that is not Content Server's. OpenText
 * publishes no reference for it; this server is written from the one public client, OpenText's
 * own Python library, and says plainly what it infers:
 *   PX  opentext/pyxecm, packages/pyxecm/src/pyxecm/coreshare.py (commit 42ebd92)
 *
 * From PX:
 * - The API is at the tenant's base URL under /api/v1 (and /api/v3 for multipart uploads);
 *   tokens come from OTDS at {sso}/otdsws/oauth2/token (here on the same server; see
 *   otds.ts): the password grant with the client id and secret, or client credentials.
 * - Every call sends `Authorization: Bearer <token>`; a 401 means the token expired, and PX
 *   asks for a new one and sends the call again, once.
 * - GET /api/v1/folders/{id}/children?limit=25&order=lastModified:desc&filter=any answers
 *   {results: [...]}, each item as get_folders' sample: `id`, `parentId` and the user ids as
 *   19-digit strings (past 2^53: a JSON number would lose digits), `name`, `size`, `created`
 *   and `lastModified` (ISO 8601 with milliseconds and Z), `resourceType` ("folder" or
 *   "document"), `childCount` as a string, `isDeleted`, `isShared`, `shareCount`, `uri`.
 * - Lists page through `_links.next.href` (offset and count); an answer to a request without
 *   `offset` links `offset=NaN` (get_groups' sample), and the last full page still links a
 *   next one, so a client stops at an empty page (PX's iterators do).
 * - Deletion is PUT /api/v1/folders/{id} or /api/v1/documents/{id} with {"state": "deleted"}
 *   (delete_folder, delete_document): the item goes to the trash and leaves listings.
 * - Multipart uploads carry the bytes in a `file` part (update_user_photo, on /api/v3).
 *
 * Inferred (no public source shows them, and OpenText's own swagger is not public; a real
 * tenant may differ, which is why each is named here):
 * - GET /api/v1/folders/{id} and /api/v1/documents/{id}: one item, as in listings; documents
 *   also carry `mimeType`, `currentVersionNumber` and `currentVersionId` (PX's folder sample
 *   has the last two as null).
 * - GET /api/v1/documents/{id}/content: the current bytes; Range is ignored (200, the whole
 *   file). GET /api/v1/documents/{id}/versions: {results: [{versionNumber, id, size,
 *   created, description}]}, newest first; …/versions/{n}/content: that version's bytes.
 * - POST /api/v1/folders {name, parentId} (JSON) makes a folder; POST
 *   /api/v3/folders/{id}/documents (multipart: `file`, `name`, `description`) a document;
 *   POST /api/v3/documents/{id}/versions (multipart) a new version, answering the document.
 *   New items answer 201, versions 200.
 * - A name taken in the folder, in any letter case, is 409; a missing or deleted item 404;
 *   listing `order` is name:asc (default), name:desc, lastModified:asc or lastModified:desc,
 *   `filter` any (default), folders or documents, `limit` 1..100 (default 25), anything
 *   else 400. Error bodies are {"code": <status>, "message": "..."}.
 *
 * Not covered: users, groups, shares, collaborators, comments, likes, search, locks, the
 * tenant admin's session login (POST /api/v1/sessions), quotas.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseFormData } from './confluence-server.js';
import { LoopbackServer, readBody, sendJson } from './loopback.js';
import { OtdsIssuer } from './otds.js';

export interface CoreShareItem {
  id: string;
  parentId: string | null;
  name: string;
  type: 'folder' | 'document';
  created: Date;
  modified: Date;
  deleted: boolean;
  /** Oldest first; empty for folders. */
  versions: Array<{
    number: number;
    id: string;
    content: Buffer;
    mimeType: string;
    description: string;
    created: Date;
  }>;
}

export interface CoreShareRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  status: number;
}

class CoreShareError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const OWNER = {
  id: '2597156105373095597',
  type: 'user',
  displayName: 'OpenText Service User',
  tenantId: '2595192600759637225',
};
const MIME: Record<string, string> = {
  txt: 'text/plain',
  csv: 'text/csv',
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  html: 'text/html',
  png: 'image/png',
  jpg: 'image/jpeg',
  pdf: 'application/pdf',
};
const guessType = (name: string) =>
  MIME[/\.([^.]+)$/.exec(name)?.[1]?.toLowerCase() ?? ''] ?? 'application/octet-stream';
const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export class CoreShareServer extends LoopbackServer {
  /** OTDS, which issues the tokens (POST /otdsws/oauth2/token). */
  readonly otds = new OtdsIssuer();
  /** Every request seen, oldest first. */
  readonly requests: CoreShareRequest[] = [];
  private readonly items = new Map<string, CoreShareItem>();
  /** Ids past 2^53, as Core Share's are. */
  private nextId = 2599466250228733940n;
  /** The user's own root folder ("Files"). */
  readonly rootId: string;

  constructor() {
    super();
    this.rootId = this.insert(null, 'Files', 'folder').id;
  }

  // -------------------------------------------------------------------------------------------
  // Seeding and inspection

  addFolder(parentId: string, name: string): string {
    return this.insert(parentId, name, 'folder').id;
  }

  addDocument(
    parentId: string,
    name: string,
    content: Buffer | string,
    opts: { mimeType?: string; modified?: Date; description?: string } = {},
  ): string {
    const item = this.insert(parentId, name, 'document', opts.modified);
    this.pushVersion(item, Buffer.from(content), opts);
    return item.id;
  }

  /** Adds a version; returns its number. */
  addVersion(id: string, content: Buffer | string, opts: { modified?: Date } = {}): number {
    const item = this.live(id);
    return this.pushVersion(item, Buffer.from(content), opts);
  }

  item(id: string): CoreShareItem | undefined {
    const item = this.items.get(id);
    return item && { ...item, versions: item.versions.map((v) => ({ ...v })) };
  }

  /** A folder's live children, by name. */
  children(id: string): CoreShareItem[] {
    return this.childrenOf(id).map((item) => this.item(item.id) as CoreShareItem);
  }

  find(parentId: string, name: string): CoreShareItem | undefined {
    return this.children(parentId).find((item) => item.name === name);
  }

  // -------------------------------------------------------------------------------------------
  // The store

  private insert(
    parentId: string | null,
    name: string,
    type: 'folder' | 'document',
    modified = new Date(),
  ): CoreShareItem {
    if (parentId !== null) {
      const parent = this.live(parentId);
      if (parent.type !== 'folder') throw new CoreShareError(400, 'The parent is not a folder');
      if (this.childrenOf(parentId).some((c) => sameName(c.name, name))) {
        throw new CoreShareError(409, `An item named '${name}' already exists in this folder`);
      }
    }
    const item: CoreShareItem = {
      id: String(this.nextId++),
      parentId,
      name,
      type,
      created: modified,
      modified,
      deleted: false,
      versions: [],
    };
    this.items.set(item.id, item);
    return item;
  }

  private pushVersion(
    item: CoreShareItem,
    content: Buffer,
    opts: { mimeType?: string; modified?: Date; description?: string },
  ): number {
    if (item.type !== 'document') throw new CoreShareError(400, 'Only documents have versions');
    const created = opts.modified ?? new Date();
    const number = item.versions.length + 1;
    item.versions.push({
      number,
      id: String(this.nextId++),
      content,
      mimeType: opts.mimeType || guessType(item.name),
      description: opts.description ?? '',
      created,
    });
    item.modified = created;
    return number;
  }

  private live(id: string): CoreShareItem {
    const item = this.items.get(id);
    if (!item || item.deleted) throw new CoreShareError(404, `No resource with id ${id}`);
    return item;
  }

  private childrenOf(id: string): CoreShareItem[] {
    return [...this.items.values()]
      .filter((item) => item.parentId === id && !item.deleted)
      .sort((a, b) => a.name.localeCompare(b.name) || (a.id < b.id ? -1 : 1));
  }

  private json(item: CoreShareItem): Record<string, unknown> {
    const current = item.versions.at(-1);
    const kind = item.type === 'folder' ? 'folders' : 'documents';
    return {
      id: item.id,
      name: item.name,
      size: item.type === 'folder' ? 0 : (current?.content.length ?? 0),
      created: item.created.toISOString(),
      lastModified: item.modified.toISOString(),
      shareCount: 0,
      isShared: false,
      parentId: item.parentId,
      uri: `/api/v1/${kind}/${item.id}`,
      commentCount: 0,
      isDeleted: item.deleted,
      isLiked: false,
      likesCount: 0,
      locks: [],
      createdBy: OWNER,
      lastModifiedBy: OWNER,
      owner: OWNER,
      permission: 1,
      hasAttachments: false,
      resourceType: item.type,
      tagCount: 0,
      resourceSubType: {},
      externalData: null,
      ...(item.type === 'folder'
        ? {
            childCount: String(this.childrenOf(item.id).length),
            currentVersionNumber: null,
            currentVersionId: null,
          }
        : {
            mimeType: current?.mimeType,
            currentVersionNumber: current?.number,
            currentVersionId: current?.id,
          }),
    };
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  protected fail(res: ServerResponse, error: unknown): void {
    const status = error instanceof CoreShareError ? error.status : 500;
    sendJson(res, status, { code: status, message: (error as Error).message });
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const method = req.method ?? 'GET';
    const record: CoreShareRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      status: 0,
    };
    this.requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    if (url.pathname === '/otdsws/oauth2/token' && method === 'POST') {
      return this.otds.token(req, res);
    }
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!bearer || !this.otds.subject(bearer)) {
      throw new CoreShareError(401, 'The access token is missing, invalid or expired');
    }
    const path = url.pathname;
    let m = /^\/api\/v1\/(folders|documents)\/(\d+)$/.exec(path);
    if (m) {
      const item = this.live(m[2] as string);
      if (item.type !== (m[1] === 'folders' ? 'folder' : 'document')) {
        throw new CoreShareError(404, `No resource with id ${m[2]}`);
      }
      if (method === 'GET') return sendJson(res, 200, this.json(item));
      if (method === 'PUT') {
        const body = await this.jsonBody(req);
        if (body.state !== 'deleted') throw new CoreShareError(400, 'Unsupported change');
        const trash = (node: CoreShareItem) => {
          node.deleted = true;
          for (const child of this.childrenOf(node.id)) trash(child);
        };
        trash(item);
        return sendJson(res, 200, this.json(item));
      }
    }
    m = /^\/api\/v1\/folders\/(\d+)\/children$/.exec(path);
    if (m && method === 'GET') return this.list(url, res, this.live(m[1] as string));
    m = /^\/api\/v1\/documents\/(\d+)\/content$/.exec(path);
    if (m && method === 'GET') return this.content(res, this.document(m[1] as string));
    m = /^\/api\/v1\/documents\/(\d+)\/versions$/.exec(path);
    if (m && method === 'GET') {
      const item = this.document(m[1] as string);
      return sendJson(res, 200, {
        results: [...item.versions].reverse().map((v) => ({
          versionNumber: v.number,
          id: v.id,
          size: v.content.length,
          created: v.created.toISOString(),
          description: v.description,
        })),
      });
    }
    m = /^\/api\/v1\/documents\/(\d+)\/versions\/(\d+)\/content$/.exec(path);
    if (m && method === 'GET') {
      const item = this.document(m[1] as string);
      const version = item.versions.find((v) => v.number === Number(m?.[2]));
      if (!version) throw new CoreShareError(404, `No version ${m[2]}`);
      return this.content(res, item, version);
    }
    if (path === '/api/v1/folders' && method === 'POST') {
      const body = await this.jsonBody(req);
      if (typeof body.name !== 'string' || !body.name.trim()) {
        throw new CoreShareError(400, 'name is required');
      }
      if (typeof body.parentId !== 'string') throw new CoreShareError(400, 'parentId is required');
      return sendJson(res, 201, this.json(this.insert(body.parentId, body.name, 'folder')));
    }
    m = /^\/api\/v3\/(folders|documents)\/(\d+)\/(documents|versions)$/.exec(path);
    if (m && method === 'POST' && (m[1] === 'folders') === (m[3] === 'documents')) {
      const parts = parseFormData(await readBody(req), req.headers['content-type'] ?? '');
      const file = parts.find((p) => p.name === 'file' && p.filename !== undefined);
      if (!file) throw new CoreShareError(400, 'A file part is required');
      const field = (name: string) => parts.find((p) => p.name === name)?.data.toString('utf8');
      const declared = file.contentType?.split(';')[0]?.trim();
      const opts = {
        mimeType: declared && declared !== 'application/octet-stream' ? declared : undefined,
        description: field('description'),
      };
      if (m[1] === 'folders') {
        const name = field('name') || (file.filename as string);
        const item = this.insert(m[2] as string, name, 'document');
        this.pushVersion(item, file.data, opts);
        return sendJson(res, 201, this.json(item));
      }
      const item = this.document(m[2] as string);
      this.pushVersion(item, file.data, opts);
      return sendJson(res, 200, this.json(item));
    }
    throw new CoreShareError(404, `No route for ${method} ${path}`);
  }

  private document(id: string): CoreShareItem {
    const item = this.live(id);
    if (item.type !== 'document') throw new CoreShareError(404, `No document with id ${id}`);
    return item;
  }

  private async jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    try {
      const parsed = JSON.parse((await readBody(req)).toString('utf8'));
      if (parsed && typeof parsed === 'object') return parsed;
    } catch {
      // answered below
    }
    throw new CoreShareError(400, 'The body must be a JSON object');
  }

  private content(res: ServerResponse, item: CoreShareItem, version = item.versions.at(-1)): void {
    if (!version) throw new CoreShareError(404, 'No content');
    res.writeHead(200, {
      'Content-Type': version.mimeType,
      'Content-Length': version.content.length,
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(item.name)}`,
    });
    res.end(version.content);
  }

  private list(url: URL, res: ServerResponse, folder: CoreShareItem): void {
    if (folder.type !== 'folder') throw new CoreShareError(400, 'Not a folder');
    const q = url.searchParams;
    const limitText = q.get('limit') ?? '25';
    const limit = Number(limitText);
    if (!/^\d+$/.test(limitText) || limit < 1 || limit > 100) {
      throw new CoreShareError(400, 'limit must be between 1 and 100');
    }
    const offsetText = q.get('offset');
    const offset = offsetText === null ? 0 : Number(offsetText);
    if (offsetText !== null && !/^\d+$/.test(offsetText)) {
      throw new CoreShareError(400, 'offset must be a number');
    }
    const order = q.get('order') ?? 'name:asc';
    const filter = q.get('filter') ?? 'any';
    if (!['name:asc', 'name:desc', 'lastModified:asc', 'lastModified:desc'].includes(order)) {
      throw new CoreShareError(400, `Unsupported order ${order}`);
    }
    if (!['any', 'folders', 'documents'].includes(filter)) {
      throw new CoreShareError(400, `Unsupported filter ${filter}`);
    }
    let items = this.childrenOf(folder.id).filter(
      (item) => filter === 'any' || `${item.type}s` === filter,
    );
    if (order.startsWith('lastModified')) {
      items = items.sort(
        (a, b) => a.modified.getTime() - b.modified.getTime() || (a.id < b.id ? -1 : 1),
      );
    }
    if (order.endsWith(':desc')) items.reverse();
    const slice = items.slice(offset, offset + limit);
    const params = (at: number | string) => {
      const next = new URLSearchParams(q);
      next.set('offset', String(at));
      return `/api/v1/folders/${folder.id}/children?${next}`;
    };
    // The next link is there after every full page, and says NaN when no offset was sent.
    const links: Record<string, { href: string }> = {
      self: { href: `${url.pathname}${url.search}` },
    };
    if (slice.length === limit) {
      links.next = { href: params(offsetText === null ? 'NaN' : offset + limit) };
    }
    sendJson(res, 200, { _links: links, results: slice.map((item) => this.json(item)) });
  }
}

/** Starts a server on a random loopback port (or `port`). */
export async function startCoreShareServer(
  port = 0,
): Promise<{ server: CoreShareServer; url: string }> {
  const server = new CoreShareServer();
  return { server, url: await server.listen(port) };
}

/** A client id and secret of the kind a tenant admin makes (for fixtures and `serve`). */
export const coreShareClient = () => ({
  clientId: `sluice-${randomBytes(6).toString('hex')}`,
  clientSecret: randomBytes(24).toString('base64url'),
});
