import type { Storage } from '@google-cloud/storage';
import { createSink, type Sink, type SinkDriver, type SinkOptions } from '@sluice/core';
import {
  createStorage,
  GCS_CONNECTOR,
  type GcsConnectionOptions,
  gcsError,
  isMissingObject,
  parseGcsUrl,
} from '@sluice/gcs-source';

/** Options of the Cloud Storage sink: core sink options, the connection, and where to write. */
export interface GcsSinkOptions extends SinkOptions, GcsConnectionOptions {
  /** Export root: `gs://bucket/prefix/`, with {dataset} {date} {timestamp} {answer} {label}. */
  url: string;
  /**
   * Parts larger than this go up as resumable uploads, in chunks of this size (default 8 MiB;
   * a multiple of 256 KiB). Each chunk is retried on its own; smaller parts are one request.
   */
  chunkSize?: number;
}

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const CHUNK_MULTIPLE = 256 * 1024;

/** Builds the driver over an export root. */
export function createGcsSinkDriver(rootUrl: string, options: GcsSinkOptions): SinkDriver {
  const { bucket: bucketName, prefix: given } = parseGcsUrl(rootUrl);
  const prefix = given === '' || given.endsWith('/') ? given : `${given}/`;
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  if (chunkSize < CHUNK_MULTIPLE || chunkSize % CHUNK_MULTIPLE !== 0) {
    throw new Error(`chunkSize must be a multiple of ${CHUNK_MULTIPLE} bytes, got ${chunkSize}`);
  }
  const storage: Storage = createStorage(options, true);
  const bucket = storage.bucket(bucketName);
  const uriOf = (key: string) => `gs://${bucketName}/${prefix}${key}`;
  return {
    connector: GCS_CONNECTOR,
    root: `gs://${bucketName}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`,
    async read(key) {
      try {
        const [body] = await bucket.file(`${prefix}${key}`).download();
        return body;
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw gcsError(error, uriOf(key));
      }
    },
    async write(key, part) {
      // An object appears whole when its upload completes; until then readers see the old one.
      try {
        await bucket.upload(part.path, {
          destination: `${prefix}${key}`,
          resumable: part.bytes > chunkSize,
          chunkSize,
          validation: 'crc32c',
          metadata: { contentType: part.contentType, metadata: part.metadata },
          // Only if no object has the name yet: generation 0 means "does not exist".
          ...(part.ifAbsent ? { preconditionOpts: { ifGenerationMatch: 0 } } : {}),
        });
      } catch (error) {
        throw gcsError(error, uriOf(key));
      }
    },
    async delete(key) {
      try {
        await bucket.file(`${prefix}${key}`).delete({ ignoreNotFound: true });
      } catch (error) {
        throw gcsError(error, uriOf(key));
      }
    },
  };
}

/** Exports Prodigy tasks to Cloud Storage: parts, then a manifest. */
export function gcsSink(options: GcsSinkOptions): Sink {
  return createSink((root) => createGcsSinkDriver(root, options), options.url, options);
}
