import type { File, GetFilesOptions, Storage } from '@google-cloud/storage';
import {
  createSource,
  mapReadErrors,
  SluiceError,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  usageError,
} from '@sluice/core';
import {
  createStorage,
  debug,
  GCS_CONNECTOR,
  type GcsConnectionOptions,
  gcsError,
  isMissingObject,
  parseGcsUrl,
} from './gcs.js';
import { createObjectReader } from './object-reader.js';

/** Options of the Cloud Storage source: core source options, the connection, and where to read. */
export interface GcsSourceOptions extends SourceOptions, GcsConnectionOptions {
  /** `gs://bucket/prefix/` (a folder of objects) or `gs://bucket/name` (one object). */
  url: string;
  /** Objects per listing page (default 1000, the most Cloud Storage returns). */
  pageSize?: number;
}

/** An object as the source lists it. */
interface GcsItem extends SourceItem {
  /** Stored Content-Encoding (`gzip` for `gsutil cp -Z` objects). */
  contentEncoding?: string;
}

/** Objects asked for in the first page of a listing, so the first task comes quickly. */
const FIRST_PAGE = 100;
/** V4 signed URLs last at most seven days. */
const MAX_URL_TTL = 604_800;

interface ObjectMetadata {
  name?: string;
  size?: string | number;
  updated?: string;
  generation?: string | number;
  contentType?: string;
  contentEncoding?: string;
}

/**
 * Builds the driver. A URL ending in `/` (or a bare bucket) is a folder; otherwise it names
 * one object if that object exists, and a folder (`url/`) if it does not.
 */
export async function createGcsSourceDriver(
  options: GcsSourceOptions,
): Promise<SourceDriver<GcsItem>> {
  const { bucket: bucketName, prefix: given } = parseGcsUrl(options.url);
  if (options.media === 'signed' && (options.urlTtl ?? 3600) > MAX_URL_TTL) {
    throw usageError(
      `--url-ttl ${options.urlTtl} is longer than Cloud Storage allows`,
      'V4 signed URLs last at most 604800 seconds (7 days)',
    );
  }
  const storage: Storage = createStorage(options);
  const bucket = storage.bucket(bucketName);
  const reader = createObjectReader(storage, bucketName, Math.max(options.concurrency ?? 8, 8));
  let prefix = given === '' || given.endsWith('/') ? given : `${given}/`;
  let single: ObjectMetadata | undefined;
  if (given !== '' && !given.endsWith('/')) {
    try {
      [single] = (await bucket.file(given).getMetadata()) as unknown as [ObjectMetadata];
      prefix = given.slice(0, given.lastIndexOf('/') + 1);
    } catch (error) {
      if (!isMissingObject(error)) throw gcsError(error, options.url);
    }
  }
  const root = `gs://${bucketName}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`;

  /** An object's item; zero-byte "folder" markers that consoles create are not items. */
  const itemOf = (meta: ObjectMetadata): GcsItem | undefined => {
    const key = (meta.name ?? '').slice(prefix.length);
    const size = Number(meta.size ?? 0);
    if (key === '' || (key.endsWith('/') && size === 0)) return undefined;
    return {
      key,
      uri: `gs://${bucketName}/${prefix}${key}`,
      size,
      modified: meta.updated ? new Date(meta.updated) : undefined,
      version: meta.generation !== undefined ? String(meta.generation) : undefined,
      contentType: meta.contentType,
      ...(meta.contentEncoding ? { contentEncoding: meta.contentEncoding } : {}),
    };
  };

  const fileOf = (item: SourceItem): File =>
    bucket.file(`${prefix}${item.key}`, item.version ? { generation: Number(item.version) } : {});

  return {
    connector: GCS_CONNECTOR,
    root,
    async stat(key) {
      try {
        const [meta] = (await bucket.file(`${prefix}${key}`).getMetadata()) as unknown as [
          ObjectMetadata,
        ];
        return itemOf(meta);
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw gcsError(error, `gs://${bucketName}/${prefix}${key}`);
      }
    },
    async *list({ signal }) {
      if (single) {
        const item = itemOf(single);
        if (item) yield item;
        return;
      }
      const pageSize = options.pageSize ?? 1000;
      let query: GetFilesOptions | undefined = {
        prefix,
        autoPaginate: false,
        maxResults: Math.min(pageSize, FIRST_PAGE),
      };
      let listed = 0;
      while (query && !signal.aborted) {
        let files: File[];
        let next: GetFilesOptions | null | undefined;
        try {
          [files, next] = (await bucket.getFiles(query)) as unknown as [
            File[],
            GetFilesOptions | null,
          ];
        } catch (error) {
          if (signal.aborted) return;
          throw gcsError(error, `gs://${bucketName}/${prefix}`);
        }
        debug('listed %d objects under gs://%s/%s', files.length, bucketName, prefix);
        listed += files.length;
        // A URL without a trailing slash that is neither an object nor a folder is a typo.
        if (listed === 0 && !next?.pageToken && given !== '' && !given.endsWith('/')) {
          throw new SluiceError(`${options.url}: no such object or folder`, {
            code: 'NOT_FOUND',
            connector: GCS_CONNECTOR,
            hint: 'check the name; a folder URL ends with /',
          });
        }
        for (const file of files) {
          const item = itemOf(file.metadata as ObjectMetadata);
          if (item) yield item;
        }
        query = next?.pageToken
          ? { ...query, pageToken: next.pageToken, maxResults: pageSize }
          : undefined;
      }
    },
    async open(item, { start, end, signal }) {
      // Reads pin the generation listed, so a resumed read continues the bytes it started on.
      try {
        const body = await reader.read(`${prefix}${item.key}`, {
          generation: item.version,
          start,
          end,
          contentEncoding: item.contentEncoding,
          signal,
        });
        return mapReadErrors(body, (error) => readError(error, item.uri));
      } catch (error) {
        throw readError(error, item.uri);
      }
    },
    async signedUrl(item, ttlSeconds) {
      try {
        const [url] = await fileOf(item).getSignedUrl({
          version: 'v4',
          action: 'read',
          expires: Date.now() + ttlSeconds * 1000,
        });
        return url;
      } catch (error) {
        throw new SluiceError(`${item.uri}: cannot sign a URL (${(error as Error).message})`, {
          code: 'AUTH',
          connector: GCS_CONNECTOR,
          hint: 'signed URLs need a service account key (--key-file) or a service account with iam.serviceAccounts.signBlob; or use --media proxy',
          cause: error,
        });
      }
    },
    async close() {
      reader.close();
    },
  };
}

/**
 * A read error named by the object. Reads name the generation listed, so a 404 means that
 * generation is gone: the object was replaced (core reads the new one) or removed.
 */
function readError(error: unknown, uri: string): Error {
  if (isMissingObject(error instanceof SluiceError ? error.cause : error)) {
    return new SluiceError(`${uri}: changed or removed while it was being read`, {
      code: 'CHANGED',
      connector: GCS_CONNECTOR,
      hint: 'run again: the object was replaced since it was listed',
      cause: error,
    });
  }
  return gcsError(error, uri);
}

/** Streams Prodigy tasks from Cloud Storage. */
export function gcsSource(options: GcsSourceOptions): Source {
  return createSource(createGcsSourceDriver(options), options);
}
