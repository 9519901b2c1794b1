/**
 * An OpenText Content Server for tests (the REST API File 360 is reached through): the parts of
 * the CS REST API (api/v1, api/v2) that a connector reading and writing folders and documents
 * uses, in memory, on 127.0.0.1. There is no public emulator, so this one is written from these
 * public sources (named by their keys below), with inferences marked:
 *   SW  OpenText's CS REST OpenAPI spec as generated into TypeScript by chriscdn/cs-rest,
 *       src/types/cs-rest-types/schema.ts (commit 8600497): paths, parameters, error texts
 *       https://github.com/chriscdn/cs-rest
 *   PX  OpenText's Python library, opentext/pyxecm, packages/pyxecm/src/pyxecm/otcs.py:
 *       real response samples (node properties, versions, create, delete)
 *       https://github.com/opentext/pyxecm
 *   UI  OpenText's csui SDK test mocks (lib/src/csui/... as vendored in vashisht7/OTCS-Widgets):
 *       envelopes, `fields=versions.element(0)`, the 401 body, the not-accessible text
 *   XE  fitschgo/xecm (CSRestAPI.py): OTDS bearer tokens on every call
 *   CR  chriscdn/cs-rest README: form bodies, the fresh ticket on every answer
 *
 * Every route lives under `basePath` (default `/otcs/cs.exe`, the CGI URL). Request bodies are
 * forms (application/x-www-form-urlencoded or multipart/form-data), never JSON, as on CS.
 *
 * Covered:
 * - POST   /api/v1/auth                    username, password → {"ticket"} (SW authenticate)
 * - GET    /api/v1/auth                    the caller {"data":{"id","name"}} plus an OTCSTicket
 *                                          header; with an OTDS bearer token this is how a ticket
 *                                          is obtained (PX authenticate)
 * - DELETE /api/v1/auth                    ends the session: the ticket sent is void (SW)
 * - GET    /api/v2/nodes/{id}              fields: properties, properties{a,b}, versions,
 *                                          versions{a,b}, versions[...].element(n) (SW getNode2)
 * - GET    /api/v2/nodes/{id}/nodes        limit, page, sort, where_type, where_name, fields
 *                                          (SW getSubnodes2)
 * - GET    /api/v1|v2/nodes/{id}/content[/{name}]   the current version; v1 action=download
 *                                          answers application/octet-stream (SW getContent)
 * - GET    /api/v1|v2/nodes/{id}/versions/{n}/content[/{name}]   one version (SW DownloadVersion)
 * - POST   /api/v2/nodes                   a folder (type 0) or a document (type 144, a `file`
 *                                          part), from a `body` JSON field or separate fields
 *                                          type, parent_id, name, description (SW createNode2; PX)
 * - POST   /api/v2/nodes/{id}/versions     file, description, add_major_version (SW addVersion2)
 * - GET    /api/v2/nodes/{id}/versions     page, limit, order=asc|desc, fields (SW listVersions2)
 * - GET    /api/v2/nodes/{id}/versions/{n} one version (PX get_document_version)
 * - GET    /api/v1/nodes/{id}/versions/latest and /versions/{n}   {"data":{version}} (PX)
 * - DELETE /api/v2/nodes/{id}              {"links":…,"results":{}} (SW deleteNode2; PX)
 * - DELETE /api/v1/nodes/{id}              {} (SW deleteNode; the body is not specified)
 * - GET    /api/v1/serverinfo              {server: {current_date, url, version, …}, sessions}:
 *                                          `current_date` on the server's clocks without a
 *                                          zone (PX get_server_info's sample)
 * - POST   /otdsws/oauth2/token            OTDS, outside basePath: see otds.ts
 * Deleted nodes and everything below them go to the recycle bin (`deleted(id)`).
 *
 * As real servers answer, each with its source:
 * - Content Server's Hidden property (`setHidden`): a hidden node leaves /nodes listings
 *   unless `show_hidden=true` is asked, stays readable by id, and keeps its name taken
 *   (PX get_subnodes: show_hidden, "Whether to list hidden items", default false; the
 *   `hidden` property in its samples).
 * - Older servers write dates without a zone, on their own clocks (`timeZone`); current ones
 *   write UTC with a Z (PX get_server_info's `current_date: '2023-09-05T17:09:41'`; UI).
 * - A bearer token is an OTDS token with a lifetime (`addToken(token, lifetimeMs)`, or tokens
 *   from /otdsws/oauth2/token); GET /api/v1/auth with it answers a ticket in OTCSTicket, which
 *   then renews with each answer (PX authenticate trades its OTDS token so).
 * - Deterministic failures answer 500 (a taken name, browsing a document, a missing version:
 *   SW), which no retry changes.
 *
 * Authentication: `OTCSTicket: <ticket>` (header name in any case) or `Authorization: Bearer
 * <token>` for a token from `addToken`; otherwise 401 {"error":"Authentication required"} (the
 * csui mock's body; SW says "Authentication Required"), never echoing the credential. Every
 * ticket-authenticated answer (errors after authentication included) carries a fresh ticket in
 * `OTCSTicket` and its expiry in `OTCSTicketExpires` (CR README; csui's ticket authenticator
 * reads both). A ticket lives
 * `ticketLifetimeMs` from its issue, so a client that keeps the newest one expires after that
 * much idle time; older tickets stay valid until their own expiry.
 *
 * Errors are {"error": "..."} (csui's parser; SW). Texts are the spec's; statuses:
 *   401 Invalid username/password specified.      (SW)
 *   400 Argument username|password is required    (SW's text; SW lists it under 500)
 *   400 Missing required parameter 'name'|'type'|'parent_id'|'file' (SW: "Missing required
 *       parameter '[parameter name]'"), and 'File' for a version (SW's exact text)
 *   400 Subtype N not registered                   (SW)
 *   400 One or more parameters are invalid         (SW; bad limit, page, sort, where_type, order)
 *   400 Invalid datatype specified for argument 'id'   (SW; a non-numeric id in the path)
 *   404 Sorry, the item you requested could not be accessed. …   for a missing, hidden or
 *       deleted node on every route. csui's mocks use 404 (and 400) with this text; SW lists it
 *       under 400, or 500 for downloads.
 *   500 An item with the name 'X' already exists.  (SW createNode2's status and text; PX
 *       special-cases 500 + "already exists")
 *   500 Could not process object, invalid action 'browse'   (SW; children of a non-container)
 *   500 The version is not found                   (SW DownloadVersion)
 * Inferences (no source shows them): 403 "You do not have permission to perform this action."
 * for `denyAdd`; 400 "Could not process object, invalid action 'addversion'" for a version on a
 * non-document; 400 "Could not process object, invalid action 'create'" under a non-container;
 * 400 "Could not process object, invalid action 'delete'" for the Enterprise Workspace; 404
 * "The REST API URL could not be found in the mappings registry" for unknown routes (SW's text,
 * listed under 400); 405 for a known path with another method; default `limit` 25; `page_total`
 * = ceil(total / limit), so 0 for an empty folder; range_min/range_max 0/0 on an empty page;
 * `body` JSON overriding separate create fields key by key; `where_name` a case-insensitive
 * substring match (PX and XE filter exactly afterwards);
 * `versions.element(n)` the n-th newest version (0 = current); size_formatted "N Items" and
 * ceil(KB); a folder asked for `versions.element(0)` has no `versions` key (`[]` without it).
 * Range headers are ignored (200 with the whole body): no source confirms Range support.
 *
 * Not covered: v1 node info and create, PUT (rename, move), categories, permissions, actions,
 * expand, search, large-file upload keys, purging the recycle bin, suppress_response_codes.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseFormData } from './confluence-server.js';
import { type GeneratedBucket, generatedObjects } from './generated.js';
import { LoopbackServer, readBody, sendJson } from './loopback.js';
import { OtdsIssuer } from './otds.js';

export interface File360ServerOptions {
  /** The CGI path every route lives under (default `/otcs/cs.exe`). */
  basePath?: string;
  /**
   * The server's time zone, as an older Content Server writes dates: on its own clocks and
   * without a zone (`2025-01-19T06:57:04`). Unset, dates are UTC with a Z, as current ones do.
   */
  timeZone?: string;
  /** How long a ticket lives after it is issued (default 30 minutes). */
  ticketLifetimeMs?: number;
  /** Largest listing `limit` honoured; larger ones are silently capped (default 500). */
  maxLimit?: number;
}

export interface File360Version {
  /** 1-based, counting up by one whatever the major/minor numbering. */
  number: number;
  fileName: string;
  mimeType: string;
  size: number;
  content: Buffer;
  description: string;
  created: Date;
  /** version_number_major and _minor: 0 and `number` unless major versions were added. */
  major: number;
  minor: number;
}

export interface File360Node {
  id: number;
  parentId: number;
  name: string;
  type: number;
  /** The current version's, for documents. */
  mimeType?: string;
  description: string;
  created: Date;
  modified: Date;
  /** Oldest first; empty for containers. */
  versions: File360Version[];
}

type StoredVersion = File360Version & { versionId: number };

interface StoredNode {
  id: number;
  parentId: number;
  name: string;
  type: number;
  description: string;
  created: Date;
  modified: Date;
  versions: StoredVersion[];
  hidden: boolean;
  /** Content Server's Hidden property: out of listings unless asked, readable by id. */
  hiddenFlag: boolean;
  denyAdd: boolean;
  deleted: boolean;
}

interface Ticket {
  user: string;
  expires: number;
}

export interface File360Request {
  method: string;
  /** Without basePath. */
  path: string;
  /** The query string as sent, without `?`. */
  query: string;
  /** The credential presented (the one that worked when both were sent). */
  auth: 'ticket' | 'bearer' | 'none';
  status: number;
}

/** One authenticated request. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** The path without basePath. */
  path: string;
  user: string;
}

type Handler = (call: Call, ...params: string[]) => Promise<void> | void;

export const ENTERPRISE_WORKSPACE = 2000;
const FOLDER = 0;
const DOCUMENT = 144;
const WORKSPACE = 141;
const USER_ID = 1000;
const TYPE_NAMES: Record<number, string> = {
  [FOLDER]: 'Folder',
  [DOCUMENT]: 'Document',
  [WORKSPACE]: 'Enterprise Workspace',
};
const DEFAULT_LIMIT = 25;
const NOT_ACCESSIBLE =
  'Sorry, the item you requested could not be accessed. Either it does not exist or you do not have permission to access it. If you were sent a link to this item, please contact the sender for assistance.';
const INVALID_PARAMETERS = 'One or more parameters are invalid';
const MIME_TYPES: Record<string, string> = {
  txt: 'text/plain',
  html: 'text/html',
  csv: 'text/csv',
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  mp3: 'audio/mpeg',
  wav: 'audio/wav',
};

class File360Error extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const badRequest = (message: string) => new File360Error(400, message);
const notAccessible = () => new File360Error(404, NOT_ACCESSIBLE);
const forbidden = () => new File360Error(403, 'You do not have permission to perform this action.');
const missing = (name: string) => badRequest(`Missing required parameter '${name}'`);

/** A file part's own type, else one guessed from its name (for octet-stream or none). */
function partType(part: { contentType?: string }, fileName: string): string {
  const declared = part.contentType?.split(';')[0]?.trim().toLowerCase();
  return declared && declared !== 'application/octet-stream' ? declared : guessMimeType(fileName);
}

/** Whole seconds, as CS stores and shows them. */
const toSecond = (date: Date) => new Date(Math.floor(date.getTime() / 1000) * 1000);
/** ISO 8601 with whole seconds and a Z: `2025-01-19T06:57:04Z`. */
const iso = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');
const extension = (name: string) => /\.([^.]+)$/.exec(name)?.[1]?.toLowerCase() ?? '';
const guessMimeType = (name: string) => MIME_TYPES[extension(name)] ?? 'application/octet-stream';
const isContainer = (type: number) => type !== DOCUMENT;
const lastOf = <T>(items: T[]) => items[items.length - 1] as T;
const sameName = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

function sizeFormatted(node: StoredNode, size: number): string {
  if (isContainer(node.type)) return `${size} ${size === 1 ? 'Item' : 'Items'}`;
  if (size < 1024 * 1024) return `${Math.ceil(size / 1024)} KB`;
  if (size < 1024 ** 3) return `${Math.ceil(size / 1024 ** 2)} MB`;
  return `${Math.ceil(size / 1024 ** 3)} GB`;
}

function contentDisposition(name: string): string {
  const ascii = name.replace(/[^ -~]|["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** A positive integer query parameter, or the default when absent. */
function positive(value: string | null, fallback: number): number {
  if (value === null) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw badRequest(INVALID_PARAMETERS);
  return Number(value);
}

/** What `fields` asks for: properties (all or some keys) and versions (array or one element). */
interface Fields {
  properties?: string[] | true;
  versions?: { keys?: string[]; element?: number };
}

function parseFields(values: string[]): Fields {
  if (!values.length) return { properties: true };
  const fields: Fields = {};
  for (const value of values) {
    const m = /^(\w+)(?:\{([^}]*)\})?(?:\.element\((\d+)\))?$/.exec(value.trim());
    if (!m) throw badRequest(INVALID_PARAMETERS);
    const keys = m[2]
      ?.split(',')
      .map((k) => k.trim())
      .filter(Boolean);
    if (m[1] === 'properties') fields.properties = keys ?? true;
    else if (m[1] === 'versions') {
      fields.versions = {
        ...(keys ? { keys } : {}),
        ...(m[3] !== undefined ? { element: Number(m[3]) } : {}),
      };
    }
    // Other sections (categories, permissions, …) are not kept here and are left out.
  }
  return fields;
}

function pick(object: Record<string, unknown>, keys: string[] | true | undefined) {
  if (keys === true || keys === undefined) return object;
  return Object.fromEntries(keys.filter((k) => k in object).map((k) => [k, object[k]]));
}

/** One page of `items`, with CS's paging block. */
function paginate<T>(items: T[], url: URL, maxLimit: number) {
  const limit = Math.min(positive(url.searchParams.get('limit'), DEFAULT_LIMIT), maxLimit);
  const page = positive(url.searchParams.get('page'), 1);
  const slice = items.slice((page - 1) * limit, page * limit);
  const first = (page - 1) * limit + 1;
  return {
    slice,
    paging: {
      limit,
      page,
      page_total: Math.ceil(items.length / limit),
      range_max: slice.length ? first + slice.length - 1 : 0,
      range_min: slice.length ? first : 0,
      total_count: items.length,
    },
  };
}

/** A form body, urlencoded or multipart: plain fields, and parts with their bytes. */
interface Form {
  field(name: string): string | undefined;
  file(name: string): { data: Buffer; filename?: string; contentType?: string } | undefined;
}

async function readForm(req: IncomingMessage): Promise<Form> {
  const body = await readBody(req);
  const type = req.headers['content-type'] ?? '';
  if (/^multipart\/form-data/i.test(type)) {
    let parts: ReturnType<typeof parseFormData>;
    try {
      parts = parseFormData(body, type);
    } catch (error) {
      throw badRequest((error as Error).message);
    }
    return {
      field: (name) =>
        parts.find((p) => p.name === name && p.filename === undefined)?.data.toString('utf8'),
      file: (name) => parts.find((p) => p.name === name),
    };
  }
  // CS refuses JSON bodies; anything but a form reads as a form without fields.
  const params = /^application\/x-www-form-urlencoded/i.test(type)
    ? new URLSearchParams(body.toString('utf8'))
    : new URLSearchParams();
  return { field: (name) => params.get(name) ?? undefined, file: () => undefined };
}

export class File360Server extends LoopbackServer {
  readonly basePath: string;
  /** Every request seen, oldest first. */
  readonly requests: File360Request[] = [];
  /** Successful POST /api/v1/auth so far. */
  authCount = 0;
  private readonly nodes = new Map<number, StoredNode>();
  private readonly users = new Map<string, string>();
  /** OTDS, which issues the bearer tokens the server takes (POST /otdsws/oauth2/token). */
  readonly otds = new OtdsIssuer();
  private readonly timeZone: string | undefined;
  private readonly tickets = new Map<string, Ticket>();
  private readonly ticketLifetimeMs: number;
  private readonly maxLimit: number;
  private nextId = 100000;
  /** Bumped when a node changes: sorted children and listings are kept until then. */
  private revision = 0;
  private sortedAt = -1;
  /** Each container's children by name (deleted and hidden ones too), as Content Server's index has them. */
  private readonly sortedChildren = new Map<number, StoredNode[]>();
  /** Listings of containers (filtered and sorted), by query, until a node changes. */
  private readonly browsed = new Map<string, StoredNode[]>();
  private browsedAt = -1;
  private nextVersionId = 500000;
  /** Authenticated requests left before every ticket issued so far expires. */
  private expiryCountdown: number | undefined;

  constructor(options: File360ServerOptions = {}) {
    super();
    this.basePath = (options.basePath ?? '/otcs/cs.exe').replace(/\/+$/, '');
    this.ticketLifetimeMs = options.ticketLifetimeMs ?? 30 * 60_000;
    this.maxLimit = options.maxLimit ?? 500;
    this.timeZone = options.timeZone;
    const now = toSecond(new Date());
    this.nodes.set(ENTERPRISE_WORKSPACE, {
      id: ENTERPRISE_WORKSPACE,
      parentId: -1,
      name: 'Enterprise Workspace',
      type: WORKSPACE,
      description: '',
      created: now,
      modified: now,
      versions: [],
      hidden: false,
      hiddenFlag: false,
      denyAdd: false,
      deleted: false,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Seeding and inspection

  /** Accepts this pair at POST /api/v1/auth. */
  addUser(username: string, password: string): void {
    this.users.set(username, password);
  }

  /** Accepts `Authorization: Bearer <token>` (an OTDS access token) for `lifetimeMs` (default an hour). */
  addToken(token: string, lifetimeMs?: number): void {
    this.otds.addToken(token, lifetimeMs);
  }

  addFolder(parentId: number, name: string, opts: { modified?: Date } = {}): number {
    return this.insert(parentId, name, FOLDER, '', opts.modified).id;
  }

  addDocument(
    parentId: number,
    name: string,
    content: Buffer | string,
    opts: { mimeType?: string; modified?: Date; description?: string } = {},
  ): number {
    const node = this.insert(parentId, name, DOCUMENT, opts.description ?? '', opts.modified);
    this.pushVersion(node, Buffer.from(content), { ...opts, fileName: name });
    return node.id;
  }

  /** Adds a version to a document; returns its number. */
  addVersion(
    id: number,
    content: Buffer | string,
    opts: { mimeType?: string; description?: string; modified?: Date; fileName?: string } = {},
  ): number {
    const node = this.stored(id);
    if (node.type !== DOCUMENT) throw new Error(`node ${id} is not a document`);
    return this.pushVersion(node, Buffer.from(content), opts).number;
  }

  /**
   * A folder (named `spec.name`, in the Enterprise Workspace) of `spec.keys` generated
   * documents sharing one body (see generated.ts), `0000.jsonl` and on, made without the
   * per-document name checks; returns the folder's id.
   */
  generate(spec: GeneratedBucket): number {
    const folder = this.addFolder(ENTERPRISE_WORKSPACE, spec.name);
    const { keys, body } = generatedObjects({ ...spec, prefix: '' });
    const time = toSecond(new Date());
    for (const name of keys) {
      const node = this.newNode(folder, name, DOCUMENT, '', time);
      this.pushVersion(node, body, { fileName: name, modified: time });
    }
    this.revision++;
    return folder;
  }

  rename(id: number, name: string): void {
    const node = this.stored(id);
    if (this.nameTaken(node.parentId, name, id)) throw new Error(`name ${name} is taken`);
    node.name = name;
    this.revision++;
  }

  /** A node, deleted ones included (see `deleted`). */
  node(id: number): File360Node | undefined {
    const node = this.nodes.get(id);
    return node && this.snapshot(node);
  }

  /** A container's children that are not deleted (hidden ones included), by name. */
  children(id: number): File360Node[] {
    return this.childrenOf(id, true).map((n) => this.snapshot(n));
  }

  /** The child with exactly this name, not deleted. */
  find(parentId: number, name: string): File360Node | undefined {
    const node = this.childrenOf(parentId, true).find((n) => n.name === name);
    return node && this.snapshot(node);
  }

  /** Whether the node is in the recycle bin. */
  deleted(id: number): boolean {
    return this.nodes.get(id)?.deleted ?? false;
  }

  /** The caller may not see the node: 404 on every route, left out of listings. */
  hide(id: number): void {
    this.stored(id).hidden = true;
    this.revision++;
  }

  /**
   * Sets Content Server's Hidden property: the node leaves listings (unless `show_hidden=true`
   * is asked), stays readable by id, and keeps its name taken.
   */
  setHidden(id: number, hidden = true): void {
    this.stored(id).hiddenFlag = hidden;
    this.revision++;
  }

  /** The caller may see the container but not add to it, add versions or delete below it: 403. */
  denyAdd(id: number): void {
    this.stored(id).denyAdd = true;
  }

  /** Every ticket issued so far is invalid from now on. */
  expireTickets(): void {
    this.tickets.clear();
  }

  /** After `n` more authenticated requests, every ticket issued by then expires. */
  expireTicketsAfter(n: number): void {
    if (n <= 0) this.expireTickets();
    else this.expiryCountdown = n;
  }

  // -------------------------------------------------------------------------------------------
  // The store

  private stored(id: number): StoredNode {
    const node = this.nodes.get(id);
    if (!node || node.deleted) throw new Error(`no node ${id}`);
    return node;
  }

  private snapshot(node: StoredNode): File360Node {
    const current = node.versions.length ? lastOf(node.versions) : undefined;
    return {
      id: node.id,
      parentId: node.parentId,
      name: node.name,
      type: node.type,
      ...(current ? { mimeType: current.mimeType } : {}),
      description: node.description,
      created: node.created,
      modified: node.modified,
      versions: node.versions.map(({ versionId: _, ...v }) => ({ ...v })),
    };
  }

  private childrenOf(id: number, withHidden = false): StoredNode[] {
    if (this.sortedAt !== this.revision) {
      this.sortedChildren.clear();
      this.sortedAt = this.revision;
    }
    let all = this.sortedChildren.get(id);
    if (!all) {
      all = [...this.nodes.values()]
        .filter((n) => n.parentId === id)
        .sort((a, b) => compareNames(a, b));
      this.sortedChildren.set(id, all);
    }
    return all.filter((n) => !n.deleted && (withHidden || !n.hidden));
  }

  private nameTaken(parentId: number, name: string, except?: number): boolean {
    return this.childrenOf(parentId, true).some((n) => n.id !== except && sameName(n.name, name));
  }

  private insert(
    parentId: number,
    name: string,
    type: number,
    description: string,
    modified = new Date(),
  ): StoredNode {
    const parent = this.stored(parentId);
    if (!isContainer(parent.type)) throw new Error(`node ${parentId} is not a container`);
    if (!name) throw new Error('a node needs a name');
    if (this.nameTaken(parentId, name)) throw new Error(`name ${name} is taken in ${parentId}`);
    const node = this.newNode(parentId, name, type, description, toSecond(modified));
    this.revision++;
    return node;
  }

  /** Stores a new node, with no checks. */
  private newNode(
    parentId: number,
    name: string,
    type: number,
    description: string,
    time: Date,
  ): StoredNode {
    const node: StoredNode = {
      id: this.nextId++,
      parentId,
      name,
      type,
      description,
      created: time,
      modified: time,
      versions: [],
      hidden: false,
      hiddenFlag: false,
      denyAdd: false,
      deleted: false,
    };
    this.nodes.set(node.id, node);
    return node;
  }

  private pushVersion(
    node: StoredNode,
    content: Buffer,
    opts: {
      mimeType?: string;
      description?: string;
      modified?: Date;
      fileName?: string;
      major?: boolean;
    },
  ): StoredVersion {
    const previous = node.versions.length ? lastOf(node.versions) : undefined;
    const fileName = opts.fileName || node.name;
    const created = toSecond(opts.modified ?? new Date());
    const version: StoredVersion = {
      number: (previous?.number ?? 0) + 1,
      fileName,
      mimeType: opts.mimeType || guessMimeType(fileName),
      size: content.length,
      content,
      description: opts.description ?? '',
      created,
      major: (previous?.major ?? 0) + (opts.major ? 1 : 0),
      minor: opts.major ? 0 : (previous?.minor ?? 0) + 1,
      versionId: this.nextVersionId++,
    };
    node.versions.push(version);
    node.modified = created;
    this.revision++;
    return version;
  }

  /** A node the caller can see, else 404. */
  private visible(id: string): StoredNode {
    if (!/^-?\d+$/.test(id)) throw badRequest("Invalid datatype specified for argument 'id'");
    const node = this.nodes.get(Number(id));
    if (!node || node.deleted || node.hidden) throw notAccessible();
    return node;
  }

  // -------------------------------------------------------------------------------------------
  // JSON shapes

  /** A date as the server writes it: UTC with a Z, or, for an older server, its own clocks without a zone. */
  private date(date: Date): string {
    if (!this.timeZone) return iso(date);
    const wall = new Intl.DateTimeFormat('sv-SE', {
      timeZone: this.timeZone,
      dateStyle: 'short',
      timeStyle: 'medium',
    }).format(date);
    return wall.replace(' ', 'T');
  }

  /** GET /api/v1/serverinfo: the server's own time (no zone), the Date header beside it. */
  private serverInfo(res: ServerResponse): void {
    const now = new Date();
    sendJson(res, 200, {
      mobile: { cs_viewer_support: false, offline_use: true },
      server: {
        advanced_versioning: true,
        character_encoding: 1,
        current_date: this.date(now).replace(/Z$/, ''),
        current_locale_suffix: '_en_US',
        domain_access_enabled: false,
        language_code: 'USA',
        url: `${this.url}${this.basePath}`,
        version: '23.3',
      },
      sessions: {
        enabled: true,
        expire_after_last_login: false,
        expire_after_last_request: true,
        session_timeout: this.ticketLifetimeMs,
      },
    });
  }

  private properties(node: StoredNode): Record<string, unknown> {
    const container = isContainer(node.type);
    const current = node.versions.length ? lastOf(node.versions) : undefined;
    const size = container ? this.childrenOf(node.id).length : (current?.size ?? 0);
    return {
      advanced_versioning: null,
      container,
      container_size: container ? size : 0,
      create_date: this.date(node.created),
      create_user_id: USER_ID,
      description: node.description,
      description_multilingual: { en: node.description },
      external_create_date: null,
      external_identity: '',
      external_identity_type: '',
      external_modify_date: null,
      external_source: '',
      favorite: false,
      hidden: node.hiddenFlag,
      id: node.id,
      mime_type: current?.mimeType ?? null,
      modify_date: this.date(node.modified),
      modify_user_id: USER_ID,
      name: node.name,
      name_multilingual: { en: node.name },
      owner_group_id: 1001,
      owner_user_id: USER_ID,
      parent_id: node.parentId,
      permissions_model: 'advanced',
      reserved: false,
      reserved_date: null,
      reserved_shared_collaboration: false,
      reserved_user_id: 0,
      size,
      size_formatted: sizeFormatted(node, size),
      status: null,
      type: node.type,
      type_name: TYPE_NAMES[node.type] ?? 'Unknown',
      versionable: node.type === DOCUMENT,
      versions_control_advanced: false,
      volume_id: -ENTERPRISE_WORKSPACE,
    };
  }

  private version(node: StoredNode, v: StoredVersion): Record<string, unknown> {
    return {
      create_date: this.date(v.created),
      description: v.description,
      external_create_date: null,
      external_identity: '',
      external_identity_type: '',
      external_modify_date: null,
      external_source: '',
      file_create_date: this.date(v.created),
      file_modify_date: this.date(v.created),
      file_name: v.fileName,
      file_size: v.size,
      file_type: extension(v.fileName),
      has_generation: false,
      id: node.id,
      locked: false,
      locked_date: null,
      locked_user_id: null,
      mime_type: v.mimeType,
      modify_date: this.date(v.created),
      name: v.fileName,
      owner_id: USER_ID,
      provider_id: v.versionId,
      version_id: v.versionId,
      version_number: v.number,
      version_number_major: v.major,
      version_number_minor: v.minor,
      version_number_name: v.major ? `${v.major}.${v.minor}` : String(v.number),
    };
  }

  /** `results.data` of one node as `fields` shapes it. */
  private data(node: StoredNode, fields: Fields): Record<string, unknown> {
    const data: Record<string, unknown> = {};
    if (fields.properties) data.properties = pick(this.properties(node), fields.properties);
    const wanted = fields.versions;
    if (wanted) {
      const all = node.versions.map((v) => pick(this.version(node, v), wanted.keys));
      if (wanted.element === undefined) data.versions = all;
      else {
        const one = all[all.length - 1 - wanted.element];
        if (one) data.versions = one;
      }
    }
    return data;
  }

  private links(call: Call) {
    return {
      data: {
        self: {
          body: '',
          content_type: '',
          href: `${call.path}${call.url.search}`,
          method: call.req.method ?? 'GET',
          name: '',
        },
      },
    };
  }

  private single(call: Call, data: Record<string, unknown>) {
    sendJson(call.res, 200, { links: this.links(call), results: { data } });
  }

  // -------------------------------------------------------------------------------------------
  // Routing

  private readonly routes: Array<[RegExp, Record<string, Handler>]> = [
    [/^\/api\/v1\/auth$/, { GET: (c) => this.whoAmI(c), DELETE: (c) => this.logout(c) }],
    [/^\/api\/v2\/nodes$/, { POST: (c) => this.create(c) }],
    [
      /^\/api\/v2\/nodes\/([^/]+)$/,
      { GET: (c, id) => this.getNode(c, id), DELETE: (c, id) => this.remove(c, id, 'v2') },
    ],
    [/^\/api\/v1\/nodes\/([^/]+)$/, { DELETE: (c, id) => this.remove(c, id, 'v1') }],
    [/^\/api\/v2\/nodes\/([^/]+)\/nodes$/, { GET: (c, id) => this.browse(c, id) }],
    [
      /^\/api\/(v1|v2)\/nodes\/([^/]+)\/content(?:\/([^/]+))?$/,
      { GET: (c, api, id, name) => this.download(c, api, id, undefined, name) },
    ],
    [
      /^\/api\/(v1|v2)\/nodes\/([^/]+)\/versions\/(\d+)\/content(?:\/([^/]+))?$/,
      { GET: (c, api, id, n, name) => this.download(c, api, id, n, name) },
    ],
    [
      /^\/api\/v2\/nodes\/([^/]+)\/versions$/,
      { GET: (c, id) => this.listVersions(c, id), POST: (c, id) => this.addVersionRoute(c, id) },
    ],
    [
      /^\/api\/(v1|v2)\/nodes\/([^/]+)\/versions\/(\d+|latest)$/,
      { GET: (c, api, id, n) => this.oneVersion(c, api, id, n) },
    ],
  ];

  protected fail(res: ServerResponse, error: unknown): void {
    const status = error instanceof File360Error ? error.status : 500;
    sendJson(res, status, { error: (error as Error).message });
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const method = req.method ?? 'GET';
    const inBase = url.pathname.startsWith(`${this.basePath}/`);
    const path = inBase ? url.pathname.slice(this.basePath.length) : url.pathname;
    const record: File360Request = {
      method,
      path,
      query: url.search.slice(1),
      auth: this.ticketOf(req) !== undefined ? 'ticket' : this.bearerOf(req) ? 'bearer' : 'none',
      status: 0,
    };
    this.requests.push(record);
    let authenticated = false;
    try {
      if (url.pathname === '/otdsws/oauth2/token' && method === 'POST') {
        return await this.otds.token(req, res);
      }
      if (!inBase) throw new File360Error(404, 'Not Found');
      if (path === '/api/v1/auth' && method === 'POST') return await this.login(req, res);
      if (path === '/api/v1/serverinfo' && method === 'GET') {
        this.authenticate(req, res, record);
        authenticated = true;
        return this.serverInfo(res);
      }
      const route = this.routes
        .map(([pattern, handlers]) => [pattern.exec(path), handlers] as const)
        .find(([m]) => m);
      if (!route) {
        throw new File360Error(404, 'The REST API URL could not be found in the mappings registry');
      }
      const [match, handlers] = route;
      const handler = handlers[method];
      if (!handler) throw new File360Error(405, 'Method Not Allowed');
      const user = this.authenticate(req, res, record);
      authenticated = true;
      const params = (match as RegExpExecArray).slice(1).map((p) => p ?? '');
      await handler.call(this, { req, res, url, path, user }, ...params);
    } catch (error) {
      if (res.headersSent) res.destroy();
      else this.fail(res, error);
    } finally {
      record.status = res.statusCode;
      if (authenticated && this.expiryCountdown !== undefined && --this.expiryCountdown <= 0) {
        this.expiryCountdown = undefined;
        this.expireTickets();
      }
    }
  }

  private ticketOf(req: IncomingMessage): string | undefined {
    const value = req.headers.otcsticket;
    return Array.isArray(value) ? value[0] : value;
  }

  private bearerOf(req: IncomingMessage): string | undefined {
    return /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  }

  /** The caller's name; a ticket caller gets a fresh ticket on the answer. */
  private authenticate(req: IncomingMessage, res: ServerResponse, record: File360Request): string {
    const sent = this.ticketOf(req);
    const ticket = sent === undefined ? undefined : this.tickets.get(sent);
    if (sent !== undefined && ticket && ticket.expires <= Date.now()) this.tickets.delete(sent);
    else if (ticket) {
      this.issueTicket(res, ticket.user);
      return ticket.user;
    }
    const bearer = this.bearerOf(req);
    if (bearer && this.otds.subject(bearer)) {
      record.auth = 'bearer';
      return 'bearer';
    }
    throw new File360Error(401, 'Authentication required');
  }

  private issueTicket(res: ServerResponse | undefined, user: string): string {
    const ticket = randomBytes(48).toString('base64');
    const expires = Date.now() + this.ticketLifetimeMs;
    this.tickets.set(ticket, { user, expires });
    res?.setHeader('OTCSTicket', ticket);
    res?.setHeader('OTCSTicketExpires', iso(new Date(expires)));
    return ticket;
  }

  // -------------------------------------------------------------------------------------------
  // Auth

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const username = form.field('username');
    const password = form.field('password');
    if (!username) throw badRequest('Argument username is required');
    if (!password) throw badRequest('Argument password is required');
    if (this.users.get(username) !== password) {
      throw new File360Error(401, 'Invalid username/password specified.');
    }
    this.authCount++;
    sendJson(res, 200, { ticket: this.issueTicket(undefined, username) });
  }

  private whoAmI(call: Call): void {
    // A bearer caller gets its ticket here (PX authenticate); a ticket caller already has one.
    if (!call.res.hasHeader('OTCSTicket')) this.issueTicket(call.res, call.user);
    sendJson(call.res, 200, { data: { id: USER_ID, name: call.user } });
  }

  private logout(call: Call): void {
    const sent = this.ticketOf(call.req);
    if (sent !== undefined) this.tickets.delete(sent);
    call.res.removeHeader('OTCSTicket');
    call.res.removeHeader('OTCSTicketExpires');
    sendJson(call.res, 200, {});
  }

  // -------------------------------------------------------------------------------------------
  // Nodes

  private getNode(call: Call, id: string): void {
    const node = this.visible(id);
    this.single(call, this.data(node, parseFields(call.url.searchParams.getAll('fields'))));
  }

  private browse(call: Call, id: string): void {
    const node = this.visible(id);
    if (!isContainer(node.type)) {
      throw new File360Error(500, "Could not process object, invalid action 'browse'");
    }
    const query = call.url.searchParams;
    const fields = parseFields(query.getAll('fields'));
    const types = query
      .getAll('where_type')
      .flatMap((t) => t.split(','))
      .map((t) => t.trim());
    if (types.some((t) => !/^-?\d+$/.test(t))) throw badRequest(INVALID_PARAMETERS);
    const name = query.get('where_name');
    const sort = query.get('sort') ?? 'asc_name';
    const m = /^(?:(asc|desc)_)?(name|modify_date|create_date|size|type|id)$/.exec(sort);
    if (!m) throw badRequest(INVALID_PARAMETERS);
    const key = m[2] as string;
    const sortValue = `${m[1] ?? 'asc'}_${key}`;
    const showHidden = /^(true|1)$/i.test(query.get('show_hidden') ?? '');
    // The pages of a large folder come from one listing, kept until a node changes.
    if (this.browsedAt !== this.revision) {
      this.browsed.clear();
      this.browsedAt = this.revision;
    }
    const listing = JSON.stringify([node.id, types, name, sortValue, showHidden]);
    let items = this.browsed.get(listing);
    if (!items) {
      items = this.childrenOf(node.id);
      if (!showHidden) items = items.filter((n) => !n.hiddenFlag);
      if (types.length) {
        const wanted = types.map(Number);
        items = items.filter((n) =>
          wanted.some(
            (t) =>
              t === n.type ||
              t === -2 ||
              (t === -1 && isContainer(n.type)) ||
              (t === -3 && !isContainer(n.type)),
          ),
        );
      }
      if (name) items = items.filter((n) => n.name.toLowerCase().includes(name.toLowerCase()));
      const value = {
        name: () => 0,
        modify_date: (n: StoredNode) => n.modified.getTime(),
        create_date: (n: StoredNode) => n.created.getTime(),
        size: (n: StoredNode) => this.properties(n).size as number,
        type: (n: StoredNode) => n.type,
        id: (n: StoredNode) => n.id,
      }[key] as (n: StoredNode) => number;
      items.sort((a, b) => value(a) - value(b) || compareNames(a, b));
      if (m[1] === 'desc') items.reverse();
      this.browsed.set(listing, items);
    }

    const { slice, paging } = paginate(items, call.url, this.maxLimit);
    const filter = [
      ...types.map((t) => ({ key: 'where_type', value: Number(t) })),
      ...(name ? [{ key: 'where_name', value: name }] : []),
    ];
    sendJson(call.res, 200, {
      collection: {
        paging,
        sorting: { sort: [{ key: 'sort', value: sortValue }] },
        ...(filter.length ? { filtering: { filter } } : {}),
      },
      links: this.links(call),
      results: slice.map((n) => ({ data: this.data(n, fields) })),
    });
  }

  private async create(call: Call): Promise<void> {
    const form = await readForm(call.req);
    // Separate fields, overridden key by key by the `body` JSON when both are sent.
    const spec: Record<string, unknown> = {};
    for (const key of ['type', 'parent_id', 'name', 'description']) {
      const value = form.field(key);
      if (value !== undefined) spec[key] = value;
    }
    const body = form.field('body');
    if (body !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        throw badRequest('Body parameter is invalid.');
      }
      if (!json || typeof json !== 'object') throw badRequest('Body parameter is invalid.');
      Object.assign(spec, json);
    }
    const number = (key: string) => {
      const value = spec[key];
      if (value === undefined || value === null || value === '') throw missing(key);
      if (!/^-?\d+$/.test(String(value))) throw badRequest(INVALID_PARAMETERS);
      return Number(value);
    };
    const type = number('type');
    const parentId = number('parent_id');
    const name = spec.name === undefined || spec.name === null ? '' : String(spec.name);
    if (!name) throw missing('name');
    if (type !== FOLDER && type !== DOCUMENT) throw badRequest(`Subtype ${type} not registered`);
    const file = form.file('file');
    if (type === DOCUMENT && !file) throw missing('file');
    const parent = this.visible(String(parentId));
    if (!isContainer(parent.type)) {
      throw badRequest("Could not process object, invalid action 'create'");
    }
    if (parent.denyAdd) throw forbidden();
    if (this.nameTaken(parent.id, name)) {
      throw new File360Error(500, `An item with the name '${name}' already exists.`);
    }
    const description = spec.description === undefined ? '' : String(spec.description ?? '');
    const node = this.insert(parent.id, name, type, description);
    const fields: Fields = { properties: true };
    if (file && type === DOCUMENT) {
      const fileName = file.filename || name;
      this.pushVersion(node, file.data, { fileName, mimeType: partType(file, fileName) });
      fields.versions = { element: 0 };
    }
    this.single(call, this.data(node, fields));
  }

  private remove(call: Call, id: string, api: string): void {
    const node = this.visible(id);
    if (node.id === ENTERPRISE_WORKSPACE) {
      throw badRequest("Could not process object, invalid action 'delete'");
    }
    if (this.nodes.get(node.parentId)?.denyAdd) throw forbidden();
    this.revision++;
    const trash = (n: StoredNode) => {
      n.deleted = true;
      for (const child of this.childrenOf(n.id, true)) trash(child);
    };
    trash(node);
    if (api === 'v1') sendJson(call.res, 200, {});
    else sendJson(call.res, 200, { links: this.links(call), results: {} });
  }

  // -------------------------------------------------------------------------------------------
  // Content and versions

  /** A document the caller can see, else 404, or 400 for another type (inference). */
  private document(id: string, action: string): StoredNode {
    const node = this.visible(id);
    if (node.type !== DOCUMENT || !node.versions.length) {
      throw badRequest(`Could not process object, invalid action '${action}'`);
    }
    return node;
  }

  private download(call: Call, api: string, id: string, number?: string, name?: string): void {
    const node = this.document(id, 'download');
    const version =
      number === undefined
        ? lastOf(node.versions)
        : node.versions.find((v) => v.number === Number(number));
    if (!version) throw new File360Error(500, 'The version is not found');
    const download = api === 'v1' && call.url.searchParams.get('action') === 'download';
    call.res.writeHead(200, {
      'Content-Type': download ? 'application/octet-stream' : version.mimeType,
      'Content-Length': version.size,
      'Content-Disposition': contentDisposition(name ? decodeURIComponent(name) : version.fileName),
    });
    call.res.end(version.content);
  }

  private async addVersionRoute(call: Call, id: string): Promise<void> {
    const form = await readForm(call.req);
    const node = this.document(id, 'addversion');
    if (this.nodes.get(node.parentId)?.denyAdd) throw forbidden();
    const file = form.file('file');
    if (!file) throw missing('File');
    const major = form.field('add_major_version');
    if (major !== undefined && !/^(true|false|1|0)$/i.test(major)) {
      throw badRequest('Could not set feature Versioning, value must be a Boolean');
    }
    const fileName = file.filename || node.name;
    const version = this.pushVersion(node, file.data, {
      fileName,
      mimeType: partType(file, fileName),
      description: form.field('description') ?? '',
      major: /^(true|1)$/i.test(major ?? ''),
    });
    this.single(call, {
      properties: this.properties(node),
      versions: this.version(node, version),
    });
  }

  private listVersions(call: Call, id: string): void {
    const node = this.document(id, 'versions');
    const order = call.url.searchParams.get('order') ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw badRequest(INVALID_PARAMETERS);
    const keys = parseFields(call.url.searchParams.getAll('fields')).versions?.keys;
    const versions = order === 'desc' ? [...node.versions].reverse() : node.versions;
    const { slice, paging } = paginate(versions, call.url, this.maxLimit);
    sendJson(call.res, 200, {
      collection: { paging },
      links: this.links(call),
      results: slice.map((v) => ({ data: { versions: pick(this.version(node, v), keys) } })),
    });
  }

  private oneVersion(call: Call, api: string, id: string, number: string): void {
    const node = this.document(id, 'versions');
    const version =
      number === 'latest'
        ? lastOf(node.versions)
        : node.versions.find((v) => v.number === Number(number));
    if (!version) throw new File360Error(500, 'The version is not found');
    if (api === 'v1') sendJson(call.res, 200, { data: this.version(node, version) });
    else this.single(call, { versions: this.version(node, version) });
  }
}

/** Names case-insensitively, then exactly, then by id. */
function compareNames(a: StoredNode, b: StoredNode): number {
  const x = a.name.toLowerCase();
  const y = b.name.toLowerCase();
  if (x !== y) return x < y ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.id - b.id;
}

/** Starts a server on a random loopback port (or `port`); `base` is url + basePath. */
export async function startFile360Server(
  options: File360ServerOptions = {},
  port = 0,
): Promise<{ server: File360Server; url: string; base: string }> {
  const server = new File360Server(options);
  const url = await server.listen(port);
  return { server, url, base: `${url}${server.basePath}` };
}
