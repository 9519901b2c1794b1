/**
 * A Cloud Storage server for tests: the parts of the JSON API that `@google-cloud/storage`
 * uses, plus V4 signed URLs, in memory, on 127.0.0.1. No usable GCS emulator installs from
 * the registries this project can reach, so this one is written from Google's public
 * reference, https://cloud.google.com/storage/docs/json_api/v1 , and differs from the
 * emulators we looked at in checking V4 signatures against the service account's public key.
 *
 * Covered (paths relative to the server's base URL):
 * - GET    /storage/v1/b/{bucket}                    buckets.get
 *          https://cloud.google.com/storage/docs/json_api/v1/buckets/get
 * - POST   /storage/v1/b?project=                    buckets.insert (body {name}); 409 if it exists
 *          https://cloud.google.com/storage/docs/json_api/v1/buckets/insert
 * - GET    /storage/v1/b/{bucket}/o                  objects.list: prefix, delimiter, maxResults
 *          (items and prefixes together, at most 1000), pageToken, startOffset, endOffset,
 *          includeTrailingDelimiter, fields (partial response, e.g. `items(name),nextPageToken`)
 *          https://cloud.google.com/storage/docs/json_api/v1/objects/list
 * - GET    /storage/v1/b/{bucket}/o/{object}         objects.get: metadata, or the bytes with
 *          alt=media (also under /download/storage/v1/...), Range (206, 416), generation,
 *          ifGenerationMatch / ifGenerationNotMatch / ifMetagenerationMatch / ifMetagenerationNotMatch,
 *          `x-goog-hash` (crc32c, md5), `x-goog-generation`, `x-goog-stored-content-length` ...
 *          https://cloud.google.com/storage/docs/json_api/v1/objects/get
 * - POST   /upload/storage/v1/b/{bucket}/o           objects.insert with uploadType=media (name=),
 *          multipart (multipart/related: JSON metadata, then the bytes) and resumable (returns a
 *          session URI in Location), the same preconditions, md5Hash / crc32c checked when sent;
 *          also under /resumable/upload/storage/v1/..., where gcloud and gsutil start sessions
 *          https://cloud.google.com/storage/docs/json_api/v1/objects/insert
 *          https://cloud.google.com/storage/docs/performing-resumable-uploads
 * - PUT    {session URI}                             resumable chunks (`Content-Range: bytes a-b/total`
 *          or `a-b/*`; chunks other than the last must be multiples of 256 KiB), status queries
 *          (`bytes *\/total`, `bytes *\/*`) answered 308 with `Range: bytes=0-n` (no Range
 *          before the first byte), completion answered 200 with the object
 * - DELETE {session URI}                             cancels the upload (499)
 * - DELETE /storage/v1/b/{bucket}/o/{object}        objects.delete, with the preconditions
 *          https://cloud.google.com/storage/docs/json_api/v1/objects/delete
 * - GET    /{bucket}/{object}?X-Goog-Signature=...   V4 signed URLs (GOOG4-RSA-SHA256), verified
 *          with the public key of the service account in X-Goog-Credential: canonical request,
 *          string to sign, expiry; refused with the XML API's 403 SignatureDoesNotMatch or
 *          400 ExpiredToken. https://cloud.google.com/storage/docs/access-control/signed-urls
 *          https://cloud.google.com/storage/docs/authentication/canonical-requests
 * - POST   /token                                    OAuth 2.0 JWT bearer grant for service
 *          accounts (assertion signed RS256 by a registered key): an access token
 *          https://developers.google.com/identity/protocols/oauth2/service-account#httprest
 *
 * Modelled as Cloud Storage behaves (checked with gcloud storage and gsutil in
 * test/gcs-clients.test.ts):
 * - Decompressive transcoding: an object stored with `Content-Encoding: gzip` is served
 *   decompressed, whole (200, Range ignored), without Content-Encoding and Content-Length and
 *   with `Warning: 214 UploadServer gunzipped`, unless the request says `Accept-Encoding: gzip`
 *   or the object's `Cache-Control` has `no-transform` (what `gsutil cp -Z` and
 *   `gcloud storage cp --gzip-local-all` set): then the stored bytes, Range applying to them.
 *   `x-goog-hash` always describes the stored bytes. https://cloud.google.com/storage/docs/transcoding
 *   (Range ignored: the same page, and fsouza/fake-gcs-server fakestorage/object.go)
 * - Multipart uploads whose lines end in LF alone and whose boundary is in single quotes, as
 *   gcloud 528 and gsutil 5 send them (Python's email generator); CRLF and double quotes, as
 *   Node clients send them, work too.
 * - `cacheControl` is kept and served as the object's Cache-Control.
 * - With `objectWriteRate`, writes to one object name beyond that many a second (Google's
 *   limit is one) are answered 429 rateLimitExceeded, domain usageLimits.
 *   https://cloud.google.com/storage/quotas#objects
 *
 * Errors use the JSON API's body, `{"error":{"code","message","errors":[{"message","domain",
 * "reason"}]}}`, with its reasons (notFound, conflict, conditionNotMet, required, authError,
 * invalid, badRequest, requestedRangeNotSatisfiable). With `requireAuth`, JSON API and upload
 * requests need `Authorization: Bearer <token>` with a token from /token or `addToken`.
 * Not covered: object versioning (only live generations are kept), compose, copy/rewrite,
 * ACLs, patch, notifications, batch requests, XML API uploads.
 */
import {
  createHash,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  verify,
} from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { crc32cBase64 } from './crc32c.js';
import { type GeneratedBucket, generatedObjects, lowerBound } from './generated.js';
import {
  boundaryOf,
  multipartParts,
  parseFields,
  resumeIncomplete,
  selectFields,
  takeChunk,
} from './google-api.js';
import { LoopbackServer, readBody, sendJson } from './loopback.js';

interface StoredObject {
  name: string;
  data: Buffer;
  generation: string;
  metageneration: string;
  contentType: string;
  contentEncoding?: string;
  cacheControl?: string;
  metadata?: Record<string, string>;
  md5Hash: string;
  crc32c: string;
  created: string;
  updated: string;
}

interface Bucket {
  name: string;
  created: string;
  objects: Map<string, StoredObject>;
  /** Object names, sorted, until the next write: a page of a large bucket is a binary search. */
  sorted?: string[];
}

interface Upload {
  bucket: string;
  resource: ObjectResource;
  conditions: Conditions;
  chunks: Buffer[];
  received: number;
  done?: StoredObject;
}

/** What an upload says about the object to create (the JSON metadata of the request). */
interface ObjectResource {
  name?: string;
  contentType?: string;
  contentEncoding?: string;
  cacheControl?: string;
  metadata?: Record<string, string>;
  md5Hash?: string;
  crc32c?: string;
}

interface Conditions {
  ifGenerationMatch?: string;
  ifGenerationNotMatch?: string;
  ifMetagenerationMatch?: string;
  ifMetagenerationNotMatch?: string;
}

export interface GcsServerOptions {
  /** Refuse JSON API and upload requests without a valid bearer token. Default false. */
  requireAuth?: boolean;
  /**
   * Writes (uploads, resumable sessions started, deletes) a second to one object name, as
   * Cloud Storage allows one; more are answered 429 rateLimitExceeded. Default: no limit.
   */
  objectWriteRate?: number;
}

/** The error answers the server gives, shaped and worded like the real API's. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** What a handler threw, as an API error: anything unexpected is a 500 backendError. */
const asApiError = (error: unknown) =>
  error instanceof ApiError ? error : new ApiError(500, 'backendError', (error as Error).message);

const notFoundBucket = () => new ApiError(404, 'notFound', 'The specified bucket does not exist.');
const notFoundObject = (bucket: string, name: string) =>
  new ApiError(404, 'notFound', `No such object: ${bucket}/${name}`);
const conditionNotMet = () =>
  new ApiError(
    412,
    'conditionNotMet',
    'At least one of the pre-conditions you specified did not hold.',
    { locationType: 'header', location: 'If-Match' },
  );

const MAX_RESULTS = 1000;
const STATUS_CLIENT_CLOSED = 499;

const md5Base64 = (data: Buffer) => createHash('md5').update(data).digest('base64');

/** RFC 3986 encoding, as the V4 canonical request wants it. */
const encodeRfc3986 = (s: string) =>
  encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

export class GcsServer extends LoopbackServer {
  private readonly buckets = new Map<string, Bucket>();
  private readonly uploads = new Map<string, Upload>();
  private readonly keys = new Map<string, KeyObject>();
  private readonly tokens = new Set<string>();
  /** Recent writes per `bucket/name`, for `objectWriteRate`. */
  private readonly writes = new Map<string, number[]>();
  private lastGeneration = 0;
  /** Requests served, by operation, for checks. */
  readonly requests: Record<string, number> = {};

  constructor(private readonly options: GcsServerOptions = {}) {
    super();
  }

  /** Registers a service account's public key (PEM), for signed URLs and token grants. */
  addServiceAccount(email: string, publicKeyPem: string): void {
    this.keys.set(email, createPublicKey(publicKeyPem));
  }

  /** Accepts a bearer token as if it had been granted. */
  addToken(token: string): void {
    this.tokens.add(token);
  }

  createBucket(name: string): void {
    if (!this.buckets.has(name)) {
      this.buckets.set(name, { name, created: new Date().toISOString(), objects: new Map() });
    }
  }

  /** Stores an object directly (test set-up), as an upload would. */
  putObject(
    bucket: string,
    name: string,
    data: Buffer | string,
    resource: ObjectResource = {},
  ): StoredObject {
    const target = this.buckets.get(bucket);
    if (!target) throw new Error(`no bucket ${bucket}`);
    return this.store(target, { ...resource, name }, Buffer.from(data));
  }

  /** Creates a bucket of generated objects sharing one body (see generated.ts), cheaply. */
  generate(spec: GeneratedBucket): void {
    this.createBucket(spec.name);
    const bucket = this.buckets.get(spec.name) as Bucket;
    const { keys, body } = generatedObjects(spec);
    const md5Hash = md5Base64(body);
    const crc32c = crc32cBase64(body);
    const now = new Date().toISOString();
    const contentType = spec.ext === 'jsonl' ? 'application/jsonl' : 'text/plain';
    for (const name of keys) {
      bucket.objects.set(name, {
        name,
        data: body,
        generation: this.nextGeneration(),
        metageneration: '1',
        contentType,
        md5Hash,
        crc32c,
        created: now,
        updated: now,
      });
    }
    bucket.sorted = undefined;
  }

  /** The stored bytes and metadata of an object, for checks. */
  getObject(bucket: string, name: string): StoredObject | undefined {
    return this.buckets.get(bucket)?.objects.get(name);
  }

  /** Object names in a bucket, sorted. */
  list(bucket: string): string[] {
    return [...(this.buckets.get(bucket)?.objects.keys() ?? [])].sort();
  }

  /** Resumable uploads started and not finished, for checks. */
  get openUploads(): number {
    return [...this.uploads.values()].filter((upload) => !upload.done).length;
  }

  /**
   * Refuses a write to an object name written too often in the last second, with the answer
   * Cloud Storage gives (https://cloud.google.com/storage/quotas#objects: one write per second
   * to the same object name; https://cloud.google.com/storage/docs/json_api/v1/status-codes).
   */
  private throttleWrite(bucket: string, name: string): void {
    const rate = this.options.objectWriteRate;
    if (rate === undefined) return;
    const key = `${bucket}/${name}`;
    const now = Date.now();
    const recent = (this.writes.get(key) ?? []).filter((t) => t > now - 1000);
    if (recent.length >= rate) {
      this.writes.set(key, recent);
      throw new ApiError(
        429,
        'rateLimitExceeded',
        `The object ${key} exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429.`,
        { domain: 'usageLimits' },
      );
    }
    recent.push(now);
    this.writes.set(key, recent);
  }

  private count(operation: string): void {
    this.requests[operation] = (this.requests[operation] ?? 0) + 1;
  }

  private nextGeneration(): string {
    // Real generations are microsecond timestamps; they only ever grow.
    this.lastGeneration = Math.max(this.lastGeneration + 1, Date.now() * 1000);
    return String(this.lastGeneration);
  }

  private store(bucket: Bucket, resource: ObjectResource, data: Buffer): StoredObject {
    const now = new Date().toISOString();
    const md5Hash = md5Base64(data);
    const crc = crc32cBase64(data);
    if (resource.md5Hash && resource.md5Hash !== md5Hash) {
      throw new ApiError(
        400,
        'invalid',
        `Provided MD5 hash "${resource.md5Hash}" doesn't match calculated MD5 hash "${md5Hash}".`,
      );
    }
    if (resource.crc32c && resource.crc32c !== crc) {
      throw new ApiError(
        400,
        'invalid',
        `Provided CRC32C "${resource.crc32c}" doesn't match calculated CRC32C "${crc}".`,
      );
    }
    const name = resource.name as string;
    const object: StoredObject = {
      name,
      data,
      generation: this.nextGeneration(),
      metageneration: '1',
      contentType: resource.contentType || 'application/octet-stream',
      contentEncoding: resource.contentEncoding,
      cacheControl: resource.cacheControl,
      metadata: resource.metadata,
      md5Hash,
      crc32c: crc,
      created: now,
      updated: now,
    };
    bucket.objects.set(name, object);
    bucket.sorted = undefined;
    return object;
  }

  private resource(bucket: string, object: StoredObject): Record<string, unknown> {
    const path = `b/${bucket}/o/${encodeURIComponent(object.name)}`;
    return {
      kind: 'storage#object',
      id: `${bucket}/${object.name}/${object.generation}`,
      selfLink: `${this.url}/storage/v1/${path}`,
      mediaLink: `${this.url}/download/storage/v1/${path}?generation=${object.generation}&alt=media`,
      name: object.name,
      bucket,
      generation: object.generation,
      metageneration: object.metageneration,
      contentType: object.contentType,
      ...(object.contentEncoding ? { contentEncoding: object.contentEncoding } : {}),
      ...(object.cacheControl ? { cacheControl: object.cacheControl } : {}),
      storageClass: 'STANDARD',
      size: String(object.data.length),
      md5Hash: object.md5Hash,
      crc32c: object.crc32c,
      etag: Buffer.from(object.generation).toString('base64'),
      timeCreated: object.created,
      updated: object.updated,
      timeStorageClassUpdated: object.created,
      ...(object.metadata ? { metadata: object.metadata } : {}),
    };
  }

  private bucketResource(bucket: Bucket): Record<string, unknown> {
    return {
      kind: 'storage#bucket',
      selfLink: `${this.url}/storage/v1/b/${bucket.name}`,
      id: bucket.name,
      name: bucket.name,
      projectNumber: '000000000000',
      metageneration: '1',
      location: 'US',
      storageClass: 'STANDARD',
      etag: 'CAE=',
      timeCreated: bucket.created,
      updated: bucket.created,
      locationType: 'multi-region',
    };
  }

  private sendError(res: ServerResponse, error: ApiError): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendJson(res, error.status, {
      error: {
        code: error.status,
        message: error.message,
        errors: [
          { message: error.message, domain: 'global', reason: error.reason, ...error.extra },
        ],
      },
    });
  }

  private sendXmlError(res: ServerResponse, status: number, code: string, message: string): void {
    const body = `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
    res.writeHead(status, {
      'Content-Type': 'application/xml; charset=UTF-8',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  private bucket(name: string): Bucket {
    const bucket = this.buckets.get(name);
    if (!bucket) throw notFoundBucket();
    return bucket;
  }

  private checkAuth(req: IncomingMessage, permission: string): void {
    if (!this.options.requireAuth) return;
    const header = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/.exec(header)?.[1];
    if (!token) {
      throw new ApiError(
        401,
        'required',
        `Anonymous caller does not have ${permission} access to the Google Cloud Storage resource.`,
        { locationType: 'header', location: 'Authorization' },
      );
    }
    if (!this.tokens.has(token)) {
      throw new ApiError(401, 'authError', 'Invalid Credentials', {
        locationType: 'header',
        location: 'Authorization',
      });
    }
  }

  protected fail(res: ServerResponse, error: unknown): void {
    this.sendError(res, asApiError(error));
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://placeholder');
    const path = url.pathname;
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    let m: RegExpExecArray | null;

    if (method === 'POST' && path === '/token') return this.grantToken(req, res);
    if (q.has('X-Goog-Signature')) return this.signedGet(req, res, url);

    // JSON API paths also come without /storage/v1: the client drops it when
    // STORAGE_EMULATOR_HOST sets the endpoint.
    m = /^(?:\/download)?(?:\/storage\/v1)?\/b\/([^/]+)\/o\/(.+)$/.exec(path);
    if (m) {
      const bucket = decodeURIComponent(m[1] as string);
      const name = decodeURIComponent(m[2] as string);
      if (method === 'GET') {
        const media = q.get('alt') === 'media' || path.startsWith('/download/');
        this.checkAuth(req, 'storage.objects.get');
        return this.getObjectRequest(req, res, bucket, name, q, media);
      }
      if (method === 'DELETE') {
        this.checkAuth(req, 'storage.objects.delete');
        this.count('objects.delete');
        const target = this.bucket(bucket);
        const object = target.objects.get(name);
        if (!object) throw notFoundObject(bucket, name);
        this.checkConditions(object, conditionsOf(q));
        this.throttleWrite(bucket, name);
        target.objects.delete(name);
        target.sorted = undefined;
        res.writeHead(204).end();
        return;
      }
    }
    m = /^(?:\/storage\/v1)?\/b\/([^/]+)\/o$/.exec(path);
    if (m && method === 'GET') {
      this.checkAuth(req, 'storage.objects.list');
      return this.listObjects(res, decodeURIComponent(m[1] as string), q);
    }
    m = /^(?:\/storage\/v1)?\/b\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      this.checkAuth(req, 'storage.buckets.get');
      this.count('buckets.get');
      const bucket = this.bucket(decodeURIComponent(m[1] as string));
      return sendJson(res, 200, this.respond(this.bucketResource(bucket), q));
    }
    if ((path === '/storage/v1/b' || path === '/b') && method === 'POST') {
      this.checkAuth(req, 'storage.buckets.create');
      this.count('buckets.insert');
      const body = JSON.parse((await readBody(req)).toString() || '{}') as { name?: string };
      if (!body.name) throw new ApiError(400, 'required', 'Required');
      if (this.buckets.has(body.name)) {
        throw new ApiError(
          409,
          'conflict',
          'Your previous request to create the named bucket succeeded and you already own it.',
        );
      }
      this.createBucket(body.name);
      return sendJson(res, 200, this.bucketResource(this.bucket(body.name)));
    }
    // gcloud and gsutil start resumable uploads under /resumable/upload/, as Google accepts.
    m = /^\/(?:resumable\/)?upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    if (m) {
      const bucket = decodeURIComponent(m[1] as string);
      if (q.has('upload_id')) {
        if (method === 'PUT' || method === 'POST') return this.resumeUpload(req, res, q);
        if (method === 'DELETE') {
          this.uploads.delete(q.get('upload_id') as string);
          res.writeHead(STATUS_CLIENT_CLOSED).end();
          return;
        }
      }
      if (method === 'POST') {
        this.checkAuth(req, 'storage.objects.create');
        return this.insert(req, res, bucket, q);
      }
    }
    throw new ApiError(404, 'notFound', `Not Found: ${method} ${path}`);
  }

  private respond(body: Record<string, unknown>, q: URLSearchParams): unknown {
    const fields = q.get('fields');
    return fields
      ? selectFields(
          body,
          parseFields(fields, () => new ApiError(400, 'invalid', 'Invalid field selection')),
        )
      : body;
  }

  private checkConditions(object: StoredObject | undefined, c: Conditions): void {
    const generation = object?.generation ?? '0';
    if (c.ifGenerationMatch !== undefined && c.ifGenerationMatch !== generation) {
      throw conditionNotMet();
    }
    if (c.ifGenerationNotMatch !== undefined && c.ifGenerationNotMatch === generation) {
      throw conditionNotMet();
    }
    if (
      c.ifMetagenerationMatch !== undefined &&
      c.ifMetagenerationMatch !== object?.metageneration
    ) {
      throw conditionNotMet();
    }
    if (
      c.ifMetagenerationNotMatch !== undefined &&
      c.ifMetagenerationNotMatch === object?.metageneration
    ) {
      throw conditionNotMet();
    }
  }

  private getObjectRequest(
    req: IncomingMessage,
    res: ServerResponse,
    bucketName: string,
    name: string,
    q: URLSearchParams,
    media: boolean,
  ): void {
    this.count(media ? 'objects.get(media)' : 'objects.get');
    const bucket = this.bucket(bucketName);
    const object = bucket.objects.get(name);
    const generation = q.get('generation');
    if (!object || (generation && generation !== object.generation)) {
      throw notFoundObject(bucketName, name);
    }
    this.checkConditions(object, conditionsOf(q));
    if (!media) {
      sendJson(res, 200, this.respond(this.resource(bucketName, object), q));
      return;
    }
    this.sendMedia(req, res, object);
  }

  private sendMedia(req: IncomingMessage, res: ServerResponse, object: StoredObject): void {
    const size = object.data.length;
    const headers: Record<string, string | string[]> = {
      'Content-Type': object.contentType,
      ETag: Buffer.from(object.generation).toString('base64'),
      'Last-Modified': new Date(object.updated).toUTCString(),
      'Cache-Control': object.cacheControl ?? 'private, max-age=0',
      'Accept-Ranges': 'bytes',
      'x-goog-generation': object.generation,
      'x-goog-metageneration': object.metageneration,
      'x-goog-stored-content-encoding': object.contentEncoding ?? 'identity',
      'x-goog-stored-content-length': String(size),
      'x-goog-storage-class': 'STANDARD',
      // Sent as two header lines, as the service does; always the stored bytes' hashes.
      'x-goog-hash': [`crc32c=${object.crc32c}`, `md5=${object.md5Hash}`],
    };
    const decompressed = this.transcoded(req, object);
    if (decompressed) {
      // Decompressive transcoding: the whole object, decompressed, whatever Range asked for,
      // with neither Content-Encoding nor Content-Length.
      this.count('objects.get(transcoded)');
      res.writeHead(200, { ...headers, Warning: '214 UploadServer gunzipped' });
      res.end(decompressed);
      return;
    }
    if (object.contentEncoding) headers['Content-Encoding'] = object.contentEncoding;
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (req.headers.range && range) {
      let start: number;
      let end: number;
      if (range[1] === '') {
        start = Math.max(size - Number(range[2]), 0);
        end = size - 1;
      } else {
        start = Number(range[1]);
        end = range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      }
      if (start >= size || start > end) {
        this.sendError(
          res,
          new ApiError(416, 'requestedRangeNotSatisfiable', 'Request range not satisfiable'),
        );
        return;
      }
      res.writeHead(206, {
        ...headers,
        'Content-Range': `bytes ${start}-${end}/${size}`,
        'Content-Length': String(end - start + 1),
      });
      res.end(object.data.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(size) });
    res.end(object.data);
  }

  /**
   * The bytes of a gzip-encoded object when the service decompresses it for this request:
   * stored with `Content-Encoding: gzip`, asked for without `Accept-Encoding: gzip`, and not
   * marked `Cache-Control: no-transform`. Bytes that are not gzip are served as stored.
   */
  private transcoded(req: IncomingMessage, object: StoredObject): Buffer | undefined {
    if (object.contentEncoding !== 'gzip') return undefined;
    if (/(^|,)\s*no-transform\s*(,|$)/i.test(object.cacheControl ?? '')) return undefined;
    if (/(^|,)\s*gzip\s*(;|,|$)/i.test(String(req.headers['accept-encoding'] ?? ''))) {
      return undefined;
    }
    try {
      return gunzipSync(object.data);
    } catch {
      return undefined;
    }
  }

  private listObjects(res: ServerResponse, bucketName: string, q: URLSearchParams): void {
    this.count('objects.list');
    const bucket = this.bucket(bucketName);
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const startOffset = q.get('startOffset') ?? '';
    const endOffset = q.get('endOffset');
    const trailing = q.get('includeTrailingDelimiter') === 'true';
    const maxResults = Math.min(
      Number(q.get('maxResults') ?? MAX_RESULTS) || MAX_RESULTS,
      MAX_RESULTS,
    );
    const token = q.get('pageToken');
    const after = token ? Buffer.from(token, 'base64url').toString('utf8') : undefined;
    bucket.sorted ??= [...bucket.objects.keys()].sort();
    const names = bucket.sorted;
    const items: Record<string, unknown>[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    let more = false;
    // Names are sorted: those under the prefix are together, from the first one past where
    // the listing starts (the page token never skips a folder's later names, being <= them).
    let from = startOffset;
    if (prefix > from) from = prefix;
    if (after !== undefined && after > from) from = after;
    for (let i = lowerBound(names, from); i < names.length; i++) {
      const name = names[i] as string;
      if (!name.startsWith(prefix)) break;
      if (name < startOffset) continue;
      if (endOffset && name >= endOffset) continue;
      // A folder (common prefix) is one entry, listed where its first name would be.
      let entry = name;
      let folder: string | undefined;
      if (delimiter) {
        const at = name.indexOf(delimiter, prefix.length);
        if (at >= 0) folder = name.slice(0, at + delimiter.length);
      }
      if (folder) entry = folder;
      if (after !== undefined && entry <= after) continue;
      if (folder && prefixes.at(-1) === folder) continue;
      if (items.length + prefixes.length >= maxResults) {
        more = true;
        break;
      }
      if (folder) {
        prefixes.push(folder);
        if (trailing && bucket.objects.has(folder)) {
          items.push(this.resource(bucketName, bucket.objects.get(folder) as StoredObject));
        }
      } else items.push(this.resource(bucketName, bucket.objects.get(name) as StoredObject));
      last = entry;
    }
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (more && last !== undefined) {
      body.nextPageToken = Buffer.from(last).toString('base64url');
    }
    if (prefixes.length) body.prefixes = prefixes;
    if (items.length) body.items = items;
    sendJson(res, 200, this.respond(body, q));
  }

  private async insert(
    req: IncomingMessage,
    res: ServerResponse,
    bucketName: string,
    q: URLSearchParams,
  ): Promise<void> {
    const bucket = this.bucket(bucketName);
    const uploadType = q.get('uploadType') ?? 'media';
    const body = await readBody(req);
    const conditions = conditionsOf(q);
    let resource: ObjectResource = {};
    let data = body;
    if (uploadType === 'resumable') {
      this.count('objects.insert(resumable)');
      resource = body.length ? (JSON.parse(body.toString('utf8')) as ObjectResource) : {};
      resource.name ??= q.get('name') ?? undefined;
      resource.contentType ??= headerOf(req, 'x-upload-content-type');
      if (!resource.name) throw new ApiError(400, 'required', 'Required');
      this.checkConditions(bucket.objects.get(resource.name), conditions);
      this.throttleWrite(bucketName, resource.name);
      const id = randomBytes(16).toString('hex');
      this.uploads.set(id, { bucket: bucketName, resource, conditions, chunks: [], received: 0 });
      const session = `${this.url}/upload/storage/v1/b/${encodeURIComponent(bucketName)}/o?uploadType=resumable&name=${encodeURIComponent(resource.name)}&upload_id=${id}`;
      res.writeHead(200, { Location: session, 'X-GUploader-UploadID': id, 'Content-Length': '0' });
      res.end();
      return;
    }
    if (uploadType === 'multipart') {
      this.count('objects.insert(multipart)');
      const boundary = boundaryOf(req.headers['content-type']);
      const parts = boundary ? multipartParts(body, boundary) : [];
      if (parts.length !== 2) {
        throw new ApiError(400, 'invalid', 'Invalid multipart request with 0 mime parts.');
      }
      const [meta, media] = parts as [
        { type: string; data: Buffer },
        { type: string; data: Buffer },
      ];
      resource = JSON.parse(meta.data.toString('utf8')) as ObjectResource;
      resource.name ??= q.get('name') ?? undefined;
      resource.contentType ??= media.type || undefined;
      data = media.data;
    } else if (uploadType === 'media') {
      this.count('objects.insert(media)');
      resource = { name: q.get('name') ?? undefined, contentType: headerOf(req, 'content-type') };
      resource.contentEncoding = q.get('contentEncoding') ?? undefined;
    } else {
      throw new ApiError(400, 'invalid', `Invalid upload type: ${uploadType}`);
    }
    if (!resource.name) throw new ApiError(400, 'required', 'Required');
    this.checkConditions(bucket.objects.get(resource.name), conditions);
    this.throttleWrite(bucketName, resource.name);
    const object = this.store(bucket, resource, data);
    sendJson(res, 200, this.respond(this.resource(bucketName, object), q));
  }

  private async resumeUpload(
    req: IncomingMessage,
    res: ServerResponse,
    q: URLSearchParams,
  ): Promise<void> {
    this.count('uploads.put');
    const upload = this.uploads.get(q.get('upload_id') as string);
    const body = await readBody(req);
    if (!upload) throw new ApiError(404, 'notFound', 'No such upload session.');
    const bucket = this.bucket(upload.bucket);
    if (upload.done) {
      sendJson(res, 200, this.resource(upload.bucket, upload.done));
      return;
    }
    const total = takeChunk(
      upload,
      String(req.headers['content-range'] ?? ''),
      body,
      (message) => new ApiError(400, 'badRequest', message),
    );
    if (total !== undefined && upload.received === total) {
      this.checkConditions(bucket.objects.get(upload.resource.name as string), upload.conditions);
      const object = this.store(bucket, upload.resource, Buffer.concat(upload.chunks));
      upload.done = object;
      upload.chunks = [];
      sendJson(res, 200, this.resource(upload.bucket, object));
      return;
    }
    resumeIncomplete(res, upload.received);
  }

  private async grantToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.count('token');
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const refuse = (description: string) =>
      sendJson(res, 400, { error: 'invalid_grant', error_description: description });
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return refuse('Invalid grant_type');
    }
    const [head, claims, signature] = (form.get('assertion') ?? '').split('.');
    if (!head || !claims || !signature) return refuse('Invalid JWT: malformed');
    const payload = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as {
      iss?: string;
      exp?: number;
    };
    const key = payload.iss ? this.keys.get(payload.iss) : undefined;
    if (!key) return refuse('Invalid JWT Signature.');
    const valid = verify(
      'RSA-SHA256',
      Buffer.from(`${head}.${claims}`),
      key,
      Buffer.from(signature, 'base64url'),
    );
    if (!valid) return refuse('Invalid JWT Signature.');
    if ((payload.exp ?? 0) * 1000 < Date.now()) {
      return refuse(
        'Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.',
      );
    }
    const token = `ya29.${randomBytes(24).toString('base64url')}`;
    this.tokens.add(token);
    sendJson(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  }

  /** A V4-signed GET of the XML API: checks the signature and expiry, then serves the bytes. */
  private signedGet(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.count('signed.get');
    const q = url.searchParams;
    const credential = q.get('X-Goog-Credential') ?? '';
    const [email, ...scopeParts] = credential.split('/');
    const scope = scopeParts.join('/');
    const date = q.get('X-Goog-Date') ?? '';
    const expires = Number(q.get('X-Goog-Expires'));
    const signedHeaders = (q.get('X-Goog-SignedHeaders') ?? '').split(';');
    const key = email ? this.keys.get(email) : undefined;
    if (q.get('X-Goog-Algorithm') !== 'GOOG4-RSA-SHA256' || !key) {
      this.sendXmlError(
        res,
        400,
        'AuthenticationRequired',
        'The signing service account is unknown, or the algorithm is not GOOG4-RSA-SHA256.',
      );
      return;
    }
    const query = [...q.entries()]
      .filter(([name]) => name !== 'X-Goog-Signature')
      .map(([name, value]) => `${encodeRfc3986(name)}=${encodeRfc3986(value)}`)
      .sort()
      .join('&');
    // The client signs the host name without the port.
    const headerValue = (name: string) =>
      name === 'host'
        ? String(req.headers.host ?? '').replace(/:\d+$/, '')
        : String(req.headers[name] ?? '')
            .trim()
            .replace(/\s+/g, ' ');
    const headerLines = signedHeaders.map((name) => `${name}:${headerValue(name)}\n`).join('');
    const canonical = [
      'GET',
      url.pathname,
      query,
      headerLines,
      signedHeaders.join(';'),
      'UNSIGNED-PAYLOAD',
    ].join('\n');
    const stringToSign = [
      'GOOG4-RSA-SHA256',
      date,
      scope,
      createHash('sha256').update(canonical).digest('hex'),
    ].join('\n');
    const signature = Buffer.from(q.get('X-Goog-Signature') ?? '', 'hex');
    if (!verify('RSA-SHA256', Buffer.from(stringToSign), key, signature)) {
      this.sendXmlError(
        res,
        403,
        'SignatureDoesNotMatch',
        'Access denied. The request signature we calculated does not match the signature you provided. Check your Google secret key and signing method.',
      );
      return;
    }
    const signedAt = Date.parse(
      date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    if (!Number.isFinite(signedAt) || Date.now() > signedAt + expires * 1000) {
      this.sendXmlError(res, 400, 'ExpiredToken', 'Invalid argument.');
      return;
    }
    const [, bucketName, ...rest] = url.pathname.split('/');
    const name = decodeURIComponent(rest.join('/'));
    const object = this.buckets.get(decodeURIComponent(bucketName ?? ''))?.objects.get(name);
    if (!object) {
      this.sendXmlError(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      return;
    }
    this.sendMedia(req, res, object);
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value ? value : undefined;
}

function conditionsOf(q: URLSearchParams): Conditions {
  const get = (name: string) => q.get(name) ?? undefined;
  return {
    ifGenerationMatch: get('ifGenerationMatch'),
    ifGenerationNotMatch: get('ifGenerationNotMatch'),
    ifMetagenerationMatch: get('ifMetagenerationMatch'),
    ifMetagenerationNotMatch: get('ifMetagenerationNotMatch'),
  };
}

/** Starts a server on a random loopback port. */
export async function startGcsServer(
  options: GcsServerOptions = {},
  port = 0,
): Promise<{ server: GcsServer; url: string; stop: () => Promise<void> }> {
  const server = new GcsServer(options);
  const url = await server.listen(port);
  return { server, url, stop: () => server.close() };
}

/**
 * A service account made for one test run: a fresh RSA key pair, the shape of a key file's
 * fields (`client_email`, `private_key`) plus the public key to register with the server.
 */
export function serviceAccount(email = 'sluice-test@sluice-test.iam.gserviceaccount.com'): {
  type: 'service_account';
  project_id: string;
  client_email: string;
  private_key: string;
  public_key: string;
} {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return {
    type: 'service_account',
    project_id: 'sluice-test',
    client_email: email,
    private_key: privateKey,
    public_key: publicKey,
  };
}
