/**
 * A Google Drive server for tests: the parts of the Drive API v3 that a connector reading and
 * writing folders uses, plus the OAuth 2.0 refresh-token grant, in memory, on 127.0.0.1. There
 * is no Drive emulator, so this one is written from Google's public reference,
 * https://developers.google.com/drive/api/reference/rest/v3 , and answers with the real API's
 * shapes: `kind`, partial responses, error bodies with their reasons and locations.
 *
 * Covered (paths relative to the server's base URL; all but /token and /images need
 * `Authorization: Bearer <token>` with a token from `addToken` or /token):
 * - GET    /drive/v3/files                    files.list: q (grammar below), pageSize (1..1000,
 *          default 100), pageToken, orderBy (name, name_natural, modifiedTime, createdTime,
 *          folder; each optionally `desc`), fields, corpora (user, domain, drive, allDrives),
 *          driveId, includeItemsFromAllDrives, supportsAllDrives
 *          https://developers.google.com/drive/api/reference/rest/v3/files/list
 * - GET    /drive/v3/files/{fileId}           files.get: metadata (fields), or the bytes with
 *          alt=media, Range (206, 416); 403 fileNotDownloadable for Google Workspace files
 *          https://developers.google.com/drive/api/reference/rest/v3/files/get
 * - GET    /drive/v3/files/{fileId}/export    files.export?mimeType=: 403 fileNotExportable for
 *          other files, 400 badRequest for a conversion the file lacks, 403
 *          exportSizeLimitExceeded above 10 MB
 *          https://developers.google.com/drive/api/reference/rest/v3/files/export
 * - POST   /drive/v3/files                    files.create from metadata (folders, shortcuts,
 *          empty files): name, mimeType, parents, appProperties, properties, description,
 *          modifiedTime, shortcutDetails.targetId
 *          https://developers.google.com/drive/api/reference/rest/v3/files/create
 * - POST   /upload/drive/v3/files             files.create with uploadType=media, multipart
 *          (multipart/related: JSON metadata, then the media) or resumable (answered 200 with the
 *          session URI in Location); converts text/plain, text/markdown and text/html to a Doc and
 *          text/csv to a Sheet when the metadata asks for that Google type
 *          https://developers.google.com/drive/api/guides/manage-uploads
 * - PATCH  /drive/v3/files/{fileId}           files.update: name, description, modifiedTime,
 *          trashed, appProperties / properties (merged; null deletes a key), addParents /
 *          removeParents (a file keeps one parent, as Drive now requires)
 *          https://developers.google.com/drive/api/reference/rest/v3/files/update
 * - PATCH  /upload/drive/v3/files/{fileId}    files.update with new content, the same upload types
 * - PUT    {session URI}                      resumable chunks (`Content-Range: bytes a-b/total`
 *          or `a-b/*`; chunks other than the last must be multiples of 256 KiB), status queries
 *          (`bytes *\/total`) answered 308 with `Range: bytes=0-n`, completion answered 200 with
 *          the file. The session URI is the credential, as on Drive.
 * - DELETE {session URI}                      cancels the upload (499)
 * - DELETE /drive/v3/files/{fileId}           files.delete (folders with their contents): 204
 *          https://developers.google.com/drive/api/reference/rest/v3/files/delete
 * - GET    /drive/v3/changes/startPageToken   changes.getStartPageToken (driveId)
 *          https://developers.google.com/drive/api/reference/rest/v3/changes/getStartPageToken
 * - GET    /drive/v3/changes                  changes.list: pageToken (required), pageSize,
 *          fields, includeRemoved, restrictToMyDrive, driveId, supportsAllDrives,
 *          includeItemsFromAllDrives. Each file is listed once, at its latest change; the last
 *          page carries newStartPageToken. Every create, rename, move, trash, content or metadata
 *          change, through the API or the seeding methods, is a change.
 *          https://developers.google.com/drive/api/reference/rest/v3/changes/list
 * - POST   /token                             OAuth 2.0 refresh_token grant (form: client_id,
 *          client_secret, refresh_token) for `addRefreshToken`; invalid_grant / invalid_client
 *          https://developers.google.com/identity/protocols/oauth2/web-server#offline
 * - GET    /images/{name}                     public bytes, like the lh*.googleusercontent.com
 *          images that Doc HTML exports point at
 *
 * The q grammar (https://developers.google.com/drive/api/guides/ref-search-terms), keywords in
 * any case, strings in single quotes with \' and \\ escapes, 'root' naming the My Drive root:
 *   query := or;  or := and ('or' and)*;  and := unary ('and' unary)*
 *   unary := 'not' unary | '(' or ')' | term
 *   term  := STRING 'in' 'parents'
 *          | 'trashed' ('=' | '!=') ('true' | 'false')
 *          | ('name' | 'mimeType') ('=' | '!=' | 'contains') STRING
 *          | ('modifiedTime' | 'createdTime') ('<' | '<=' | '=' | '!=' | '>' | '>=') RFC3339
 *          | ('appProperties' | 'properties') 'has' '{' 'key' '=' STRING 'and' 'value' '=' STRING '}'
 * `name contains` matches a prefix of the name or of one of its words, case-insensitively, as
 * Drive documents; `mimeType contains` matches a substring. Anything else is 400 invalid on q.
 *
 * Modelled as Drive treats callers, each with its source:
 * - Throttling: with `userRateLimit`, calls over the per-user quota are answered 403
 *   userRateLimitExceeded, with the body and wording of a real answer (tidyverse/googledrive#380);
 *   `driveThrottle` gives that body and those of 403 rateLimitExceeded and 429, for fault rules.
 *   https://developers.google.com/drive/api/guides/limits
 *   https://developers.google.com/drive/api/guides/handle-errors
 * - Scopes: a token registered without a Drive scope (as `gcloud auth print-access-token`
 *   gives by default) is refused with 403 insufficientPermissions, "Request had insufficient
 *   authentication scopes.", status PERMISSION_DENIED and ACCESS_TOKEN_SCOPE_INSUFFICIENT;
 *   drive.readonly allows only GETs. (GoogleCloudPlatform/genai-for-marketing#45,
 *   xing5/mcp-google-sheets#29)
 * - Service accounts own no storage: creating anything but a folder outside a shared drive is
 *   403 storageQuotaExceeded with Drive's message (n8n-io/n8n#26050,
 *   Jumbo810/Upload_Github_Artifacts_TO_GDrive#22).
 *   https://developers.google.com/workspace/drive/api/guides/about-shareddrives
 * - appProperties are private to the OAuth client of the token that wrote them: other clients
 *   neither see nor find them; properties are public.
 *   https://developers.google.com/drive/api/guides/properties
 * - Docs Editors files report a `size` (the storage they take), unrelated to their exports'.
 * - Exports over 10 MB: 403 exportSizeLimitExceeded, but 500 internalError for text/html and
 *   application/pdf (google-api-ruby-client#664, nytimes/library#388).
 * - Sharing or commenting (`share`) gives a file a new `version` and a change in the feed,
 *   not a new modifiedTime.
 * - A `corpora=allDrives` search may skip shared drives (`searchableSharedDrives`) and then
 *   says `incompleteSearch: true`. https://developers.google.com/drive/api/reference/rest/v3/files/list
 * - Multipart uploads with LF line ends and quoted boundaries, as Python clients send them.
 *
 * As on Drive: files.list includes trashed files unless q says `trashed = false`; items of a
 * shared drive are listed only with supportsAllDrives=true and includeItemsFromAllDrives=true,
 * and are 404 to files.get/update/delete without supportsAllDrives=true; names need not be
 * unique; responses hold only kind, id, name and mimeType unless `fields` asks for more, and a
 * field the resource does not have is 400 invalidParameter; a Doc's text/plain export starts with
 * a byte order mark and ends lines with CRLF.
 *
 * Errors use Drive's body, `{"error":{"code","message","errors":[{"message","domain","reason",
 * "location","locationType"}]}}`, with its reasons (notFound, invalid, required, badRequest,
 * invalidParameter, fileNotDownloadable, fileNotExportable, exportSizeLimitExceeded, authError,
 * teamDriveIncludeItemsRequired, teamDriveIdRequiresTeamDriveCorpora, fieldNotWritable,
 * cannotAddParent, badContent, parseError, requestedRangeNotSatisfiable, insufficientPermissions,
 * storageQuotaExceeded, userRateLimitExceeded, internalError); 401s also carry
 * `"status":"UNAUTHENTICATED"` and a WWW-Authenticate challenge.
 * https://developers.google.com/drive/api/guides/handle-errors
 *
 * googleapis (176) sends uploads to a URL made from the call's own `rootUrl` option, not the
 * client's: pass `{ rootUrl }` to files.create / files.update calls that carry media.
 * Not covered: permissions and sharing, revisions, comments, files.copy, the drives resource
 * (shared drives are made with `createSharedDrive`), fullText and the other q terms, push
 * notifications, batch requests, Docs/Sheets/Slides content beyond their text exports.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import mime from 'mime-types';
import { type GeneratedBucket, generatedObjects } from './generated.js';
import {
  boundaryOf,
  type FieldTree,
  multipartParts,
  parseFields,
  resumeIncomplete,
  selectFields,
  takeChunk,
} from './google-api.js';
import { LoopbackServer, readBody, sendJson } from './loopback.js';

export interface DriveServerOptions {
  /** Largest pageSize honoured by files.list (default 1000, the real limit); changes.list too. */
  maxPageSize?: number;
  /**
   * Drive's per-user quota: at most `requests` API calls per token in any `perSeconds`;
   * beyond it, 403 userRateLimitExceeded. Default: none.
   */
  userRateLimit?: { requests: number; perSeconds: number };
  /**
   * Shared drives a `corpora=allDrives` search covers; with more, it reports
   * `incompleteSearch: true` and leaves the others out. Default: all.
   */
  searchableSharedDrives?: number;
}

/** Who a token stands for, as Google's token server would have issued it. */
export interface TokenIdentity {
  /** The OAuth client the token was issued to: appProperties are private to it. */
  clientId?: string;
  /** A service account: it owns no storage, so it creates files only in shared drives. */
  serviceAccount?: boolean;
  /** OAuth scopes (default: the full Drive scope). */
  scopes?: string[];
}

/** The OAuth client of tokens registered without one. */
export const DEFAULT_CLIENT_ID = 'sluice-test.apps.googleusercontent.com';
export const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
export const DRIVE_READONLY_SCOPE = 'https://www.googleapis.com/auth/drive.readonly';

type Caller = Required<TokenIdentity>;

/** What the server stores for a file: the fields of the Drive File resource it serves. */
export interface DriveFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  /** For files in a shared drive. */
  driveId?: string;
  trashed: boolean;
  createdTime: string;
  modifiedTime: string;
  /** int64 as a string, bumped on every change (metadata or content). */
  version: string;
  /** Binary files only: changes when the content changes. */
  headRevisionId?: string;
  /** Binary files only. */
  md5Checksum?: string;
  /** Binary files only. */
  size?: string;
  /** By OAuth client id: each client sees and finds only its own. */
  appProperties?: Record<string, Record<string, string>>;
  properties?: Record<string, string>;
  description?: string;
  shortcutDetails?: { targetId: string; targetMimeType: string };
  /** Binary files. */
  content?: Buffer;
  /** Google Workspace files: export mime type -> bytes. */
  exports?: Record<string, Buffer>;
}

const FOLDER = 'application/vnd.google-apps.folder';
const SHORTCUT = 'application/vnd.google-apps.shortcut';
const DOCUMENT = 'application/vnd.google-apps.document';
const SPREADSHEET = 'application/vnd.google-apps.spreadsheet';
const PRESENTATION = 'application/vnd.google-apps.presentation';
const GOOGLE_APPS = 'application/vnd.google-apps.';
const MAX_PAGE_SIZE = 1000;
const DEFAULT_PAGE_SIZE = 100;
const EXPORT_LIMIT = 10 * 1024 * 1024;
const STATUS_CLIENT_CLOSED = 499;
const AUTH_HINT =
  ' Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';

/** What some answers add to the error body and headers. */
interface ErrorExtra {
  /** The error item's own message, when it differs from the top one. */
  itemMessage?: string;
  /** The item's domain (default `global`; quotas are `usageLimits`). */
  domain?: string;
  extendedHelp?: string;
  /** The top-level `status` (UNAUTHENTICATED, PERMISSION_DENIED). */
  status?: string;
  details?: unknown[];
  /** A WWW-Authenticate challenge. */
  challenge?: string;
}

/** The error answers the server gives, shaped and worded like the real API's. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly location?: { location: string; locationType: string },
    readonly extra: ErrorExtra = {},
  ) {
    super(message);
  }
}

/** The JSON body of an error answer, as Drive sends it. */
function errorBody(error: ApiError): unknown {
  const { extra } = error;
  const item = {
    message: extra.itemMessage ?? error.message,
    domain: extra.domain ?? 'global',
    reason: error.reason,
    ...error.location,
    ...(extra.extendedHelp ? { extendedHelp: extra.extendedHelp } : {}),
  };
  return {
    error: {
      code: error.status,
      message: error.message,
      errors: [item],
      ...(extra.status ? { status: extra.status } : {}),
      ...(extra.details ? { details: extra.details } : {}),
    },
  };
}

const QUOTA_URL =
  'https://console.developers.google.com/apis/api/drive.googleapis.com/quotas?project=000000000000';

/**
 * Drive's throttling answers, as it sends them: 403 userRateLimitExceeded (the per-user
 * quota; its wording from a real answer, tidyverse/googledrive#380), 403 rateLimitExceeded
 * and 429 (https://developers.google.com/drive/api/guides/handle-errors,
 * https://developers.google.com/drive/api/guides/limits). Spread into a fault proxy rule.
 */
export function driveThrottle(kind: 'userRateLimitExceeded' | 'rateLimitExceeded' | '429'): {
  status: number;
  body: string;
} {
  const error = throttled(kind);
  return { status: error.status, body: JSON.stringify(errorBody(error)) };
}

function throttled(kind: 'userRateLimitExceeded' | 'rateLimitExceeded' | '429'): ApiError {
  if (kind === 'userRateLimitExceeded') {
    const message = `User Rate Limit Exceeded. Rate of requests for user exceed configured project quota. You may consider re-evaluating expected per-user traffic to the API and adjust project quota limits accordingly. You may monitor aggregate quota usage and adjust limits in the API Console: ${QUOTA_URL}`;
    return new ApiError(403, 'userRateLimitExceeded', message, undefined, {
      domain: 'usageLimits',
      extendedHelp: QUOTA_URL,
    });
  }
  return new ApiError(
    kind === '429' ? 429 : 403,
    'rateLimitExceeded',
    'Rate Limit Exceeded',
    undefined,
    {
      domain: 'usageLimits',
    },
  );
}

/** What a handler threw, as an API error: anything unexpected is a 500 backendError. */
const asApiError = (error: unknown) =>
  error instanceof ApiError ? error : new ApiError(500, 'backendError', (error as Error).message);

const param = (location: string) => ({ location, locationType: 'parameter' });
const notFound = (id: string) =>
  new ApiError(404, 'notFound', `File not found: ${id}.`, param('fileId'));
const invalid = (name: string) => new ApiError(400, 'invalid', 'Invalid Value', param(name));
const badFields = () => invalid('fields');
const required = (name: string) =>
  new ApiError(400, 'required', `Required parameter: ${name}`, param(name));
const sharedDriveNotFound = (id: string) =>
  new ApiError(404, 'notFound', `Shared drive not found: ${id}`, param('driveId'));
const conversionNotSupported = () =>
  new ApiError(400, 'badRequest', 'The requested conversion is not supported.', param('convertTo'));

const newId = () => `1${randomBytes(24).toString('base64url')}`;
/** Root folder ids (My Drive, shared drives) end in base64 "ROOT", as Drive's do. */
const newRootId = () => `0A${randomBytes(12).toString('base64url')}Uk9PVA`;
const newRevisionId = () => `0B${randomBytes(24).toString('base64url')}`;
const mediaType = (type: string | undefined) => (type ?? '').split(';')[0]?.trim().toLowerCase();
const flag = (q: URLSearchParams, name: string) => q.get(name) === 'true';

// ---------------------------------------------------------------------------------------------
// Partial responses: `fields`

/** The fields each response may select, to refuse misspelt ones as Drive does. */
type Schema = { [field: string]: Schema | true };

const FILE_SCHEMA: Schema = Object.fromEntries(
  [
    'appProperties',
    'capabilities',
    'contentHints',
    'contentRestrictions',
    'copyRequiresWriterPermission',
    'createdTime',
    'description',
    'downloadRestrictions',
    'driveId',
    'explicitlyTrashed',
    'exportLinks',
    'fileExtension',
    'folderColorRgb',
    'fullFileExtension',
    'hasAugmentedPermissions',
    'hasThumbnail',
    'headRevisionId',
    'iconLink',
    'id',
    'imageMediaMetadata',
    'inheritedPermissionsDisabled',
    'isAppAuthorized',
    'kind',
    'labelInfo',
    'lastModifyingUser',
    'linkShareMetadata',
    'md5Checksum',
    'mimeType',
    'modifiedByMe',
    'modifiedByMeTime',
    'modifiedTime',
    'name',
    'originalFilename',
    'ownedByMe',
    'owners',
    'parents',
    'permissionIds',
    'permissions',
    'properties',
    'quotaBytesUsed',
    'resourceKey',
    'sha1Checksum',
    'sha256Checksum',
    'shared',
    'sharedWithMeTime',
    'sharingUser',
    'shortcutDetails',
    'size',
    'spaces',
    'starred',
    'teamDriveId',
    'thumbnailLink',
    'thumbnailVersion',
    'trashed',
    'trashedTime',
    'trashingUser',
    'version',
    'videoMediaMetadata',
    'viewedByMe',
    'viewedByMeTime',
    'viewersCanCopyContent',
    'webContentLink',
    'webViewLink',
    'writersCanShare',
  ].map((name) => [name, true]),
);

const SCHEMAS = {
  file: FILE_SCHEMA,
  fileList: { kind: true, nextPageToken: true, incompleteSearch: true, files: FILE_SCHEMA },
  changeList: {
    kind: true,
    nextPageToken: true,
    newStartPageToken: true,
    changes: {
      kind: true,
      changeType: true,
      type: true,
      time: true,
      removed: true,
      fileId: true,
      file: FILE_SCHEMA,
      driveId: true,
      drive: true,
      teamDriveId: true,
      teamDrive: true,
    },
  },
  startPageToken: { kind: true, startPageToken: true },
} satisfies Record<string, Schema>;

/** What a response holds without `fields`: files are cut to kind, id, name and mimeType. */
const DEFAULT_FIELDS: Record<keyof typeof SCHEMAS, FieldTree> = {
  file: parseFields('kind,id,name,mimeType', badFields),
  fileList: parseFields(
    'kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)',
    badFields,
  ),
  changeList: parseFields(
    'kind,nextPageToken,newStartPageToken,changes(kind,changeType,type,time,removed,fileId,file(kind,id,name,mimeType))',
    badFields,
  ),
  startPageToken: parseFields('*', badFields),
};

function checkFields(tree: FieldTree, schema: Schema): void {
  for (const [name, sub] of tree) {
    if (name === '*') continue;
    const known = Object.hasOwn(schema, name) ? schema[name] : undefined;
    if (!known) {
      throw new ApiError(
        400,
        'invalidParameter',
        `Invalid field selection ${name}`,
        param('fields'),
      );
    }
    if (sub !== true && known !== true) checkFields(sub, known);
  }
}

// ---------------------------------------------------------------------------------------------
// Search queries: `q`

type Predicate = (file: DriveFile) => boolean;
type Token = { kind: 'string' | 'word' | 'op' | 'punct'; text: string };

function tokenize(q: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < q.length) {
    const c = q[at] as string;
    if (/\s/.test(c)) {
      at++;
    } else if (c === "'") {
      let text = '';
      at++;
      for (;;) {
        const d = q[at++];
        if (d === undefined) throw invalid('q');
        if (d === "'") break;
        if (d === '\\') {
          const escaped = q[at++];
          if (escaped !== "'" && escaped !== '\\') throw invalid('q');
          text += escaped;
        } else text += d;
      }
      tokens.push({ kind: 'string', text });
    } else if ('(){}'.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      at++;
    } else {
      const op = /^(!=|<=|>=|=|<|>)/.exec(q.slice(at))?.[1];
      const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(q.slice(at))?.[0];
      if (op) tokens.push({ kind: 'op', text: op });
      else if (word) tokens.push({ kind: 'word', text: word });
      else throw invalid('q');
      at += (op ?? word ?? '').length;
    }
  }
  return tokens;
}

/** RFC 3339, UTC when the zone is left out (as Drive reads it). */
function parseTime(text: string): number {
  const m = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?$/i.exec(text);
  const time = m ? Date.parse(m[1] ? text : `${text}Z`) : Number.NaN;
  if (!Number.isFinite(time)) throw invalid('q');
  return time;
}

function compare(op: string, a: number, b: number): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

/** `name contains 'x'`: a prefix of the name or of one of its words, ignoring case. */
function nameContains(name: string, value: string): boolean {
  const needle = value.toLowerCase();
  const lower = name.toLowerCase();
  return (
    lower.startsWith(needle) || lower.split(/[^\p{L}\p{N}]+/u).some((w) => w.startsWith(needle))
  );
}

function parseQuery(q: string, resolve: (id: string) => string, caller: Caller): Predicate {
  const tokens = tokenize(q);
  let at = 0;
  const peek = () => tokens[at];
  const isKeyword = (word: string) =>
    peek()?.kind === 'word' && peek()?.text.toLowerCase() === word;
  const take = (kind: Token['kind'], text?: string): string => {
    const token = tokens[at++];
    const matches =
      token?.kind === kind &&
      (text === undefined ||
        (kind === 'word' ? token.text.toLowerCase() === text.toLowerCase() : token.text === text));
    if (!matches) throw invalid('q');
    return token.text;
  };
  const takeOp = (allowed: string[]): string => {
    if (peek()?.kind === 'word' && allowed.includes(peek()?.text.toLowerCase() as string)) {
      return (tokens[at++] as Token).text.toLowerCase();
    }
    const op = take('op');
    if (!allowed.includes(op)) throw invalid('q');
    return op;
  };

  const term = (): Predicate => {
    const token = tokens[at++];
    if (token?.kind === 'string') {
      take('word', 'in');
      take('word', 'parents');
      const id = resolve(token.text);
      return (f) => f.parents.includes(id);
    }
    if (token?.kind !== 'word') throw invalid('q');
    switch (token.text) {
      case 'trashed': {
        const op = takeOp(['=', '!=']);
        const value = take('word').toLowerCase();
        if (value !== 'true' && value !== 'false') throw invalid('q');
        return (f) => (f.trashed === (value === 'true')) === (op === '=');
      }
      case 'name':
      case 'mimeType': {
        const field = token.text as 'name' | 'mimeType';
        const op = takeOp(['=', '!=', 'contains']);
        const value = take('string');
        if (op === 'contains') {
          return field === 'name'
            ? (f) => nameContains(f.name, value)
            : (f) => f.mimeType.includes(value);
        }
        return (f) => (f[field] === value) === (op === '=');
      }
      case 'modifiedTime':
      case 'createdTime': {
        const field = token.text as 'modifiedTime' | 'createdTime';
        const op = takeOp(['<', '<=', '=', '!=', '>', '>=']);
        const time = parseTime(take('string'));
        return (f) => compare(op, Date.parse(f[field]), time);
      }
      case 'appProperties':
      case 'properties': {
        const field = token.text as 'appProperties' | 'properties';
        take('word', 'has');
        take('punct', '{');
        take('word', 'key');
        takeOp(['=']);
        const key = take('string');
        take('word', 'and');
        take('word', 'value');
        takeOp(['=']);
        const value = take('string');
        take('punct', '}');
        return field === 'appProperties'
          ? (f) => f.appProperties?.[caller.clientId]?.[key] === value
          : (f) => f.properties?.[key] === value;
      }
      default:
        throw invalid('q');
    }
  };
  const unary = (): Predicate => {
    if (isKeyword('not')) {
      at++;
      const inner = unary();
      return (f) => !inner(f);
    }
    if (peek()?.kind === 'punct' && peek()?.text === '(') {
      at++;
      const inner = or();
      take('punct', ')');
      return inner;
    }
    return term();
  };
  const and = (): Predicate => {
    let left = unary();
    while (isKeyword('and')) {
      at++;
      const [l, r] = [left, unary()];
      left = (f) => l(f) && r(f);
    }
    return left;
  };
  const or = (): Predicate => {
    let left = and();
    while (isKeyword('or')) {
      at++;
      const [l, r] = [left, and()];
      left = (f) => l(f) || r(f);
    }
    return left;
  };

  if (tokens.length === 0) return () => true;
  const predicate = or();
  if (at !== tokens.length) throw invalid('q');
  return predicate;
}

type Comparator = (a: DriveFile, b: DriveFile) => number;

function parseOrder(spec: string | null): Comparator | undefined {
  if (!spec) return undefined;
  const keys: Comparator[] = spec.split(',').map((part) => {
    const m = /^\s*(\w+)(?:\s+(desc|asc))?\s*$/i.exec(part);
    const by: Record<string, Comparator> = {
      name: (a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()),
      name_natural: (a, b) =>
        a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: 'base' }),
      modifiedTime: (a, b) => Date.parse(a.modifiedTime) - Date.parse(b.modifiedTime),
      createdTime: (a, b) => Date.parse(a.createdTime) - Date.parse(b.createdTime),
      folder: (a, b) => Number(b.mimeType === FOLDER) - Number(a.mimeType === FOLDER),
    };
    const key = m ? by[m[1] as string] : undefined;
    if (!key) throw invalid('orderBy');
    return m?.[2]?.toLowerCase() === 'desc' ? (a, b) => key(b, a) : key;
  });
  return (a, b) => {
    for (const key of keys) {
      const order = key(a, b);
      if (order !== 0) return order;
    }
    return 0;
  };
}

// ---------------------------------------------------------------------------------------------
// Google Workspace files: their exports

const escapeHtml = (text: string) =>
  text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');

function linesOf(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 1 && lines.at(-1) === '') lines.pop();
  return lines;
}

/** The text of an HTML document, one line per block, for a Doc imported from HTML. */
function htmlText(html: string): string {
  return html
    .replace(/<(head|style|script)[\s\S]*?<\/\1>/gi, '')
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/(p|div|li|h[1-6]|tr)>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\n$/, '');
}

/** A Doc's exports. Docs export plain text with a byte order mark and CRLF line ends. */
function docExports(doc: {
  text: string;
  html?: string;
  markdown?: string;
}): Record<string, Buffer> {
  const paragraphs = linesOf(doc.text).map((line) => `<p><span>${escapeHtml(line)}</span></p>`);
  const html =
    doc.html ??
    `<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type"></head><body>${paragraphs.join('')}</body></html>`;
  return {
    'text/plain': Buffer.from(`\ufeff${doc.text.replace(/\r?\n/g, '\r\n')}`),
    'text/html': Buffer.from(html),
    'text/markdown': Buffer.from(doc.markdown ?? doc.text),
  };
}

/** Exports of a Docs Editors file of type `target` made from text, as the seeding methods do. */
function workspaceExports(target: string, text: string): Record<string, Buffer> {
  if (target === DOCUMENT) return docExports({ text });
  if (target === SPREADSHEET) return { 'text/csv': Buffer.from(text) };
  if (target === PRESENTATION) return { 'text/plain': Buffer.from(text) };
  throw new Error(`${target} files have no content`);
}

/** A new, empty Google file: Docs Editors files get empty exports, the others (folders) none. */
function emptyGoogleFile(mimeType: string): { mimeType: string; exports?: Record<string, Buffer> } {
  const editors = [DOCUMENT, SPREADSHEET, PRESENTATION];
  return editors.includes(mimeType)
    ? { mimeType, exports: workspaceExports(mimeType, '') }
    : { mimeType };
}

/**
 * The exports Drive makes when it converts uploaded media on import, if it does. (A Doc made from
 * Markdown keeps the Markdown as its text.)
 */
function imported(target: string, type: string, data: Buffer): Record<string, Buffer> | undefined {
  const text = data.toString('utf8');
  if (target === SPREADSHEET) return type === 'text/csv' ? { 'text/csv': data } : undefined;
  if (target !== DOCUMENT) return undefined;
  if (type === 'text/plain') return docExports({ text });
  if (type === 'text/markdown') return docExports({ text, markdown: text });
  if (type === 'text/html') return docExports({ text: htmlText(text), html: text });
  return undefined;
}

/** The JSON metadata of a create or update request (the File resource's writable fields). */
interface Metadata {
  name?: string;
  mimeType?: string;
  parents?: string[];
  description?: string;
  modifiedTime?: string;
  trashed?: boolean;
  appProperties?: Record<string, string | null>;
  properties?: Record<string, string | null>;
  shortcutDetails?: { targetId?: string };
}

interface Media {
  type: string;
  data: Buffer;
}

interface UploadSession {
  /** The file an update replaces the content of; none for a create. */
  fileId?: string;
  /** Who started it: the session URI alone authorizes its chunks. */
  caller: Caller;
  metadata: Metadata;
  mediaType?: string;
  query: URLSearchParams;
  chunks: Buffer[];
  received: number;
  done?: DriveFile;
}

interface Change {
  fileId: string;
  time: string;
  removed: boolean;
  driveId?: string;
}

function parseMetadata(body: Buffer): Metadata {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8')) as Metadata;
  } catch {
    throw new ApiError(400, 'parseError', 'Parse Error');
  }
}

/**
 * What a Docs Editors file reports as its `size`: the storage it takes, which is none of its
 * exports' sizes (https://developers.google.com/drive/api/reference/rest/v3/files#File.FIELDS.size).
 */
const storageOf = (exports: Record<string, Buffer>) =>
  1024 + Object.values(exports).reduce((total, bytes) => total + bytes.length * 3, 0);

/** Merges app properties the way files.update does: a null value deletes the key. */
function mergeProperties(
  current: Record<string, string> | undefined,
  update: Record<string, string | null>,
): Record<string, string> | undefined {
  const merged = { ...current };
  for (const [key, value] of Object.entries(update)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return Object.keys(merged).length ? merged : undefined;
}

export class DriveServer extends LoopbackServer {
  private readonly files = new Map<string, DriveFile>();
  /** Root folders (My Drive's and each shared drive's): served by files.get, never listed. */
  private readonly roots = new Set<string>();
  private readonly drives = new Map<string, string>();
  private readonly explicitlyTrashed = new Set<string>();
  private readonly tokens = new Map<string, { expires: number; caller: Caller }>();
  /** Recent calls per token, for the per-user quota. */
  private readonly calls = new Map<string, number[]>();
  private readonly refreshTokens = new Map<string, { clientId: string; clientSecret: string }>();
  private readonly images = new Map<string, { content: Buffer; contentType: string }>();
  private readonly uploads = new Map<string, UploadSession>();
  private readonly changeLog: Change[] = [];
  /** Each file's latest entry in `changeLog`: the feed lists a file there only. */
  private readonly latestChange = new Map<string, number>();
  /** Lifetime of the access tokens /token grants. */
  tokenLifetimeSeconds = 3600;
  /** Id of the caller's My Drive root folder; the alias 'root' resolves to it in q and parents. */
  readonly rootId = newRootId();
  /** Requests seen, for tests that count calls: method + path + query string. */
  readonly requests: Array<{ method: string; path: string; query: URLSearchParams }> = [];
  /**
   * files.list results by listing, until anything changes: the pages of a large folder are
   * not filtered and sorted again for each page, as Drive answers from its index.
   */
  private readonly listings = new Map<string, DriveFile[]>();

  constructor(private readonly options: DriveServerOptions = {}) {
    super();
    this.addRoot(this.rootId, 'My Drive');
  }

  /**
   * Accepts this bearer token, for `expiresInSeconds` if given (0 or less: already expired),
   * for the OAuth client, kind of account and scopes `identity` says (default: a user of
   * DEFAULT_CLIENT_ID with the full Drive scope).
   */
  addToken(token: string, expiresInSeconds?: number, identity: TokenIdentity = {}): void {
    const expires =
      expiresInSeconds === undefined
        ? Number.POSITIVE_INFINITY
        : Date.now() + expiresInSeconds * 1000;
    const caller: Caller = {
      clientId: identity.clientId ?? DEFAULT_CLIENT_ID,
      serviceAccount: identity.serviceAccount ?? false,
      scopes: identity.scopes ?? [DRIVE_SCOPE],
    };
    this.tokens.set(token, { expires, caller });
  }

  /** Registers an OAuth client's refresh token for the refresh_token grant of /token. */
  addRefreshToken(refreshToken: string, clientId: string, clientSecret: string): void {
    this.refreshTokens.set(refreshToken, { clientId, clientSecret });
  }

  /** Makes a shared drive; its root folder's id is the drive's id. */
  createSharedDrive(name: string): string {
    const id = newRootId();
    this.drives.set(id, name);
    this.addRoot(id, name, id);
    return id;
  }

  createFolder(name: string, parentId = 'root'): string {
    return this.insert({ name, mimeType: FOLDER }, [this.mustGet(parentId)]).id;
  }

  /**
   * Stores a file as a user would have made it: binary (`content`, type from `mimeType` or the
   * name's extension) or a Google Workspace file (`exports`, a Doc unless `mimeType` says).
   */
  createFile(spec: {
    name: string;
    parentId?: string;
    mimeType?: string;
    content?: Buffer | string;
    exports?: Record<string, Buffer | string>;
    appProperties?: Record<string, string>;
    modifiedTime?: string;
  }): string {
    const parent = this.mustGet(spec.parentId ?? 'root');
    const fields = {
      name: spec.name,
      appProperties: spec.appProperties && { [DEFAULT_CLIENT_ID]: spec.appProperties },
      modifiedTime: spec.modifiedTime,
    };
    if (spec.exports) {
      const exports = Object.fromEntries(
        Object.entries(spec.exports).map(([type, bytes]) => [type, Buffer.from(bytes)]),
      );
      return this.insert({ ...fields, mimeType: spec.mimeType ?? DOCUMENT, exports }, [parent]).id;
    }
    if (spec.mimeType?.startsWith(GOOGLE_APPS)) {
      return this.insert({ ...fields, ...emptyGoogleFile(spec.mimeType) }, [parent]).id;
    }
    const mimeType = spec.mimeType ?? (mime.lookup(spec.name) || 'application/octet-stream');
    const content = Buffer.from(spec.content ?? '');
    return this.insert({ ...fields, mimeType, content }, [parent]).id;
  }

  /**
   * A folder (named `spec.name`, in My Drive) of `spec.keys` generated files sharing one body
   * (see generated.ts), `0000.jsonl` and on; returns the folder's id.
   */
  generate(spec: GeneratedBucket): string {
    const parentId = this.createFolder(spec.name);
    const parent = this.mustGet(parentId);
    const { keys, body } = generatedObjects({ ...spec, prefix: '' });
    const mimeType = mime.lookup(spec.ext) || 'application/octet-stream';
    // One body for all: insert keeps the buffer it is given.
    for (const name of keys) this.insert({ name, mimeType, content: body }, [parent]);
    return parentId;
  }

  createShortcut(name: string, parentId: string, targetId: string): string {
    const target = this.mustGet(targetId);
    const shortcutDetails = { targetId, targetMimeType: target.mimeType };
    return this.insert({ name, mimeType: SHORTCUT, shortcutDetails }, [this.mustGet(parentId)]).id;
  }

  /** A Doc with text/plain, text/html and text/markdown exports (html made from the text unless given). */
  createDoc(
    name: string,
    parentId: string,
    doc: { text: string; html?: string; markdown?: string },
  ): string {
    return this.createFile({ name, parentId, mimeType: DOCUMENT, exports: docExports(doc) });
  }

  /** A Sheet with a text/csv export. */
  createSheet(name: string, parentId: string, csv: string): string {
    return this.createFile({ name, parentId, mimeType: SPREADSHEET, exports: { 'text/csv': csv } });
  }

  /** A Slides deck with a text/plain export. */
  createSlides(name: string, parentId: string, text: string): string {
    return this.createFile({
      name,
      parentId,
      mimeType: PRESENTATION,
      exports: { 'text/plain': text },
    });
  }

  /** New content, as a user's edit: for Docs, Sheets and Slides the text or CSV of their exports. */
  updateContent(id: string, content: Buffer | string): void {
    const file = this.mustGet(id);
    if (file.exports) file.exports = workspaceExports(file.mimeType, content.toString());
    else if (file.content) this.setContent(file, Buffer.from(content));
    else throw new Error(`${file.mimeType} files have no content`);
    this.changed(file, true);
  }

  /**
   * Shares a file (or comments on it), as a user would in Drive: a change with a new
   * `version`, but the content and `modifiedTime` stay as they were.
   */
  share(id: string): void {
    this.changed(this.mustGet(id));
  }

  /** Renames a file; like content changes (and unlike moves), this updates modifiedTime. */
  rename(id: string, name: string): void {
    const file = this.mustGet(id);
    file.name = name;
    this.changed(file, true);
  }

  move(id: string, newParentId: string): void {
    this.setParents(this.mustGet(id), [this.mustGet(newParentId).id]);
  }

  /** Moves a file (a folder with its contents) to the trash. */
  trash(id: string): void {
    this.setTrashed(this.mustGet(id), true);
  }

  file(id: string): DriveFile | undefined {
    return this.files.get(this.resolve(id));
  }

  /** The files in a folder that are not trashed, oldest first. */
  children(parentId: string): DriveFile[] {
    return this.childrenOf(this.resolve(parentId)).filter((f) => !f.trashed);
  }

  /** Serves an image without auth at /images/<name>; returns its absolute URL. */
  addImage(name: string, content: Buffer, contentType: string): string {
    this.images.set(name, { content, contentType });
    return `${this.url}/images/${encodeURIComponent(name)}`;
  }

  // -------------------------------------------------------------------------------------------
  // The store

  private addRoot(id: string, name: string, driveId?: string): void {
    const now = new Date().toISOString();
    this.files.set(id, {
      id,
      name,
      mimeType: FOLDER,
      parents: [],
      ...(driveId ? { driveId } : {}),
      trashed: false,
      createdTime: now,
      modifiedTime: now,
      version: '1',
    });
    this.roots.add(id);
  }

  private resolve(id: string): string {
    return id === 'root' ? this.rootId : id;
  }

  private mustGet(id: string): DriveFile {
    const file = this.files.get(this.resolve(id));
    if (!file) throw notFound(id);
    return file;
  }

  /** A file the request may see: shared-drive files need supportsAllDrives=true. */
  private visible(id: string, q: URLSearchParams): DriveFile {
    const file = this.files.get(this.resolve(id));
    if (!file || (file.driveId && !flag(q, 'supportsAllDrives'))) throw notFound(id);
    return file;
  }

  private childrenOf(id: string): DriveFile[] {
    return [...this.files.values()].filter((f) => f.parents.includes(id));
  }

  private insert(
    fields: Partial<Omit<DriveFile, 'id' | 'parents' | 'driveId' | 'trashed' | 'version'>> & {
      name: string;
      mimeType: string;
    },
    parents: DriveFile[],
  ): DriveFile {
    const now = new Date().toISOString();
    const { content, ...rest } = fields;
    const file: DriveFile = {
      ...rest,
      id: newId(),
      parents: parents.map((p) => p.id),
      driveId: parents[0]?.driveId,
      trashed: parents.some((p) => p.trashed),
      createdTime: fields.modifiedTime ?? now,
      modifiedTime: fields.modifiedTime ?? now,
      version: '1',
    };
    // Fields left out stay out, as they do in the resource.
    for (const [key, value] of Object.entries(file)) {
      if (value === undefined) delete file[key as keyof DriveFile];
    }
    if (content) this.setContent(file, content);
    this.files.set(file.id, file);
    this.logChange(file);
    return file;
  }

  private setContent(file: DriveFile, content: Buffer): void {
    file.content = content;
    file.size = String(content.length);
    file.md5Checksum = createHash('md5').update(content).digest('hex');
    file.headRevisionId = newRevisionId();
  }

  /** Records a change: a new version, a new modifiedTime for edits, an entry in the feed. */
  private changed(file: DriveFile, modified = false): void {
    file.version = String(Number(file.version) + 1);
    if (modified) file.modifiedTime = new Date().toISOString();
    this.logChange(file);
  }

  private logChange(file: DriveFile, removed = false): void {
    const time = new Date().toISOString();
    this.changeLog.push({ fileId: file.id, time, removed, driveId: file.driveId });
    this.latestChange.set(file.id, this.changeLog.length - 1);
  }

  /** Moves a file; a folder's contents follow it into (or out of) a shared drive. */
  private setParents(file: DriveFile, parents: string[]): void {
    file.parents = parents;
    const driveId = parents[0] ? this.files.get(parents[0])?.driveId : file.driveId;
    const follow = (f: DriveFile) => {
      if (f.driveId === driveId) return;
      if (driveId) f.driveId = driveId;
      else delete f.driveId;
      if (f !== file) this.changed(f);
      for (const child of this.childrenOf(f.id)) follow(child);
    };
    follow(file);
    this.changed(file);
  }

  /** Trashing a folder trashes what it holds; restoring it restores what was not trashed alone. */
  private setTrashed(file: DriveFile, trashed: boolean): void {
    if (trashed) this.explicitlyTrashed.add(file.id);
    else this.explicitlyTrashed.delete(file.id);
    const walk = (f: DriveFile, inherited: boolean) => {
      const value = inherited || this.explicitlyTrashed.has(f.id);
      if (f.trashed !== value) {
        f.trashed = value;
        this.changed(f);
      }
      for (const child of this.childrenOf(f.id)) walk(child, value);
    };
    walk(
      file,
      file.parents.some((p) => this.files.get(p)?.trashed),
    );
  }

  private remove(file: DriveFile): void {
    for (const child of this.childrenOf(file.id)) this.remove(child);
    this.files.delete(file.id);
    this.explicitlyTrashed.delete(file.id);
    this.logChange(file, true);
  }

  // -------------------------------------------------------------------------------------------
  // HTTP

  protected fail(res: ServerResponse, error: unknown): void {
    this.sendError(res, asApiError(error));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const path = url.pathname;
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    this.requests.push({ method, path, query: q });
    let m: RegExpExecArray | null;

    if (method === 'POST' && path === '/token') return this.grantToken(req, res);
    m = /^\/images\/(.+)$/.exec(path);
    if (m && method === 'GET') {
      const image = this.images.get(decodeURIComponent(m[1] as string));
      if (!image) throw new ApiError(404, 'notFound', 'Not Found');
      res.writeHead(200, {
        'Content-Type': image.contentType,
        'Content-Length': image.content.length,
      });
      res.end(image.content);
      return;
    }
    m = /^\/upload\/drive\/v3\/files(?:\/([^/]+))?$/.exec(path);
    // The session URI alone authorizes the upload's chunks.
    if (m && q.has('upload_id')) {
      if (method === 'PUT') return this.resumeUpload(req, res, q);
      if (method === 'DELETE') {
        this.uploads.delete(q.get('upload_id') as string);
        res.writeHead(STATUS_CLIENT_CLOSED).end();
        return;
      }
    }

    const caller = this.authenticate(req, method !== 'GET');
    const fileId = m?.[1] === undefined ? undefined : decodeURIComponent(m[1]);
    if (m && method === 'POST' && fileId === undefined) return this.upload(req, res, q, caller);
    if (m && method === 'PATCH' && fileId !== undefined) {
      return this.upload(req, res, q, caller, fileId);
    }
    if (path === '/drive/v3/files') {
      if (method === 'GET') return this.listFiles(res, q, caller);
      if (method === 'POST') {
        const meta = parseMetadata(await readBody(req));
        const file = this.createFromApi(meta, undefined, q, caller);
        return sendJson(res, 200, this.respond(this.resource(file, caller), q, 'file'));
      }
    }
    m = /^\/drive\/v3\/files\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1] as string);
      if (method === 'GET') return this.getFile(req, res, id, q, caller);
      if (method === 'PATCH') {
        const meta = parseMetadata(await readBody(req));
        const file = this.updateFromApi(id, meta, undefined, q, caller);
        return sendJson(res, 200, this.respond(this.resource(file, caller), q, 'file'));
      }
      if (method === 'DELETE') {
        this.remove(this.visible(id, q));
        res.writeHead(204).end();
        return;
      }
    }
    m = /^\/drive\/v3\/files\/([^/]+)\/export$/.exec(path);
    if (m && method === 'GET') return this.exportFile(res, decodeURIComponent(m[1] as string), q);
    if (path === '/drive/v3/changes/startPageToken' && method === 'GET') {
      const driveId = q.get('driveId');
      if (driveId && !this.drives.has(driveId)) throw sharedDriveNotFound(driveId);
      const body = { kind: 'drive#startPageToken', startPageToken: this.nextChangeToken() };
      return sendJson(res, 200, this.respond(body, q, 'startPageToken'));
    }
    if (path === '/drive/v3/changes' && method === 'GET') return this.listChanges(res, q, caller);
    throw new ApiError(404, 'notFound', 'Not Found');
  }

  /**
   * The caller a request's token stands for: refused without a valid token (401), without a
   * Drive scope that allows the call (403 insufficientPermissions), or over the per-user
   * quota (403 userRateLimitExceeded).
   */
  private authenticate(req: IncomingMessage, write: boolean): Caller {
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const known = token ? this.tokens.get(token) : undefined;
    if (!token) {
      throw new ApiError(
        401,
        'required',
        `Request is missing required authentication credential.${AUTH_HINT}`,
        { location: 'Authorization', locationType: 'header' },
        {
          itemMessage: 'Login Required.',
          status: 'UNAUTHENTICATED',
          challenge: 'Bearer realm="https://accounts.google.com/"',
        },
      );
    }
    if (known === undefined || known.expires <= Date.now()) {
      throw new ApiError(
        401,
        'authError',
        `Request had invalid authentication credentials.${AUTH_HINT}`,
        { location: 'Authorization', locationType: 'header' },
        {
          itemMessage: 'Invalid Credentials',
          status: 'UNAUTHENTICATED',
          challenge: 'Bearer realm="https://accounts.google.com/", error="invalid_token"',
        },
      );
    }
    const { caller } = known;
    const allowed = write ? [DRIVE_SCOPE] : [DRIVE_SCOPE, DRIVE_READONLY_SCOPE];
    if (!caller.scopes.some((scope) => allowed.includes(scope))) {
      throw new ApiError(
        403,
        'insufficientPermissions',
        'Request had insufficient authentication scopes.',
        undefined,
        {
          itemMessage: 'Insufficient Permission',
          status: 'PERMISSION_DENIED',
          details: [
            {
              '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
              reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
              domain: 'googleapis.com',
              metadata: { service: 'drive.googleapis.com' },
            },
          ],
          challenge: `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="${allowed.join(' ')}"`,
        },
      );
    }
    const limit = this.options.userRateLimit;
    if (limit) {
      const now = Date.now();
      const recent = (this.calls.get(token) ?? []).filter((t) => t > now - limit.perSeconds * 1000);
      if (recent.length >= limit.requests) {
        this.calls.set(token, recent);
        throw throttled('userRateLimitExceeded');
      }
      recent.push(now);
      this.calls.set(token, recent);
    }
    return caller;
  }

  private sendError(res: ServerResponse, error: ApiError): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const challenge = error.extra.challenge;
    sendJson(
      res,
      error.status,
      errorBody(error),
      challenge ? { 'WWW-Authenticate': challenge } : {},
    );
  }

  private respond(body: object, q: URLSearchParams, kind: keyof typeof SCHEMAS): unknown {
    const spec = q.get('fields');
    const tree = spec ? parseFields(spec, badFields) : DEFAULT_FIELDS[kind];
    checkFields(tree, SCHEMAS[kind]);
    return selectFields(body, tree);
  }

  private resource(file: DriveFile, caller: Caller): Record<string, unknown> {
    const binary = file.content !== undefined;
    const appProperties = file.appProperties?.[caller.clientId];
    return {
      kind: 'drive#file',
      id: file.id,
      name: file.name,
      mimeType: file.mimeType,
      ...(file.description !== undefined ? { description: file.description } : {}),
      trashed: file.trashed,
      ...(file.parents.length ? { parents: file.parents } : {}),
      ...(appProperties ? { appProperties } : {}),
      ...(file.properties ? { properties: file.properties } : {}),
      version: file.version,
      createdTime: file.createdTime,
      modifiedTime: file.modifiedTime,
      ...(file.driveId ? { driveId: file.driveId } : {}),
      ...(file.shortcutDetails ? { shortcutDetails: file.shortcutDetails } : {}),
      ...(binary
        ? { headRevisionId: file.headRevisionId, md5Checksum: file.md5Checksum, size: file.size }
        : {}),
      // Docs Editors files report the storage they take, which is not what they export to.
      ...(file.exports ? { size: String(storageOf(file.exports)) } : {}),
    };
  }

  private pageSize(q: URLSearchParams): number {
    const given = q.get('pageSize');
    const size = given === null ? DEFAULT_PAGE_SIZE : Number(given);
    if (!Number.isInteger(size) || size < 1) throw invalid('pageSize');
    return Math.min(size, this.options.maxPageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE);
  }

  private listFiles(res: ServerResponse, q: URLSearchParams, caller: Caller): void {
    const corpora = q.get('corpora') ?? 'user';
    if (!['user', 'domain', 'drive', 'allDrives'].includes(corpora)) throw invalid('corpora');
    const driveId = q.get('driveId') ?? undefined;
    const include = flag(q, 'includeItemsFromAllDrives');
    if (!include && (driveId !== undefined || corpora === 'drive' || corpora === 'allDrives')) {
      throw new ApiError(
        403,
        'teamDriveIncludeItemsRequired',
        'The includeItemsFromAllDrives parameter must be set to true when driveId is specified or corpora contains drive or allDrives.',
        param('includeItemsFromAllDrives'),
      );
    }
    if ((corpora === 'drive') !== (driveId !== undefined)) {
      throw new ApiError(
        400,
        'teamDriveIdRequiresTeamDriveCorpora',
        'The driveId parameter must be specified if and only if corpora is set to drive.',
        param('driveId'),
      );
    }
    if (driveId !== undefined && !this.drives.has(driveId)) throw sharedDriveNotFound(driveId);
    const shared = include && flag(q, 'supportsAllDrives');
    // An allDrives search may not get round every shared drive; it says so.
    const searched = [...this.drives.keys()].slice(0, this.options.searchableSharedDrives);
    const incompleteSearch = corpora === 'allDrives' && searched.length < this.drives.size;
    const inCorpus = (f: DriveFile) =>
      f.driveId === undefined
        ? corpora !== 'drive'
        : shared &&
          (driveId === undefined || f.driveId === driveId) &&
          (corpora !== 'allDrives' || searched.includes(f.driveId));
    const matches = parseQuery(q.get('q') ?? '', (id) => this.resolve(id), caller);
    const order = parseOrder(q.get('orderBy'));
    const size = this.pageSize(q);

    // The token holds the offset and what the listing was, so it cannot be used for another.
    const listing = createHash('sha1')
      .update(JSON.stringify([q.get('q'), q.get('orderBy'), corpora, driveId, shared]))
      .digest('base64url')
      .slice(0, 12);
    let offset = 0;
    const token = q.get('pageToken');
    if (token) {
      const [at, of] = (() => {
        try {
          return JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown[];
        } catch {
          return [];
        }
      })();
      if (typeof at !== 'number' || of !== listing) throw invalid('pageToken');
      offset = at;
    }
    const state = [this.changeLog.length, this.files.size, this.drives.size, caller];
    const cached = `${listing} ${JSON.stringify(state)}`;
    let found = this.listings.get(cached);
    if (!found) {
      found = [...this.files.values()].filter(
        (f) => !this.roots.has(f.id) && inCorpus(f) && matches(f),
      );
      if (order) found.sort(order);
      if (this.listings.size >= 16) this.listings.clear();
      this.listings.set(cached, found);
    }
    const page = found.slice(offset, offset + size);
    const more = offset + size < found.length;
    const body = {
      kind: 'drive#fileList',
      ...(more
        ? {
            nextPageToken: Buffer.from(JSON.stringify([offset + size, listing])).toString(
              'base64url',
            ),
          }
        : {}),
      incompleteSearch,
      files: page.map((f) => this.resource(f, caller)),
    };
    sendJson(res, 200, this.respond(body, q, 'fileList'));
  }

  private getFile(
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    q: URLSearchParams,
    caller: Caller,
  ): void {
    const file = this.visible(id, q);
    if (q.get('alt') !== 'media') {
      sendJson(res, 200, this.respond(this.resource(file, caller), q, 'file'));
      return;
    }
    const content = file.content;
    if (!content) {
      throw new ApiError(
        403,
        'fileNotDownloadable',
        'Only files with binary content can be downloaded. Use Export with Docs Editors files.',
        param('alt'),
      );
    }
    const size = content.length;
    const headers = { 'Content-Type': file.mimeType };
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (range && (range[1] || range[2])) {
      const suffix = range[1] === '';
      const start = suffix ? Math.max(size - Number(range[2]), 0) : Number(range[1]);
      const end = suffix || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      if (start >= size || start > end) {
        throw new ApiError(416, 'requestedRangeNotSatisfiable', 'Request range not satisfiable');
      }
      res.writeHead(206, {
        ...headers,
        'Content-Range': `bytes ${start}-${end}/${size}`,
        'Content-Length': String(end - start + 1),
      });
      res.end(content.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(size) });
    res.end(content);
  }

  private exportFile(res: ServerResponse, id: string, q: URLSearchParams): void {
    const type = q.get('mimeType');
    if (!type) throw required('mimeType');
    const file = this.files.get(this.resolve(id));
    if (!file) throw notFound(id);
    if (!file.exports) {
      throw new ApiError(403, 'fileNotExportable', 'Export only supports Docs Editors files.');
    }
    const bytes = file.exports[type];
    if (!bytes) throw conversionNotSupported();
    if (bytes.length > EXPORT_LIMIT) {
      // HTML and PDF conversions of a large file fail inside Drive rather than being refused.
      if (type === 'text/html' || type === 'application/pdf') {
        throw new ApiError(500, 'internalError', 'Internal Error');
      }
      throw new ApiError(403, 'exportSizeLimitExceeded', 'This file is too large to be exported.');
    }
    res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(bytes.length) });
    res.end(bytes);
  }

  /** files.create from JSON metadata and, for uploads, the media. */
  private createFromApi(
    meta: Metadata,
    media: Media | undefined,
    q: URLSearchParams,
    caller: Caller,
  ): DriveFile {
    const parents = this.parentsFor(meta, q, caller);
    const own = meta.appProperties && mergeProperties(undefined, meta.appProperties);
    const fields = {
      name: meta.name ?? 'Untitled',
      description: meta.description,
      modifiedTime: meta.modifiedTime,
      appProperties: own && { [caller.clientId]: own },
      properties: meta.properties && mergeProperties(undefined, meta.properties),
    };
    const targetId = meta.shortcutDetails?.targetId;
    if (targetId !== undefined) {
      const target = this.visible(targetId, q);
      const shortcutDetails = { targetId, targetMimeType: target.mimeType };
      return this.insert({ ...fields, mimeType: SHORTCUT, shortcutDetails }, parents);
    }
    const asked = meta.mimeType;
    if (!media) {
      if (asked?.startsWith(GOOGLE_APPS))
        return this.insert({ ...fields, ...emptyGoogleFile(asked) }, parents);
      const mimeType = asked ?? 'application/octet-stream';
      return this.insert({ ...fields, mimeType, content: Buffer.alloc(0) }, parents);
    }
    const exports = asked ? imported(asked, media.type, media.data) : undefined;
    if (asked && exports) return this.insert({ ...fields, mimeType: asked, exports }, parents);
    // Media Drive does not convert is stored as it is, under its own type.
    const mimeType = asked && !asked.startsWith(GOOGLE_APPS) ? asked : media.type;
    if (mimeType.startsWith(GOOGLE_APPS)) throw conversionNotSupported();
    return this.insert({ ...fields, mimeType, content: media.data }, parents);
  }

  /**
   * The parents of a file to create: one, visible to the caller. A service account owns no
   * storage, so it may create nothing but folders outside a shared drive.
   */
  private parentsFor(meta: Metadata, q: URLSearchParams, caller: Caller): DriveFile[] {
    const parentIds = meta.parents ?? ['root'];
    if (parentIds.length > 1) {
      throw new ApiError(403, 'cannotAddParent', 'Increasing the number of parents is not allowed');
    }
    const parents = parentIds.map((id) => this.visible(id, q));
    if (caller.serviceAccount && meta.mimeType !== FOLDER && !parents[0]?.driveId) {
      throw new ApiError(
        403,
        'storageQuotaExceeded',
        'Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.',
        undefined,
        { domain: 'usageLimits' },
      );
    }
    return parents;
  }

  /** files.update: metadata from JSON, parents from addParents/removeParents, optional media. */
  private updateFromApi(
    id: string,
    meta: Metadata,
    media: Media | undefined,
    q: URLSearchParams,
    caller: Caller,
  ): DriveFile {
    const file = this.visible(id, q);
    if (meta.parents !== undefined) {
      throw new ApiError(
        403,
        'fieldNotWritable',
        'The parents field is not directly writable in update requests. Use the addParents and removeParents parameters instead.',
      );
    }
    const list = (name: string) => (q.get(name) ?? '').split(',').filter(Boolean);
    const removeParents = list('removeParents').map((p) => this.resolve(p));
    const addParents = list('addParents').map((p) => this.visible(p, q).id);
    let modified = false;
    let touched = meta.modifiedTime !== undefined;
    if (meta.name !== undefined && meta.name !== file.name) {
      file.name = meta.name;
      modified = true;
    }
    if (meta.description !== undefined) {
      file.description = meta.description;
      modified = true;
    }
    if (meta.appProperties) {
      const own = mergeProperties(file.appProperties?.[caller.clientId], meta.appProperties);
      const { [caller.clientId]: _, ...others } = file.appProperties ?? {};
      file.appProperties = own ? { ...others, [caller.clientId]: own } : others;
      touched = true;
    }
    if (meta.properties) {
      file.properties = mergeProperties(file.properties, meta.properties);
      touched = true;
    }
    if (media) {
      if (file.exports) {
        const exports = imported(file.mimeType, media.type, media.data);
        if (!exports) throw conversionNotSupported();
        file.exports = exports;
      } else if (file.content) this.setContent(file, media.data);
      else throw conversionNotSupported();
      modified = true;
    }
    if (modified || touched) this.changed(file, modified);
    if (meta.modifiedTime !== undefined) file.modifiedTime = meta.modifiedTime;
    if (addParents.length || removeParents.length) {
      const parents = file.parents.filter((p) => !removeParents.includes(p));
      for (const p of addParents) if (!parents.includes(p)) parents.push(p);
      if (parents.length > Math.max(file.parents.length, 1)) {
        throw new ApiError(
          403,
          'cannotAddParent',
          'Increasing the number of parents is not allowed',
        );
      }
      this.setParents(file, parents);
    }
    if (meta.trashed !== undefined && meta.trashed !== file.trashed) {
      this.setTrashed(file, meta.trashed);
    }
    return file;
  }

  /** POST /upload/drive/v3/files (create) and PATCH /upload/drive/v3/files/{id} (update). */
  private async upload(
    req: IncomingMessage,
    res: ServerResponse,
    q: URLSearchParams,
    caller: Caller,
    fileId?: string,
  ): Promise<void> {
    const uploadType = q.get('uploadType') ?? 'media';
    const body = await readBody(req);
    if (fileId !== undefined) this.visible(fileId, q);
    let metadata: Metadata = {};
    let media: Media;
    if (uploadType === 'resumable') {
      metadata = parseMetadata(body);
      if (fileId === undefined) this.parentsFor(metadata, q, caller);
      const id = randomBytes(16).toString('base64url');
      const query = new URLSearchParams(q);
      query.set('upload_id', id);
      this.uploads.set(id, {
        fileId,
        caller,
        metadata,
        mediaType: mediaType(req.headers['x-upload-content-type'] as string | undefined),
        query,
        chunks: [],
        received: 0,
      });
      const path = fileId === undefined ? '' : `/${encodeURIComponent(fileId)}`;
      res.writeHead(200, {
        Location: `${this.url}/upload/drive/v3/files${path}?${query}`,
        'X-GUploader-UploadID': id,
        'Content-Length': '0',
      });
      res.end();
      return;
    }
    if (uploadType === 'multipart') {
      const boundary = boundaryOf(req.headers['content-type']);
      const parts = boundary ? multipartParts(body, boundary) : [];
      const [meta, data] = parts;
      if (parts.length !== 2 || !meta || !data) {
        throw new ApiError(
          400,
          'badContent',
          `Invalid multipart request with ${parts.length} mime parts.`,
        );
      }
      metadata = parseMetadata(meta.data);
      media = { type: mediaType(data.type) || 'application/octet-stream', data: data.data };
    } else if (uploadType === 'media') {
      media = {
        type: mediaType(req.headers['content-type']) || 'application/octet-stream',
        data: body,
      };
    } else {
      throw invalid('uploadType');
    }
    const file =
      fileId === undefined
        ? this.createFromApi(metadata, media, q, caller)
        : this.updateFromApi(fileId, metadata, media, q, caller);
    sendJson(res, 200, this.respond(this.resource(file, caller), q, 'file'));
  }

  private async resumeUpload(
    req: IncomingMessage,
    res: ServerResponse,
    q: URLSearchParams,
  ): Promise<void> {
    const upload = this.uploads.get(q.get('upload_id') as string);
    const body = await readBody(req);
    if (!upload) throw new ApiError(404, 'notFound', 'No such upload session.');
    if (upload.done) {
      sendJson(
        res,
        200,
        this.respond(this.resource(upload.done, upload.caller), upload.query, 'file'),
      );
      return;
    }
    const total = takeChunk(
      upload,
      String(req.headers['content-range'] ?? ''),
      body,
      (message) => new ApiError(400, 'badRequest', message),
    );
    if (total !== undefined && upload.received === total) {
      const { metadata, query, caller } = upload;
      const asked = metadata.mimeType;
      const type =
        upload.mediaType ||
        (asked && !asked.startsWith(GOOGLE_APPS) ? asked : 'application/octet-stream');
      const media = { type, data: Buffer.concat(upload.chunks) };
      upload.done =
        upload.fileId === undefined
          ? this.createFromApi(metadata, media, query, caller)
          : this.updateFromApi(upload.fileId, metadata, media, query, caller);
      upload.chunks = [];
      sendJson(res, 200, this.respond(this.resource(upload.done, caller), query, 'file'));
      return;
    }
    resumeIncomplete(res, upload.received);
  }

  /** The token for the next change: one past the last entry of the feed. */
  private nextChangeToken(): string {
    return String(this.changeLog.length + 1);
  }

  private listChanges(res: ServerResponse, q: URLSearchParams, caller: Caller): void {
    const token = q.get('pageToken');
    if (!token) throw required('pageToken');
    const start = /^\d+$/.test(token) ? Number(token) : 0;
    if (start < 1 || start > this.changeLog.length + 1) throw invalid('pageToken');
    const driveId = q.get('driveId');
    if (driveId && !this.drives.has(driveId)) throw sharedDriveNotFound(driveId);
    const size = this.pageSize(q);
    const includeRemoved = q.get('includeRemoved') !== 'false';
    const supports = flag(q, 'supportsAllDrives');
    const shared =
      supports && flag(q, 'includeItemsFromAllDrives') && !flag(q, 'restrictToMyDrive');
    const listed = (change: Change, index: number) =>
      this.latestChange.get(change.fileId) === index &&
      (includeRemoved || !change.removed) &&
      (driveId ? supports && change.driveId === driveId : change.driveId === undefined || shared);

    const changes: Record<string, unknown>[] = [];
    let next: string | undefined;
    for (let index = start - 1; index < this.changeLog.length; index++) {
      const change = this.changeLog[index] as Change;
      if (!listed(change, index)) continue;
      if (changes.length === size) {
        next = String(index + 1);
        break;
      }
      const file = this.files.get(change.fileId);
      changes.push({
        kind: 'drive#change',
        changeType: 'file',
        type: 'file',
        time: change.time,
        removed: change.removed,
        fileId: change.fileId,
        ...(file && !change.removed ? { file: this.resource(file, caller) } : {}),
      });
    }
    const body = {
      kind: 'drive#changeList',
      ...(next ? { nextPageToken: next } : { newStartPageToken: this.nextChangeToken() }),
      changes,
    };
    sendJson(res, 200, this.respond(body, q, 'changeList'));
  }

  private async grantToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const grantType = form.get('grant_type');
    if (grantType !== 'refresh_token') {
      sendJson(res, 400, {
        error: 'unsupported_grant_type',
        error_description: `Invalid grant_type: ${grantType ?? ''}`,
      });
      return;
    }
    const client = this.refreshTokens.get(form.get('refresh_token') ?? '');
    if (!client) {
      sendJson(res, 400, { error: 'invalid_grant', error_description: 'Bad Request' });
      return;
    }
    if (
      client.clientId !== form.get('client_id') ||
      client.clientSecret !== form.get('client_secret')
    ) {
      sendJson(res, 401, { error: 'invalid_client', error_description: 'Unauthorized' });
      return;
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    this.addToken(token, this.tokenLifetimeSeconds, { clientId: client.clientId });
    sendJson(res, 200, {
      access_token: token,
      expires_in: this.tokenLifetimeSeconds,
      scope: 'https://www.googleapis.com/auth/drive',
      token_type: 'Bearer',
    });
  }
}

/** Starts a server on a random loopback port (or `port`). */
export async function startDriveServer(
  options: DriveServerOptions = {},
  port = 0,
): Promise<{ server: DriveServer; url: string; stop: () => Promise<void> }> {
  const server = new DriveServer(options);
  const url = await server.listen(port);
  return { server, url, stop: () => server.close() };
}
