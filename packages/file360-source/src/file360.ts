// What the File 360 source and sink share: the URL, the connection options, the errors, and
// the interface of an OpenText API client. The Content Server REST client (content-server.ts)
// is the one implementation; another OpenText API would be a second one beside it.
import { apiError, debugLog, type KnownAnswer, type SluiceError, usageError } from '@sluice/core';

export const FILE360_CONNECTOR = 'file360';
export const debug = debugLog('sluice:file360');

/** How to reach File 360. Shared by source and sink; unset fields come from the environment. */
export interface File360ConnectionOptions {
  /** The Content Server CGI URL, e.g. https://otcs.acme.com/otcs/cs.exe (default: FILE360_URL). */
  baseUrl?: string;
  /** Ticket auth: the user name (default: FILE360_USERNAME), with `password`. */
  username?: string;
  /** Ticket auth: the password (default: FILE360_PASSWORD). */
  password?: string;
  /** A bearer token, e.g. an OTDS OAuth access token (default: FILE360_TOKEN); used instead of a ticket. */
  token?: string;
  /** A fetch of your own (a proxy agent, a test double). */
  fetch?: typeof fetch;
  /** A client of your own (another OpenText API); the options above are then ignored. */
  client?: File360Api;
}

/** Node subtypes Sluice knows. */
export const FOLDER = 0;
export const DOCUMENT = 144;

/** A node as the API describes it. */
export interface File360Node {
  id: number;
  parentId?: number;
  name: string;
  /** Subtype: 0 folder, 144 document, others (workspaces, shortcuts, emails). */
  type: number;
  /** Whether the node holds other nodes (folders, workspaces, projects). */
  container: boolean;
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
  node(id: number, signal?: AbortSignal): Promise<File360Node | undefined>;
  /**
   * A container's children, page by page, lazily. `containers`: only containers; `name`: only
   * nodes of exactly that name; `newest`: documents only, newest first.
   */
  children(
    id: number,
    options?: { signal?: AbortSignal; containers?: boolean; name?: string; newest?: boolean },
  ): AsyncGenerator<File360Node>;
  /** A document's bytes, or a range of them: of its current version, or of `version`. */
  download(
    id: number,
    options?: { start?: number; end?: number; version?: number; signal?: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array>>;
  createFolder(parent: number, name: string): Promise<File360Node>;
  createDocument(parent: number, file: Upload): Promise<File360Node>;
  /** Adds a version to a document; returns its number. */
  addVersion(id: number, file: Upload): Promise<number>;
  /** Deletes a node (Content Server keeps it in the Recycle Bin where that is enabled). */
  delete(id: number): Promise<void>;
}

/** A File 360 URL: a node id, with folder names below it for a sink's export root. */
export interface File360Target {
  id: number;
  path: string[];
}

/** Parses `file360://node/<id>[/folder...]`. */
export function parseFile360Url(url: string): File360Target {
  const match = /^file360:\/\/node\/(\d{1,19})(?:\/(.*))?$/.exec(url);
  if (!match) {
    throw usageError(
      `not a File 360 URL: ${url}`,
      "use file360://node/<id>: the id is the number in the folder's link (objId=… or /nodes/<id>)",
    );
  }
  const path = (match[2] ?? '').split('/').filter((segment) => segment !== '');
  return { id: Number(match[1]), path: path.map((segment) => decodeURIComponent(segment)) };
}

/** An HTTP error from the API: its status and the body's `error` text. */
export class File360HttpError extends Error {
  constructor(
    readonly status: number,
    readonly apiMessage: string,
  ) {
    super(`HTTP ${status}${apiMessage ? ` ${apiMessage}` : ''}`);
  }
}

/**
 * Content Server answers a node that does not exist, or that the user may not see, with one
 * text and any of 400, 404 or 500 (the reference lists each, by endpoint).
 */
export function isNotFound(error: unknown): boolean {
  if (!(error instanceof File360HttpError)) return false;
  return (
    error.status === 404 ||
    /could not be accessed|could not get a node|could not locate node|invalid id/i.test(
      error.apiMessage,
    )
  );
}

/** A name already in use in the folder (500 on v2, 400 on v1). */
export function isNameTaken(error: unknown): boolean {
  return error instanceof File360HttpError && /already exists/i.test(error.apiMessage);
}

/** The answers Content Server gives that Sluice names. */
const KNOWN: Record<'bad' | 'refused' | 'denied' | 'missing' | 'taken', KnownAnswer> = {
  bad: { code: 'BAD_INPUT', text: 'request refused (400)', hint: 'check the node id' },
  refused: {
    code: 'AUTH',
    text: 'credentials refused (401)',
    hint: 'check FILE360_USERNAME and FILE360_PASSWORD, or FILE360_TOKEN (bearer tokens expire)',
  },
  denied: {
    code: 'AUTH',
    text: 'not permitted (403)',
    hint: 'the account needs See Contents on folders to read, and Add Items and Add Major Version to export',
  },
  missing: {
    code: 'NOT_FOUND',
    text: 'not found',
    hint: 'check the node id, and that the account may see it (Content Server answers alike for items it hides)',
  },
  taken: {
    code: 'CONFLICT',
    text: 'the name is already in use',
    hint: 'another item in the folder has that name (perhaps in other letter case): rename it, or export elsewhere',
  },
};

/** Which of the known answers an error is: by status, and by text where the status varies. */
function knownAnswer(error: File360HttpError): KnownAnswer | undefined {
  if (error.status === 401) return KNOWN.refused;
  if (error.status === 403) return KNOWN.denied;
  if (isNotFound(error)) return KNOWN.missing;
  if (isNameTaken(error)) return KNOWN.taken;
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

/** The connection flags every File 360 command takes. */
export function file360ConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--base-url <url>',
    'the Content Server CGI URL, e.g. https://otcs.acme.com/otcs/cs.exe (default: FILE360_URL)',
  );
}

/** Reads the connection flags back; credentials come from the environment only. */
export function file360ConnectionFromFlags(
  flags: Record<string, unknown>,
): File360ConnectionOptions {
  return { baseUrl: flags.baseUrl as string | undefined };
}
