// Google's per-API Drive client: `googleapis` holds every Google API (200 MB installed).
import { drive_v3 } from '@googleapis/drive';
import {
  debugLog,
  RATE_LIMIT_REASONS,
  type RetryOptions,
  requestError,
  retrying,
  SluiceError,
  serviceUrl,
  usageError,
} from '@sluice/core';
import { GoogleAuth, OAuth2Client } from 'google-auth-library';

export const GDRIVE_CONNECTOR = 'gdrive';
export const FOLDER_TYPE = 'application/vnd.google-apps.folder';
export const SHORTCUT_TYPE = 'application/vnd.google-apps.shortcut';
export const READ_SCOPE = 'https://www.googleapis.com/auth/drive.readonly';
export const WRITE_SCOPE = 'https://www.googleapis.com/auth/drive';

export type Drive = drive_v3.Drive;

export const debug = debugLog('sluice:gdrive');

/** How to reach Drive. Shared by source and sink. */
export interface DriveConnectionOptions {
  /** A ready client (`drive({ version: 'v3', auth })` of `@googleapis/drive`); the options below are then ignored. */
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
    // Retries are driveCall's, which knows Drive's 403 rate limits and retries every method.
    retry: false,
  });
}

/**
 * Options for every request through `driveCall`: the client's own retries off (a client a
 * caller passes retries by default), so that attempts do not multiply.
 */
export const ONE_TRY = { retry: false } as const;

/**
 * One Drive request, tried again with exponential backoff while it fails with an answer a
 * retry can mend: 429, 5xx, a 403 rate limit (Drive throttles with 403 userRateLimitExceeded
 * and rateLimitExceeded as well as 429, https://developers.google.com/drive/api/guides/limits)
 * or a dropped connection. Failures come out as `driveError` names them, the API's error
 * as their cause. Writes are retried too: callers make them safe to repeat.
 */
export function driveCall<T>(
  what: string,
  call: () => Promise<T>,
  options: Pick<RetryOptions, 'retries' | 'signal'> = {},
): Promise<T> {
  return retrying(
    async () => {
      try {
        return await call();
      } catch (error) {
        throw driveError(error, what);
      }
    },
    {
      ...options,
      // A 429 may say how long to wait (Retry-After): the client error keeps the answer.
      headersOf: (error) => {
        const headers = (error as { cause?: ApiErrorLike })?.cause?.response?.headers;
        return headers instanceof Headers ? headers : undefined;
      },
      onRetry: (error, retry, wait) =>
        debug('%s: retry %d in %d ms (%s)', what, retry, wait, (error as Error).message),
    },
  );
}

interface ApiErrorLike {
  status?: number;
  code?: number | string;
  message?: string;
  response?: { status?: number; data?: unknown; headers?: unknown };
  errors?: Array<{ reason?: string; message?: string }>;
}

interface ErrorBody {
  error?: { message?: string; errors?: Array<{ reason?: string; message?: string }> };
}

/**
 * The HTTP status, the API's reason and message of a client error (or of the cause of a
 * SluiceError made from one). A download's or an export's error body arrives as text (as
 * the client error's message), since the response was asked for as a stream; it is parsed
 * here.
 */
export function statusOf(error: unknown): { status?: number; reason: string; message?: string } {
  const e = (error instanceof SluiceError ? error.cause : error) as ApiErrorLike;
  const status =
    e?.status ?? e?.response?.status ?? (typeof e?.code === 'number' ? e.code : undefined);
  // A streamed answer's body ends up as text: in the data, or as the client error's message.
  let data = (e?.response?.data ?? e?.message) as ErrorBody | string | undefined;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data) as ErrorBody;
    } catch {
      data = undefined;
    }
  }
  const body = typeof data === 'object' ? data?.error : undefined;
  const reason = body?.errors?.[0]?.reason ?? e?.errors?.[0]?.reason ?? '';
  return { status, reason, message: body?.message ?? e?.message };
}

export function isNotFound(error: unknown): boolean {
  return statusOf(error).status === 404;
}

const firstLine = (s: string) => s.split('\n')[0] as string;

/** How to give credentials the Drive scope, for the answer to a token without it. */
const SCOPE_HINT =
  'a user token needs `gcloud auth login --enable-gdrive-access`, then GOOGLE_OAUTH_ACCESS_TOKEN=$(gcloud auth print-access-token); Application Default Credentials need `gcloud auth application-default login --client-id-file=CLIENT.json --scopes=https://www.googleapis.com/auth/drive,https://www.googleapis.com/auth/cloud-platform` (an OAuth client of your own); a service account key (--key-file) gets the scope by itself';

/**
 * Turns a client error into a SluiceError with a hint; never includes credentials.
 * `what` names the folder or file, e.g. `gdrive://folder/1AbC`.
 */
export function driveError(error: unknown, what: string): SluiceError {
  if (error instanceof SluiceError) return error;
  const { status, reason, message: apiMessage } = statusOf(error);
  const message = apiMessage ?? (error as ApiErrorLike)?.message ?? String(error);
  const fail = (code: SluiceError['code'], text: string, hint: string) =>
    new SluiceError(`${what}: ${text}`, { code, connector: GDRIVE_CONNECTOR, hint, cause: error });
  if (status === 404) {
    return fail(
      'NOT_FOUND',
      'not found',
      'check the id, and that the folder or file is shared with the account in use (shared drives included)',
    );
  }
  if (
    /default credentials|could not load the default|invalid_grant|no key or keyFile/i.test(message)
  ) {
    return fail(
      'AUTH',
      `no usable Google credentials (${firstLine(message)})`,
      'set GOOGLE_APPLICATION_CREDENTIALS (or --key-file) to a service account key, run gcloud auth application-default login, or set GOOGLE_OAUTH_ACCESS_TOKEN',
    );
  }
  if (status === 403 && reason === 'exportSizeLimitExceeded') {
    return fail(
      'CONVERT',
      'too large for Drive to export (403 exportSizeLimitExceeded)',
      'Drive exports at most 10 MB of a Google Doc, Sheet or Slides; split it, or download it as a file (File > Download) into the folder',
    );
  }
  if (
    status === 403 &&
    (reason === 'insufficientPermissions' || /insufficient authentication scopes/i.test(message))
  ) {
    return fail(
      'AUTH',
      'the credentials lack the Drive scope (403 insufficientPermissions)',
      SCOPE_HINT,
    );
  }
  if (status === 403 && reason === 'storageQuotaExceeded') {
    return /service account/i.test(message)
      ? fail(
          'AUTH',
          'service accounts have no Drive storage of their own, so they can write only into shared drives (403 storageQuotaExceeded)',
          "export into a folder in a shared drive, with the service account a member (Content manager), or use a user's credentials (GOOGLE_OAUTH_ACCESS_TOKEN, or an authorized-user file from gcloud auth application-default login)",
        )
      : fail(
          'AUTH',
          'the Drive storage quota of the account in use is used up (403 storageQuotaExceeded)',
          'free space in that Drive (empty its bin), or export into a shared drive',
        );
  }
  if (status === 401 || (status === 403 && !RATE_LIMIT_REASONS.includes(reason))) {
    return fail(
      'AUTH',
      `access refused (${status}${reason ? ` ${reason}` : ''})`,
      status === 401
        ? 'the credentials are missing or expired: refresh the access token, or check the key file'
        : 'share the folder or file with the account in use (a service account has its own e-mail address), or check its role',
    );
  }
  // The API's message rather than the client's (a streamed answer's is its whole body).
  const named = Object.assign(new Error(message), { code: (error as ApiErrorLike)?.code });
  const failure = requestError(named, {
    connector: GDRIVE_CONNECTOR,
    what,
    status,
    reason,
    unreachable: 'cannot reach Google Drive: check --endpoint and the network',
  });
  return new SluiceError(failure.message, {
    code: failure.code,
    connector: GDRIVE_CONNECTOR,
    hint: failure.hint,
    cause: error,
    retryable: failure.retryable,
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
