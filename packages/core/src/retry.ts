import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from './errors.js';

/** How a request is tried again. */
export interface RetryOptions {
  /** Retries after the first attempt (default 5). */
  retries?: number;
  /** Wait before the first retry, doubled for each next one (default 500 ms). */
  baseMs?: number;
  /** Longest wait between two attempts (default 32 s, Google's suggested ceiling). */
  maxMs?: number;
  /** Stops waiting and retrying. */
  signal?: AbortSignal;
  /** Whether a failure is worth another attempt (default: a SluiceError's `retryable`). */
  retryable?(error: unknown): boolean;
  /** A wait the server asked for (Retry-After), in ms, if the failure carries one. */
  retryAfterMs?(error: unknown): number | undefined;
  /** Told before each wait, e.g. for a debug log. */
  onRetry?(error: unknown, retry: number, waitMs: number): void;
}

/**
 * The wait before retry number `retry` (1-based): exponential from `baseMs` up to `maxMs`,
 * each drawn between half and all of its step, so clients that failed together spread out
 * (the truncated exponential backoff Google's APIs ask for).
 */
export function backoffMs(retry: number, baseMs = 500, maxMs = 32_000): number {
  const step = Math.min(baseMs * 2 ** (retry - 1), maxMs);
  return Math.round(step * (0.5 + Math.random() / 2));
}

/** Seconds of a Retry-After header (or an HTTP date), in ms; undefined when absent or odd. */
export function retryAfterMs(value: string | string[] | null | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(text);
  return Number.isFinite(date) ? Math.max(date - Date.now(), 0) : undefined;
}

/**
 * Runs `attempt` until it succeeds, a failure is not retryable, or the retries are spent.
 * A retryable SluiceError that is still failing when the retries are spent is thrown as not
 * retryable, so that loops around this one (a source's read resumption) do not multiply the
 * attempts.
 */
export async function retrying<T>(
  attempt: (retry: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const { retries = 5, baseMs = 500, maxMs = 32_000, signal } = options;
  const retryable =
    options.retryable ?? ((error: unknown) => error instanceof SluiceError && error.retryable);
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(retry);
    } catch (error) {
      if (signal?.aborted || !retryable(error)) throw error;
      if (retry >= retries) throw spent(error);
      const asked = options.retryAfterMs?.(error);
      const wait = Math.min(asked ?? backoffMs(retry + 1, baseMs, maxMs), maxMs);
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
