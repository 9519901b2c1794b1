import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { gunzip } from './convert.js';
import { SluiceError } from './errors.js';
import { type RetryOptions, retrying } from './retry.js';
import { rangedBody } from './source.js';

/** An answer a lean GET got instead of a body: its status, headers and (at most 64 KiB of) text. */
export interface LeanAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Headers of a request, made for each attempt (credentials may have been refreshed). */
type HeadersOf = () => Record<string, string> | Promise<Record<string, string>>;

/**
 * The HTTP half of a connector's lean read path: GETs on a keep-alive agent.
 *
 * `get` hands back only a 200 or 206 response. Anything else (another status, an error before
 * the body, a failure preparing the headers) comes back as undefined after `miss` is told
 * why, and the connector repeats the read through its client library, which retries and
 * reports errors as it always does. An abort is thrown, not missed.
 *
 * `fetch` stands on its own, for connectors whose library read path cannot be used: every
 * answer other than 200/206, and every failure before the body, goes to `fail`, which names
 * it as a SluiceError; retryable ones are tried again through `retrying` (core's retry
 * policy; a Retry-After the server sends is honoured), the others and the last one thrown.
 */
export interface LeanGet {
  get(
    path: string,
    headers: HeadersOf,
    options: { signal?: AbortSignal; miss(reason: number | Error): void },
  ): Promise<IncomingMessage | undefined>;
  fetch(
    path: string,
    headers: HeadersOf,
    options: Pick<RetryOptions, 'retries' | 'baseMs' | 'maxMs' | 'onRetry'> & {
      signal?: AbortSignal;
      fail(answer: LeanAnswer | Error): SluiceError;
    },
  ): Promise<IncomingMessage>;
  close(): void;
}

const ERROR_BODY_BYTES = 64 * 1024;

/** The start of an error answer's body, as text. */
async function answerOf(response: IncomingMessage): Promise<LeanAnswer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of response) {
      if (bytes < ERROR_BODY_BYTES) chunks.push(chunk as Buffer);
      bytes += (chunk as Buffer).byteLength;
    }
  } catch {
    // A body cut short still has its status.
  }
  const body = Buffer.concat(chunks).subarray(0, ERROR_BODY_BYTES).toString('utf8');
  return { status: response.statusCode ?? 0, headers: response.headers, body };
}

/** The headers of the answer an error `fetch` throws stands for (its Retry-After). */
const ANSWER_HEADERS = Symbol('answerHeaders');

/** Node's headers of an answer as fetch's Headers. */
function headersOf(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return out;
}

/** A lean GET for one origin (`http(s)://host[:port]`), at most `maxSockets` at once. */
export function createLeanGet(origin: URL, maxSockets: number): LeanGet {
  const secure = origin.protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets });
  const send = secure ? httpsRequest : httpRequest;
  const port = origin.port ? Number(origin.port) : undefined;
  const request = async (path: string, headers: HeadersOf, signal?: AbortSignal) => {
    const ready = await headers();
    return new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = send(
        { agent, hostname: origin.hostname, port, path, headers: ready, signal },
        resolve,
      );
      outgoing.once('error', reject);
      outgoing.end();
    });
  };
  return {
    async get(path, headers, { signal, miss }) {
      let response: IncomingMessage;
      try {
        response = await request(path, headers, signal);
      } catch (error) {
        if (signal?.aborted) throw error;
        miss(error as Error);
        return undefined;
      }
      const status = response.statusCode ?? 0;
      if (status === 200 || status === 206) return response;
      response.resume();
      miss(status);
      return undefined;
    },
    fetch(path, headers, { signal, fail, ...retry }) {
      return retrying(
        async () => {
          let response: IncomingMessage;
          try {
            response = await request(path, headers, signal);
          } catch (error) {
            if (signal?.aborted) throw error;
            throw fail(error as Error);
          }
          const status = response.statusCode ?? 0;
          if (status === 200 || status === 206) return response;
          const answer = await answerOf(response);
          throw Object.assign(fail(answer), { [ANSWER_HEADERS]: headersOf(answer.headers) });
        },
        {
          ...retry,
          signal,
          headersOf: (error) => (error as { [ANSWER_HEADERS]?: Headers })[ANSWER_HEADERS],
        },
      );
    },
    close() {
      agent.destroy();
    },
  };
}

/**
 * Passes a whole body on while hashing it, and fails at its end when the digest differs from
 * the one the store reported (`what`: `ETag`, `CRC32C` ...), as a retryable IO error.
 */
export async function* checkedBody(
  body: AsyncIterable<Uint8Array>,
  digest: { update(chunk: Uint8Array): unknown; result(): string },
  expected: string,
  mismatch: { uri: string; what: string; connector: string; hint: string },
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    digest.update(chunk);
    yield chunk;
  }
  if (digest.result() !== expected) {
    throw new SluiceError(
      `${mismatch.uri}: the bytes read do not match the object's ${mismatch.what}`,
      {
        code: 'IO',
        connector: mismatch.connector,
        retryable: true,
        hint: mismatch.hint,
      },
    );
  }
}

/**
 * The bytes of a lean GET's answer from byte `start` to `end` (inclusive) of the item, as a
 * caller asked for them: a body sent gzip-encoded (`Content-Encoding: gzip`, as Cloud Storage
 * serves objects stored so) is decoded, and a whole body (200) is cut to the range, because a
 * server may ignore Range (Cloud Storage does when it decompresses an object on the fly).
 * `wire` is the body as received, e.g. passed through a digest check. A 206 must start at
 * `start`; gzip bytes from the middle cannot be decoded, so they are an error.
 */
export function leanBody(
  response: IncomingMessage,
  range: { start?: number; end?: number } = {},
  wire: AsyncIterable<Uint8Array> = response,
): AsyncIterable<Uint8Array> {
  const gzip = /^\s*(x-)?gzip\s*$/i.test(String(response.headers['content-encoding'] ?? ''));
  // gzip bytes from the middle of a stream cannot be decoded.
  if (gzip && response.statusCode === 206 && (range.start ?? 0) > 0) {
    throw new SluiceError(
      `the server answered bytes ${response.headers['content-range']} of gzip-encoded bytes for a read from byte ${range.start}`,
      { code: 'IO', hint: 'read the item again from its start' },
    );
  }
  const answer = {
    status: response.statusCode ?? 0,
    contentRange: response.headers['content-range'],
  };
  return rangedBody(gzip ? gunzip(wire) : wire, answer, range);
}
