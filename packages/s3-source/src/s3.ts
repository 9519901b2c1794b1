import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import {
  debugLog,
  hasUserinfo,
  SluiceError,
  serviceUrl,
  toSluiceError,
  usageError,
} from '@sluice/core';

export const S3_CONNECTOR = 's3';

/** How to reach S3 or an S3-compatible store (MinIO, R2, Ceph). Shared by source and sink. */
export interface S3ConnectionOptions {
  /** A ready client; the other connection options are then ignored. */
  client?: S3Client;
  /** AWS region (default: the SDK's chain: AWS_REGION, profile, ...; else us-east-1). */
  region?: string;
  /** Endpoint of an S3-compatible store (default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`); on by default for IP and localhost endpoints. */
  forcePathStyle?: boolean;
  /** Named profile from the AWS config files (default: AWS_PROFILE, else `default`). */
  profile?: string;
}

export const debug = debugLog('sluice:s3');

/** Splits `s3://bucket/prefix/` into bucket and key prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  if (hasUserinfo(url)) {
    throw usageError(
      'the S3 URL holds credentials (key:secret@bucket): they are not accepted there',
      'use s3://bucket/prefix; credentials come from the AWS SDK chain (AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, SSO)',
    );
  }
  const match = /^s3:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!match) {
    throw usageError(
      `not an S3 URL: ${url}`,
      'use s3://bucket/prefix, e.g. s3://acme-raw/tickets/',
    );
  }
  const [, bucket, prefix] = match as unknown as [string, string, string];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw usageError(
      `not a valid bucket name: ${bucket}`,
      'bucket names are 3-63 lowercase letters, digits, dots and hyphens',
    );
  }
  return { bucket, prefix };
}

/** Builds a client from the options, following the SDK's own credential and config chain. */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  if (options.client) return options.client;
  const [name, endpoint] = options.endpoint
    ? ['--endpoint', options.endpoint]
    : process.env.AWS_ENDPOINT_URL_S3
      ? ['AWS_ENDPOINT_URL_S3', process.env.AWS_ENDPOINT_URL_S3]
      : ['AWS_ENDPOINT_URL', process.env.AWS_ENDPOINT_URL];
  const host = endpoint
    ? new URL(serviceUrl(endpoint, name, { example: 'http://127.0.0.1:9000' })).hostname.replace(
        /^\[|\]$/g,
        '',
      )
    : '';
  const config: S3ClientConfig = {
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
    // Virtual-hosted addressing needs a DNS name per bucket, which self-hosted stores (MinIO,
    // Ceph) rarely have; every S3-compatible store accepts path-style.
    forcePathStyle: options.forcePathStyle ?? host !== '',
    // A bucket in another region than the configured one answers with a redirect: follow it.
    followRegionRedirects: true,
  };
  // Otherwise the SDK's chain decides (AWS_REGION, the profile's region); AWS_DEFAULT_REGION,
  // which the AWS CLI reads, is honoured too.
  if (!config.region && !process.env.AWS_REGION && process.env.AWS_DEFAULT_REGION) {
    config.region = process.env.AWS_DEFAULT_REGION;
  }
  debug(
    'client: region=%s endpoint=%s pathStyle=%s',
    config.region ?? '(chain)',
    endpoint ?? '(aws)',
    config.forcePathStyle,
  );
  return new S3Client(config);
}

const AUTH_ERRORS = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
]);

/** The object is no longer the version listed (its ETag differs): core reads it again, or fails it. */
export function objectChanged(uri: string, cause?: unknown): SluiceError {
  return new SluiceError(`${uri}: changed while it was being read`, {
    code: 'CHANGED',
    connector: S3_CONNECTOR,
    hint: 'run again: the object was replaced during the read',
    cause,
  });
}

/** Whether an SDK error says the object is absent (a missing bucket is a real error). */
export function isMissingObject(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === 'NoSuchBucket') return false;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/**
 * Turns an SDK error into a SluiceError with a hint; never includes credentials.
 * `what` names the bucket or object, e.g. `s3://acme/raw/`.
 */
export function s3Error(error: unknown, what: string): SluiceError {
  if (error instanceof SluiceError) return error;
  const e = error as {
    name?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
  };
  const name = e?.name ?? '';
  const status = e?.$metadata?.httpStatusCode;
  if (name === 'NoSuchBucket') {
    return new SluiceError(`${what}: no such bucket`, {
      code: 'NOT_FOUND',
      connector: S3_CONNECTOR,
      hint: 'check the bucket name, --region and --endpoint',
      cause: error,
    });
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new SluiceError(`${what}: not found`, {
      code: 'NOT_FOUND',
      connector: S3_CONNECTOR,
      cause: error,
    });
  }
  if (name === 'CredentialsProviderError' || name === 'TokenProviderError') {
    return new SluiceError(`${what}: no usable AWS credentials (${e?.message ?? name})`, {
      code: 'AUTH',
      connector: S3_CONNECTOR,
      hint: 'set AWS_PROFILE (or --profile), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or log in with aws sso login',
      cause: error,
    });
  }
  if (/Region is missing/i.test(e?.message ?? '')) {
    return new SluiceError(`${what}: no AWS region configured`, {
      code: 'USAGE',
      connector: S3_CONNECTOR,
      hint: 'pass --region (any value works for most S3-compatible stores) or set AWS_REGION',
      cause: error,
    });
  }
  if (AUTH_ERRORS.has(name) || status === 403) {
    return new SluiceError(`${what}: access refused (${name || status})`, {
      code: 'AUTH',
      connector: S3_CONNECTOR,
      hint: 'check the credentials the AWS SDK finds (AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID, SSO) and the bucket policy',
      cause: error,
    });
  }
  if (name === 'PreconditionFailed' || status === 412) return objectChanged(what, error);
  const failure = toSluiceError(error, S3_CONNECTOR);
  const network = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(
    `${(error as { code?: string })?.code} ${e?.message}`,
  );
  return new SluiceError(`${what}: ${failure.message}`, {
    code: failure.code === 'INTERNAL' && (status ?? 0) >= 500 ? 'IO' : failure.code,
    connector: S3_CONNECTOR,
    hint: network ? 'cannot reach the store: check --endpoint and the network' : failure.hint,
    cause: error,
    retryable: e?.$retryable !== undefined || (status ?? 0) >= 500 || failure.retryable,
  });
}

/** The connection flags both S3 CLIs take; they override the SDK's environment settings. */
export function s3ConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--region <region>',
    'AWS region (default: AWS_REGION, the profile, AWS_DEFAULT_REGION)',
  );
  program.option(
    '--endpoint <url>',
    'S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)',
  );
  program.option('--path-style', 'path-style addressing (on by default with a custom endpoint)');
  program.option('--profile <name>', 'AWS profile from ~/.aws/config (default: AWS_PROFILE)');
}

/** Reads the connection flags back. */
export function s3ConnectionFromFlags(flags: Record<string, unknown>): S3ConnectionOptions {
  return {
    region: flags.region as string | undefined,
    endpoint: flags.endpoint as string | undefined,
    forcePathStyle: flags.pathStyle === true ? true : undefined,
    profile: flags.profile as string | undefined,
  };
}

/**
 * For the CLIs: stderr carries Sluice's own progress and errors (and nothing with --quiet),
 * so the SDK's notice about future Node versions stays off unless the user asks for it.
 */
export function quietSdkNotices(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}
