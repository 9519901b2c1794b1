import { createHash } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { byteRange, checkedBody, createLeanGet, leanBody } from '@sluice/core';
import { SignatureV4 } from '@smithy/signature-v4';
import { debug, objectChanged, S3_CONNECTOR } from './s3.js';

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
    options: { start?: number; end?: number; ifMatch?: string; signal?: AbortSignal },
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
  const http = createLeanGet(new URL(probe.origin), maxSockets);
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
    async get(key, { start, end, ifMatch, signal }) {
      const range = byteRange(start, end);
      if (off) return undefined;
      const path = basePath + encodeKey(key);
      const headers: Record<string, string> = {
        host: probe.host,
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      };
      if (range) headers.range = range;
      if (ifMatch) headers['if-match'] = ifMatch;
      const response = await http.get(
        path,
        async () => {
          const signed = await signer.sign({
            method: 'GET',
            protocol: probe.protocol,
            hostname: probe.hostname,
            port: probe.port ? Number(probe.port) : undefined,
            path,
            query: {},
            headers,
          });
          return signed.headers;
        },
        {
          signal,
          miss: (reason) => {
            if (typeof reason === 'number' && reason >= 300 && reason < 400) off = true;
            debug(
              'fast GET of %s %s: through the SDK',
              key,
              typeof reason === 'number' ? `answered ${reason}` : `failed (${reason.message})`,
            );
          },
        },
      );
      if (!response) return undefined;
      // A server that ignores If-Match (s3rver does) still names the version it sends.
      const answered = response.headers.etag?.replace(/"/g, '');
      if (ifMatch && answered && answered !== ifMatch.replace(/"/g, '')) {
        response.resume();
        throw objectChanged(`s3://${bucket}/${key}`);
      }
      const status = response.statusCode;
      const etag = String(response.headers.etag ?? '').replace(/"/g, '');
      const kms = String(response.headers['x-amz-server-side-encryption'] ?? '').startsWith(
        'aws:kms',
      );
      if (status === 200 && /^[0-9a-f]{32}$/.test(etag) && !kms) {
        const md5 = createHash('md5');
        // A whole body (200) also answers a ranged read from a store that ignored Range.
        const checked = checkedBody(
          response,
          { update: (c) => md5.update(c), result: () => md5.digest('hex') },
          etag,
          {
            uri: `s3://${bucket}/${key}`,
            what: 'ETag',
            connector: S3_CONNECTOR,
            hint: 'the object changed while it was read, or the transfer was corrupted: rerun',
          },
        );
        return leanBody(response, { start, end }, checked);
      }
      return leanBody(response, { start, end });
    },
    close() {
      http.close();
    },
  };
}
