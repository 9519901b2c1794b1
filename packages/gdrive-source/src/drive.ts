import { debugLog, requestError, SluiceError, serviceUrl, usageError } from '@sluice/core';
import { GoogleAuth, OAuth2Client } from 'google-auth-library';
// The Drive client alone: `googleapis` itself loads every Google API (seconds, and 200 MB).
import { drive_v3 } from 'googleapis/build/src/apis/drive/v3.js';

export const GDRIVE_CONNECTOR = 'gdrive';
export const FOLDER_TYPE = 'application/vnd.google-apps.folder';
export const SHORTCUT_TYPE = 'application/vnd.google-apps.shortcut';
export const READ_SCOPE = 'https://www.googleapis.com/auth/drive.readonly';
export const WRITE_SCOPE = 'https://www.googleapis.com/auth/drive';

export type Drive = drive_v3.Drive;

export const debug = debugLog('sluice:gdrive');

/** How to reach Drive. Shared by source and sink. */
export interface DriveConnectionOptions {
  /** A ready client (`google.drive({ version: 'v3', auth })`); the options below are then ignored. */
  drive?: Drive;
  /** An auth client of your own: an OAuth2Client with a refresh token, a JWT, a GoogleAuth. */
  auth?: OAuth2Client | GoogleAuth;
  /** An OAuth access token (default: GOOGLE_OAUTH_ACCESS_TOKEN). Used as it is, never refreshed. */
  accessToken?: string;
  /** Service account key file, or an authorized-user file with a refresh token (default: Application Default Credentials). */
  keyFilename?: string;
  /** Root URL of the API, for a test server or a private endpoint (default: SLUICE_GDRIVE_ENDPOINT, else Google). */
  endpoint?: string;
}

/** A Drive URL: a folder (read as a tree) or one file. */
export interface DriveTarget {
  kind: 'folder' | 'file';
  id: string;
  /** Folder names below the folder, for a sink's export root (`gdrive://folder/<id>/a/b`). */
  path: string[];
}

// Drive ids are URL-safe base64-like strings; `root` names My Drive.
const ID = /^[A-Za-z0-9_-]{1,200}$/;

/** Parses `gdrive://folder/<id>[/path...]` and `gdrive://file/<id>`. */
export function parseDriveUrl(url: string): DriveTarget {
  const match = /^gdrive:\/\/(folder|file)\/([^/]+)\/?(.*)$/.exec(url);
  const id = match?.[2] ?? '';
  if (!match || !ID.test(id)) {
    throw usageError(
      `not a Drive URL: ${url}`,
      "use gdrive://folder/<id> or gdrive://file/<id>; the id is the last part of the folder's or file's link in Drive",
    );
  }
  const kind = match[1] as 'folder' | 'file';
  const path = (match[3] ?? '').split('/').filter((segment) => segment !== '');
  if (kind === 'file' && path.length > 0) {
    throw usageError(`${url}: a file URL ends with the file's id`, 'use gdrive://file/<id>');
  }
  return { kind, id, path };
}

/** The credentials in use, for debug output: never the secret itself. */
function describeAuth(options: DriveConnectionOptions, token: string | undefined): string {
  if (options.auth) return 'client given';
  if (token) return 'access token';
  return options.keyFilename ? 'key file' : 'application default credentials';
}

/**
 * Builds the client from the options with Google's credential chain: a client or auth you
 * pass, an access token, a key file, else Application Default Credentials.
 */
export function createDrive(options: DriveConnectionOptions, scope: string): Drive {
  if (options.drive) return options.drive;
  const endpoint = options.endpoint ?? process.env.SLUICE_GDRIVE_ENDPOINT;
  if (endpoint) {
    serviceUrl(endpoint, options.endpoint ? '--endpoint' : 'SLUICE_GDRIVE_ENDPOINT', {
      example: 'http://127.0.0.1:4480',
    });
  }
  const token = options.accessToken ?? process.env.GOOGLE_OAUTH_ACCESS_TOKEN;
  let auth: OAuth2Client | GoogleAuth;
  if (options.auth) auth = options.auth;
  else if (token) {
    const client = new OAuth2Client();
    client.setCredentials({ access_token: token });
    auth = client;
  } else {
    auth = new GoogleAuth({ keyFile: options.keyFilename, scopes: [scope] });
  }
  debug('client: endpoint=%s auth=%s', endpoint ?? '(google)', describeAuth(options, token));
  return new drive_v3.Drive({
    auth,
    ...(endpoint ? { rootUrl: `${endpoint.replace(/\/+$/, '')}/` } : {}),
    // Retries of 429, 5xx and dropped connections, with backoff (gaxios's retry config).
    retryConfig: { retry: 4, noResponseRetries: 2, retryDelayMultiplier: 2 },
  });
}

interface ApiErrorLike {
  status?: number;
  code?: number | string;
  message?: string;
  response?: { status?: number; data?: unknown };
  errors?: Array<{ reason?: string; message?: string }>;
}

/** The HTTP status and the API's reason of a client error. */
export function statusOf(error: unknown): { status?: number; reason: string } {
  const e = error as ApiErrorLike;
  const status =
    e?.status ?? e?.response?.status ?? (typeof e?.code === 'number' ? e.code : undefined);
  const data = e?.response?.data as { error?: { errors?: Array<{ reason?: string }> } } | undefined;
  const reason = data?.error?.errors?.[0]?.reason ?? e?.errors?.[0]?.reason ?? '';
  return { status, reason };
}

export function isNotFound(error: unknown): boolean {
  return statusOf(error).status === 404;
}

const firstLine = (s: string) => s.split('\n')[0] as string;

/**
 * Turns a client error into a SluiceError with a hint; never includes credentials.
 * `what` names the folder or file, e.g. `gdrive://folder/1AbC`.
 */
export function driveError(error: unknown, what: string): SluiceError {
  if (error instanceof SluiceError) return error;
  const { status, reason } = statusOf(error);
  const message = (error as ApiErrorLike)?.message ?? String(error);
  if (status === 404) {
    return new SluiceError(`${what}: not found`, {
      code: 'NOT_FOUND',
      connector: GDRIVE_CONNECTOR,
      hint: 'check the id, and that the folder or file is shared with the account in use (shared drives included)',
      cause: error,
    });
  }
  if (
    /default credentials|could not load the default|invalid_grant|no key or keyFile/i.test(message)
  ) {
    return new SluiceError(`${what}: no usable Google credentials (${firstLine(message)})`, {
      code: 'AUTH',
      connector: GDRIVE_CONNECTOR,
      hint: 'set GOOGLE_APPLICATION_CREDENTIALS (or --key-file) to a service account key, run gcloud auth application-default login, or set GOOGLE_OAUTH_ACCESS_TOKEN',
      cause: error,
    });
  }
  if (status === 401 || (status === 403 && !/rateLimit/i.test(reason))) {
    return new SluiceError(`${what}: access refused (${status}${reason ? ` ${reason}` : ''})`, {
      code: 'AUTH',
      connector: GDRIVE_CONNECTOR,
      hint:
        status === 401
          ? 'the credentials are missing or expired: refresh the access token, or check the key file'
          : 'share the folder or file with the account in use (a service account has its own e-mail address), or check its role',
      cause: error,
    });
  }
  return requestError(error, {
    connector: GDRIVE_CONNECTOR,
    what,
    status,
    unreachable: 'cannot reach Google Drive: check --endpoint and the network',
  });
}

/** The connection flags every Drive command takes. */
export function driveConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--key-file <path>',
    'service account key, or authorized-user file with a refresh token (default: Application Default Credentials; GOOGLE_OAUTH_ACCESS_TOKEN takes an access token)',
  );
  program.option(
    '--endpoint <url>',
    'root URL of the Drive API, e.g. a test server http://127.0.0.1:4480 (default: SLUICE_GDRIVE_ENDPOINT, else Google)',
  );
}

/** Reads the connection flags back. */
export function driveConnectionFromFlags(flags: Record<string, unknown>): DriveConnectionOptions {
  return {
    keyFilename: flags.keyFile as string | undefined,
    endpoint: flags.endpoint as string | undefined,
  };
}
