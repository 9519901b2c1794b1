import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type { Storage } from '@google-cloud/storage';
import {
  createSink,
  retrying,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  type StagedPart,
  uploadStream,
} from '@sluice/core';
import {
  createObjectReader,
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
 * Whole uploads (and deletes) tried again after the client's own retries give up. A client
 * Sluice builds retries each request (and each chunk) itself; a `storage` a caller passes may
 * retry none.
 */
const UPLOAD_RETRIES = 3;

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
  // Reads (the earlier manifest) go the source's way, never through the library's streams.
  const reader = createObjectReader(storage, bucketName, 2);
  const uriOf = (key: string) => `gs://${bucketName}/${prefix}${key}`;

  /** Whether the object at `name` is this part, written by an attempt whose answer was lost. */
  const isOwnWrite = async (name: string, part: StagedPart): Promise<boolean> => {
    try {
      const [meta] = await bucket.file(name).getMetadata();
      return meta.metadata?.sha256 === part.sha256 && Number(meta.size) === part.bytes;
    } catch {
      return false;
    }
  };

  /** A change to the store, retried for any client; `done` may take a failure as success. */
  const retried = (
    key: string,
    change: () => Promise<unknown>,
    done?: (error: unknown) => Promise<boolean>,
  ) =>
    retrying(
      async () => {
        try {
          await change();
        } catch (error) {
          if (await done?.(error)) return;
          throw gcsError(error, uriOf(key));
        }
      },
      { retries: UPLOAD_RETRIES },
    );

  return {
    connector: GCS_CONNECTOR,
    root: `gs://${bucketName}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`,
    commits: 'atomic',
    async read(key) {
      const name = `${prefix}${key}`;
      let generation: string;
      try {
        const [meta] = await bucket.file(name).getMetadata();
        generation = String(meta.generation);
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw gcsError(error, uriOf(key));
      }
      try {
        // Exactly the generation a commit will compare: a newer object makes this one 404.
        const chunks: Uint8Array[] = [];
        for await (const chunk of await reader.read(name, { generation })) chunks.push(chunk);
        return { body: Buffer.concat(chunks), version: generation };
      } catch (error) {
        if (error instanceof SluiceError && isMissingObject(error.cause)) {
          // Replaced (or removed) between the two requests: read what is there now.
          return this.read(key);
        }
        throw gcsError(error, uriOf(key));
      }
    },
    async commit(key, part, expected) {
      const name = `${prefix}${key}`;
      try {
        await retried(
          key,
          async () =>
            bucket.file(name).save(await readFile(part.path), {
              resumable: false,
              validation: 'crc32c',
              metadata: { contentType: part.contentType, metadata: part.metadata },
              // Generation 0 means "does not exist".
              preconditionOpts: { ifGenerationMatch: expected ?? 0 },
            }),
          // A retry of a commit that landed (its answer lost) finds the generation moved by itself.
          async (error) =>
            (error as { code?: unknown })?.code === 412 && (await isOwnWrite(name, part)),
        );
      } catch (error) {
        if (!(error instanceof SluiceError) || error.code !== 'CONFLICT') throw error;
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
      // An object appears whole when its upload completes; until then it is not there. The
      // key is this run's own, so a retry that repeats a landed upload writes the same bytes.
      await retried(key, () =>
        bucket.upload(part.path, {
          destination: `${prefix}${key}`,
          resumable: part.bytes > chunkSize,
          chunkSize,
          validation: 'crc32c',
          metadata: { contentType: part.contentType, metadata: part.metadata },
        }),
      );
    },
    // A resumable upload's object appears when its last chunk is in, and an upload abandoned
    // before that leaves nothing: a part fed while staged appears whole or not at all.
    streamFrom: chunkSize,
    stream(key, part) {
      const body = bucket.file(`${prefix}${key}`).createWriteStream({
        resumable: true,
        chunkSize,
        validation: 'crc32c',
        metadata: { contentType: part.contentType, metadata: part.metadata },
      });
      return uploadStream(body, finished(body), (error) => gcsError(error, uriOf(key)));
    },
    async delete(key) {
      // Safe to repeat: a missing object is fine.
      await retried(key, () => bucket.file(`${prefix}${key}`).delete({ ignoreNotFound: true }));
    },
    async close() {
      reader.close();
    },
  };
}

/** Exports Prodigy tasks to Cloud Storage: parts, then a manifest. */
export function gcsSink(options: GcsSinkOptions): Sink {
  return createSink((root) => createGcsSinkDriver(root, options), options.url, options);
}
