import { IdempotencyStrategy, Storage, type StorageOptions } from '@google-cloud/storage';
import {
  debugLog,
  hasUserinfo,
  RATE_LIMIT_REASONS,
  requestError,
  SluiceError,
  serviceUrl,
  usageError,
} from '@sluice/core';

export const GCS_CONNECTOR = 'gcs';

/** How to reach Cloud Storage. Shared by source and sink. */
export interface GcsConnectionOptions {
  /** A ready client; the other connection options are then ignored. */
  storage?: Storage;
  /** Google Cloud project (default: the credentials' project, GOOGLE_CLOUD_PROJECT). */
  projectId?: string;
  /** Service account key file (default: Application Default Credentials, GOOGLE_APPLICATION_CREDENTIALS). */
  keyFilename?: string;
  /** API endpoint of an emulator or private endpoint (default: STORAGE_EMULATOR_HOST, else Google). */
  endpoint?: string;
}

export const debug = debugLog('sluice:gcs');

/** Splits `gs://bucket/prefix/` into bucket and object-name prefix. */
export function parseGcsUrl(url: string): { bucket: string; prefix: string } {
  if (hasUserinfo(url)) {
    throw usageError(
      'the Cloud Storage URL holds credentials (user:secret@bucket): they are not accepted there',
      'use gs://bucket/prefix; credentials come from GOOGLE_APPLICATION_CREDENTIALS (or --key-file) or Application Default Credentials',
    );
  }
  const match = /^gs:\/\/([^/]+)\/?(.*)$/i.exec(url);
  if (!match) {
    throw usageError(
      `not a Cloud Storage URL: ${url}`,
      'use gs://bucket/prefix, e.g. gs://acme-raw/tickets/',
    );
  }
  const [, bucket, prefix] = match as unknown as [string, string, string];
  // https://cloud.google.com/storage/docs/buckets#naming
  if (!/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/.test(bucket)) {
    throw usageError(
      `not a valid bucket name: ${bucket}`,
      'bucket names are 3-63 lowercase letters, digits, dashes, underscores and dots',
    );
  }
  return { bucket, prefix };
}

/**
 * Builds a client from the options, following Google's own credential chain. With
 * `idempotentWrites` (a sink's writes: whole objects, same bytes on a retry), uploads and
 * deletes are retried like reads; the client's default retries them only with preconditions.
 */
export function createStorage(options: GcsConnectionOptions, idempotentWrites = false): Storage {
  if (options.storage) return options.storage;
  if (options.endpoint) {
    serviceUrl(options.endpoint, '--endpoint', { example: 'http://127.0.0.1:4443' });
  } else if (process.env.STORAGE_EMULATOR_HOST) {
    // The client reads it itself; it may be a bare host:port.
    serviceUrl(process.env.STORAGE_EMULATOR_HOST, 'STORAGE_EMULATOR_HOST', {
      example: 'http://127.0.0.1:4443',
      bare: true,
    });
  }
  const config: StorageOptions = {
    ...(options.projectId ? { projectId: options.projectId } : {}),
    ...(options.keyFilename ? { keyFilename: options.keyFilename } : {}),
    ...(options.endpoint ? { apiEndpoint: options.endpoint } : {}),
    ...(idempotentWrites
      ? { retryOptions: { idempotencyStrategy: IdempotencyStrategy.RetryAlways } }
      : {}),
  };
  debug(
    'client: project=%s endpoint=%s key=%s',
    options.projectId ?? '(credentials)',
    options.endpoint ?? process.env.STORAGE_EMULATOR_HOST ?? '(google)',
    options.keyFilename ? 'file' : '(default credentials)',
  );
  return new Storage(config);
}

interface ApiErrorLike {
  code?: number | string;
  message?: string;
  errors?: Array<{ reason?: string; message?: string }>;
}

/** Whether a client error says the object is absent (a missing bucket is a real error). */
export function isMissingObject(error: unknown): boolean {
  const e = error as ApiErrorLike;
  return e?.code === 404 && !/bucket does not exist/i.test(e.message ?? '');
}

/**
 * Turns a client error into a SluiceError with a hint; never includes credentials.
 * `what` names the bucket or object, e.g. `gs://acme/raw/`.
 */
export function gcsError(error: unknown, what: string): SluiceError {
  if (error instanceof SluiceError) return error;
  const e = error as ApiErrorLike;
  const status = typeof e?.code === 'number' ? e.code : undefined;
  const reason = e?.errors?.[0]?.reason ?? '';
  const message = e?.message ?? String(error);
  if (status === 404) {
    const bucket = /bucket does not exist/i.test(message);
    return new SluiceError(`${what}: ${bucket ? 'no such bucket' : 'not found'}`, {
      code: 'NOT_FOUND',
      connector: GCS_CONNECTOR,
      hint: bucket ? 'check the bucket name, --project and --endpoint' : undefined,
      cause: error,
    });
  }
  if (
    /default credentials|could not load the default|invalid_grant|no key or keyFile/i.test(message)
  ) {
    return new SluiceError(`${what}: no usable Google credentials (${firstLine(message)})`, {
      code: 'AUTH',
      connector: GCS_CONNECTOR,
      hint: 'set GOOGLE_APPLICATION_CREDENTIALS (or --key-file) to a service account key, or run gcloud auth application-default login',
      cause: error,
    });
  }
  if (status === 401 || (status === 403 && !RATE_LIMIT_REASONS.includes(reason))) {
    return new SluiceError(`${what}: access refused (${status}${reason ? ` ${reason}` : ''})`, {
      code: 'AUTH',
      connector: GCS_CONNECTOR,
      hint: 'check the credentials (GOOGLE_APPLICATION_CREDENTIALS or --key-file) and their roles on the bucket (Storage Object Viewer to read, Creator to write)',
      cause: error,
    });
  }
  if (status === 412) {
    return new SluiceError(`${what}: already exists, or changed meanwhile (precondition failed)`, {
      code: 'CONFLICT',
      connector: GCS_CONNECTOR,
      cause: error,
    });
  }
  return requestError(error, {
    connector: GCS_CONNECTOR,
    what,
    status,
    reason,
    unreachable: 'cannot reach Cloud Storage: check --endpoint and the network',
  });
}

const firstLine = (s: string) => s.split('\n')[0] as string;

/** The connection flags both GCS CLIs take. */
export function gcsConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--project <id>',
    "Google Cloud project (default: the credentials' project, GOOGLE_CLOUD_PROJECT)",
  );
  program.option(
    '--key-file <path>',
    'service account key file (default: Application Default Credentials, GOOGLE_APPLICATION_CREDENTIALS)',
  );
  program.option(
    '--endpoint <url>',
    'API endpoint of an emulator, e.g. http://127.0.0.1:4443 (default: STORAGE_EMULATOR_HOST, else Google)',
  );
}

/** Reads the connection flags back. */
export function gcsConnectionFromFlags(flags: Record<string, unknown>): GcsConnectionOptions {
  return {
    projectId: flags.project as string | undefined,
    keyFilename: flags.keyFile as string | undefined,
    endpoint: flags.endpoint as string | undefined,
  };
}
