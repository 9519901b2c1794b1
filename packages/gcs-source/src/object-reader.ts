import { CRC32C, type Storage } from '@google-cloud/storage';
import {
  checkedBody,
  createLeanGet,
  type LeanAnswer,
  leanBody,
  SluiceError,
  usageError,
} from '@sluice/core';
import { debug, GCS_CONNECTOR, gcsError } from './gcs.js';

/**
 * Object reads (`alt=media`) as plain GETs on a keep-alive agent: the one way Sluice reads
 * objects, source and sink alike. The client library still decides the endpoint and the
 * credentials (its auth client, whose tokens it refreshes), for a client Sluice builds and for
 * one a caller passes.
 *
 * Why not the library's `createReadStream` / `download`: on Node 24 its streaming path
 * (teeny-request 11.1.1 under retry-request 9.1.0, with @google-cloud/storage 8.4) pipes into a
 * stream that the retry has already destroyed, and Node throws ERR_STREAM_UNABLE_TO_PIPE
 * outside any try/catch, killing the process after one retryable answer
 * (googleapis/google-cloud-node#8670); it also costs a few milliseconds of CPU per object.
 *
 * Here failures are retried with backoff (408, 429, 5xx, a 403 rate limit, dropped
 * connections) and named as the library's would be. Objects stored gzip-encoded
 * (`gsutil cp -Z`) are asked for as stored and decoded here, since the service serves them
 * compressed when they are marked `no-transform`, and otherwise decompresses them while
 * ignoring Range (https://cloud.google.com/storage/docs/transcoding). Whole bodies are checked
 * against the CRC32C the service reports (`x-goog-hash`) whenever they are the stored bytes.
 */
export interface ObjectReader {
  /**
   * The bytes of an object from `start` to `end` (inclusive) of its content, decoded.
   * Errors are SluiceErrors; a missing object's (or generation's) has code NOT_FOUND and the
   * API's answer as its cause.
   */
  read(
    name: string,
    options?: {
      generation?: string;
      start?: number;
      end?: number;
      /** The object's stored Content-Encoding, if known (gzip: no Range is sent). */
      contentEncoding?: string;
      signal?: AbortSignal;
    },
  ): Promise<AsyncIterable<Uint8Array>>;
  close(): void;
}

interface StorageInternals {
  baseUrl?: string;
  customEndpoint?: boolean;
  useAuthWithCustomEndpoint?: boolean;
  authClient?: { getRequestHeaders(url?: string): Promise<Headers | Record<string, string>> };
}

/** An error answer as the client library reports it, so `gcsError` and `isMissingObject` read it. */
function apiErrorOf(answer: LeanAnswer): Error {
  let body: { error?: { message?: string; errors?: Array<{ reason?: string }> } } = {};
  try {
    body = JSON.parse(answer.body);
  } catch {
    // An XML or empty body: the status says enough.
  }
  const message =
    body.error?.message ?? (answer.body.trim().slice(0, 200) || `HTTP ${answer.status}`);
  return Object.assign(new Error(message), {
    code: answer.status,
    errors: body.error?.errors ?? [],
  });
}

/** Builds the read path for one bucket of a client. */
export function createObjectReader(
  storage: Storage,
  bucket: string,
  maxSockets: number,
): ObjectReader {
  const internals = storage as unknown as StorageInternals;
  let base: URL;
  try {
    base = new URL(internals.baseUrl ?? '');
  } catch {
    base = new URL('invalid:');
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw usageError(
      `the Storage client has no JSON API endpoint Sluice can read from (${internals.baseUrl})`,
      'pass a Storage from @google-cloud/storage 8, or let Sluice build one (--endpoint, --key-file)',
    );
  }
  // As the library does: an emulator's endpoint gets no credentials unless asked for.
  const authenticate = !internals.customEndpoint || internals.useAuthWithCustomEndpoint === true;
  const http = createLeanGet(new URL(base.origin), maxSockets);
  const prefix = `${base.pathname.replace(/\/$/, '')}/b/${encodeURIComponent(bucket)}/o/`;
  debug('object reads: %s//%s%s', base.protocol, base.host, prefix);

  return {
    async read(name, { generation, start = 0, end, contentEncoding, signal } = {}) {
      const uri = `gs://${bucket}/${name}`;
      const path = `${prefix}${encodeURIComponent(name)}?alt=media${generation ? `&generation=${generation}` : ''}`;
      const gzip = contentEncoding === 'gzip';
      // Stored gzip bytes are asked for whole and as stored; ranges apply to decoded bytes.
      const headers: Record<string, string> = { 'accept-encoding': gzip ? 'gzip' : 'identity' };
      if (!gzip && (start > 0 || end !== undefined)) headers.range = `bytes=${start}-${end ?? ''}`;
      const response = await http.fetch(
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
          fail: (answer) => gcsError(answer instanceof Error ? answer : apiErrorOf(answer), uri),
          onRetry: (error, retry, wait) =>
            debug('read of %s: retry %d in %d ms (%s)', uri, retry, wait, (error as Error).message),
        },
      );
      const crc32c = /(?:^|,)\s*crc32c=([^,\s]+)/.exec(
        String(response.headers['x-goog-hash'] ?? ''),
      )?.[1];
      // The bytes on the wire are the stored ones unless the service decompressed them.
      const stored =
        String(response.headers['x-goog-stored-content-encoding'] ?? 'identity') ===
        String(response.headers['content-encoding'] ?? 'identity');
      const whole = response.statusCode === 200 && crc32c && stored;
      const crc = new CRC32C();
      const wire = whole
        ? checkedBody(
            response,
            { update: (c) => crc.update(c as Buffer), result: () => crc.toString() },
            crc32c,
            {
              uri,
              what: 'CRC32C',
              connector: GCS_CONNECTOR,
              hint: 'the transfer was corrupted: rerun',
            },
          )
        : response;
      try {
        return leanBody(response, { start, end }, wire);
      } catch (error) {
        response.destroy();
        throw new SluiceError(`${uri}: ${(error as Error).message}`, {
          code: 'IO',
          connector: GCS_CONNECTOR,
          retryable: true,
          cause: error,
        });
      }
    },
    close() {
      http.close();
    },
  };
}
