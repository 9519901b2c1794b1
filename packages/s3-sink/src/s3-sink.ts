import { createReadStream } from 'node:fs';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createSink, type Sink, type SinkDriver, type SinkOptions } from '@sluice/core';
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
      const upload = new Upload({
        client,
        params: {
          Bucket: bucket,
          Key: keyOf(key),
          Body: createReadStream(part.path),
          ContentType: part.contentType,
          // Header values must be ASCII: a dataset named in any script survives percent-encoded.
          Metadata:
            part.metadata &&
            Object.fromEntries(
              Object.entries(part.metadata).map(([name, value]) => [
                name,
                encodeURIComponent(value),
              ]),
            ),
        },
        partSize: options.partSize ?? 8 * 1024 * 1024,
        queueSize: options.queueSize ?? 4,
      });
      try {
        await upload.done();
      } catch (error) {
        throw s3Error(error, `s3://${bucket}/${keyOf(key)}`);
      }
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
