/** Stable error codes. A CLI maps them to exit codes; library users switch on them. */
export type SluiceErrorCode =
  /** Wrong flags or arguments (exit code 2). */
  | 'USAGE'
  /** A line of input is not valid JSON or not a valid task. */
  | 'BAD_INPUT'
  /** A line is longer than the configured maximum. */
  | 'LINE_TOO_LONG'
  /** Bytes could not be converted into tasks (bad CSV, bad JSON document, ...). */
  | 'CONVERT'
  /** The store refused the credentials or the operation. */
  | 'AUTH'
  /** The bucket, folder, object or page does not exist. */
  | 'NOT_FOUND'
  /** A write would overwrite something the user asked to keep. */
  | 'CONFLICT'
  /** A key or path would escape the sink's root. */
  | 'UNSAFE_KEY'
  /** A checkpoint file is unreadable or from an incompatible version. */
  | 'STATE'
  /** The store or network failed; a retry may help. */
  | 'IO'
  /** An item changed while it was read: its version is no longer the one listed. */
  | 'CHANGED'
  /** The user stopped the run (Ctrl-C). */
  | 'INTERRUPTED'
  /** Anything else: a bug in Sluice. */
  | 'INTERNAL';

export interface SluiceErrorOptions {
  code: SluiceErrorCode;
  /** Connector that raised the error, e.g. `s3` or `fs`; `core` for the shared loops. */
  connector?: string;
  /** One sentence telling the user what to do about it. */
  hint?: string;
  cause?: unknown;
  /** Whether repeating the same operation may succeed. */
  retryable?: boolean;
}

/**
 * The one error class of Sluice: a code, the connector, a hint for the user, the cause and
 * whether a retry can help. Message and hint pass through {@link redact}, so credentials in a
 * URL never reach a user's terminal or logs through an error.
 */
export class SluiceError extends Error {
  readonly code: SluiceErrorCode;
  readonly connector: string;
  readonly hint: string | undefined;
  readonly retryable: boolean;

  constructor(message: string, options: SluiceErrorOptions) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SluiceError';
    this.code = options.code;
    this.connector = options.connector ?? 'core';
    this.hint = options.hint === undefined ? undefined : redact(options.hint);
    this.retryable = options.retryable ?? false;
  }
}

export function isSluiceError(error: unknown): error is SluiceError {
  return error instanceof SluiceError;
}

/** Shorthand for a usage error (bad flag, bad URL). */
export function usageError(message: string, hint?: string): SluiceError {
  return new SluiceError(message, { code: 'USAGE', hint });
}

/** Wraps an unknown failure, keeping SluiceErrors as they are. */
export function toSluiceError(error: unknown, connector = 'core'): SluiceError {
  if (error instanceof SluiceError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'ENOENT') {
    return new SluiceError(message, { code: 'NOT_FOUND', connector, cause: error });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new SluiceError(message, { code: 'AUTH', connector, cause: error });
  }
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    return new SluiceError(message, { code: 'IO', connector, cause: error, retryable: true });
  }
  return new SluiceError(message, { code: 'INTERNAL', connector, cause: error });
}

/**
 * The reasons Google's APIs give when they throttle a caller. Drive answers them with 403 as
 * well as 429, and asks for a retry with exponential backoff
 * (https://developers.google.com/drive/api/guides/limits); Cloud Storage with 429.
 */
export const RATE_LIMIT_REASONS: readonly string[] = ['rateLimitExceeded', 'userRateLimitExceeded'];

/** Whether an HTTP answer (status, and the API's reason if it gave one) asks to be retried later. */
export function isRetryableStatus(status: number, reason = ''): boolean {
  return status >= 500 || status === 429 || status === 408 || RATE_LIMIT_REASONS.includes(reason);
}

/** The code of a failure to connect: Node's, or the `cause` of fetch's "fetch failed". */
export function networkCode(error: unknown): string | undefined {
  for (
    let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 3;
    depth++
  ) {
    if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

/**
 * The last step of a connector's error mapping, after its own cases (not found, auth): the
 * client's error named by `what` (its first line), retryable on 408, 429, 5xx, a rate-limit
 * `reason` (a 403 from Google) and network failures, and with `unreachable` as the hint when
 * the host cannot be reached. An HTTP error status makes it an `IO` error rather than an
 * `INTERNAL` one.
 */
export function requestError(
  error: unknown,
  options: {
    connector: string;
    what: string;
    status?: number;
    /** The API's reason for the answer, e.g. Google's `userRateLimitExceeded`. */
    reason?: string;
    unreachable: string;
  },
): SluiceError {
  const { connector, what, status = 0 } = options;
  const failure = toSluiceError(error, connector);
  // fetch says only "fetch failed": the cause's code says why.
  const code = networkCode(error);
  const network = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET/.test(`${code} ${failure.message}`);
  const first = failure.message.split('\n')[0] ?? '';
  const message = code && !first.includes(code) ? `${first} (${code})` : first;
  return new SluiceError(`${what}: ${message}`, {
    code: failure.code === 'INTERNAL' && status >= 400 ? 'IO' : failure.code,
    connector,
    hint: network ? options.unreachable : failure.hint,
    cause: error,
    retryable:
      (status > 0 && isRetryableStatus(status, options.reason)) || network || failure.retryable,
  });
}

/** How a REST connector names an answer it knows: the code, the words after the place, a hint. */
export interface KnownAnswer {
  code: SluiceErrorCode;
  text: string;
  hint: string;
}

/**
 * A REST client's failure as a SluiceError: `what: text (the API's message)` with the code and
 * hint of `known`, the case the connector recognised; anything else as `requestError`.
 */
export function apiError(
  error: unknown,
  options: {
    connector: string;
    what: string;
    status?: number;
    /** The API's own message, shown after the text (at most 200 characters). */
    message?: string;
    known?: KnownAnswer;
    unreachable: string;
  },
): SluiceError {
  if (error instanceof SluiceError) return error;
  const { connector, what, known, message } = options;
  if (!known) return requestError(error, options);
  const detail = message ? ` (${message.slice(0, 200)})` : '';
  return new SluiceError(`${what}: ${known.text}${detail}`, {
    code: known.code,
    connector,
    hint: known.hint,
    cause: error,
  });
}

/**
 * Query parameters whose values are secrets wherever they appear: request signatures (AWS,
 * Google, Azure), OAuth and API tokens and keys, passwords, Content Server tickets.
 */
const SECRET_PARAMS = [
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
  'signature',
  'sig',
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'api_key',
  'apikey',
  'key',
  'client_secret',
  'secret',
  'password',
  'passwd',
  'ticket',
  'otcsticket',
  'code',
];

const SECRET_QUERY = new RegExp(`([?&;])(${SECRET_PARAMS.join('|')})=[^&#\\s"'<>]*`, 'gi');
// The authority of a URL up to its last `@`: `user:password@` (a password may hold `@`).
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^/?#\s"'<>]*@/gi;

/** The one redaction rule for every message, log and debug line: what a URL's userinfo or secret parameters hold becomes `***`. */
export function redact(text: string): string {
  if (!text.includes('@') && !text.includes('=')) return text;
  return text.replace(USERINFO, '$1***@').replace(SECRET_QUERY, '$1$2=***');
}

/** Whether a URL (or `host:port`) carries credentials in its userinfo. */
export function hasUserinfo(url: string): boolean {
  return /^(?:[a-z][a-z0-9+.-]*:\/\/)?[^/?#\s]*@/i.test(url.trim());
}
