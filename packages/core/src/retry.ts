// How Sluice retries: only answers a retry can change, waiting as long as the service asks,
// and long enough without being told. Sluice's own REST clients (Confluence, File 360) send
// through `sendWithRetry`; connectors on a Google client library call `retrying`.
import { setTimeout as sleep } from 'node:timers/promises';
import { networkCode, SluiceError } from './errors.js';

/** How a REST client retries an answer worth retrying. */
export interface RetryPolicy {
  /** Retries after the first attempt (default 6). */
  retries?: number;
  /** The first wait when the answer names none, doubled each time (default 1000 ms). */
  baseMs?: number;
  /** The longest wait (default 60 s): an answer asking for more fails at once. */
  maxMs?: number;
}

const DEFAULTS: Required<RetryPolicy> = { retries: 6, baseMs: 1000, maxMs: 60_000 };

/** Methods that may be sent twice without doing twice what they do. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/**
 * Whether an answer may change when the request is sent again: 429 for any method (a throttled
 * request was not processed), 502, 503 and 504 for a request that is safe to repeat. A 500 is
 * the server's answer to this request, not to this moment, and is never retried.
 */
export function isTransient(status: number, method: string): boolean {
  if (status === 429) return true;
  return (status === 502 || status === 503 || status === 504) && IDEMPOTENT.has(method);
}

/**
 * How long an answer asks the caller to wait: `Retry-After` (seconds or an HTTP date), else
 * `X-RateLimit-Reset` (an ISO 8601 time, as Atlassian sends it); undefined when it names none.
 */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const after = headers.get('retry-after')?.trim();
  if (after) {
    if (/^\d+(\.\d+)?$/.test(after)) return Number(after) * 1000;
    const at = Date.parse(after);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get('x-ratelimit-reset')?.trim();
  if (reset && !/^\d+$/.test(reset)) {
    const at = Date.parse(reset);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  return undefined;
}

/**
 * The wait before retry number `attempt` (0 for the first), or undefined when the policy gives
 * up: what the answer asks for, else an exponential backoff with jitter (so that parallel
 * clients do not come back together).
 */
export function retryWait(
  headers: Headers | undefined,
  attempt: number,
  policy: RetryPolicy = {},
): number | undefined {
  const { retries, baseMs, maxMs } = { ...DEFAULTS, ...policy };
  if (attempt >= retries) return undefined;
  const asked = headers ? retryAfterMs(headers) : undefined;
  if (asked !== undefined) return asked <= maxMs ? asked : undefined;
  const backoff = Math.min(maxMs, baseMs * 2 ** attempt);
  return backoff / 2 + Math.random() * (backoff / 2);
}

/** Retries of a request that got no answer at all: a few, since the usual cause is a wrong URL. */
const NETWORK_RETRIES = 3;

/**
 * The wait before another try of a request that got no answer: none for a host name that does
 * not exist (ENOTFOUND, which no retry mends), else the policy's backoff for a few tries. A
 * refused or dropped connection may be a restart, but is usually a wrong URL, which must not
 * keep a user waiting a minute.
 */
function networkRetryWait(error: unknown, attempt: number, policy: RetryPolicy = {}) {
  if (networkCode(error) === 'ENOTFOUND') return undefined;
  const retries = Math.min(policy.retries ?? DEFAULTS.retries, NETWORK_RETRIES);
  return retryWait(undefined, attempt, { ...policy, retries });
}

/**
 * Sends a request (`send` makes it anew each time) until the answer is not transient or the
 * policy gives up, and returns that answer, ok or not. A dropped connection is retried for
 * methods safe to repeat; `transient` replaces the status test when a service needs its own.
 */
export async function sendWithRetry(
  send: () => Promise<Response>,
  options: {
    method: string;
    policy?: RetryPolicy;
    signal?: AbortSignal;
    transient?: (response: Response) => boolean;
    /** Told before each wait (for debug logs). */
    onRetry?: (reason: string, waitMs: number) => void;
  },
): Promise<Response> {
  const { method, policy, signal } = options;
  const transient = options.transient ?? ((r: Response) => isTransient(r.status, method));
  for (let attempt = 0; ; attempt++) {
    let response: Response;
    try {
      response = await send();
    } catch (error) {
      const wait = IDEMPOTENT.has(method) ? networkRetryWait(error, attempt, policy) : undefined;
      if (signal?.aborted || wait === undefined) throw error;
      options.onRetry?.((error as Error).message, wait);
      await sleep(wait, undefined, { signal });
      continue;
    }
    if (response.ok || !transient(response)) return response;
    const wait = retryWait(response.headers, attempt, policy);
    if (wait === undefined || signal?.aborted) return response;
    options.onRetry?.(`HTTP ${response.status}`, wait);
    await response.body?.cancel().catch(() => {});
    await sleep(wait, undefined, { signal });
  }
}

/** How `retrying` retries a call whose failures are errors (a client library's), not answers. */
export interface RetryOptions extends RetryPolicy {
  /** Stops waiting and retrying. */
  signal?: AbortSignal;
  /** Whether a failure is worth another attempt (default: a SluiceError's `retryable`). */
  retryable?(error: unknown): boolean;
  /** The headers of the answer a failure carries, for the wait it asks for (Retry-After). */
  headersOf?(error: unknown): Headers | undefined;
  /** Told before each wait, e.g. for a debug log. */
  onRetry?(error: unknown, retry: number, waitMs: number): void;
}

/**
 * Runs `attempt` until it succeeds, a failure is not retryable, or the policy gives up (the
 * waits of `retryWait`). For connectors whose client library throws rather than answers, and
 * whose services say which failures a retry can mend (Google's: 408, 429, 5xx, a 403 rate
 * limit). A retryable SluiceError still failing when the policy gives up is thrown as not
 * retryable, so that loops around this one (a source resuming a read) do not multiply it.
 */
export async function retrying<T>(
  attempt: (retry: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { signal } = options;
  const retryable =
    options.retryable ?? ((error: unknown) => error instanceof SluiceError && error.retryable);
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(retry);
    } catch (error) {
      if (signal?.aborted || !retryable(error)) throw error;
      const wait = retryWait(options.headersOf?.(error), retry, options);
      if (wait === undefined) throw spent(error);
      options.onRetry?.(error, retry + 1, wait);
      await sleep(wait, undefined, signal ? { signal } : undefined);
    }
  }
}

/** A failure after the last retry: the same error, no longer retryable. */
function spent(error: unknown): unknown {
  if (!(error instanceof SluiceError) || !error.retryable) return error;
  const final = new SluiceError(error.message, {
    code: error.code,
    connector: error.connector,
    hint: error.hint,
    cause: error.cause,
    retryable: false,
  });
  final.stack = error.stack;
  return final;
}
