import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { CRC32C, type Storage } from '@google-cloud/storage';
import { SluiceError } from '@sluice/core';
import { debug, GCS_CONNECTOR } from './gcs.js';

/**
 * Object reads without the client library's per-request machinery. Profiled on many small
 * objects, `createReadStream` costs a few milliseconds of CPU per object (request wrappers,
 * stream plumbing, retry and validation layers), several times the request itself. Here the
 * library still decides the endpoint and the credentials (its auth client, whose tokens it
 * refreshes); each read is a plain GET of `alt=media` on a keep-alive agent.
 *
 * Only the happy path is handled: any answer other than 200/206, and any error before the
 * body starts, returns undefined and the caller repeats the read through the library, which
 * retries and reports errors as before. Whole bodies are checked against the CRC32C the
 * service reports (`x-goog-hash`), as the library does.
 */
export interface FastGet {
  get(
    name: string,
    options: { generation?: string; range?: string; signal?: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array> | undefined>;
  close(): void;
}

interface StorageInternals {
  baseUrl?: string;
  customEndpoint?: boolean;
  useAuthWithCustomEndpoint?: boolean;
  authClient?: { getRequestHeaders(url?: string): Promise<Headers | Record<string, string>> };
}

/** Checks a whole body against its CRC32C while passing it on. */
async function* verified(
  body: IncomingMessage,
  crc32c: string,
  uri: string,
): AsyncGenerator<Uint8Array> {
  const crc = new CRC32C();
  for await (const chunk of body as AsyncIterable<Buffer>) {
    crc.update(chunk);
    yield chunk;
  }
  if (crc.toString() !== crc32c) {
    throw new SluiceError(`${uri}: the bytes read do not match the object's CRC32C`, {
      code: 'IO',
      connector: GCS_CONNECTOR,
      retryable: true,
      hint: 'the transfer was corrupted: rerun',
    });
  }
}

/** Builds the fast path for one bucket, or undefined when the client's set-up is not one it knows. */
export function createFastGet(
  storage: Storage,
  bucket: string,
  maxSockets: number,
): FastGet | undefined {
  const internals = storage as unknown as StorageInternals;
  let base: URL;
  try {
    base = new URL(internals.baseUrl ?? '');
  } catch {
    debug('fast read path off: no JSON API base URL on the client');
    return undefined;
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return undefined;
  // As the library does: an emulator's endpoint gets no credentials unless asked for.
  const authenticate = !internals.customEndpoint || internals.useAuthWithCustomEndpoint === true;
  if (authenticate && !internals.authClient) return undefined;
  const secure = base.protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets });
  const send = secure ? httpsRequest : httpRequest;
  const prefix = `${base.pathname.replace(/\/$/, '')}/b/${encodeURIComponent(bucket)}/o/`;
  debug('fast read path on: %s//%s%s', base.protocol, base.host, prefix);

  return {
    async get(name, { generation, range, signal }) {
      const path = `${prefix}${encodeURIComponent(name)}?alt=media${generation ? `&generation=${generation}` : ''}`;
      const headers: Record<string, string> = { 'accept-encoding': 'identity' };
      if (range) headers.range = range;
      let response: IncomingMessage;
      try {
        if (authenticate) {
          const auth = await internals.authClient?.getRequestHeaders(`${base.origin}${path}`);
          const entries =
            auth instanceof Headers ? [...auth.entries()] : Object.entries(auth ?? {});
          for (const [key, value] of entries) headers[key.toLowerCase()] = value;
        }
        response = await new Promise<IncomingMessage>((resolve, reject) => {
          const request = send(
            {
              agent,
              protocol: base.protocol,
              hostname: base.hostname,
              port: base.port,
              path,
              headers,
              signal,
            },
            resolve,
          );
          request.once('error', reject);
          request.end();
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        debug(
          'fast read of %s failed before the body (%s): through the library',
          name,
          (error as Error).message,
        );
        return undefined;
      }
      const status = response.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        response.resume();
        debug('fast read of %s answered %d: through the library', name, status);
        return undefined;
      }
      const crc32c = /(?:^|,)\s*crc32c=([^,\s]+)/.exec(
        String(response.headers['x-goog-hash'] ?? ''),
      )?.[1];
      const identity = response.headers['x-goog-stored-content-encoding'] === 'identity';
      if (status === 200 && crc32c && identity && !response.headers['content-encoding']) {
        return verified(response, crc32c, `gs://${bucket}/${name}`);
      }
      return response;
    },
    close() {
      agent.destroy();
    },
  };
}
