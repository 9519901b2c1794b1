import { readFile } from 'node:fs/promises';
import type { Storage } from '@google-cloud/storage';
import {
  createSink,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
} from '@sluice/core';
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

/**
 * Builds the driver over an export root. The manifest is committed with a generation
 * precondition: `ifGenerationMatch: 0` where the root has no export, the generation read to
 * replace one, so Cloud Storage itself refuses a commit that another run got in first.
 */
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
    commits: 'atomic',
    async read(key) {
      try {
        // The generation first, then exactly its bytes: a newer object makes this one 404.
        const [metadata] = await bucket.file(`${prefix}${key}`).getMetadata();
        const generation = String(metadata.generation);
        const [body] = await bucket.file(`${prefix}${key}`, { generation }).download();
        return { body, version: generation };
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw gcsError(error, uriOf(key));
      }
    },
    async commit(key, part, expected) {
      try {
        await bucket.file(`${prefix}${key}`).save(await readFile(part.path), {
          resumable: false,
          validation: 'crc32c',
          metadata: { contentType: part.contentType, metadata: part.metadata },
          // Generation 0 means "does not exist".
          preconditionOpts: { ifGenerationMatch: expected ?? 0 },
        });
      } catch (error) {
        const wrapped = gcsError(error, uriOf(key));
        if (wrapped.code !== 'CONFLICT') throw wrapped;
        throw new SluiceError(`${uriOf(key)} changed since this run read it`, {
          code: 'CONFLICT',
          connector: GCS_CONNECTOR,
          cause: error,
        });
      }
    },
    async *list(start) {
      let pageToken: string | undefined;
      do {
        let files: Array<{ name: string }>;
        let next: { pageToken?: string } | null | undefined;
        try {
          [files, next] = await bucket.getFiles({
            prefix: `${prefix}${start}`,
            autoPaginate: false,
            pageToken,
          });
        } catch (error) {
          throw gcsError(error, uriOf(start));
        }
        for (const file of files) yield file.name.slice(prefix.length);
        pageToken = next?.pageToken;
      } while (pageToken);
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
