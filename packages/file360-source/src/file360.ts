// What the File 360 source and sink share: the URL, the connection options, the errors, and
// the interface of an OpenText API client. Two implementations sit behind it: Content Server
// REST (content-server.ts) and Core Share REST (core-share.ts).
import {
  apiError,
  debugLog,
  type KnownAnswer,
  type RetryPolicy,
  SluiceError,
  serviceUrl,
  usageError,
} from '@sluice/core';

export const FILE360_CONNECTOR = 'file360';
export const debug = debugLog('sluice:file360');

/** The OpenText APIs Sluice speaks. */
export type File360ApiName = 'content-server' | 'core-share';
export const FILE360_APIS: readonly File360ApiName[] = ['content-server', 'core-share'];

/** How to reach File 360. Shared by source and sink; unset fields come from the environment. */
export interface File360ConnectionOptions {
  /** Content Server's CGI URL (https://otcs.acme.com/otcs/cs.exe) or Core Share's (https://core.opentext.com). Default: FILE360_URL. */
  baseUrl?: string;
  /** Which API: content-server or core-share (default: FILE360_API, else core-share for core.opentext.* hosts). */
  api?: File360ApiName;
  /** The user name (default: FILE360_USERNAME), with `password`: a Content Server ticket, or OTDS's password grant. */
  username?: string;
  /** The password (default: FILE360_PASSWORD). */
  password?: string;
  /** A bearer token, e.g. an OTDS OAuth access token (default: FILE360_TOKEN). */
  token?: string;
  /** OTDS OAuth client id (default: FILE360_CLIENT_ID), with `clientSecret`: tokens asked for and renewed. */
  clientId?: string;
  /** OTDS OAuth client secret (default: FILE360_CLIENT_SECRET). */
  clientSecret?: string;
  /** OTDS's URL, which serves /otdsws/oauth2/token (default: FILE360_OTDS_URL; for Core Share, https://sso.<host>). */
  otdsUrl?: string;
  /** How throttled and unavailable answers are retried (default: 6 retries from 1 s doubling). */
  retry?: RetryPolicy;
  /** A fetch of your own (a proxy agent, a test double). */
  fetch?: typeof fetch;
  /** A client of your own (another OpenText API); the options above are then ignored. */
  client?: File360Api;
}

const urlHint = (api: File360ApiName) =>
  api === 'core-share'
    ? 'set FILE360_URL (or --base-url) to Core Share, e.g. https://core.opentext.com'
    : 'set FILE360_URL (or --base-url) to the Content Server CGI URL, e.g. https://otcs.acme.com/otcs/cs.exe';

/** The URL, the API chosen for it, and the credentials, from options and the environment. */
export function resolveConnection(options: File360ConnectionOptions) {
  const env = process.env;
  const chosen = options.api ?? ((env.FILE360_API || undefined) as File360ApiName | undefined);
  if (chosen !== undefined && !FILE360_APIS.includes(chosen)) {
    throw usageError(
      `--api must be content-server or core-share, got "${chosen}"`,
      'content-server for Content Server (…/otcs/cs.exe), core-share for Core Share (core.opentext.com)',
    );
  }
  const given = (options.baseUrl ?? env.FILE360_URL ?? '').trim();
  if (!given) throw usageError('no File 360 server given', urlHint(chosen ?? 'content-server'));
  const url = new URL(
    serviceUrl(given, options.baseUrl ? '--base-url' : 'FILE360_URL', {
      example: 'https://otcs.acme.com/otcs/cs.exe',
    }),
  );
  const api: File360ApiName =
    chosen ??
    (/(^|\.)core\.opentext\.[a-z.]+$/i.test(url.hostname) ? 'core-share' : 'content-server');
  // The service's base, whether or not the API's own path was given too.
  const base = url.href.replace(/\/+$/, '').replace(/\/api(\/v\d+)?$/, '');
  const token = options.token ?? (env.FILE360_TOKEN || undefined);
  const username = options.username ?? (env.FILE360_USERNAME || undefined);
  const password = options.password ?? (env.FILE360_PASSWORD || undefined);
  const clientId = options.clientId ?? (env.FILE360_CLIENT_ID || undefined);
  const clientSecret = options.clientSecret ?? (env.FILE360_CLIENT_SECRET || undefined);
  // Core Share's OTDS lives at sso.<host> (sso.core.opentext.com for core.opentext.com).
  const givenOtds = options.otdsUrl ?? (env.FILE360_OTDS_URL || undefined);
  const otdsUrl =
    (givenOtds &&
      serviceUrl(givenOtds, options.otdsUrl ? 'otdsUrl' : 'FILE360_OTDS_URL', {
        example: 'https://otds.acme.com',
      })) ??
    (api === 'core-share' ? `${url.protocol}//sso.${url.host}` : undefined);
  const client = clientId && clientSecret ? { clientId, clientSecret } : undefined;
  if (client && !otdsUrl) {
    throw usageError(
      'FILE360_CLIENT_ID needs OTDS',
      'set FILE360_OTDS_URL to the OTDS that issues tokens for the server, e.g. https://otds.acme.com',
    );
  }
  const login = username && password ? { username, password } : undefined;
  if (!token && !client && !(api === 'content-server' && login)) {
    throw new SluiceError('no File 360 credentials', {
      code: 'AUTH',
      connector: FILE360_CONNECTOR,
      hint:
        api === 'core-share'
          ? 'set FILE360_CLIENT_ID and FILE360_CLIENT_SECRET (an OAuth client of the tenant; with FILE360_USERNAME and FILE360_PASSWORD to act as that user), or FILE360_TOKEN'
          : username || password
            ? 'set both FILE360_USERNAME and FILE360_PASSWORD, or FILE360_TOKEN'
            : 'set FILE360_USERNAME and FILE360_PASSWORD (a ticket is asked for and renewed), FILE360_CLIENT_ID and FILE360_CLIENT_SECRET with FILE360_OTDS_URL, or FILE360_TOKEN to a bearer token',
    });
  }
  const otds =
    client && otdsUrl
      ? { url: otdsUrl, ...client, ...(api === 'core-share' ? (login ?? {}) : {}) }
      : undefined;
  return { api, base, token, login, otds };
}

/** A node as the API describes it; ids are strings (Core Share's have 19 digits). */
export interface File360Node {
  id: string;
  parentId?: string;
  name: string;
  /** What Sluice does with it: reads documents, walks folders (and other containers). */
  kind: 'folder' | 'document' | 'other';
  /** Whether the node holds other nodes (folders, workspaces, projects). */
  container: boolean;
  /** The API's own type (a Content Server subtype, a Core Share resource type), for messages. */
  type: string;
  mimeType?: string;
  /** Bytes of the current version (documents). */
  size?: number;
  modified?: Date;
  /** The current version's number (documents). */
  version?: number;
}

/** A staged file to upload: its local path and type. */
export interface Upload {
  /** The document's name. */
  name: string;
  path: string;
  contentType: string;
  /** Shown with the document or version in File 360, e.g. the export's sha256. */
  description?: string;
}

/** The calls the connector makes, whatever OpenText API carries them. */
export interface File360Api {
  /** One node; undefined when it does not exist or is hidden from the user. */
  node(id: string, signal?: AbortSignal): Promise<File360Node | undefined>;
  /**
   * A container's children, page by page, lazily. `containers`: only containers; `name`: only
   * nodes of exactly that name (hidden ones too: the name is taken all the same); `newest`:
   * documents only, newest first.
   */
  children(
    id: string,
    options?: { signal?: AbortSignal; containers?: boolean; name?: string; newest?: boolean },
  ): AsyncGenerator<File360Node>;
  /** A document's bytes, or a range of them: of its current version, or of `version`. */
  download(
    id: string,
    options?: { start?: number; end?: number; version?: number; signal?: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>>;
  createFolder(parent: string, name: string): Promise<File360Node>;
  createDocument(parent: string, file: Upload): Promise<File360Node>;
  /** Adds a version to a document; returns its number. */
  addVersion(id: string, file: Upload): Promise<number>;
  /** Deletes a node (into the recycle bin or trash, where there is one). */
  delete(id: string): Promise<void>;
}

/** A File 360 URL: a node id, with folder names below it for a sink's export root. */
export interface File360Target {
  id: string;
  path: string[];
}

/** Parses `file360://node/<id>[/folder...]`; the id stays a string, as 19-digit ids pass 2^53. */
export function parseFile360Url(url: string): File360Target {
  const match = /^file360:\/\/node\/(\d{1,20})(?:\/(.*))?$/.exec(url);
  if (!match) {
    throw usageError(
      `not a File 360 URL: ${url}`,
      "use file360://node/<id>: the id is the number in the folder's link (objId=…, /nodes/<id> or /folders/<id>)",
    );
  }
  const path = (match[2] ?? '').split('/').filter((segment) => segment !== '');
  return { id: match[1] as string, path: path.map((segment) => decodeURIComponent(segment)) };
}

/** An HTTP error from the API: its status, the body's message, and what the backend made of it. */
export class File360HttpError extends Error {
  constructor(
    readonly status: number,
    readonly apiMessage: string,
    /** The backend's reading of the answer, where the status alone does not tell. */
    readonly meaning?: 'not-found' | 'name-taken',
  ) {
    super(`HTTP ${status}${apiMessage ? ` ${apiMessage}` : ''}`);
  }
}

/** A node that does not exist, or that the user may not see. */
export function isNotFound(error: unknown): boolean {
  return (
    error instanceof File360HttpError && (error.meaning === 'not-found' || error.status === 404)
  );
}

/** A name already in use in the folder. */
export function isNameTaken(error: unknown): boolean {
  return error instanceof File360HttpError && error.meaning === 'name-taken';
}

/** The answers the OpenText APIs give that Sluice names. */
const KNOWN: Record<'bad' | 'refused' | 'denied' | 'missing' | 'taken' | 'busy', KnownAnswer> = {
  bad: { code: 'BAD_INPUT', text: 'request refused (400)', hint: 'check the node id' },
  refused: {
    code: 'AUTH',
    text: 'credentials refused (401)',
    hint: 'check FILE360_USERNAME and FILE360_PASSWORD, FILE360_CLIENT_ID and FILE360_CLIENT_SECRET, or FILE360_TOKEN (bearer tokens expire: with client credentials they are renewed)',
  },
  denied: {
    code: 'AUTH',
    text: 'not permitted (403)',
    hint: 'the account needs See Contents on folders to read, and Add Items and Add Major Version to export',
  },
  missing: {
    code: 'NOT_FOUND',
    text: 'not found',
    hint: 'check the node id, and that the account may see it (OpenText answers alike for items it hides)',
  },
  taken: {
    code: 'CONFLICT',
    text: 'the name is already in use',
    hint: 'another item in the folder has that name (perhaps in other letter case): rename it, or export elsewhere',
  },
  busy: {
    code: 'IO',
    text: 'throttled (429), still after waiting as asked',
    hint: 'the server is limiting this account: wait a few minutes and run again, or lower --concurrency',
  },
};

/** Which of the known answers an error is: by the backend's reading, then by status. */
function knownAnswer(error: File360HttpError): KnownAnswer | undefined {
  if (error.status === 401) return KNOWN.refused;
  if (error.status === 403) return KNOWN.denied;
  if (isNotFound(error)) return KNOWN.missing;
  if (isNameTaken(error)) return KNOWN.taken;
  if (error.status === 429) return KNOWN.busy;
  return error.status === 400 ? KNOWN.bad : undefined;
}

/** Turns a failure into a SluiceError naming `what`; never includes credentials. */
export function file360Error(error: unknown, what: string): SluiceError {
  const http = error instanceof File360HttpError ? error : undefined;
  return apiError(error, {
    connector: FILE360_CONNECTOR,
    what,
    status: http?.status,
    message: http?.apiMessage,
    known: http ? knownAnswer(http) : undefined,
    unreachable: 'cannot reach File 360: check FILE360_URL (or --base-url) and the network',
  });
}

/**
 * A date as an OpenText API writes it: ISO 8601, with a zone on current servers. Older Content
 * Servers leave the zone out and mean their own clocks: `offsetMs` is how far those run ahead
 * of UTC (see ContentServer's server offset).
 */
export function dateOf(value: unknown, offsetMs = 0): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const zoned = hasZone(value);
  const date = new Date(zoned ? value : `${value}Z`);
  if (Number.isNaN(date.getTime())) return undefined;
  return zoned ? date : new Date(date.getTime() - offsetMs);
}

/** Whether an ISO 8601 date names its zone. */
export const hasZone = (value: string) => /[zZ]$|[+-]\d\d:?\d\d$/.test(value);

/** The connection flags every File 360 command takes. */
export function file360ConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--base-url <url>',
    "Content Server's CGI URL (https://otcs.acme.com/otcs/cs.exe) or Core Share's (https://core.opentext.com); default: FILE360_URL",
  );
  program.option(
    '--api <name>',
    'content-server or core-share (default: FILE360_API, else core-share for core.opentext.* hosts)',
  );
}

/** Reads the connection flags back; credentials come from the environment only. */
export function file360ConnectionFromFlags(
  flags: Record<string, unknown>,
): File360ConnectionOptions {
  return {
    baseUrl: flags.baseUrl as string | undefined,
    api: flags.api as File360ApiName | undefined,
  };
}
