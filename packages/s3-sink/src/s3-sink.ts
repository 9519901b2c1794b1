import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  createSink,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
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

/** Builds the driver over an export root; large parts go up as multipart uploads. */
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
        // Header values must be ASCII: a dataset named in any script survives percent-encoded.
        Metadata:
          metadata &&
          Object.fromEntries(
            Object.entries(metadata).map(([name, value]) => [name, encodeURIComponent(value)]),
          ),
      },
      partSize,
      queueSize: options.queueSize ?? 4,
    });
  return {
    connector: S3_CONNECTOR,
    root: `s3://${bucket}${prefix ? `/${prefix.replace(/\/$/, '')}` : ''}`,
    async read(key) {
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(key) }));
        return Buffer.from(
          await (
            answer.Body as { transformToByteArray(): Promise<Uint8Array> }
          ).transformToByteArray(),
        );
      } catch (error) {
        if (isMissingObject(error)) return undefined;
        throw s3Error(error, `s3://${bucket}/${keyOf(key)}`);
      }
    },
    async write(key, part) {
      // An S3 PUT is atomic: readers see the old object or the whole new one.
      const upload = transfer(key, createReadStream(part.path), part.contentType, part.metadata);
      try {
        await upload.done();
      } catch (error) {
        throw s3Error(error, `s3://${bucket}/${keyOf(key)}`);
      }
    },
    // Multipart parts stay invisible until the upload completes, and a failed or aborted
    // upload is aborted on the server, so a part fed while staged appears whole or not at all.
    streamFrom: partSize,
    stream(key, part) {
      const body = new PassThrough({ highWaterMark: partSize });
      const done = transfer(key, body, part.contentType, part.metadata)
        .done()
        .then(
          () => undefined,
          (error: unknown) => {
            throw error instanceof SluiceError
              ? error
              : s3Error(error, `s3://${bucket}/${keyOf(key)}`);
          },
        );
      done.catch(() => {});
      return {
        body,
        done,
        async abort() {
          // A body that fails makes the upload abort its multipart upload before done() settles.
          body.destroy(new SluiceError('export abandoned', { code: 'INTERRUPTED' }));
          await done.catch(() => {});
        },
      };
    },
    async delete(key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(key) }));
      } catch (error) {
        throw s3Error(error, `s3://${bucket}/${keyOf(key)}`);
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
