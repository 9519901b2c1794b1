import { CRC32C, type Storage } from '@google-cloud/storage';
import { checkedBody, createLeanGet } from '@sluice/core';
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
  const http = createLeanGet(new URL(base.origin), maxSockets);
  const prefix = `${base.pathname.replace(/\/$/, '')}/b/${encodeURIComponent(bucket)}/o/`;
  debug('fast read path on: %s//%s%s', base.protocol, base.host, prefix);

  return {
    async get(name, { generation, range, signal }) {
      const path = `${prefix}${encodeURIComponent(name)}?alt=media${generation ? `&generation=${generation}` : ''}`;
      const headers: Record<string, string> = { 'accept-encoding': 'identity' };
      if (range) headers.range = range;
      const response = await http.get(
        path,
        async () => {
          if (!authenticate) return headers;
          const auth = await internals.authClient?.getRequestHeaders(`${base.origin}${path}`);
          const entries =
            auth instanceof Headers ? [...auth.entries()] : Object.entries(auth ?? {});
          for (const [key, value] of entries) headers[key.toLowerCase()] = value;
          return headers;
        },
        {
          signal,
          miss: (reason) =>
            debug(
              'fast read of %s %s: through the library',
              name,
              typeof reason === 'number' ? `answered ${reason}` : `failed (${reason.message})`,
            ),
        },
      );
      if (!response) return undefined;
      const status = response.statusCode;
      const crc32c = /(?:^|,)\s*crc32c=([^,\s]+)/.exec(
        String(response.headers['x-goog-hash'] ?? ''),
      )?.[1];
      const identity = response.headers['x-goog-stored-content-encoding'] === 'identity';
      if (status === 200 && crc32c && identity && !response.headers['content-encoding']) {
        const crc = new CRC32C();
        return checkedBody(
          response,
          { update: (c) => crc.update(c as Buffer), result: () => crc.toString() },
          crc32c,
          {
            uri: `gs://${bucket}/${name}`,
            what: 'CRC32C',
            connector: GCS_CONNECTOR,
            hint: 'the transfer was corrupted: rerun',
          },
        );
      }
      return response;
    },
    close() {
      http.close();
    },
  };
}
