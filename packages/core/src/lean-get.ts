import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { SluiceError } from './errors.js';

/**
 * The HTTP half of a connector's lean read path: GETs on a keep-alive agent that hand back
 * only a 200 or 206 response. Anything else (another status, an error before the body, a
 * failure preparing the headers) comes back as undefined after `miss` is told why, and the
 * connector repeats the read through its client library, which retries and reports errors as
 * it always does. An abort is thrown, not missed.
 */
export interface LeanGet {
  get(
    path: string,
    headers: () => Record<string, string> | Promise<Record<string, string>>,
    options: { signal?: AbortSignal; miss(reason: number | Error): void },
  ): Promise<IncomingMessage | undefined>;
  close(): void;
}

/** A lean GET for one origin (`http(s)://host[:port]`), at most `maxSockets` at once. */
export function createLeanGet(origin: URL, maxSockets: number): LeanGet {
  const secure = origin.protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets });
  const send = secure ? httpsRequest : httpRequest;
  const port = origin.port ? Number(origin.port) : undefined;
  return {
    async get(path, headers, { signal, miss }) {
      let response: IncomingMessage;
      try {
        const ready = await headers();
        response = await new Promise<IncomingMessage>((resolve, reject) => {
          const request = send(
            { agent, hostname: origin.hostname, port, path, headers: ready, signal },
            resolve,
          );
          request.once('error', reject);
          request.end();
        });
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
