import {
  type _Object,
  GetBucketVersioningCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  ListObjectVersionsCommand,
  type ListObjectVersionsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  byteRange,
  createSource,
  rangedBody,
  SluiceError,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  usageError,
} from '@sluice/core';
import { createFastGet, type FastGet } from './fast-get.js';
import {
  createS3Client,
  debug,
  isMissingObject,
  objectChanged,
  parseS3Url,
  S3_CONNECTOR,
  type S3ConnectionOptions,
  s3Error,
} from './s3.js';

/** Options of the S3 source: core source options, the connection, and where to read. */
export interface S3SourceOptions extends SourceOptions, S3ConnectionOptions {
  /** `s3://bucket/prefix/` (a folder of objects) or `s3://bucket/key` (one object). */
  url: string;
  /** Keys per ListObjectsV2 page (default 1000, the most S3 returns). */
  pageSize?: number;
  /**
   * GET objects on a lean signed path instead of the SDK's full stack (several times less CPU
   * per object; errors still go through the SDK). Default: on when Sluice builds the client,
   * off for a `client` you pass, whose middleware then sees every request.
   */
  fastGet?: boolean;
}

/** Keys asked for in the first page of a listing (later pages take up to 1,000). */
const FIRST_PAGE_KEYS = 100;

const unquote = (etag: string | undefined) => etag?.replace(/^"|"$/g, '');

/** `sluice.source.version`: the ETag, and on a versioned bucket `<etag>@<versionId>`. */
function versionOf(etag: string | undefined, versionId: string | undefined): string | undefined {
  const tag = unquote(etag);
  return versionId && versionId !== 'null' ? `${tag ?? ''}@${versionId}` : tag;
}

/** The VersionId inside a `sluice.source.version`, if any. */
function versionIdOf(version: string | undefined): string | undefined {
  const at = version?.lastIndexOf('@') ?? -1;
  return at >= 0 ? version?.slice(at + 1) : undefined;
}

/**
 * Builds the driver. A URL ending in `/` (or a bare bucket) is a folder; otherwise it names
 * one object if that object exists, and a folder (`url/`) if it does not.
 */
export async function createS3SourceDriver(options: S3SourceOptions): Promise<SourceDriver> {
  const { bucket, prefix: given } = parseS3Url(options.url);
  if (options.media === 'signed' && (options.urlTtl ?? 3600) > 604_800) {
    throw usageError(
      `--url-ttl ${options.urlTtl} is longer than S3 allows`,
      'presigned URLs last at most 604800 seconds (7 days)',
    );
  }
  const client: S3Client = createS3Client(options);
  const owned = !options.client;
  let fast: Promise<FastGet | undefined> | undefined;
  const fastGet = () => {
    fast ??=
      (options.fastGet ?? owned) && process.env.SLUICE_S3_SDK_GET !== '1'
        ? createFastGet(client, bucket, Math.max(options.concurrency ?? 8, 8))
        : Promise.resolve(undefined);
    return fast;
  };
  let prefix = given === '' || given.endsWith('/') ? given : `${given}/`;
  let single: string | undefined;
  if (given !== '' && !given.endsWith('/')) {
    try {
      await client.send(new HeadObjectCommand({ Bucket: bucket, Key: given }));
      single = given.slice(given.lastIndexOf('/') + 1);
      prefix = given.slice(0, given.length - single.length);
    } catch (error) {
      if (!isMissingObject(error)) throw s3Error(error, options.url);
    }
  }
  const root = `s3://${bucket}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`;
  const itemOf = (
    key: string,
    meta: {
      size?: number;
      modified?: Date;
      etag?: string;
      versionId?: string;
      contentType?: string;
    },
  ): SourceItem => ({
    key,
    uri: `s3://${bucket}/${prefix}${key}`,
    size: meta.size,
    modified: meta.modified,
    version: versionOf(meta.etag, meta.versionId),
    contentType: meta.contentType,
  });

  /** A listed key relative to the prefix; zero-byte "folder" markers that consoles create are not items. */
  const keyUnder = (fullKey: string | undefined, size: number | undefined): string | undefined => {
    const key = (fullKey ?? '').slice(prefix.length);
    return key === '' || (key.endsWith('/') && size === 0) ? undefined : key;
  };

  // A short first page: the first task should not wait for a thousand keys to be parsed.
  const maxKeys = (first: boolean) =>
    first ? Math.min(options.pageSize ?? 1000, FIRST_PAGE_KEYS) : (options.pageSize ?? 1000);

  // Versioned buckets are listed with their version ids; a caller that may not read the
  // versioning setting gets ETags only.
  let versioned: Promise<boolean> | undefined;
  const isVersioned = () => {
    versioned ??= client
      .send(new GetBucketVersioningCommand({ Bucket: bucket }))
      .then((answer) => answer.Status === 'Enabled')
      .catch((error: unknown) => {
        debug('versioning of %s unknown (%s): listing ETags only', bucket, (error as Error).name);
        return false;
      });
    return versioned;
  };

  const stat = async (key: string): Promise<SourceItem | undefined> => {
    try {
      const head = await client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}${key}` }),
      );
      return itemOf(key, {
        size: head.ContentLength,
        modified: head.LastModified,
        etag: head.ETag,
        // As the listing does, so state and proxy agree on a bucket whose versioning is suspended.
        versionId: (await isVersioned()) ? head.VersionId : undefined,
        contentType: head.ContentType,
      });
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw s3Error(error, `s3://${bucket}/${prefix}${key}`);
    }
  };

  async function* listVersions(signal: AbortSignal): AsyncGenerator<SourceItem> {
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    do {
      let page: ListObjectVersionsCommandOutput;
      try {
        page = await client.send(
          new ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            VersionIdMarker: versionMarker,
            MaxKeys: maxKeys(keyMarker === undefined),
          }),
          { abortSignal: signal },
        );
      } catch (error) {
        if (signal.aborted) return;
        throw s3Error(error, `s3://${bucket}/${prefix}`);
      }
      // Only the current version of each key; a key whose latest entry is a delete marker
      // has no current version and is not listed.
      for (const version of page.Versions ?? []) {
        const key = version.IsLatest ? keyUnder(version.Key, version.Size) : undefined;
        if (key === undefined) continue;
        yield itemOf(key, {
          size: version.Size,
          modified: version.LastModified,
          etag: version.ETag,
          versionId: version.VersionId,
        });
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      versionMarker = page.IsTruncated ? page.NextVersionIdMarker : undefined;
    } while (keyMarker && !signal.aborted);
  }

  return {
    connector: S3_CONNECTOR,
    root,
    stat,
    async *list({ signal }) {
      if (single) {
        const item = await stat(single);
        if (item) yield item;
        return;
      }
      // The first page is asked for with the versioning setting, not after it, and each next
      // page once half of the current one is taken (parsing a page costs CPU that the first
      // tasks should not wait for), so a listing seldom waits on S3.
      const listPage = (token: string | undefined) => {
        const page = client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            ContinuationToken: token,
            MaxKeys: maxKeys(token === undefined),
          }),
          { abortSignal: signal },
        );
        page.catch(() => {}); // awaited below, or dropped for a versioned bucket
        return page;
      };
      let next: Promise<ListObjectsV2CommandOutput> | undefined = listPage(undefined);
      if (await isVersioned()) {
        yield* listVersions(signal);
        return;
      }
      let listed = 0;
      while (next && !signal.aborted) {
        let page: ListObjectsV2CommandOutput;
        try {
          page = await next;
        } catch (error) {
          if (signal.aborted) return;
          throw s3Error(error, `s3://${bucket}/${prefix}`);
        }
        const token = page.IsTruncated ? page.NextContinuationToken : undefined;
        next = undefined;
        debug('listed %d keys under s3://%s/%s', page.KeyCount ?? 0, bucket, prefix);
        listed += page.KeyCount ?? 0;
        // A URL without a trailing slash that is neither an object nor a folder is a typo.
        if (listed === 0 && !page.IsTruncated && given !== '' && !given.endsWith('/')) {
          throw new SluiceError(`${options.url}: no such object or folder`, {
            code: 'NOT_FOUND',
            connector: S3_CONNECTOR,
            hint: 'check the key; a folder URL ends with /',
          });
        }
        const contents = page.Contents ?? [];
        const half = contents.length >> 1;
        for (let i = 0; i < contents.length; i++) {
          if (i === half && token) next = listPage(token);
          const object = contents[i] as _Object;
          const key = keyUnder(object.Key, object.Size);
          if (key === undefined) continue;
          yield itemOf(key, {
            size: object.Size,
            modified: object.LastModified,
            etag: object.ETag,
          });
        }
        if (token && !next) next = listPage(token);
      }
    },
    async open(item, { start, end, signal }) {
      const range = byteRange(start, end);
      // Only the version listed is read: by its version id, or on condition of its ETag
      // (If-Match); a store that ignores the condition is caught by the ETag it answers with.
      const versionId = versionIdOf(item.version);
      const ifMatch = !versionId && item.version ? `"${item.version}"` : undefined;
      if (!versionId) {
        const body = await (await fastGet())?.get(`${prefix}${item.key}`, {
          start,
          end,
          ifMatch,
          signal,
        });
        if (body) return body;
      }
      let answer: GetObjectCommandOutput;
      try {
        answer = await client.send(
          new GetObjectCommand({
            Bucket: bucket,
            Key: `${prefix}${item.key}`,
            Range: range,
            ...(versionId ? { VersionId: versionId } : { IfMatch: ifMatch }),
          }),
          { abortSignal: signal },
        );
      } catch (error) {
        throw s3Error(error, item.uri);
      }
      if (ifMatch && answer.ETag && unquote(answer.ETag) !== item.version) {
        (answer.Body as { destroy?(): void } | undefined)?.destroy?.();
        throw objectChanged(item.uri);
      }
      const answered = {
        status: answer.$metadata.httpStatusCode ?? 200,
        contentRange: answer.ContentRange,
      };
      return rangedBody(answer.Body as AsyncIterable<Uint8Array>, answered, { start, end });
    },
    async signedUrl(item, ttlSeconds) {
      return getSignedUrl(
        client,
        new GetObjectCommand({
          Bucket: bucket,
          Key: `${prefix}${item.key}`,
          VersionId: versionIdOf(item.version),
        }),
        {
          expiresIn: ttlSeconds,
        },
      );
    },
    async close() {
      (await fast)?.close();
      if (owned) client.destroy();
    },
  };
}

/** Streams Prodigy tasks from S3 or an S3-compatible store. */
export function s3Source(options: S3SourceOptions): Source {
  return createSource(createS3SourceDriver(options), options);
}
