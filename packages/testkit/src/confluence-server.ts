/**
 * A Confluence server for tests: the parts of the Confluence REST APIs that a connector reading
 * and writing pages and attachments uses, in memory, on 127.0.0.1. There is no Confluence
 * emulator, so this one is written from Atlassian's public references and answers with the real
 * APIs' shapes (cursor links, offset pages, `expand`, error bodies):
 *   Cloud REST v2  https://developer.atlassian.com/cloud/confluence/rest/v2/
 *   Cloud REST v1  https://developer.atlassian.com/cloud/confluence/rest/v1/
 *   Data Center    https://docs.atlassian.com/ConfluenceServer/rest/
 *   CQL            https://developer.atlassian.com/cloud/confluence/advanced-searching-using-cql/
 *
 * One store, three mounts. The Cloud site lives under `/wiki` (v2 at /wiki/api/v2, v1 at
 * /wiki/rest/api); the Cloud API gateway (api.atlassian.com) under
 * `/ex/confluence/{cloudId}/wiki`; Data Center under the context path `/confluence` (v1 at
 * /confluence/rest/api, files at /confluence/download/attachments).
 *
 * Credentials, by mount (anything else is 401 with a WWW-Authenticate challenge and the API's
 * 401 body, never echoing the credential):
 *   site (/wiki)          Basic email:token with a classic API token (`addUser`)
 *   gateway               Basic email:token with a scoped API token (`addUser(…, {scoped})`),
 *                         or Bearer with an OAuth 2.0 (3LO) access token (`grantOAuth`)
 *   Data Center           Basic (`addUser`), or Bearer with a personal access token (`addToken`)
 *
 * Cloud as it really answers, each behaviour with its source:
 * - The old file path /wiki/download/attachments/{pageId}/{file} refuses API callers (tokens
 *   and OAuth alike) with 401 and `WWW-Authenticate: OAuth realm="<site>/wiki"`; the working
 *   route is GET /wiki/rest/api/content/{pageId}/child/attachment/{attId}/download, which
 *   answers 302 to a media host on another origin serving the bytes for a token in its URL.
 *   Data Center keeps the old path and has no REST download route (404).
 *   Atlassian changelog CHANGE-3007; atlassian-python-api #1640 (and commit e7ce9a4);
 *   pchuri/confluence-cli #198/#199 (302 to api.media.atlassian.com); epam/dm.ai #252 (the
 *   401 and its challenge); mcp-atlassian #1368; CONFSERVER-94115 (Data Center).
 * - OAuth (3LO) tokens and scoped API tokens work only through the gateway
 *   (https://api.atlassian.com/ex/confluence/{cloudId}); the site refuses them, and the
 *   gateway refuses classic tokens (an inference: no source shows a classic token there).
 *   The cloud id comes from the site's public GET /_edge/tenant_info ({"cloudId"}) or from
 *   GET /oauth/token/accessible-resources. Developer docs "OAuth 2.0 (3LO) apps" and "Scoped
 *   API tokens"; atlassian-python-api docs/confluence.rst; confluence.js
 *   src/core/oauth/helpers.ts; Atlassian KB "Retrieve my Atlassian site's cloud ID".
 * - Through the gateway, v2 `_links.next` (and the Link header) are `/wiki/api/v2/…?cursor=`
 *   without the /ex/confluence/{cloudId} prefix, and `_links.base` is the site's
 *   https://<site>.atlassian.net/wiki, which browsers open. atlassian-python-api #1655 and
 *   #1546, tests/test_confluence_cursor_pagination.py.
 * - POST /oauth/token (auth.atlassian.com) takes JSON {grant_type: refresh_token, client_id,
 *   client_secret, refresh_token} and answers {access_token, refresh_token, expires_in, scope,
 *   token_type}; refresh tokens rotate (a spent one is 403 {"error":"unauthorized_client"}).
 *   Access tokens expire after `expires_in` (3600) seconds, then 401. Developer docs "OAuth
 *   2.0 (3LO) apps", rotating refresh tokens; confluence.js src/core/oauth/helpers.ts.
 * - CQL reads dates in the searching user's time zone (`timeZone`, default
 *   America/Los_Angeles, west of UTC), and GET /wiki/rest/api/user/current tells it as
 *   `timeZone` (Data Center's user has no such field). CQL field reference (created,
 *   lastmodified); confluence.js src/v1/models/user.ts.
 * - `order by` takes created, lastmodified and title, the fields the CQL keyword reference
 *   orders by in its examples; `order by id` is refused here (unverified on Cloud).
 * - 429, with `Retry-After` (seconds) and `X-RateLimit-Reset` (yyyy-MM-ddTHH:mmZ), or with
 *   neither; a request sent again before Retry-After has passed is refused again for the rest
 *   of it. Developer docs "Rate limiting" (Confluence Cloud), JRACLOUD-69262. The body is the
 *   route's error body with "Rate limit exceeded" (an inference: no source shows it).
 * - v2 page lists (GET /pages, /spaces/{id}/pages) hold current and archived pages unless
 *   `status` asks otherwise (the API reference's default); archived pages stay readable by
 *   id, leave CQL search, give up their title, and refuse edits with 400 (the last three are
 *   inferences). confluence.js src/v2/parameters/getPages.ts.
 * - Folders: GET /pages/{id}/children lists pages only, so a folder below a page (and what it
 *   holds) is left out; GET /pages/{id}/direct-children and /folders/{id}/direct-children list
 *   pages and folders with their `type`; GET /folders/{id}. v2 reference (children group);
 *   confluence.js src/v2/api/children.ts.
 * - A multipart `comment` part without `charset=utf-8` is read as ISO-8859-1. The v1
 *   attachment reference's note on RFC 7578 (as quoted in confluence.js
 *   src/v1/api/contentAttachments.ts).
 *
 * Covered, Cloud v2 (cursor pages: `limit` 1..250, default 25, anything else 400; opaque
 * `cursor`, a bad one 400; more results give `_links.next`, an origin-relative URL keeping the
 * request's parameters, and a `Link: <next>; rel="next", <base>; rel="base"` header; every list
 * has `_links.base`):
 * - GET    /wiki/api/v2/spaces                  keys=, ids=, limit, cursor
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-space/#api-spaces-get
 * - GET    /wiki/api/v2/spaces/{id}/pages       body-format, title, status, limit, cursor; by id
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-spaces-id-pages-get
 * - GET    /wiki/api/v2/pages                   id= (up to 250), space-id=, title, status,
 *          body-format, sort (id only), limit, cursor; by id
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-pages-get
 * - GET    /wiki/api/v2/pages/{id}              body-format, version (a historic version)
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-pages-id-get
 * - POST   /wiki/api/v2/pages                   spaceId, status, title, parentId, body (storage);
 *          root-level=true; without parentId the page goes under the space homepage, as on Cloud
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-pages-post
 * - PUT    /wiki/api/v2/pages/{id}              id, status, title, body, version.number (current
 *          + 1, else 409), version.message, parentId (a move within the space)
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-page/#api-pages-id-put
 * - GET    /wiki/api/v2/pages/{id}/versions     newest first
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-version/#api-pages-id-versions-get
 * - GET    /wiki/api/v2/pages/{id}/children     by position (creation order)
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-children/#api-pages-id-children-get
 * - GET    /wiki/api/v2/pages/{id}/direct-children, /wiki/api/v2/folders/{id}/direct-children,
 *          /wiki/api/v2/folders/{id}   (see Folders above)
 * - GET    /wiki/api/v2/pages/{id}/labels       prefix global
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-label/#api-pages-id-labels-get
 * - GET    /wiki/api/v2/pages/{id}/attachments  filename=, mediaType=
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-attachment/#api-pages-id-attachments-get
 * - GET    /wiki/api/v2/attachments/{id}        one attachment
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-attachment/#api-attachments-id-get
 * - DELETE /wiki/api/v2/attachments/{id}        204; gone from listings and downloads
 *          https://developer.atlassian.com/cloud/confluence/rest/v2/api-group-attachment/#api-attachments-id-delete
 *
 * Covered, v1 (at /wiki/rest/api and /confluence/rest/api; offset pages: `start` default 0,
 * `limit` default 25 and silently capped at `v1LimitCap` (100), the cap shown in the answer's
 * `limit`; bodies `{results,start,limit,size,_links:{base,context,self,next?}}` with `next`
 * relative to base; `expand` takes body.storage and ancestors; version and space are always
 * present, as if expanded):
 * - GET    …/rest/api/content/search            cql (grammar below), start, limit, expand
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content/#api-wiki-rest-api-content-search-get
 * - GET    …/rest/api/content                   spaceKey, title, type, start, limit, expand
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content/#api-wiki-rest-api-content-get
 * - GET    …/rest/api/content/{id}              expand, version (a historic version)
 * - POST   …/rest/api/content                   type page, title, space.key, ancestors, body
 * - PUT    …/rest/api/content/{id}              title, version.number (current + 1, else 409),
 *          version.message, body (kept when left out), ancestors (a move)
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content/#api-wiki-rest-api-content-id-put
 * - GET    …/rest/api/content/{id}/child/page   start, limit, expand; by position
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content---children-and-descendants/
 * - GET    …/rest/api/content/{id}/child/attachment   filename, mediaType, start, limit
 * - POST   …/rest/api/content/{id}/child/attachment   multipart/form-data `file` parts (one or
 *          more), `comment` (one per file, in order), `minorEdit`; a file name in use is 400
 * - PUT    …/rest/api/content/{id}/child/attachment   the same, adding a version to a file name
 *          in use. Both need `X-Atlassian-Token: no-check` (or nocheck), else 403
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content---attachments/
 * - GET    …/rest/api/content/{pageId}/child/attachment/{attId}/download   (see above)
 * - GET    …/rest/api/user/current              the caller (Cloud: with `timeZone`)
 * - GET    /_edge/tenant_info, POST /oauth/token, GET /oauth/token/accessible-resources
 *          (see above; on Atlassian these are the site, auth.atlassian.com and api.atlassian.com)
 * - GET    …/rest/api/space/{key}, …/rest/api/space?spaceKey=   a space (id, key, name, homepage)
 *          https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-space/
 * - GET    /confluence/download/attachments/{pageId}/{filename}?version=N: the bytes (latest
 *          version without `version`), Content-Type, Content-Length, Content-Disposition; on
 *          Cloud's mounts 401 (see above)
 *
 * The CQL subset, keywords and field names in any case:
 *   query   := expr? ('order' 'by' order (',' order)*)?        (an empty expr is 400)
 *   order   := ('title' | 'created' | 'lastmodified') ('asc' | 'desc')?
 *   expr    := and ('or' and)*
 *   and     := unary (('and' | 'and' 'not' | 'not') unary)*     (infix `not` means "and not")
 *   unary   := 'not' unary | '(' expr ')' | clause
 *   clause  := FIELD OP value | FIELD ('in' | 'not' 'in') '(' value (',' value)* ')'
 *   value   := "…" | '…' (backslash escapes) | a bare word or number
 * Fields and operators:
 *   type (= != in, not in: page matches; attachment, blogpost, comment match nothing),
 *   space / space.key, id / content, ancestor (any depth), parent, label (= != in, not in),
 *   title (= != case-insensitive equality; ~ !~ case-insensitive substring, `*` ignored),
 *   text (~ !~: title or tag-stripped body contains, case-insensitive),
 *   created, lastmodified (= != > >= < <= against "yyyy-MM-dd", "yyyy/MM/dd",
 *   "yyyy-MM-dd HH:mm" or "yyyy/MM/dd HH:mm", read in the user's time zone and compared at
 *   minute resolution).
 * Anything else (unknown fields, operators a field lacks, functions such as now()) is 400
 * "Could not parse cql : <cql>". Results are current pages the caller can see, by id unless
 * ordered (and by id among equals).
 *
 * Errors: v2 `{"errors":[{"status","code","title","detail":null}]}`; v1 `{"statusCode","data":
 * {"authorized","valid","errors":[],"successful":false},"message","reason"}`. `restrict(id)`
 * hides a page as Confluence hides pages the caller may not see: 404 to reads (and gone from
 * lists and search), 403 to writes.
 *
 * Not covered: OAuth scopes (every token may call every route), whiteboards, databases and
 * embeds, folder creation through the API, blog posts, comments, drafts, trash and purge of
 * pages, page deletion, other body
 * formats (atlas_doc_format and view answer an empty body), content properties, restrictions
 * as a resource, users and groups, space creation through the API, webhooks, the v2
 * attachment upload (v2 has none; v1 is used, as on Cloud), sort orders other than id on v2.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import mime from 'mime-types';
import { type GeneratedBucket, generatedBody } from './generated.js';
import { LoopbackServer, readBody, sendJson } from './loopback.js';

export interface ConfluenceServerOptions {
  /** Largest v1 `limit` honoured; larger ones are silently lowered to it (default 100). */
  v1LimitCap?: number;
  /** The account's time zone, in which CQL reads dates (default America/Los_Angeles, west of UTC). */
  timeZone?: string;
  /** The site's cloud id, as `_edge/tenant_info` tells it (default a random UUID). */
  cloudId?: string;
}

/** A page (or a Cloud folder) as the seeding and inspection methods see it. */
export interface ConfluencePage {
  id: string;
  /** `folder` for a Cloud folder: a titled node of the tree without a body or versions of its own. */
  type: 'page' | 'folder';
  /** `archived` pages stay readable by id but leave searches and current lists. */
  status: 'current' | 'archived';
  spaceId: string;
  spaceKey: string;
  title: string;
  /** Storage-format XHTML. */
  body: string;
  parentId: string | null;
  labels: string[];
  createdAt: string;
  /** When the current version was made. */
  modifiedAt: string;
  /** The current version number. */
  version: number;
  /** Every version, oldest first. */
  versions: Array<{
    number: number;
    title: string;
    body: string;
    message: string;
    createdAt: string;
  }>;
  restricted: boolean;
}

/** An attachment's latest version, with its bytes. */
export interface ConfluenceAttachment {
  id: string;
  pageId: string;
  filename: string;
  mediaType: string;
  comment: string;
  version: number;
  bytes: Buffer;
  createdAt: string;
}

export interface ConfluenceSpace {
  id: string;
  key: string;
  name: string;
  homepageId: string | null;
}

interface Account {
  accountId: string;
  displayName: string;
  username: string;
}

interface StoredSpace extends ConfluenceSpace {
  createdAt: string;
}

interface PageVersion {
  number: number;
  title: string;
  body: string;
  message: string;
  minorEdit: boolean;
  authorId: string;
  createdAt: string;
}

interface StoredPage {
  id: string;
  type: 'page' | 'folder';
  status: 'current' | 'archived';
  spaceId: string;
  parentId: string | null;
  position: number;
  authorId: string;
  createdAt: string;
  versions: PageVersion[];
  labels: string[];
  restricted: boolean;
}

interface AttachmentVersion {
  number: number;
  bytes: Buffer;
  mediaType: string;
  comment: string;
  minorEdit: boolean;
  authorId: string;
  createdAt: string;
}

interface StoredAttachment {
  id: string;
  pageId: string;
  filename: string;
  fileId: string;
  status: 'current' | 'trashed';
  createdAt: string;
  versions: AttachmentVersion[];
}

type Api = 'v1' | 'v2';

/** How a caller proved who it is; each mount takes only some kinds. */
type Credential = 'api-token' | 'scoped-token' | 'pat' | 'oauth';

/** One request, with where it came in. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  api: Api;
  /** `/wiki` (Cloud, on the site or through the gateway) or `/confluence` (Data Center). */
  context: string;
  /** `/ex/confluence/{cloudId}` through the API gateway, else empty. */
  prefix: string;
  cloud: boolean;
  account: Account;
}

const V2_MAX_LIMIT = 250;
/** What v2 page lists hold when no `status` is asked for (the API's documented default). */
const V2_STATUSES = ['current', 'archived'];
const DEFAULT_LIMIT = 25;
const MAX_IDS = 250;
const SEED_ACCOUNT: Account = {
  accountId: '557058:00000000-0000-4000-8000-000000000000',
  displayName: 'Sluice Seeder',
  username: 'seeder',
};

const REASONS: Record<number, [code: string, reason: string]> = {
  400: ['BAD_REQUEST', 'Bad Request'],
  401: ['UNAUTHORIZED', 'Unauthorized'],
  403: ['FORBIDDEN', 'Forbidden'],
  404: ['NOT_FOUND', 'Not Found'],
  405: ['METHOD_NOT_ALLOWED', 'Method Not Allowed'],
  409: ['CONFLICT', 'Conflict'],
  429: ['TOO_MANY_REQUESTS', 'Too Many Requests'],
  413: ['PAYLOAD_TOO_LARGE', 'Payload Too Large'],
  415: ['UNSUPPORTED_MEDIA_TYPE', 'Unsupported Media Type'],
  500: ['INTERNAL_SERVER_ERROR', 'Internal Server Error'],
};

/** An error answer; rendered as a v1 or v2 body by the route it happened on. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The v2 `code`, when not the status's own. */
    readonly code?: string,
    /** Headers the answer carries (Retry-After, a challenge). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const asApiError = (error: unknown) =>
  error instanceof ApiError ? error : new ApiError(500, (error as Error).message);
const badRequest = (message: string) => new ApiError(400, message);
const invalidParameter = (message: string) =>
  new ApiError(400, message, 'INVALID_REQUEST_PARAMETER');
const notFound = (message = 'Not Found') => new ApiError(404, message);
const cqlError = (cql: string) => badRequest(`Could not parse cql : ${cql}`);

/** ISO 8601 with milliseconds and Z. */
const iso = (time: Date | number) => new Date(time).toISOString();
const lastOf = <T>(items: T[]) => items[items.length - 1] as T;
const byNumber = (a: string, b: string) => Number(a) - Number(b);
const plusEncoded = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
const stripTags = (xml: string) => xml.replace(/<[^>]*>/g, ' ');

/** Confluence's tiny link: the id's little-endian bytes in base64, trimmed. */
function tinyLink(id: string): string {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(id));
  let end = 8;
  while (end > 1 && bytes[end - 1] === 0) end--;
  const code = bytes
    .subarray(0, end)
    .toString('base64')
    .replace(/=+$/, '')
    .replace(/\//g, '-')
    .replace(/\+/g, '_');
  return `/x/${code.replace(/A+$/, '') || 'A'}`;
}

function mediaTypeDescription(type: string): string {
  if (type === 'application/pdf') return 'PDF Document';
  if (type.startsWith('image/')) return 'Image';
  if (type.startsWith('video/')) return 'Video';
  if (type.startsWith('audio/')) return 'Audio';
  if (type === 'application/json') return 'JSON File';
  if (type.startsWith('text/')) return 'Text File';
  if (type.includes('zip')) return 'Zip Archive';
  return 'File';
}

/** The part's own type, else one guessed from the file name (as Confluence does for octet-stream). */
function attachmentType(filename: string, declared: string | undefined): string {
  const type = (declared ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type && type !== 'application/octet-stream') return type;
  return mime.lookup(filename) || 'application/octet-stream';
}

// ---------------------------------------------------------------------------------------------
// multipart/form-data

export interface FormPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer;
}

/** Splits a multipart/form-data body (RFC 7578) into its parts; binary-safe. */
export function parseFormData(body: Buffer, contentType: string): FormPart[] {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const mark = boundary?.[1] ?? boundary?.[2];
  if (!mark) throw badRequest('The multipart request has no boundary.');
  const delimiter = Buffer.from(`--${mark}`);
  const parts: FormPart[] = [];
  let at = body.indexOf(delimiter);
  if (at < 0) throw badRequest('The multipart request has no parts.');
  for (;;) {
    let start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString('latin1') === '--') break;
    // The rest of the delimiter line (transport padding, then CRLF).
    const lineEnd = body.indexOf('\r\n', start);
    if (lineEnd < 0) throw badRequest('The multipart request is truncated.');
    start = lineEnd + 2;
    const next = body.indexOf(Buffer.from(`\r\n--${mark}`), start);
    if (next < 0) throw badRequest('The multipart request is truncated.');
    const part = body.subarray(start, next);
    const headerEnd = part.indexOf('\r\n\r\n');
    const rawHeaders = headerEnd < 0 ? part : part.subarray(0, headerEnd);
    const data = headerEnd < 0 ? Buffer.alloc(0) : part.subarray(headerEnd + 4);
    const headers = new Map<string, string>();
    for (const line of rawHeaders.toString('utf8').split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1));
    }
    const disposition = headers.get('content-disposition') ?? '';
    const parameter = (key: string) => {
      const m = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"|;\\s*${key}=([^;]*)`, 'i').exec(
        disposition,
      );
      if (!m) return undefined;
      return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string).trim();
    };
    const extended = parameter('filename\\*');
    let filename = parameter('filename');
    if (extended) {
      const m = /^([^']*)'[^']*'(.*)$/.exec(extended);
      filename = m ? decodeURIComponent(m[2] as string) : extended;
    } else if (filename !== undefined) {
      // Browsers and undici percent-encode quotes and line breaks in the quoted name.
      filename = filename.replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n');
    }
    parts.push({
      name: parameter('name') ?? '',
      ...(filename !== undefined ? { filename } : {}),
      ...(headers.has('content-type')
        ? { contentType: (headers.get('content-type') as string).trim() }
        : {}),
      data: Buffer.from(data),
    });
    at = next + 2;
  }
  return parts;
}

// ---------------------------------------------------------------------------------------------
// CQL

type Token = { kind: 'word' | 'string' | 'op' | 'punct'; text: string };

function tokenizeCql(cql: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < cql.length) {
    const c = cql[at] as string;
    if (/\s/.test(c)) {
      at++;
    } else if (c === '"' || c === "'") {
      let text = '';
      at++;
      for (;;) {
        const d = cql[at++];
        if (d === undefined) throw cqlError(cql);
        if (d === c) break;
        if (d === '\\') {
          const escaped = cql[at++];
          if (escaped === undefined) throw cqlError(cql);
          text += escaped;
        } else text += d;
      }
      tokens.push({ kind: 'string', text });
    } else if ('(),'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      at++;
    } else {
      const rest = cql.slice(at);
      const op = /^(!=|!~|<=|>=|=|~|<|>)/.exec(rest)?.[1];
      const word = /^[\p{L}\p{N}_.:*/+-]+/u.exec(rest)?.[0];
      if (op) tokens.push({ kind: 'op', text: op });
      else if (word) tokens.push({ kind: 'word', text: word });
      else throw cqlError(cql);
      at += (op ?? word ?? '').length;
    }
  }
  return tokens;
}

/** What a CQL clause sees of a page. */
interface Searchable {
  id: string;
  type: 'page' | 'folder';
  spaceKey: string;
  title: string;
  body: string;
  parentId: string | null;
  ancestors: string[];
  labels: string[];
  created: number;
  modified: number;
}

type Predicate = (page: Searchable) => boolean;
type Order = { field: 'title' | 'created' | 'lastmodified'; desc: boolean };

/** How far `zone`'s clocks are ahead of UTC at `time` (negative west of UTC). */
function zoneOffsetMs(time: number, zone: string): number {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    })
      .formatToParts(time)
      .map((p) => [p.type, Number(p.value)]),
  ) as Record<string, number>;
  const wall = Date.UTC(
    parts.year as number,
    (parts.month as number) - 1,
    parts.day,
    parts.hour,
    parts.minute,
    parts.second,
  );
  return wall - Math.floor(time / 1000) * 1000;
}

/**
 * "yyyy-MM-dd", "yyyy/MM/dd", either with " HH:mm": the minute it names on the clocks of
 * `zone` (CQL reads dates in the searching user's time zone), as a UTC time.
 */
function cqlMinute(text: string, cql: string, zone: string): number {
  const m = /^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$/.exec(text.trim());
  if (!m) throw cqlError(cql);
  const [, y, mo, d, h, mi] = m.map(Number) as number[];
  if ((h || 0) > 23 || (mi || 0) > 59) throw cqlError(cql);
  const wall = Date.UTC(y as number, (mo as number) - 1, d, h || 0, mi || 0);
  const check = new Date(wall);
  if (check.getUTCMonth() !== (mo as number) - 1 || check.getUTCDate() !== d) throw cqlError(cql);
  const guess = wall - zoneOffsetMs(wall, zone);
  return wall - zoneOffsetMs(guess, zone);
}

const toMinute = (time: number) => Math.floor(time / 60_000) * 60_000;

/** Parses the CQL subset; dates are read on the clocks of `zone` (default UTC). */
export function parseCql(cql: string, zone = 'UTC'): { where: Predicate; order: Order[] } {
  const tokens = tokenizeCql(cql);
  let at = 0;
  const peek = () => tokens[at];
  const isWord = (word: string, offset = 0) => {
    const token = tokens[at + offset];
    return token?.kind === 'word' && token.text.toLowerCase() === word;
  };
  const isPunct = (text: string) => peek()?.kind === 'punct' && peek()?.text === text;
  const expectPunct = (text: string) => {
    if (!isPunct(text)) throw cqlError(cql);
    at++;
  };
  const value = (): string => {
    const token = peek();
    if (!token || (token.kind !== 'string' && token.kind !== 'word')) throw cqlError(cql);
    // A bare keyword is no value.
    if (token.kind === 'word' && /^(and|or|not|in|order|by)$/i.test(token.text)) {
      throw cqlError(cql);
    }
    at++;
    return token.text;
  };

  const setField = (op: string, values: string[], of: (page: Searchable) => string[]) => {
    const wanted = values.map((v) => v.toLowerCase());
    const has = (page: Searchable) => of(page).some((v) => wanted.includes(v.toLowerCase()));
    if (op === '=' || op === 'in') return has;
    if (op === '!=' || op === 'not in') return (page: Searchable) => !has(page);
    throw cqlError(cql);
  };
  const textField = (op: string, values: string[], of: (page: Searchable) => string) => {
    const needle = (values[0] as string).replace(/\*/g, '').toLowerCase();
    const contains = (page: Searchable) => of(page).toLowerCase().includes(needle);
    if (op === '~') return contains;
    if (op === '!~') return (page: Searchable) => !contains(page);
    throw cqlError(cql);
  };
  const dateField = (op: string, values: string[], of: (page: Searchable) => number) => {
    if (!['=', '!=', '<', '<=', '>', '>='].includes(op)) throw cqlError(cql);
    const bound = cqlMinute(values[0] as string, cql, zone);
    return (page: Searchable) => {
      const t = toMinute(of(page));
      switch (op) {
        case '=':
          return t === bound;
        case '!=':
          return t !== bound;
        case '<':
          return t < bound;
        case '<=':
          return t <= bound;
        case '>':
          return t > bound;
        default:
          return t >= bound;
      }
    };
  };

  const clause = (): Predicate => {
    const token = peek();
    if (token?.kind !== 'word') throw cqlError(cql);
    const field = token.text.toLowerCase();
    at++;
    let op: string;
    let values: string[];
    if (isWord('in') || (isWord('not') && isWord('in', 1))) {
      op = isWord('not') ? 'not in' : 'in';
      at += op === 'in' ? 1 : 2;
      expectPunct('(');
      values = [value()];
      while (isPunct(',')) {
        at++;
        values.push(value());
      }
      expectPunct(')');
    } else {
      const opToken = peek();
      if (opToken?.kind !== 'op') throw cqlError(cql);
      op = opToken.text;
      at++;
      values = [value()];
    }
    const list = op === 'in' || op === 'not in';
    switch (field) {
      case 'type':
        return setField(op, values, (p) => [p.type]);
      case 'space':
      case 'space.key':
        return setField(op, values, (p) => [p.spaceKey]);
      case 'id':
      case 'content':
        return setField(op, values, (p) => [p.id]);
      case 'ancestor':
        return setField(op, values, (p) => p.ancestors);
      case 'parent':
        return setField(op, values, (p) => (p.parentId ? [p.parentId] : []));
      case 'label':
        return setField(op, values, (p) => p.labels);
      case 'title':
        if (list || op === '=' || op === '!=') return setField(op, values, (p) => [p.title]);
        return textField(op, values, (p) => p.title);
      case 'text':
        if (list) throw cqlError(cql);
        return textField(op, values, (p) => `${p.title}\n${stripTags(p.body)}`);
      case 'created':
        if (list) throw cqlError(cql);
        return dateField(op, values, (p) => p.created);
      case 'lastmodified':
        if (list) throw cqlError(cql);
        return dateField(op, values, (p) => p.modified);
      default:
        throw cqlError(cql);
    }
  };

  const unary = (): Predicate => {
    if (isWord('not')) {
      at++;
      const inner = unary();
      return (p) => !inner(p);
    }
    if (isPunct('(')) {
      at++;
      const inner = or();
      expectPunct(')');
      return inner;
    }
    return clause();
  };
  const and = (): Predicate => {
    let left = unary();
    for (;;) {
      let negate = false;
      if (isWord('and')) {
        at++;
        if (isWord('not') && !isWord('in', 1)) {
          at++;
          negate = true;
        }
      } else if (isWord('not')) {
        at++;
        negate = true;
      } else return left;
      const right = unary();
      const l = left;
      left = negate ? (p) => l(p) && !right(p) : (p) => l(p) && right(p);
    }
  };
  const or = (): Predicate => {
    let left = and();
    while (isWord('or')) {
      at++;
      const right = and();
      const l = left;
      left = (p) => l(p) || right(p);
    }
    return left;
  };

  if (!tokens.length || isWord('order')) throw cqlError(cql);
  const where = or();
  const order: Order[] = [];
  if (isWord('order')) {
    at++;
    if (!isWord('by')) throw cqlError(cql);
    at++;
    do {
      if (order.length) at++;
      const field = peek()?.kind === 'word' ? peek()?.text.toLowerCase() : undefined;
      // The orderings Atlassian's CQL reference shows; others (id among them) are refused here.
      if (field !== 'title' && field !== 'created' && field !== 'lastmodified') {
        throw cqlError(cql);
      }
      at++;
      let desc = false;
      if (isWord('asc') || isWord('desc')) {
        desc = isWord('desc');
        at++;
      }
      order.push({ field, desc });
    } while (isPunct(','));
  }
  if (at !== tokens.length) throw cqlError(cql);
  return { where, order };
}

// ---------------------------------------------------------------------------------------------
// The media host

/**
 * Where Cloud's REST download route redirects: another origin (api.media.atlassian.com on
 * Cloud) serving the bytes for a short-lived token in the URL. It keeps the Authorization
 * headers it sees, so that tests can check no Confluence credential followed the redirect.
 */
class MediaHost extends LoopbackServer {
  readonly authorizations: string[] = [];
  private readonly files = new Map<
    string,
    { bytes: Buffer; mediaType: string; filename: string; expires: number }
  >();

  /** A URL serving these bytes for a minute. */
  link(file: { bytes: Buffer; mediaType: string; filename: string }): string {
    const token = randomBytes(18).toString('base64url');
    this.files.set(token, { ...file, expires: Date.now() + 60_000 });
    return `${this.url}/file/${randomUUID()}/binary?token=${token}&name=${encodeURIComponent(file.filename)}`;
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    if (req.headers.authorization) this.authorizations.push(req.headers.authorization);
    const file = this.files.get(url.searchParams.get('token') ?? '');
    if (!/^\/file\/[^/]+\/binary$/.test(url.pathname) || !file || file.expires < Date.now()) {
      return sendJson(res, 401, { error: 'Unauthorized' });
    }
    res.writeHead(200, {
      'Content-Type': file.mediaType,
      'Content-Length': file.bytes.length,
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(file.filename)}`,
    });
    res.end(req.method === 'HEAD' ? undefined : file.bytes);
  }

  protected fail(res: ServerResponse, error: unknown): void {
    sendJson(res, 500, { error: (error as Error).message });
  }
}

// ---------------------------------------------------------------------------------------------
// The server

export class ConfluenceServer extends LoopbackServer {
  private readonly spaces = new Map<string, StoredSpace>();
  private readonly pagesById = new Map<string, StoredPage>();
  private readonly attachmentsById = new Map<string, StoredAttachment>();
  private readonly labelIds = new Map<string, string>();
  private readonly users = new Map<
    string,
    { token: string; account: Account; credential: Credential }
  >();
  private readonly tokens = new Map<string, Account>();
  private readonly oauthClients = new Map<string, string>();
  private readonly accessTokens = new Map<
    string,
    { account: Account; clientId: string; expires: number }
  >();
  private readonly refreshTokens = new Map<string, { account: Account; clientId: string }>();
  private readonly throttles: Array<{ left: number; retryAfter?: number; method?: string }> = [];
  /** A throttled caller that comes back before its Retry-After is refused again until then. */
  private blockedUntil = 0;
  private readonly media = new MediaHost();
  readonly cloudId: string;
  readonly timeZone: string;
  private nextId = 65537;
  private lastSeeded = 0;
  private nextPosition = 0;
  /** Bumped by every change to a page, so that searches can be kept until the next one. */
  private revision = 0;
  /**
   * Search results by CQL, until a page changes: the pages of a search over a large space are
   * not filtered and sorted again for each page, as Confluence answers from its index.
   */
  private readonly searches = new Map<string, { revision: number; pages: StoredPage[] }>();
  /** Labels have ids of their own, shared by every page with that label. */
  private nextLabelId = 1;
  /** Requests seen, for tests that count calls: method, path with its query, and the query. */
  readonly requests: Array<{ method: string; path: string; query: URLSearchParams }> = [];

  constructor(private readonly options: ConfluenceServerOptions = {}) {
    super();
    this.cloudId = options.cloudId ?? randomUUID();
    this.timeZone = options.timeZone ?? 'America/Los_Angeles';
  }

  override async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await this.media.listen(0, host);
    return super.listen(port, host);
  }

  override async close(): Promise<void> {
    await Promise.all([super.close(), this.media.close()]);
  }

  /** The API gateway's base for this site, as OAuth apps and scoped tokens must call it. */
  get gatewayBase(): string {
    return `${this.url}/ex/confluence/${this.cloudId}`;
  }

  /** The `Authorization` headers the media host saw (a Confluence credential must never reach it). */
  get mediaAuthorizations(): string[] {
    return [...this.media.authorizations];
  }

  // -------------------------------------------------------------------------------------------
  // Seeding and inspection

  /**
   * Accepts `Authorization: Basic base64(email:token)`: a classic API token on the site (and
   * Data Center's mount), or with `scoped` a scoped API token, which only the gateway takes.
   */
  addUser(email: string, token: string, options: { scoped?: boolean } = {}): void {
    const name = email.split('@')[0] ?? email;
    this.users.set(email, {
      token,
      account: { accountId: `557058:${randomUUID()}`, displayName: name, username: email },
      credential: options.scoped ? 'scoped-token' : 'api-token',
    });
  }

  /** Accepts `Authorization: Bearer <token>` as a Data Center personal access token. */
  addToken(token: string): void {
    this.tokens.set(token, {
      accountId: `557058:${randomUUID()}`,
      displayName: 'Token User',
      username: `token-${this.tokens.size + 1}`,
    });
  }

  /** Registers an OAuth 2.0 (3LO) app, whose refresh tokens `/oauth/token` exchanges. */
  addOAuthClient(clientId: string, clientSecret: string): void {
    this.oauthClients.set(clientId, clientSecret);
  }

  /**
   * What an app holds once a user consented: an access token living `expiresIn` seconds
   * (default 3600), accepted only through the gateway, and a rotating refresh token.
   */
  grantOAuth(clientId: string, expiresIn = 3600): { accessToken: string; refreshToken: string } {
    if (!this.oauthClients.has(clientId)) throw new Error(`no OAuth client ${clientId}`);
    const account: Account = {
      accountId: `557058:${randomUUID()}`,
      displayName: 'OAuth User',
      username: `oauth-${this.accessTokens.size + 1}`,
    };
    return this.issueOAuth(account, clientId, expiresIn);
  }

  /** Every access token issued so far expires now (refresh tokens stay good). */
  expireOAuthTokens(): void {
    for (const token of this.accessTokens.values()) token.expires = 0;
  }

  /**
   * The next `count` requests (of `method`, if given) answer 429. With `retryAfter` (seconds)
   * the answer carries Retry-After and X-RateLimit-Reset, and a request sent before that time
   * is refused again; without, it carries neither, as Atlassian's docs allow.
   */
  throttle(count: number, options: { retryAfter?: number; method?: string } = {}): void {
    this.throttles.push({ left: count, ...options });
  }

  addSpace(key: string, name = key): { id: string; key: string } {
    if (this.spaceByKey(key)) throw new Error(`space ${key} exists`);
    const id = this.newId();
    this.spaces.set(id, { id, key, name, homepageId: null, createdAt: iso(Date.now()) });
    return { id, key };
  }

  /**
   * Adds a page as version 1, made at `modified` (default now, and after the page seeded last).
   * The space's first page without a parent becomes its homepage. Titles must be unique among
   * the space's current pages.
   */
  addPage(spec: {
    space: string;
    title: string;
    body?: string;
    parentId?: string;
    labels?: string[];
    modified?: Date;
    created?: Date;
  }): string {
    const space = this.spaceByKey(spec.space);
    if (!space) throw new Error(`no space ${spec.space}`);
    const parent = spec.parentId ? this.pagesById.get(spec.parentId) : undefined;
    if (spec.parentId && parent?.spaceId !== space.id) {
      throw new Error(`no page ${spec.parentId} in ${spec.space}`);
    }
    if (this.titleTaken(space.id, spec.title)) throw new Error(`title in use: ${spec.title}`);
    // Pages seeded without times are made a millisecond apart at least, as a clock would.
    const modified = spec.modified ?? new Date(Math.max(Date.now(), this.lastSeeded + 1));
    if (!spec.modified) this.lastSeeded = modified.getTime();
    const page = this.insertPage(
      space.id,
      spec.title,
      spec.body ?? '',
      spec.parentId ?? null,
      SEED_ACCOUNT,
      iso(spec.created ?? modified),
      iso(modified),
    );
    page.labels = [...new Set(spec.labels ?? [])];
    this.revision++;
    for (const label of page.labels) this.labelId(label);
    return page.id;
  }

  /**
   * A space (key `spec.name`) of `spec.keys` generated pages, `Page 0000` (the homepage) and
   * the rest below it, each a paragraph per line of one generated text (see generated.ts),
   * made without the per-page checks of addPage; returns the homepage's id.
   */
  generate(spec: GeneratedBucket): string {
    const { id: spaceId } = this.addSpace(spec.name);
    const now = iso(Date.now());
    const body = generatedBody(spec.size, 'txt')
      .toString('utf8')
      .trim()
      .split('\n')
      .map((line) => `<p>${line}</p>`)
      .join('');
    const width = String(Math.max(spec.keys - 1, 0)).length;
    let home: string | null = null;
    for (let i = 0; i < spec.keys; i++) {
      const title = `Page ${String(i).padStart(width, '0')}`;
      const page = this.insertPage(spaceId, title, body, home, SEED_ACCOUNT, now, now);
      home ??= page.id;
    }
    return home ?? '';
  }

  /** Adds a Cloud folder (below a page or folder, or at the top of the space). */
  addFolder(spec: { space: string; title: string; parentId?: string }): string {
    const space = this.spaceByKey(spec.space);
    if (!space) throw new Error(`no space ${spec.space}`);
    if (spec.parentId && this.pagesById.get(spec.parentId)?.spaceId !== space.id) {
      throw new Error(`no page or folder ${spec.parentId} in ${spec.space}`);
    }
    const now = iso(Date.now());
    return this.insertPage(
      space.id,
      spec.title,
      '',
      spec.parentId ?? null,
      SEED_ACCOUNT,
      now,
      now,
      '',
      'folder',
    ).id;
  }

  /** Archives a page: readable by id, left out of searches and of lists asking for current pages. */
  archive(id: string): void {
    const page = this.pagesById.get(id);
    if (!page) throw new Error(`no page ${id}`);
    page.status = 'archived';
    this.revision++;
  }

  /** Adds a version, as a user's edit would; `modified` (default now) is its time. */
  updatePage(id: string, change: { title?: string; body?: string; modified?: Date }): void {
    const page = this.pagesById.get(id);
    if (!page) throw new Error(`no page ${id}`);
    const current = lastOf(page.versions);
    const title = change.title ?? current.title;
    if (title !== current.title && this.titleTaken(page.spaceId, title, id)) {
      throw new Error(`title in use: ${title}`);
    }
    this.revision++;
    page.versions.push({
      number: current.number + 1,
      title,
      body: change.body ?? current.body,
      message: '',
      minorEdit: false,
      authorId: SEED_ACCOUNT.accountId,
      createdAt: iso(change.modified ?? new Date()),
    });
  }

  /** Adds labels to a page. */
  addLabels(id: string, ...labels: string[]): void {
    const page = this.pagesById.get(id);
    if (!page) throw new Error(`no page ${id}`);
    page.labels = [...new Set([...page.labels, ...labels])];
    this.revision++;
    for (const label of labels) this.labelId(label);
  }

  /** Attaches a file to a page (or adds a version when the name is in use). */
  addAttachment(
    pageId: string,
    filename: string,
    bytes: Buffer | string,
    mediaType?: string,
  ): string {
    if (!this.pagesById.has(pageId)) throw new Error(`no page ${pageId}`);
    return this.putAttachment(
      pageId,
      filename,
      Buffer.from(bytes),
      attachmentType(filename, mediaType),
      '',
      false,
      SEED_ACCOUNT,
    ).id;
  }

  /** Hides a page from every caller: 404 to reads, 403 to writes. */
  restrict(pageId: string, restricted = true): void {
    const page = this.pagesById.get(pageId);
    if (!page) throw new Error(`no page ${pageId}`);
    page.restricted = restricted;
    this.revision++;
  }

  page(id: string): ConfluencePage | undefined {
    const page = this.pagesById.get(id);
    return page && this.snapshot(page);
  }

  /** Pages (of one space), by id. */
  pages(spaceKey?: string): ConfluencePage[] {
    const space = spaceKey === undefined ? undefined : this.spaceByKey(spaceKey);
    if (spaceKey !== undefined && !space) return [];
    return [...this.pagesById.values()]
      .filter((p) => !space || p.spaceId === space.id)
      .sort((a, b) => byNumber(a.id, b.id))
      .map((p) => this.snapshot(p));
  }

  /** A page's current attachments with their latest bytes, by id. */
  attachments(pageId: string): ConfluenceAttachment[] {
    return this.attachmentsOf(pageId).map((a) => {
      const v = lastOf(a.versions);
      return {
        id: a.id,
        pageId: a.pageId,
        filename: a.filename,
        mediaType: v.mediaType,
        comment: v.comment,
        version: v.number,
        bytes: v.bytes,
        createdAt: a.createdAt,
      };
    });
  }

  spaceByKey(key: string): ConfluenceSpace | undefined {
    const space = [...this.spaces.values()].find((s) => s.key === key);
    return (
      space && { id: space.id, key: space.key, name: space.name, homepageId: space.homepageId }
    );
  }

  // -------------------------------------------------------------------------------------------
  // The store

  private newId(): string {
    return String(this.nextId++);
  }

  private snapshot(page: StoredPage): ConfluencePage {
    const current = lastOf(page.versions);
    return {
      id: page.id,
      type: page.type,
      status: page.status,
      spaceId: page.spaceId,
      spaceKey: (this.spaces.get(page.spaceId) as StoredSpace).key,
      title: current.title,
      body: current.body,
      parentId: page.parentId,
      labels: [...page.labels],
      createdAt: page.createdAt,
      modifiedAt: current.createdAt,
      version: current.number,
      versions: page.versions.map((v) => ({
        number: v.number,
        title: v.title,
        body: v.body,
        message: v.message,
        createdAt: v.createdAt,
      })),
      restricted: page.restricted,
    };
  }

  /** Whether a current page of the space holds the title (archived pages give theirs up). */
  private titleTaken(spaceId: string, title: string, except?: string): boolean {
    for (const page of this.pagesById.values()) {
      if (
        page.spaceId === spaceId &&
        page.id !== except &&
        page.type === 'page' &&
        page.status === 'current' &&
        lastOf(page.versions).title === title
      )
        return true;
    }
    return false;
  }

  private insertPage(
    spaceId: string,
    title: string,
    body: string,
    parentId: string | null,
    author: Account,
    createdAt: string,
    modifiedAt: string,
    message = '',
    type: 'page' | 'folder' = 'page',
  ): StoredPage {
    const page: StoredPage = {
      id: this.newId(),
      type,
      status: 'current',
      spaceId,
      parentId,
      position: this.nextPosition++,
      authorId: author.accountId,
      createdAt,
      versions: [
        {
          number: 1,
          title,
          body,
          message,
          minorEdit: false,
          authorId: author.accountId,
          createdAt: modifiedAt,
        },
      ],
      labels: [],
      restricted: false,
    };
    this.pagesById.set(page.id, page);
    this.revision++;
    const space = this.spaces.get(spaceId) as StoredSpace;
    if (space.homepageId === null && parentId === null && type === 'page') {
      space.homepageId = page.id;
    }
    return page;
  }

  private putAttachment(
    pageId: string,
    filename: string,
    bytes: Buffer,
    mediaType: string,
    comment: string,
    minorEdit: boolean,
    author: Account,
  ): StoredAttachment {
    const now = iso(Date.now());
    const existing = this.attachmentsOf(pageId).find((a) => a.filename === filename);
    const version = {
      bytes,
      mediaType,
      comment,
      minorEdit,
      authorId: author.accountId,
      createdAt: now,
    };
    if (existing) {
      existing.versions.push({ number: lastOf(existing.versions).number + 1, ...version });
      return existing;
    }
    const id = `att${this.newId()}`;
    const attachment: StoredAttachment = {
      id,
      pageId,
      filename,
      fileId: randomUUID(),
      status: 'current',
      createdAt: now,
      versions: [{ number: 1, ...version }],
    };
    this.attachmentsById.set(id, attachment);
    return attachment;
  }

  private attachmentsOf(pageId: string): StoredAttachment[] {
    return [...this.attachmentsById.values()]
      .filter((a) => a.pageId === pageId && a.status === 'current')
      .sort((a, b) => byNumber(a.id.slice(3), b.id.slice(3)));
  }

  private ancestorsOf(page: StoredPage): StoredPage[] {
    const chain: StoredPage[] = [];
    let parentId = page.parentId;
    while (parentId) {
      const parent = this.pagesById.get(parentId);
      if (!parent) break;
      chain.unshift(parent);
      parentId = parent.parentId;
    }
    return chain;
  }

  private childrenOf(id: string): StoredPage[] {
    return [...this.pagesById.values()]
      .filter((p) => p.parentId === id && !p.restricted)
      .sort((a, b) => a.position - b.position);
  }

  /** A page (or folder) the caller may read: a restricted one is as missing. */
  private readable(id: string, api: Api, type: 'page' | 'folder' = 'page'): StoredPage {
    const page = this.pagesById.get(id);
    if (!page || page.restricted || page.type !== type) {
      throw notFound(api === 'v2' ? 'Not Found' : `No content found with id: ContentId{id=${id}}`);
    }
    return page;
  }

  /** A page the caller may write: a restricted one is 403. */
  private writable(id: string, api: Api): StoredPage {
    const page = this.pagesById.get(id);
    if (page?.type !== 'page') {
      throw notFound(api === 'v2' ? 'Not Found' : `No content found with id: ContentId{id=${id}}`);
    }
    if (page.restricted) {
      throw new ApiError(
        403,
        api === 'v2'
          ? 'Permission denied'
          : `Not permitted to update content with id: ContentId{id=${id}}`,
      );
    }
    return page;
  }

  private searchable(page: StoredPage): Searchable {
    const current = lastOf(page.versions);
    return {
      id: page.id,
      type: page.type,
      spaceKey: (this.spaces.get(page.spaceId) as StoredSpace).key,
      title: current.title,
      body: current.body,
      parentId: page.parentId,
      ancestors: this.ancestorsOf(page).map((p) => p.id),
      labels: page.labels,
      created: Date.parse(page.createdAt),
      modified: Date.parse(current.createdAt),
    };
  }

  /** Checks a new parent for a page: in the same space, not the page or below it. */
  private checkParent(page: StoredPage | undefined, spaceId: string, parentId: string, api: Api) {
    const parent = this.pagesById.get(parentId);
    if (!parent || parent.restricted) {
      throw api === 'v2'
        ? invalidParameter(`Parent page with id ${parentId} does not exist`)
        : notFound(`No content found with id: ContentId{id=${parentId}}`);
    }
    if (parent.spaceId !== spaceId) {
      throw badRequest('The parent page must be in the same space as the page.');
    }
    if (page && (parent.id === page.id || this.ancestorsOf(parent).includes(page))) {
      throw badRequest('A page cannot be moved below itself.');
    }
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  private readonly apis = new WeakMap<ServerResponse, Api>();

  private apiOf(res: ServerResponse): Api {
    return this.apis.get(res) ?? 'v1';
  }

  protected fail(res: ServerResponse, error: unknown): void {
    this.sendError(res, this.apiOf(res), asApiError(error));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: `${path}${url.search}`, query: url.searchParams });

    if (path === '/_edge/tenant_info' && method === 'GET') {
      return sendJson(res, 200, { cloudId: this.cloudId });
    }
    if (path === '/oauth/token' && method === 'POST') return this.oauthToken(req, res);
    if (path === '/oauth/token/accessible-resources' && method === 'GET') {
      return this.accessibleResources(req, res);
    }
    const gateway = /^\/ex\/confluence\/([^/]+)(\/wiki\/.*)$/.exec(path);
    if (gateway && gateway[1] !== this.cloudId) {
      return sendJson(res, 404, { code: 404, message: 'Not Found' });
    }
    const prefix = gateway ? `/ex/confluence/${gateway[1]}` : '';
    const mount = /^\/(wiki|confluence)(\/.*)$/.exec(path.slice(prefix.length));
    const context = mount ? `/${mount[1]}` : '';
    const rest = mount?.[2] ?? '';
    const cloud = context === '/wiki';
    let api: Api;
    if (cloud && rest.startsWith('/api/v2/')) api = 'v2';
    else if (rest.startsWith('/rest/api/') || rest.startsWith('/download/attachments/')) api = 'v1';
    else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' }).end('Not Found');
      return;
    }
    this.apis.set(res, api);
    const account = this.authenticate(req, prefix ? 'gateway' : cloud ? 'site' : 'datacenter');
    const call: Call = { req, res, url, api, context, prefix, cloud, account };
    this.throttled(method);

    let m = /^\/download\/attachments\/(\d+)\/([^/]+)$/.exec(rest);
    if (m) {
      if (method !== 'GET' && method !== 'HEAD') throw new ApiError(405, 'Method Not Allowed');
      // Cloud serves this path to browser sessions only; API tokens and OAuth get 401.
      if (cloud) {
        throw new ApiError(401, 'This request requires authentication', undefined, {
          'WWW-Authenticate': `OAuth realm="${this.url}/wiki"`,
        });
      }
      return this.download(call, m[1] as string, decodeURIComponent(m[2] as string));
    }
    if (api === 'v2') return this.routeV2(call, method, rest.slice('/api/v2'.length));
    m = /^\/rest\/api(\/.*)$/.exec(rest);
    return this.routeV1(call, method, (m?.[1] as string) ?? '');
  }

  /** Who the caller is; each mount takes only the credentials it takes on Atlassian's hosts. */
  private authenticate(req: IncomingMessage, mount: 'site' | 'gateway' | 'datacenter'): Account {
    const header = req.headers.authorization ?? '';
    const basic = /^Basic\s+(\S+)$/i.exec(header)?.[1];
    const bearer = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    const accepts: Record<typeof mount, Credential[]> = {
      site: ['api-token'],
      gateway: ['scoped-token', 'oauth'],
      datacenter: ['api-token', 'pat'],
    };
    let found: { account: Account; credential: Credential } | undefined;
    if (basic) {
      const pair = Buffer.from(basic, 'base64').toString('utf8');
      const colon = pair.indexOf(':');
      const user = colon > 0 ? this.users.get(pair.slice(0, colon)) : undefined;
      if (user && user.token === pair.slice(colon + 1)) found = user;
    } else if (bearer) {
      const pat = this.tokens.get(bearer);
      const oauth = this.accessTokens.get(bearer);
      if (pat) found = { account: pat, credential: 'pat' };
      else if (oauth && oauth.expires > Date.now()) {
        found = { account: oauth.account, credential: 'oauth' };
      }
    }
    if (found && accepts[mount].includes(found.credential)) return found.account;
    throw new ApiError(401, 'This request requires authentication');
  }

  /** Answers 429 while a throttle lasts, or while a throttled caller should still be waiting. */
  private throttled(method: string): void {
    const now = Date.now();
    const headers = (seconds: number) => ({
      'Retry-After': String(seconds),
      'X-RateLimit-Reset': new Date(now + seconds * 1000).toISOString().slice(0, 16).concat('Z'),
    });
    if (now < this.blockedUntil) {
      throw new ApiError(429, 'Rate limit exceeded', 'TOO_MANY_REQUESTS', {
        ...headers(Math.ceil((this.blockedUntil - now) / 1000)),
      });
    }
    const throttle = this.throttles.find((t) => t.left > 0 && (!t.method || t.method === method));
    if (!throttle) return;
    throttle.left--;
    const { retryAfter } = throttle;
    if (retryAfter !== undefined) this.blockedUntil = now + retryAfter * 1000;
    throw new ApiError(
      429,
      'Rate limit exceeded',
      'TOO_MANY_REQUESTS',
      retryAfter === undefined ? {} : headers(retryAfter),
    );
  }

  private issueOAuth(account: Account, clientId: string, expiresIn: number) {
    const accessToken = `eyJ.oauth.${randomBytes(24).toString('base64url')}`;
    const refreshToken = `eyJ.refresh.${randomBytes(24).toString('base64url')}`;
    this.accessTokens.set(accessToken, {
      account,
      clientId,
      expires: Date.now() + expiresIn * 1000,
    });
    this.refreshTokens.set(refreshToken, { account, clientId });
    return { accessToken, refreshToken };
  }

  /** POST /oauth/token (auth.atlassian.com): a refresh token for a new pair; the old one is spent. */
  private async oauthToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let input: Record<string, unknown> = {};
    try {
      input = JSON.parse((await readBody(req)).toString('utf8'));
    } catch {
      return sendJson(res, 400, { error: 'invalid_request', error_description: 'Bad JSON' });
    }
    const clientId = String(input.client_id ?? '');
    if (this.oauthClients.get(clientId) !== input.client_secret) {
      return sendJson(res, 401, { error: 'access_denied', error_description: 'Unauthorized' });
    }
    const grant = this.refreshTokens.get(String(input.refresh_token ?? ''));
    if (input.grant_type !== 'refresh_token' || !grant || grant.clientId !== clientId) {
      return sendJson(res, 403, {
        error: 'unauthorized_client',
        error_description: 'refresh_token is invalid',
      });
    }
    this.refreshTokens.delete(String(input.refresh_token));
    const expiresIn = 3600;
    const pair = this.issueOAuth(grant.account, clientId, expiresIn);
    sendJson(res, 200, {
      access_token: pair.accessToken,
      refresh_token: pair.refreshToken,
      expires_in: expiresIn,
      scope: 'read:confluence-content.all search:confluence offline_access',
      token_type: 'Bearer',
    });
  }

  /** GET /oauth/token/accessible-resources (api.atlassian.com): the sites a 3LO token reaches. */
  private accessibleResources(req: IncomingMessage, res: ServerResponse): void {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const token = this.accessTokens.get(bearer);
    if (!token || token.expires <= Date.now()) {
      sendJson(res, 401, { code: 401, message: 'Unauthorized' });
      return;
    }
    sendJson(res, 200, [
      {
        id: this.cloudId,
        url: this.url,
        name: 'sluice-test',
        scopes: ['read:confluence-content.all', 'search:confluence'],
        avatarUrl: `${this.url}/avatar.png`,
      },
    ]);
  }

  private sendError(res: ServerResponse, api: Api, error: ApiError): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const [code, reason] = REASONS[error.status] ?? ['ERROR', 'Error'];
    const headers: Record<string, string> = {
      ...(error.status === 401 ? { 'WWW-Authenticate': 'Basic realm="Confluence"' } : {}),
      ...error.headers,
    };
    if (api === 'v2') {
      const title = error.status === 401 ? 'Unauthorized' : error.message;
      sendJson(
        res,
        error.status,
        { errors: [{ status: error.status, code: error.code ?? code, title, detail: null }] },
        headers,
      );
      return;
    }
    sendJson(
      res,
      error.status,
      {
        statusCode: error.status,
        data: {
          authorized: error.status !== 401,
          valid: error.status !== 400,
          errors: [],
          successful: false,
        },
        message: error.message,
        reason,
      },
      headers,
    );
  }

  private async jsonBody(call: Call): Promise<Record<string, unknown>> {
    const type = (call.req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    const body = await readBody(call.req);
    if (type !== 'application/json') {
      throw new ApiError(415, `Unsupported Media Type: ${type || 'none'}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw badRequest('The request body is not valid JSON.');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw badRequest('The request body must be a JSON object.');
    }
    return parsed as Record<string, unknown>;
  }

  // -------------------------------------------------------------------------------------------
  // v2

  private async routeV2(call: Call, method: string, path: string): Promise<void> {
    const q = call.url.searchParams;
    let m: RegExpExecArray | null;
    if (path === '/spaces' && method === 'GET') return this.listSpacesV2(call);
    m = /^\/spaces\/([^/]+)\/pages$/.exec(path);
    if (m && method === 'GET') {
      const space = this.spaces.get(decodeURIComponent(m[1] as string));
      if (!space) throw notFound();
      const title = q.get('title');
      const pages = this.listedPages(q, V2_STATUSES).filter(
        (p) => p.spaceId === space.id && (title === null || lastOf(p.versions).title === title),
      );
      return this.pageListV2(call, pages);
    }
    if (path === '/pages') {
      if (method === 'GET') return this.listPagesV2(call);
      if (method === 'POST') return this.createPageV2(call);
    }
    m = /^\/pages\/(\d+)$/.exec(path);
    if (m) {
      const id = m[1] as string;
      if (method === 'GET') {
        const page = this.readable(id, 'v2');
        const versionParam = q.get('version');
        let version = lastOf(page.versions);
        if (versionParam !== null) {
          const n = Number(versionParam);
          if (!Number.isInteger(n) || n < 1) throw invalidParameter('Invalid version');
          const found = page.versions.find((v) => v.number === n);
          if (!found) throw notFound();
          version = found;
        }
        return sendJson(call.res, 200, this.pageV2(page, version, this.bodyFormat(q)));
      }
      if (method === 'PUT') return this.updatePageV2(call, id);
    }
    m = /^\/pages\/(\d+)\/(versions|children|labels|attachments)$/.exec(path);
    if (m && method === 'GET') {
      const page = this.readable(m[1] as string, 'v2');
      switch (m[2]) {
        case 'versions':
          return this.paginateV2(
            call,
            [...page.versions].reverse(),
            (v) => -v.number,
            (v) => this.versionV2(v),
          );
        case 'children':
          // Pages only: a folder below the page, and the pages in it, are left out.
          return this.paginateV2(
            call,
            this.childrenOf(page.id).filter((p) => p.type === 'page'),
            (p) => p.position,
            (p) => ({
              id: p.id,
              status: p.status,
              title: lastOf(p.versions).title,
              spaceId: p.spaceId,
              childPosition: p.position,
            }),
          );
        case 'labels':
          return this.paginateV2(
            call,
            page.labels
              .map((name) => ({ name, id: this.labelId(name) }))
              .sort((a, b) => byNumber(a.id, b.id)),
            (l) => Number(l.id),
            (l) => ({ id: l.id, name: l.name, prefix: 'global' }),
          );
        default: {
          const filename = q.get('filename');
          const mediaType = q.get('mediaType');
          const list = this.attachmentsOf(page.id).filter(
            (a) =>
              (filename === null || a.filename === filename) &&
              (mediaType === null || lastOf(a.versions).mediaType === mediaType),
          );
          return this.paginateV2(
            call,
            list,
            (a) => Number(a.id.slice(3)),
            (a) => this.attachmentV2(a),
          );
        }
      }
    }
    m = /^\/(pages|folders)\/(\d+)\/direct-children$/.exec(path);
    if (m && method === 'GET') {
      const parent = this.readable(m[2] as string, 'v2', m[1] === 'pages' ? 'page' : 'folder');
      return this.paginateV2(
        call,
        this.childrenOf(parent.id),
        (p) => p.position,
        (p) => ({
          id: p.id,
          status: p.status,
          title: lastOf(p.versions).title,
          type: p.type,
          spaceId: p.spaceId,
          childPosition: p.position,
        }),
      );
    }
    m = /^\/folders\/(\d+)$/.exec(path);
    if (m && method === 'GET') {
      const folder = this.readable(m[1] as string, 'v2', 'folder');
      return sendJson(call.res, 200, {
        id: folder.id,
        type: 'folder',
        status: folder.status,
        title: lastOf(folder.versions).title,
        parentId: folder.parentId,
        parentType: folder.parentId ? this.pagesById.get(folder.parentId)?.type : null,
        position: folder.position,
        authorId: folder.authorId,
        ownerId: folder.authorId,
        createdAt: folder.createdAt,
        version: this.versionV2(lastOf(folder.versions)),
        _links: { base: `${this.url}${call.context}` },
      });
    }
    m = /^\/attachments\/([^/]+)$/.exec(path);
    if (m) {
      const attachment = this.attachmentsById.get(decodeURIComponent(m[1] as string));
      const page =
        attachment?.status === 'current' ? this.pagesById.get(attachment.pageId) : undefined;
      if (!attachment || !page || page.restricted) throw notFound();
      if (method === 'GET') return sendJson(call.res, 200, this.attachmentV2(attachment));
      if (method === 'DELETE') {
        attachment.status = 'trashed';
        call.res.writeHead(204).end();
        return;
      }
    }
    throw notFound();
  }

  private labelId(name: string): string {
    let id = this.labelIds.get(name);
    if (!id) {
      id = String(this.nextLabelId++);
      this.labelIds.set(name, id);
    }
    return id;
  }

  /** `body-format`: storage gives the body; the API's other formats give an empty one. */
  private bodyFormat(q: URLSearchParams): boolean {
    const format = q.get('body-format');
    if (format === null) return false;
    const known = [
      'storage',
      'atlas_doc_format',
      'view',
      'export_view',
      'anonymous_export_view',
      'styled_view',
      'editor',
    ];
    if (!known.includes(format)) throw invalidParameter(`Invalid body-format: ${format}`);
    return format === 'storage';
  }

  /**
   * Readable pages by id, in the statuses `status` asks for (comma-separated or repeated; `any`
   * for all); without it, `byDefault`: v2 lists current and archived pages, v1 current ones.
   */
  private listedPages(q: URLSearchParams, byDefault: string[]): StoredPage[] {
    const asked = q.getAll('status').flatMap((s) => s.split(','));
    const statuses = asked.length ? asked : byDefault;
    return [...this.pagesById.values()]
      .filter(
        (p) =>
          p.type === 'page' &&
          !p.restricted &&
          (statuses.includes(p.status) || statuses.includes('any')),
      )
      .sort((a, b) => byNumber(a.id, b.id));
  }

  private listSpacesV2(call: Call): void {
    const q = call.url.searchParams;
    const keys = q.get('keys')?.split(',');
    const ids = q.get('ids')?.split(',');
    const spaces = [...this.spaces.values()]
      .filter((s) => (!keys || keys.includes(s.key)) && (!ids || ids.includes(s.id)))
      .sort((a, b) => byNumber(a.id, b.id));
    this.paginateV2(
      call,
      spaces,
      (s) => Number(s.id),
      (s) => ({
        id: s.id,
        key: s.key,
        name: s.name,
        type: 'global',
        status: 'current',
        authorId: SEED_ACCOUNT.accountId,
        createdAt: s.createdAt,
        homepageId: s.homepageId,
        description: null,
        icon: null,
        _links: { webui: `/spaces/${s.key}` },
      }),
    );
  }

  private listPagesV2(call: Call): void {
    const q = call.url.searchParams;
    const ids = q.get('id')?.split(',').filter(Boolean);
    if (ids && ids.length > MAX_IDS) {
      throw invalidParameter(`The number of ids must be at most ${MAX_IDS}`);
    }
    const spaceIds = q.get('space-id')?.split(',').filter(Boolean);
    const title = q.get('title');
    const sort = q.get('sort');
    if (sort !== null && sort !== 'id') throw invalidParameter(`Unsupported sort: ${sort}`);
    const pages = this.listedPages(q, V2_STATUSES).filter(
      (p) =>
        (!ids || ids.includes(p.id)) &&
        (!spaceIds || spaceIds.includes(p.spaceId)) &&
        (title === null || lastOf(p.versions).title === title),
    );
    this.pageListV2(call, pages);
  }

  private pageListV2(call: Call, pages: StoredPage[]): void {
    const withBody = this.bodyFormat(call.url.searchParams);
    this.paginateV2(
      call,
      pages,
      (p) => Number(p.id),
      (p) => this.pageV2(p, lastOf(p.versions), withBody),
    );
  }

  /** One page of a list sorted by `key`, with a cursor naming the last key given. */
  private paginateV2<T>(
    call: Call,
    items: T[],
    key: (item: T) => number,
    render: (item: T) => unknown,
  ): void {
    const q = call.url.searchParams;
    const limitParam = q.get('limit');
    const limit = limitParam === null ? DEFAULT_LIMIT : Number(limitParam);
    if (!/^\d+$/.test(limitParam ?? '25') || limit < 1 || limit > V2_MAX_LIMIT) {
      throw invalidParameter(`limit must be between 1 and ${V2_MAX_LIMIT}`);
    }
    let start = 0;
    const cursor = q.get('cursor');
    if (cursor !== null) {
      let after: unknown;
      try {
        after = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')).after;
      } catch {
        after = undefined;
      }
      if (typeof after !== 'number') throw invalidParameter('Invalid cursor');
      start = items.findIndex((item) => key(item) > after);
      if (start < 0) start = items.length;
    }
    const slice = items.slice(start, start + limit);
    const base = `${this.url}${call.context}`;
    const links: Record<string, string> = {};
    const headers: Record<string, string> = {};
    if (start + limit < items.length) {
      const params = new URLSearchParams(q);
      params.set(
        'cursor',
        Buffer.from(JSON.stringify({ after: key(lastOf(slice)) })).toString('base64url'),
      );
      // Without the gateway's /ex/confluence/{cloudId} prefix, as the gateway answers.
      links.next = `${call.url.pathname.slice(call.prefix.length)}?${params}`;
      headers.Link = `<${links.next}>; rel="next", <${base}>; rel="base"`;
    }
    links.base = base;
    sendJson(call.res, 200, { results: slice.map(render), _links: links }, headers);
  }

  private pageLinks(page: StoredPage, title: string) {
    const space = this.spaces.get(page.spaceId) as StoredSpace;
    return {
      webui: `/spaces/${space.key}/pages/${page.id}/${plusEncoded(title)}`,
      editui: `/pages/resumedraft.action?draftId=${page.id}`,
      tinyui: tinyLink(page.id),
    };
  }

  private versionV2(v: PageVersion) {
    return {
      number: v.number,
      message: v.message,
      minorEdit: v.minorEdit,
      authorId: v.authorId,
      createdAt: v.createdAt,
    };
  }

  private pageV2(page: StoredPage, version: PageVersion, withBody: boolean) {
    return {
      id: page.id,
      status: page.status,
      title: version.title,
      spaceId: page.spaceId,
      parentId: page.parentId,
      parentType: page.parentId ? (this.pagesById.get(page.parentId)?.type ?? 'page') : null,
      position: page.position,
      authorId: page.authorId,
      ownerId: page.authorId,
      lastOwnerId: null,
      createdAt: page.createdAt,
      version: this.versionV2(version),
      body: withBody ? { storage: { representation: 'storage', value: version.body } } : {},
      _links: this.pageLinks(page, version.title),
    };
  }

  private storageBodyV2(body: unknown): string {
    const b = body as { representation?: unknown; value?: unknown } | undefined;
    if (typeof b !== 'object' || b === null) throw badRequest('body is required');
    if (b.representation !== 'storage') {
      throw invalidParameter(`Unsupported body representation: ${String(b.representation)}`);
    }
    if (typeof b.value !== 'string') throw badRequest('body.value is required');
    return b.value;
  }

  private duplicateTitleV2() {
    return invalidParameter(
      'A page with this title already exists: A page already exists with the same TITLE in this space',
    );
  }

  private async createPageV2(call: Call): Promise<void> {
    const input = await this.jsonBody(call);
    const q = call.url.searchParams;
    const { spaceId, title, parentId } = input;
    if (typeof spaceId !== 'string' && typeof spaceId !== 'number') {
      throw badRequest('spaceId is required');
    }
    if (typeof title !== 'string' || !title.trim()) throw badRequest('title is required');
    if (input.status !== undefined && input.status !== 'current') {
      throw invalidParameter(`Unsupported status: ${String(input.status)}`);
    }
    const space = this.spaces.get(String(spaceId));
    if (!space) throw notFound(`Space with id ${String(spaceId)} does not exist`);
    const body = input.body === undefined ? '' : this.storageBodyV2(input.body);
    let parent: string | null = null;
    if (parentId !== undefined && parentId !== null) {
      if (q.get('root-level') === 'true') {
        throw badRequest('parentId cannot be set for a root-level page');
      }
      this.checkParent(undefined, space.id, String(parentId), 'v2');
      this.writable(String(parentId), 'v2');
      parent = String(parentId);
    } else if (q.get('root-level') !== 'true') {
      parent = space.homepageId;
    }
    if (this.titleTaken(space.id, title)) throw this.duplicateTitleV2();
    const now = iso(Date.now());
    const page = this.insertPage(space.id, title, body, parent, call.account, now, now);
    sendJson(call.res, 200, this.pageV2(page, lastOf(page.versions), true));
  }

  /** An update through either API: a move when the parent changes, then the new version. */
  private saveVersion(
    call: Call,
    page: StoredPage,
    change: {
      parentId: string | undefined;
      version: { number: number; message?: unknown; minorEdit?: unknown };
      title: string;
      body: string;
      api: Api;
    },
  ): void {
    const { parentId, version } = change;
    this.revision++;
    if (parentId !== undefined && parentId !== page.parentId) {
      this.checkParent(page, page.spaceId, parentId, change.api);
      page.parentId = parentId;
      page.position = this.nextPosition++;
    }
    page.versions.push({
      number: version.number,
      title: change.title,
      body: change.body,
      message: typeof version.message === 'string' ? version.message : '',
      minorEdit: version.minorEdit === true,
      authorId: call.account.accountId,
      createdAt: iso(Date.now()),
    });
  }

  private async updatePageV2(call: Call, id: string): Promise<void> {
    const input = await this.jsonBody(call);
    const page = this.writable(id, 'v2');
    if (page.status === 'archived') throw badRequest('An archived page cannot be edited.');
    if (input.id !== undefined && String(input.id) !== id) {
      throw badRequest('The id in the body does not match the id in the path');
    }
    if (input.status !== undefined && input.status !== 'current') {
      throw invalidParameter(`Unsupported status: ${String(input.status)}`);
    }
    const { title } = input;
    if (typeof title !== 'string' || !title.trim()) throw badRequest('title is required');
    const version = input.version as { number?: unknown; message?: unknown } | undefined;
    if (typeof version?.number !== 'number') throw badRequest('version.number is required');
    const current = lastOf(page.versions);
    if (version.number !== current.number + 1) {
      throw new ApiError(
        409,
        `Version must be incremented on update. Current version is: ${current.number}`,
      );
    }
    const body = input.body === undefined ? current.body : this.storageBodyV2(input.body);
    if (title !== current.title && this.titleTaken(page.spaceId, title, id)) {
      throw this.duplicateTitleV2();
    }
    const parentId =
      input.parentId !== undefined && input.parentId !== null ? String(input.parentId) : undefined;
    this.saveVersion(call, page, {
      parentId,
      version: { ...version, number: version.number },
      title,
      body,
      api: 'v2',
    });
    sendJson(call.res, 200, this.pageV2(page, lastOf(page.versions), true));
  }

  /** Relative to the mount; Cloud adds `api=v2`, as its links do. */
  private downloadLink(cloud: boolean, a: StoredAttachment): string {
    const v = lastOf(a.versions);
    const api = cloud ? '&api=v2' : '';
    return `/download/attachments/${a.pageId}/${encodeURIComponent(a.filename)}?version=${v.number}&modificationDate=${Date.parse(v.createdAt)}${api}`;
  }

  private attachmentWebui(a: StoredAttachment): string {
    const preview = encodeURIComponent(`/${a.pageId}/${a.id.slice(3)}/${a.filename}`);
    return `/pages/viewpageattachments.action?pageId=${a.pageId}&preview=${preview}`;
  }

  private attachmentV2(a: StoredAttachment) {
    const v = lastOf(a.versions);
    const download = this.downloadLink(true, a);
    const webui = this.attachmentWebui(a);
    return {
      id: a.id,
      status: 'current',
      title: a.filename,
      createdAt: a.createdAt,
      pageId: a.pageId,
      mediaType: v.mediaType,
      mediaTypeDescription: mediaTypeDescription(v.mediaType),
      comment: v.comment,
      fileId: a.fileId,
      fileSize: v.bytes.length,
      webuiLink: webui,
      downloadLink: download,
      version: {
        number: v.number,
        createdAt: v.createdAt,
        message: v.comment,
        minorEdit: v.minorEdit,
        authorId: v.authorId,
      },
      _links: { download, webui },
    };
  }

  private download(call: Call, pageId: string, filename: string): void {
    const page = this.pagesById.get(pageId);
    const attachment = page?.restricted
      ? undefined
      : this.attachmentsOf(pageId).find((a) => a.filename === filename);
    if (!attachment) throw notFound(`Attachment not found: ${filename}`);
    const versionParam = call.url.searchParams.get('version');
    const version =
      versionParam === null
        ? lastOf(attachment.versions)
        : attachment.versions.find((v) => String(v.number) === versionParam);
    if (!version) throw notFound(`Attachment not found: ${filename}`);
    call.res.writeHead(200, {
      'Content-Type': version.mediaType,
      'Content-Length': version.bytes.length,
      'Content-Disposition': `attachment; filename*=UTF-8''${encodeURIComponent(filename)}`,
      'Last-Modified': new Date(version.createdAt).toUTCString(),
    });
    call.res.end(call.req.method === 'HEAD' ? undefined : version.bytes);
  }

  // -------------------------------------------------------------------------------------------
  // v1

  private async routeV1(call: Call, method: string, path: string): Promise<void> {
    const q = call.url.searchParams;
    if (path === '/content/search' && method === 'GET') {
      const cql = q.get('cql');
      if (cql === null) throw badRequest('cql parameter is required');
      const { where, order } = parseCql(cql, this.timeZone);
      let search = this.searches.get(cql);
      if (search?.revision !== this.revision) {
        // Search finds current pages only (archived ones are out of the index's default scope).
        const found = this.listedPages(new URLSearchParams(), ['current'])
          .map((p) => [p, this.searchable(p)] as const)
          .filter(([, s]) => where(s));
        found.sort(([, a], [, b]) => {
          for (const { field, desc } of order) {
            let diff = 0;
            if (field === 'title') diff = a.title.localeCompare(b.title);
            else if (field === 'created') diff = a.created - b.created;
            else diff = a.modified - b.modified;
            if (diff) return desc ? -diff : diff;
          }
          return byNumber(a.id, b.id);
        });
        search = { revision: this.revision, pages: found.map(([p]) => p) };
        if (this.searches.size >= 16) this.searches.clear();
        this.searches.set(cql, search);
      }
      return this.paginateV1(call, search.pages, (p) => this.contentV1(call, p));
    }
    if (path === '/content') {
      if (method === 'GET') {
        const type = q.get('type') ?? 'page';
        const spaceKey = q.get('spaceKey');
        const title = q.get('title');
        const space = spaceKey === null ? undefined : this.spaceByKey(spaceKey);
        const pages =
          type !== 'page' || (spaceKey !== null && !space)
            ? []
            : this.listedPages(q, ['current']).filter(
                (p) =>
                  (!space || p.spaceId === space.id) &&
                  (title === null || lastOf(p.versions).title === title),
              );
        return this.paginateV1(call, pages, (p) => this.contentV1(call, p));
      }
      if (method === 'POST') return this.createContentV1(call);
    }
    let m = /^\/content\/(\d+)$/.exec(path);
    if (m) {
      const id = m[1] as string;
      if (method === 'GET') {
        const page = this.readable(id, 'v1');
        const versionParam = q.get('version');
        let version = lastOf(page.versions);
        if (versionParam !== null) {
          const found = page.versions.find((v) => String(v.number) === versionParam);
          if (!found) throw notFound(`No content found with id: ContentId{id=${id}}`);
          version = found;
        }
        return sendJson(call.res, 200, this.single(call, this.contentV1(call, page, version)));
      }
      if (method === 'PUT') return this.updateContentV1(call, id);
    }
    m = /^\/content\/(\d+)\/child\/page$/.exec(path);
    if (m && method === 'GET') {
      const page = this.readable(m[1] as string, 'v1');
      const pages = this.childrenOf(page.id).filter((p) => p.type === 'page');
      return this.paginateV1(call, pages, (p) => this.contentV1(call, p));
    }
    m = /^\/content\/(\d+)\/child\/attachment$/.exec(path);
    if (m) {
      const id = m[1] as string;
      if (method === 'GET') {
        const page = this.readable(id, 'v1');
        const filename = q.get('filename');
        const mediaType = q.get('mediaType');
        const list = this.attachmentsOf(page.id).filter(
          (a) =>
            (filename === null || a.filename === filename) &&
            (mediaType === null || lastOf(a.versions).mediaType === mediaType),
        );
        return this.paginateV1(call, list, (a) => this.attachmentV1(call, a));
      }
      if (method === 'POST' || method === 'PUT') return this.uploadV1(call, id, method === 'PUT');
    }
    m = /^\/content\/(\d+)\/child\/attachment\/([^/]+)\/download$/.exec(path);
    if (m && method === 'GET') {
      // Cloud's download route for API callers; Data Center has none (it keeps the old path).
      if (!call.cloud) throw notFound(`null for uri: ${this.url}${call.url.pathname}`);
      const page = this.readable(m[1] as string, 'v1');
      const attachment = this.attachmentsById.get(decodeURIComponent(m[2] as string));
      if (attachment?.status !== 'current' || attachment.pageId !== page.id) {
        throw notFound(`No attachment found with id: ${m[2]}`);
      }
      const wanted = q.get('version');
      const version =
        wanted === null
          ? lastOf(attachment.versions)
          : attachment.versions.find((v) => String(v.number) === wanted);
      if (!version) throw notFound(`No attachment version ${wanted}`);
      const location = this.media.link({
        bytes: version.bytes,
        mediaType: version.mediaType,
        filename: attachment.filename,
      });
      call.res.writeHead(302, { Location: location, 'Content-Length': 0 }).end();
      return;
    }
    if (path === '/user/current' && method === 'GET') {
      const { account } = call;
      return sendJson(
        call.res,
        200,
        call.cloud
          ? {
              type: 'known',
              accountId: account.accountId,
              accountType: 'atlassian',
              email: account.username,
              publicName: account.displayName,
              displayName: account.displayName,
              timeZone: this.timeZone,
              isExternalCollaborator: false,
              _links: { base: this.base(call), context: call.context },
            }
          : {
              type: 'known',
              username: account.username,
              userKey: account.accountId.split(':')[1],
              displayName: account.displayName,
              _links: { base: this.base(call), context: call.context },
            },
      );
    }
    m = /^\/space\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      const key = decodeURIComponent(m[1] as string);
      const space = [...this.spaces.values()].find((s) => s.key === key);
      if (!space) throw notFound(`No space with key : ${key}`);
      return sendJson(call.res, 200, this.single(call, this.spaceV1(call, space)));
    }
    if (path === '/space' && method === 'GET') {
      const keys = q.getAll('spaceKey').flatMap((k) => k.split(','));
      const spaces = [...this.spaces.values()]
        .filter((s) => !keys.length || keys.includes(s.key))
        .sort((a, b) => byNumber(a.id, b.id));
      return this.paginateV1(call, spaces, (s) => this.spaceV1(call, s));
    }
    throw notFound(`null for uri: ${this.url}${call.url.pathname}`);
  }

  private base(call: Call): string {
    return `${this.url}${call.context}`;
  }

  /** A single v1 resource: its links also name the base and context, as Confluence's do. */
  private single<T extends { _links: Record<string, string> }>(call: Call, resource: T): T {
    return {
      ...resource,
      _links: { ...resource._links, base: this.base(call), context: call.context },
    };
  }

  private paginateV1<T>(call: Call, items: T[], render: (item: T) => unknown): void {
    const q = call.url.searchParams;
    const startParam = q.get('start') ?? '0';
    const limitParam = q.get('limit') ?? String(DEFAULT_LIMIT);
    if (!/^\d+$/.test(startParam)) throw badRequest(`Invalid start: ${startParam}`);
    if (!/^\d+$/.test(limitParam)) throw badRequest(`Invalid limit: ${limitParam}`);
    const start = Number(startParam);
    const limit = Math.min(Number(limitParam), this.options.v1LimitCap ?? 100);
    const slice = items.slice(start, start + limit);
    const base = this.base(call);
    const links: Record<string, string> = {
      base,
      context: call.context,
      self: `${this.url}${call.url.pathname.slice(call.prefix.length)}${call.url.search}`,
    };
    if (limit > 0 && start + limit < items.length) {
      const params = new URLSearchParams(q);
      params.set('limit', String(limit));
      params.set('start', String(start + limit));
      links.next = `${call.url.pathname.slice(call.prefix.length + call.context.length)}?${params}`;
    }
    sendJson(call.res, 200, {
      results: slice.map(render),
      start,
      limit,
      size: slice.length,
      _links: links,
    });
  }

  private expand(call: Call): Set<string> {
    return new Set(
      (call.url.searchParams.get('expand') ?? '')
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean),
    );
  }

  private by(call: Call, accountId: string) {
    const account =
      [...this.users.values()].map((u) => u.account).find((a) => a.accountId === accountId) ??
      [...this.tokens.values()].find((a) => a.accountId === accountId) ??
      SEED_ACCOUNT;
    return call.cloud
      ? {
          type: 'known',
          accountId: account.accountId,
          accountType: 'atlassian',
          displayName: account.displayName,
          publicName: account.displayName,
        }
      : {
          type: 'known',
          username: account.username,
          userKey: account.accountId.split(':')[1],
          displayName: account.displayName,
        };
  }

  private spaceV1(call: Call, space: StoredSpace) {
    return {
      id: Number(space.id),
      key: space.key,
      name: space.name,
      type: 'global',
      status: 'current',
      ...(space.homepageId
        ? {
            homepage: {
              id: space.homepageId,
              type: 'page',
              status: 'current',
              title: lastOf((this.pagesById.get(space.homepageId) as StoredPage).versions).title,
            },
          }
        : {}),
      _links: {
        webui: call.cloud ? `/spaces/${space.key}` : `/display/${space.key}`,
        self: `${this.base(call)}/rest/api/space/${space.key}`,
      },
    };
  }

  private contentV1(
    call: Call,
    page: StoredPage,
    version = lastOf(page.versions),
    expand = this.expand(call),
  ) {
    const space = this.spaces.get(page.spaceId) as StoredSpace;
    const base = this.base(call);
    const expandable: Record<string, string> = {
      children: `/rest/api/content/${page.id}/child`,
      descendants: `/rest/api/content/${page.id}/descendant`,
      history: `/rest/api/content/${page.id}/history`,
      container: `/rest/api/space/${space.key}`,
    };
    if (!expand.has('ancestors')) expandable.ancestors = '';
    if (!expand.has('body.storage')) expandable.body = '';
    return {
      id: page.id,
      type: 'page',
      status: page.status,
      title: version.title,
      space: {
        id: Number(space.id),
        key: space.key,
        name: space.name,
        type: 'global',
        status: 'current',
        _links: {
          webui: call.cloud ? `/spaces/${space.key}` : `/display/${space.key}`,
          self: `${base}/rest/api/space/${space.key}`,
        },
      },
      version: {
        by: this.by(call, version.authorId),
        when: version.createdAt,
        message: version.message,
        number: version.number,
        minorEdit: version.minorEdit,
      },
      ...(expand.has('ancestors')
        ? {
            ancestors: this.ancestorsOf(page).map((a) => ({
              id: a.id,
              type: a.type,
              status: a.status,
              title: lastOf(a.versions).title,
            })),
          }
        : {}),
      ...(expand.has('body.storage')
        ? { body: { storage: { value: version.body, representation: 'storage' } } }
        : {}),
      _expandable: expandable,
      _links: {
        webui: call.cloud
          ? `/spaces/${space.key}/pages/${page.id}/${plusEncoded(version.title)}`
          : `/pages/viewpage.action?pageId=${page.id}`,
        edit: `/pages/resumedraft.action?draftId=${page.id}`,
        tinyui: tinyLink(page.id),
        self: `${base}/rest/api/content/${page.id}`,
      },
    };
  }

  private storageBodyV1(body: unknown): string | undefined {
    if (body === undefined) return undefined;
    const storage = (body as { storage?: { value?: unknown; representation?: unknown } })?.storage;
    if (!storage || typeof storage.value !== 'string') {
      throw badRequest('Only body.storage is supported');
    }
    if (storage.representation !== undefined && storage.representation !== 'storage') {
      throw badRequest(`Unsupported representation: ${String(storage.representation)}`);
    }
    return storage.value;
  }

  /** The parent an `ancestors` list names: its last entry. */
  private ancestorParent(ancestors: unknown): string | undefined {
    if (ancestors === undefined || ancestors === null) return undefined;
    if (!Array.isArray(ancestors)) throw badRequest('ancestors must be a list');
    const last = ancestors[ancestors.length - 1] as { id?: unknown } | undefined;
    if (last === undefined) return undefined;
    if (typeof last.id !== 'string' && typeof last.id !== 'number') {
      throw badRequest('An ancestor needs an id');
    }
    return String(last.id);
  }

  private async createContentV1(call: Call): Promise<void> {
    const input = await this.jsonBody(call);
    if (input.type !== 'page') {
      throw badRequest(`Unsupported content type: ${String(input.type)}`);
    }
    const { title } = input;
    if (typeof title !== 'string' || !title.trim()) throw badRequest('Title is required');
    const key = (input.space as { key?: unknown } | undefined)?.key;
    if (typeof key !== 'string') throw badRequest('Space key is required');
    const space = [...this.spaces.values()].find((s) => s.key === key);
    if (!space) throw notFound(`No space with key : ${key}`);
    const body = this.storageBodyV1(input.body) ?? '';
    const parentId = this.ancestorParent(input.ancestors);
    if (parentId) {
      this.checkParent(undefined, space.id, parentId, 'v1');
      this.writable(parentId, 'v1');
    }
    if (this.titleTaken(space.id, title)) {
      throw badRequest(
        `A page with this title already exists: A page already exists with the title ${title} in the space with key ${space.key}`,
      );
    }
    const now = iso(Date.now());
    const page = this.insertPage(space.id, title, body, parentId ?? null, call.account, now, now);
    const expand = new Set([...this.expand(call), 'body.storage', 'ancestors']);
    sendJson(
      call.res,
      200,
      this.single(call, this.contentV1(call, page, lastOf(page.versions), expand)),
    );
  }

  private async updateContentV1(call: Call, id: string): Promise<void> {
    const input = await this.jsonBody(call);
    const page = this.writable(id, 'v1');
    if (page.status === 'archived') throw badRequest('An archived page cannot be edited.');
    if (input.id !== undefined && String(input.id) !== id) {
      throw badRequest('The id in the body does not match the id in the path');
    }
    if (input.type !== undefined && input.type !== 'page') {
      throw badRequest(`Unsupported content type: ${String(input.type)}`);
    }
    const { title } = input;
    if (typeof title !== 'string' || !title.trim()) throw badRequest('Title is required');
    const version = input.version as { number?: unknown; message?: unknown } | undefined;
    if (typeof version?.number !== 'number') throw badRequest('Version is required');
    const current = lastOf(page.versions);
    if (version.number !== current.number + 1) {
      throw new ApiError(
        409,
        `Version must be incremented on update. Current version is: ${current.number}`,
      );
    }
    const body = this.storageBodyV1(input.body) ?? current.body;
    if (title !== current.title && this.titleTaken(page.spaceId, title, id)) {
      const space = this.spaces.get(page.spaceId) as StoredSpace;
      throw badRequest(
        `A page with this title already exists: A page already exists with the title ${title} in the space with key ${space.key}`,
      );
    }
    const parentId = this.ancestorParent(input.ancestors) || undefined;
    this.saveVersion(call, page, {
      parentId,
      version: { ...version, number: version.number },
      title,
      body,
      api: 'v1',
    });
    const expand = new Set([...this.expand(call), 'body.storage', 'ancestors']);
    sendJson(
      call.res,
      200,
      this.single(call, this.contentV1(call, page, lastOf(page.versions), expand)),
    );
  }

  private attachmentV1(call: Call, a: StoredAttachment) {
    const v = lastOf(a.versions);
    const base = this.base(call);
    return {
      id: a.id,
      type: 'attachment',
      status: 'current',
      title: a.filename,
      version: {
        by: this.by(call, v.authorId),
        when: v.createdAt,
        message: v.comment,
        number: v.number,
        minorEdit: v.minorEdit,
      },
      container: { id: a.pageId, type: 'page' },
      metadata: { mediaType: v.mediaType, comment: v.comment },
      extensions: {
        mediaType: v.mediaType,
        fileSize: v.bytes.length,
        comment: v.comment,
        ...(call.cloud
          ? { mediaTypeDescription: mediaTypeDescription(v.mediaType), fileId: a.fileId }
          : {}),
      },
      _links: {
        webui: this.attachmentWebui(a),
        download: this.downloadLink(call.cloud, a),
        self: `${base}/rest/api/content/${a.id}`,
      },
    };
  }

  private async uploadV1(call: Call, pageId: string, put: boolean): Promise<void> {
    const body = await readBody(call.req);
    const page = this.writable(pageId, 'v1');
    const token = String(call.req.headers['x-atlassian-token'] ?? '').toLowerCase();
    if (token !== 'no-check' && token !== 'nocheck') {
      throw new ApiError(403, 'XSRF check failed');
    }
    const type = call.req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data/i.test(type)) {
      throw new ApiError(415, 'Unsupported Media Type: expected multipart/form-data');
    }
    const parts = parseFormData(body, type);
    const files = parts.filter((p) => p.name === 'file' && p.filename !== undefined);
    if (!files.length) throw badRequest('At least one file must be given in a "file" part.');
    // A text part is read as ISO-8859-1 unless it says charset=utf-8, as Atlassian's docs warn.
    const comments = parts
      .filter((p) => p.name === 'comment')
      .map((p) =>
        p.data.toString(/charset="?utf-8/i.test(p.contentType ?? '') ? 'utf8' : 'latin1'),
      );
    const minorEdit = parts.find((p) => p.name === 'minorEdit')?.data.toString('utf8') === 'true';
    const names = files.map((f) => f.filename as string);
    for (const [i, name] of names.entries()) {
      if (!name) throw badRequest('A file part needs a file name.');
      if (names.indexOf(name) !== i) throw badRequest(`The file name ${name} is given twice.`);
      if (!put && this.attachmentsOf(page.id).some((a) => a.filename === name)) {
        throw badRequest(
          `Cannot add a new attachment with same file name as an existing attachment: ${name}`,
        );
      }
    }
    const stored = files.map((file, i) =>
      this.putAttachment(
        page.id,
        file.filename as string,
        file.data,
        attachmentType(file.filename as string, file.contentType),
        comments[i] ?? '',
        minorEdit,
        call.account,
      ),
    );
    sendJson(call.res, 200, {
      results: stored.map((a) => this.attachmentV1(call, a)),
      size: stored.length,
      _links: { base: this.base(call), context: call.context },
    });
  }
}

/** Starts a server on a random loopback port (or `port`). */
export async function startConfluenceServer(
  options: ConfluenceServerOptions = {},
  port = 0,
): Promise<{ server: ConfluenceServer; url: string; stop: () => Promise<void> }> {
  const server = new ConfluenceServer(options);
  const url = await server.listen(port);
  return { server, url, stop: () => server.close() };
}

/** A random API token of the kind Atlassian issues (for fixtures and `serve`). */
export const confluenceToken = () => `ATATT3x${randomBytes(24).toString('base64url')}`;
