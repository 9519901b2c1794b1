import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SluiceError } from '@sluice/core';
import { SignatureV4 } from '@smithy/signature-v4';
import { debug, S3_CONNECTOR } from './s3.js';

/**
 * GetObject without the SDK's per-request machinery. Profiled on many small objects, the
 * SDK spends about 1.2 ms of CPU per GetObject (middleware stack, schema serde, endpoint rules,
 * retry bookkeeping), several times what the request itself costs; at 2 KiB per object that
 * made the SDK the bottleneck. Here the SDK still decides everything once: where the bucket
 * lives (the URL of a presigned probe), the region, the credentials (its provider, refreshed
 * as it refreshes them) and the signer (its SigV4 implementation); each GET is then signed
 * and sent on a keep-alive agent.
 *
 * Only the happy path is handled: any response other than 200/206, and any error before the
 * body starts, returns undefined and the caller repeats the request through the SDK, which
 * retries, follows region redirects and reports errors as before. A redirect also turns this
 * path off for the rest of the run. Whole-object bodies are checked against an MD5 ETag
 * (objects not uploaded in parts and not KMS-encrypted), as rclone does, since the SDK's
 * own checksum validation is not on this path.
 */
export interface FastGet {
  get(
    key: string,
    options: { range?: string; ifMatch?: string; signal?: AbortSignal },
  ): Promise<AsyncIterable<Uint8Array> | undefined>;
  close(): void;
}

const PROBE_KEY = 'sluice-endpoint-probe';

/** S3's path encoding of a key (the SDK's extended URI encoding, `/` kept). */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((part) =>
      encodeURIComponent(part).replace(
        /[!'()*]/g,
        (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
      ),
    )
    .join('/');
}

/** Checks a whole body against its MD5 ETag while passing it on. */
async function* verified(
  body: IncomingMessage,
  md5: string,
  uri: string,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('md5');
  for await (const chunk of body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    yield chunk;
  }
  if (hash.digest('hex') !== md5) {
    throw new SluiceError(`${uri}: the bytes read do not match the object's ETag`, {
      code: 'IO',
      connector: S3_CONNECTOR,
      retryable: true,
      hint: 'the object changed while it was read, or the transfer was corrupted: rerun',
    });
  }
}

/** Builds the fast path for one bucket, or undefined when it cannot be set up (no credentials, odd endpoint). */
export async function createFastGet(
  client: S3Client,
  bucket: string,
  maxSockets: number,
): Promise<FastGet | undefined> {
  let probe: URL;
  try {
    probe = new URL(
      await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: PROBE_KEY }), {
        expiresIn: 60,
      }),
    );
  } catch (error) {
    debug('fast GET path off: %s', (error as Error).message);
    return undefined;
  }
  const region = probe.searchParams.get('X-Amz-Credential')?.split('/')[2];
  if (!probe.pathname.endsWith(`/${PROBE_KEY}`) || !region) return undefined;
  const basePath = probe.pathname.slice(0, -PROBE_KEY.length);
  const secure = probe.protocol === 'https:';
  const port = probe.port ? Number(probe.port) : undefined;
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets })
    : new HttpAgent({ keepAlive: true, maxSockets });
  const send = secure ? httpsRequest : httpRequest;
  const signer = new SignatureV4({
    credentials: client.config.credentials,
    region,
    service: 's3',
    sha256: client.config.sha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  let off = false;
  debug('fast GET path on: %s//%s%s (%s)', probe.protocol, probe.host, basePath, region);

  return {
    async get(key, { range, ifMatch, signal }) {
      if (off) return undefined;
      const path = basePath + encodeKey(key);
      const headers: Record<string, string> = {
        host: probe.host,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      };
      if (range) headers.range = range;
      if (ifMatch) headers['if-match'] = ifMatch;
      let response: IncomingMessage;
      try {
        const signed = await signer.sign({
          method: 'GET',
          protocol: probe.protocol,
          hostname: probe.hostname,
          port,
          path,
          query: {},
          headers,
        });
        response = await new Promise<IncomingMessage>((resolve, reject) => {
          const request = send(
            {
              agent,
              hostname: probe.hostname,
              port,
              path,
              method: 'GET',
              headers: signed.headers,
              signal,
            },
            resolve,
          );
          request.once('error', reject);
          request.end();
        });
      } catch (error) {
        if (signal?.aborted) throw error;
        debug(
          'fast GET of %s failed before the body (%s): through the SDK',
          key,
          (error as Error).message,
        );
        return undefined;
      }
      const status = response.statusCode ?? 0;
      if (status !== 200 && status !== 206) {
        response.resume();
        if (status >= 300 && status < 400) off = true;
        debug('fast GET of %s answered %d: through the SDK', key, status);
        return undefined;
      }
      const etag = String(response.headers.etag ?? '').replace(/"/g, '');
      const kms = String(response.headers['x-amz-server-side-encryption'] ?? '').startsWith(
        'aws:kms',
      );
      if (status === 200 && /^[0-9a-f]{32}$/.test(etag) && !kms) {
        return verified(response, etag, `s3://${bucket}/${key}`);
      }
      return response;
    },
    close() {
      agent.destroy();
    },
  };
}
