import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  createSink,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  uploadStream,
} from '@sluice/core';
import {
  createS3Client,
  isMissingObject,
  parseS3Url,
  S3_CONNECTOR,
  type S3ConnectionOptions,
  s3Error,
} from '@sluice/s3-source';

/** Options of the S3 sink: core sink options, the connection, and where to write. */
export interface S3SinkOptions extends SinkOptions, S3ConnectionOptions {
  /** Export root: `s3://bucket/prefix/`, with {dataset} {date} {timestamp} {answer} {label}. */
  url: string;
  /** Size of multipart upload parts (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Multipart parts uploaded at once (default 4). */
  queueSize?: number;
}

/** Header values must be ASCII: a dataset named in any script survives percent-encoded. */
function headerSafe(metadata: Record<string, string> | undefined) {
  return (
    metadata &&
    Object.fromEntries(
      Object.entries(metadata).map(([name, value]) => [name, encodeURIComponent(value)]),
    )
  );
}

/** Whether S3 refused a conditional write: the precondition failed, or a concurrent one won. */
function refused(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return (
    e?.name === 'PreconditionFailed' ||
    e?.name === 'ConditionalRequestConflict' ||
    status === 412 ||
    status === 409
  );
}

/** Servers that lack ListMultipartUploads (s3rver) answer like this; there is nothing to sweep then. */
function unsupported(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  return e?.name === 'NotImplemented' || status === 501 || status === 405;
}

/**
 * Builds the driver over an export root; large parts go up as multipart uploads. The manifest
 * is committed with S3's conditional writes: `If-None-Match: *` for a root with no export,
 * `If-Match: <ETag>` to replace the export the run started from (S3 has honoured both since
 * 2024; moto 5 does; s3rver ignores them, which core detects and reports).
 */
export function createS3SinkDriver(rootUrl: string, options: S3SinkOptions): SinkDriver {
  const { bucket, prefix: given } = parseS3Url(rootUrl);
  const prefix = given === '' || given.endsWith('/') ? given : `${given}/`;
  const client: S3Client = createS3Client(options);
  const owned = !options.client;
  const keyOf = (key: string) => `${prefix}${key}`;
  const partSize = options.partSize ?? 8 * 1024 * 1024;
  const transfer = (
    key: string,
    body: Readable,
    contentType: string,
    metadata: Record<string, string> | undefined,
  ) =>
    new Upload({
      client,
      params: {
        Bucket: bucket,
        Key: keyOf(key),
        Body: body,
        ContentType: contentType,
        Metadata: headerSafe(metadata),
      },
      partSize,
      queueSize: options.queueSize ?? 4,
    });
  const uriOf = (key: string) => `s3://${bucket}/${keyOf(key)}`;
  return {
    connector: S3_CONNECTOR,
    root: `s3://${bucket}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`,
    commits: 'atomic',
    async read(key) {
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(key) }));
        const body = Buffer.from(
          await (
            answer.Body as { transformToByteArray(): Promise<Uint8Array> }
          ).transformToByteArray(),
        );
        return { body, version: answer.ETag ?? '' };
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw s3Error(error, uriOf(key));
      }
    },
    async write(key, part, signal) {
      // An S3 PUT is atomic: readers see no object or the whole new one.
      const upload = transfer(key, createReadStream(part.path), part.contentType, part.metadata);
      const stop = () => void upload.abort().catch(() => {});
      signal?.addEventListener('abort', stop, { once: true });
      try {
        await upload.done();
      } catch (error) {
        throw s3Error(error, uriOf(key));
      } finally {
        signal?.removeEventListener('abort', stop);
      }
    },
    async commit(key, part, expected) {
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: keyOf(key),
            Body: await readFile(part.path),
            ContentType: part.contentType,
            Metadata: headerSafe(part.metadata),
            ...(expected === undefined ? { IfNoneMatch: '*' } : { IfMatch: expected }),
          }),
        );
      } catch (error) {
        // With If-Match, an object deleted meanwhile answers 404: changed all the same.
        if (refused(error) || (expected !== undefined && isMissingObject(error))) {
          throw new SluiceError(`${uriOf(key)} changed since this run read it`, {
            code: 'CONFLICT',
            connector: S3_CONNECTOR,
            cause: error,
          });
        }
        throw s3Error(error, uriOf(key));
      }
    },
    async *list(start) {
      let token: string | undefined;
      do {
        let page: ListObjectsV2CommandOutput;
        try {
          page = await client.send(
            new ListObjectsV2Command({
              Bucket: bucket,
              Prefix: keyOf(start),
              ContinuationToken: token,
            }),
          );
        } catch (error) {
          throw s3Error(error, uriOf(start));
        }
        for (const object of page.Contents ?? []) {
          if (object.Key?.startsWith(prefix)) yield object.Key.slice(prefix.length);
        }
        token = page.NextContinuationToken;
      } while (token);
    },
    async sweep(owned) {
      // Multipart uploads an interrupted run never completed: invisible, but stored and billed.
      const aborted: string[] = [];
      let keyMarker: string | undefined;
      let uploadMarker: string | undefined;
      for (;;) {
        let page: {
          Uploads?: Array<{ Key?: string; UploadId?: string }>;
          IsTruncated?: boolean;
          NextKeyMarker?: string;
          NextUploadIdMarker?: string;
        };
        try {
          page = await client.send(
            new ListMultipartUploadsCommand({
              Bucket: bucket,
              Prefix: prefix,
              KeyMarker: keyMarker,
              UploadIdMarker: uploadMarker,
            }),
          );
        } catch (error) {
          if (unsupported(error)) return aborted;
          throw s3Error(error, `s3://${bucket}/${prefix}`);
        }
        for (const upload of page.Uploads ?? []) {
          const key = upload.Key?.slice(prefix.length);
          if (!key || !upload.Key?.startsWith(prefix) || !owned(key)) continue;
          try {
            await client.send(
              new AbortMultipartUploadCommand({
                Bucket: bucket,
                Key: upload.Key,
                UploadId: upload.UploadId,
              }),
            );
          } catch (error) {
            if (!isMissingObject(error)) throw s3Error(error, uriOf(key));
          }
          aborted.push(`${key} (multipart upload)`);
        }
        if (!page.IsTruncated) return aborted;
        keyMarker = page.NextKeyMarker;
        uploadMarker = page.NextUploadIdMarker;
      }
    },
    // Multipart parts stay invisible until the upload completes, and a failed or aborted
    // upload is aborted on the server, so a part fed while staged appears whole or not at all.
    streamFrom: partSize,
    stream(key, part) {
      const body = new PassThrough({ highWaterMark: partSize });
      // A body that fails makes the upload abort its multipart upload before done() settles.
      return uploadStream(
        body,
        transfer(key, body, part.contentType, part.metadata).done(),
        (error) => s3Error(error, uriOf(key)),
      );
    },
    async delete(key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(key) }));
      } catch (error) {
        throw s3Error(error, uriOf(key));
      }
    },
    async close() {
      if (owned) client.destroy();
    },
  };
}

/** Exports Prodigy tasks to S3: parts, then a manifest. */
export function s3Sink(options: S3SinkOptions): Sink {
  return createSink((root) => createS3SinkDriver(root, options), options.url, options);
}
