/**
 * A near-zero-cost S3 server for benchmarks: it answers from memory, with buckets of
 * generated objects (any number of keys sharing one body), so what a benchmark measures
 * is the client's own overhead. Written from the Amazon S3 API reference
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/), path-style addressing only, no
 * signature checks. It covers what the S3 connectors, rclone and the AWS CLI call:
 *
 * - GET    /                                       ListBuckets
 * - HEAD   /{bucket}                               HeadBucket
 * - GET    /{bucket}?location                      GetBucketLocation
 * - GET    /{bucket}?versioning                    GetBucketVersioning (never enabled)
 * - GET    /{bucket}?list-type=2                   ListObjectsV2: prefix, delimiter, max-keys,
 *                                                  continuation-token, start-after, encoding-type
 * - GET    /{bucket}                               ListObjects (v1): prefix, delimiter, max-keys,
 *                                                  marker, encoding-type
 * - GET    /{bucket}/{key}, HEAD /{bucket}/{key}   GetObject (Range: bytes=a-b, a-, -n), HeadObject
 * - PUT    /{bucket}/{key}                         PutObject (aws-chunked bodies decoded), with the
 *                                                  conditional writes If-None-Match: * and
 *                                                  If-Match: <ETag> (412 PreconditionFailed; 404
 *                                                  NoSuchKey for If-Match on a missing key), as
 *                                                  S3 does since 2024:
 *                                                  https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
 * - GET    /{bucket}?uploads                       ListMultipartUploads: prefix (one page)
 * - POST   /{bucket}/{key}?uploads                 CreateMultipartUpload
 * - PUT    /{bucket}/{key}?partNumber&uploadId     UploadPart
 * - POST   /{bucket}/{key}?uploadId                CompleteMultipartUpload (If-None-Match: *)
 * - DELETE /{bucket}/{key}?uploadId                AbortMultipartUpload
 * - DELETE /{bucket}/{key}                         DeleteObject
 *
 * PutObject bodies up to 1 MiB are kept (a sink reads its manifest back); parts of multipart
 * uploads and larger bodies are only measured (size, MD5), so a 500 MB upload costs the server
 * no memory, and such objects read back as zero bytes of the right length. Errors are S3's XML
 * error bodies (NoSuchBucket, NoSuchKey, NoSuchUpload, InvalidRange, PreconditionFailed) with
 * S3's status codes.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type GeneratedBucket, generatedObjects, lowerBound } from './generated.js';

interface StoredObject {
  size: number;
  etag: string;
  body?: Buffer;
}

interface Bucket {
  /** Sorted keys: generated ones, plus uploaded ones inserted in order. */
  keys: string[];
  generated?: { body: Buffer; etag: string };
  uploads: Map<string, StoredObject>;
}

const KEEP_BODY_BYTES = 1 << 20;
const LAST_MODIFIED = new Date('2026-01-01T00:00:00Z');
const XML = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');
const escapeXml = (s: string) =>
  s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`).replace(/\r/g, '&#13;');

/** Decodes an aws-chunked body (`<hex size>[;chunk-signature=...]\r\n<data>\r\n ... 0\r\n<trailers>`). */
function decodeAwsChunked(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = Number.parseInt(raw.subarray(at, eol).toString().split(';')[0] as string, 16);
    if (!size) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

export class S3Stub {
  private readonly buckets = new Map<string, Bucket>();
  private readonly multipart = new Map<
    string,
    { bucket: Bucket; key: string; parts: Map<number, StoredObject> }
  >();
  private server: Server | undefined;
  private nextUpload = 1;
  /** Requests served, by S3 operation, for checks and for benchmark reports. */
  readonly requests: Record<string, number> = {};

  constructor(buckets: GeneratedBucket[] = []) {
    for (const spec of buckets) this.generate(spec);
  }

  /** Adds a bucket of generated objects (replacing one of the same name). */
  generate(spec: GeneratedBucket): void {
    const { keys, body } = generatedObjects(spec);
    this.buckets.set(spec.name, {
      keys,
      generated: { body, etag: md5(body) },
      uploads: new Map(),
    });
  }

  /** An empty bucket, for uploads. */
  createBucket(name: string): void {
    if (!this.buckets.has(name)) this.buckets.set(name, { keys: [], uploads: new Map() });
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: Error) => {
        if (!res.headersSent) this.error(res, 500, 'InternalError', error.message);
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    this.server = server;
    const address = server.address() as { port: number };
    return `http://${host}:${address.port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private count(operation: string) {
    this.requests[operation] = (this.requests[operation] ?? 0) + 1;
  }

  private object(bucket: Bucket, key: string): StoredObject | undefined {
    const uploaded = bucket.uploads.get(key);
    if (uploaded) return uploaded;
    if (!bucket.generated) return undefined;
    const at = lowerBound(bucket.keys, key);
    return bucket.keys[at] === key
      ? {
          size: bucket.generated.body.length,
          etag: bucket.generated.etag,
          body: bucket.generated.body,
        }
      : undefined;
  }

  private error(res: ServerResponse, status: number, code: string, message: string) {
    const body = `${XML}<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`;
    res.writeHead(status, {
      'content-type': 'application/xml',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  }

  private xml(res: ServerResponse, body: string, headers: Record<string, string> = {}) {
    const text = XML + body;
    res.writeHead(200, {
      'content-type': 'application/xml',
      'content-length': String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  }

  /** Reads a request body; `keep` holds it (decoded if aws-chunked), else only its size and MD5 count. */
  private async body(req: IncomingMessage, keep: boolean): Promise<StoredObject> {
    const chunked = String(req.headers['x-amz-content-sha256'] ?? '').startsWith('STREAMING-');
    const hash = createHash('md5');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      hash.update(chunk);
      if (keep) chunks.push(chunk);
    }
    if (!keep) {
      const decoded = Number(req.headers['x-amz-decoded-content-length']);
      return { size: chunked && decoded >= 0 ? decoded : size, etag: hash.digest('hex') };
    }
    const raw = Buffer.concat(chunks);
    const body = chunked ? decodeAwsChunked(raw) : raw;
    return {
      size: body.length,
      etag: md5(body),
      body: body.length <= KEEP_BODY_BYTES ? body : undefined,
    };
  }

  /** Answers a write whose If-None-Match or If-Match does not hold, as S3 does; true if it did. */
  private refused(req: IncomingMessage, res: ServerResponse, bucket: Bucket, key: string): boolean {
    const current = this.object(bucket, key);
    const match = req.headers['if-match'];
    if (typeof match === 'string' && !current) {
      this.error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      return true;
    }
    const failed =
      (req.headers['if-none-match'] === '*' && current !== undefined) ||
      (typeof match === 'string' && match.replace(/"/g, '') !== current?.etag);
    if (failed) {
      const message = 'At least one of the pre-conditions you specified did not hold';
      this.error(res, 412, 'PreconditionFailed', message);
    }
    return failed;
  }

  private store(bucket: Bucket, key: string, object: StoredObject) {
    if (!bucket.uploads.has(key) && !this.object(bucket, key)) {
      bucket.keys.splice(lowerBound(bucket.keys, key), 0, key);
    }
    bucket.uploads.set(key, object);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stub');
    const query = url.searchParams;
    const [, bucketName = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    const method = req.method ?? 'GET';
    if (!bucketName) {
      this.count('ListBuckets');
      const names = [...this.buckets.keys()]
        .map(
          (n) =>
            `<Bucket><Name>${n}</Name><CreationDate>${LAST_MODIFIED.toISOString()}</CreationDate></Bucket>`,
        )
        .join('');
      return this.xml(
        res,
        `<ListAllMyBucketsResult ${NS}><Buckets>${names}</Buckets></ListAllMyBucketsResult>`,
      );
    }
    const bucket = this.buckets.get(decodeURIComponent(bucketName));
    if (!bucket) {
      if (method === 'PUT' && !key) {
        this.count('CreateBucket');
        this.createBucket(decodeURIComponent(bucketName));
        res.writeHead(200, { 'content-length': '0' });
        return void res.end();
      }
      req.resume();
      return this.error(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
    }
    if (!key) return this.bucketRequest(method, query, bucket, bucketName, res);
    return this.objectRequest(req, res, method, query, bucket, key);
  }

  private bucketRequest(
    method: string,
    query: URLSearchParams,
    bucket: Bucket,
    name: string,
    res: ServerResponse,
  ) {
    if (method === 'HEAD' || method === 'PUT') {
      this.count(method === 'HEAD' ? 'HeadBucket' : 'CreateBucket');
      res.writeHead(200, { 'content-length': '0', 'x-amz-bucket-region': 'us-east-1' });
      return void res.end();
    }
    if (query.has('location')) {
      this.count('GetBucketLocation');
      return this.xml(res, `<LocationConstraint ${NS}></LocationConstraint>`);
    }
    if (query.has('uploads')) {
      this.count('ListMultipartUploads');
      const prefix = query.get('prefix') ?? '';
      const uploads = [...this.multipart.entries()]
        .filter(([, upload]) => upload.bucket === bucket && upload.key.startsWith(prefix))
        .map(
          ([id, upload]) =>
            `<Upload><Key>${escapeXml(upload.key)}</Key><UploadId>${id}</UploadId><Initiated>${LAST_MODIFIED.toISOString()}</Initiated></Upload>`,
        );
      return this.xml(
        res,
        `<ListMultipartUploadsResult ${NS}><Bucket>${escapeXml(name)}</Bucket><Prefix>${escapeXml(prefix)}</Prefix><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
      );
    }
    if (query.has('versioning')) {
      this.count('GetBucketVersioning');
      return this.xml(res, `<VersioningConfiguration ${NS}/>`);
    }
    const v2 = query.get('list-type') === '2';
    this.count(v2 ? 'ListObjectsV2' : 'ListObjects');
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.min(Number(query.get('max-keys') ?? 1000) || 1000, 1000);
    const encode = query.get('encoding-type') === 'url';
    const token = query.get('continuation-token');
    const after = v2
      ? token
        ? Buffer.from(token, 'base64url').toString()
        : (query.get('start-after') ?? '')
      : (query.get('marker') ?? '');
    const show = (k: string) => escapeXml(encode ? encodeURIComponent(k).replace(/%2F/g, '/') : k);
    const contents: string[] = [];
    const prefixes: string[] = [];
    // biome-ignore lint/complexity/useMathMinMax: keys are strings
    let at = lowerBound(bucket.keys, after > prefix ? after : prefix);
    if (bucket.keys[at] === after) at++;
    let last = '';
    let truncated = false;
    while (at < bucket.keys.length) {
      const k = bucket.keys[at] as string;
      if (!k.startsWith(prefix)) break;
      if (contents.length + prefixes.length === maxKeys) {
        truncated = true;
        break;
      }
      const cut = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) {
        const common = k.slice(0, cut + delimiter.length);
        prefixes.push(`<CommonPrefixes><Prefix>${show(common)}</Prefix></CommonPrefixes>`);
        last = common;
        // Skip every key under this common prefix.
        at = lowerBound(bucket.keys, `${common}\u{10ffff}`);
        continue;
      }
      const object = this.object(bucket, k) as StoredObject;
      contents.push(
        `<Contents><Key>${show(k)}</Key><LastModified>${LAST_MODIFIED.toISOString()}</LastModified><ETag>&quot;${object.etag}&quot;</ETag><Size>${object.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      );
      last = k;
      at++;
    }
    const head = [
      `<Name>${escapeXml(name)}</Name>`,
      `<Prefix>${show(prefix)}</Prefix>`,
      delimiter ? `<Delimiter>${show(delimiter)}</Delimiter>` : '',
      `<MaxKeys>${maxKeys}</MaxKeys>`,
      encode ? '<EncodingType>url</EncodingType>' : '',
      `<IsTruncated>${truncated}</IsTruncated>`,
      v2
        ? `<KeyCount>${contents.length + prefixes.length}</KeyCount>`
        : `<Marker>${show(after)}</Marker>`,
      v2 && token ? `<ContinuationToken>${escapeXml(token)}</ContinuationToken>` : '',
      truncated && v2
        ? `<NextContinuationToken>${Buffer.from(last).toString('base64url')}</NextContinuationToken>`
        : '',
      truncated && !v2 ? `<NextMarker>${show(last)}</NextMarker>` : '',
    ].join('');
    return this.xml(
      res,
      `<ListBucketResult ${NS}>${head}${contents.join('')}${prefixes.join('')}</ListBucketResult>`,
    );
  }

  private async objectRequest(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    query: URLSearchParams,
    bucket: Bucket,
    key: string,
  ): Promise<void> {
    const uploadId = query.get('uploadId');
    if (method === 'POST' && query.has('uploads')) {
      this.count('CreateMultipartUpload');
      req.resume();
      const id = String(this.nextUpload++);
      this.multipart.set(id, { bucket, key, parts: new Map() });
      return this.xml(
        res,
        `<InitiateMultipartUploadResult ${NS}><Key>${escapeXml(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    if (uploadId !== null) {
      const upload = this.multipart.get(uploadId);
      if (!upload) {
        req.resume();
        return this.error(res, 404, 'NoSuchUpload', 'The specified upload does not exist');
      }
      if (method === 'PUT') {
        this.count('UploadPart');
        const part = await this.body(req, false);
        upload.parts.set(Number(query.get('partNumber')), part);
        res.writeHead(200, { etag: `"${part.etag}"`, 'content-length': '0' });
        return void res.end();
      }
      if (method === 'DELETE') {
        this.count('AbortMultipartUpload');
        this.multipart.delete(uploadId);
        res.writeHead(204);
        return void res.end();
      }
      this.count('CompleteMultipartUpload');
      req.resume();
      if (this.refused(req, res, bucket, key)) return;
      const parts = [...upload.parts.entries()].sort(([a], [b]) => a - b).map(([, p]) => p);
      const etag = `${md5(Buffer.concat(parts.map((p) => Buffer.from(p.etag, 'hex'))))}-${parts.length}`;
      this.store(bucket, key, { size: parts.reduce((n, p) => n + p.size, 0), etag });
      this.multipart.delete(uploadId);
      return this.xml(
        res,
        `<CompleteMultipartUploadResult ${NS}><Key>${escapeXml(key)}</Key><ETag>&quot;${etag}&quot;</ETag></CompleteMultipartUploadResult>`,
      );
    }
    if (method === 'PUT') {
      this.count('PutObject');
      const object = await this.body(req, true);
      if (this.refused(req, res, bucket, key)) return;
      this.store(bucket, key, object);
      res.writeHead(200, { etag: `"${object.etag}"`, 'content-length': '0' });
      return void res.end();
    }
    if (method === 'DELETE') {
      this.count('DeleteObject');
      if (bucket.uploads.delete(key)) bucket.keys.splice(lowerBound(bucket.keys, key), 1);
      res.writeHead(204);
      return void res.end();
    }
    this.count(method === 'HEAD' ? 'HeadObject' : 'GetObject');
    const object = this.object(bucket, key);
    if (!object) {
      if (method === 'HEAD') {
        res.writeHead(404);
        return void res.end();
      }
      return this.error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
    }
    const headers: Record<string, string> = {
      etag: `"${object.etag}"`,
      'last-modified': LAST_MODIFIED.toUTCString(),
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
    };
    let start = 0;
    let end = object.size - 1;
    const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
    if (range) {
      if (range[1] === '') start = Math.max(0, object.size - Number(range[2]));
      else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
      if (start >= object.size || start > end) {
        return this.error(res, 416, 'InvalidRange', 'The requested range is not satisfiable');
      }
      headers['content-range'] = `bytes ${start}-${end}/${object.size}`;
    }
    headers['content-length'] = String(end - start + 1);
    res.writeHead(range ? 206 : 200, headers);
    if (method === 'HEAD') return void res.end();
    if (!object.body) return void res.end(Buffer.alloc(end - start + 1));
    res.end(object.body.subarray(start, end + 1));
  }
}

/** Starts a stub on loopback (on `port` or a random one), in this process. */
export async function startS3Stub(
  buckets: GeneratedBucket[] = [],
  port = 0,
): Promise<{ stub: S3Stub; endpoint: string; stop(): Promise<void> }> {
  const stub = new S3Stub(buckets);
  const endpoint = await stub.listen(port);
  return { stub, endpoint, stop: () => stub.close() };
}
