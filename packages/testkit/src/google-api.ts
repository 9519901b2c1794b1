// Wire pieces the Google API servers of the test kit share (Cloud Storage JSON API, Drive v3):
// `fields` partial responses, multipart/related uploads and resumable
// upload sessions, as Google's public references describe them.
import type { ServerResponse } from 'node:http';

/** A `fields` selector such as `nextPageToken,files(id,name)` as a tree. */
export type FieldTree = Map<string, FieldTree | true>;

/** Parses a `fields` selector; a malformed one is the error `bad` makes. */
export function parseFields(spec: string, bad: () => Error): FieldTree {
  let at = 0;
  const list = (): FieldTree => {
    const tree: FieldTree = new Map();
    for (;;) {
      let name = '';
      while (at < spec.length && !',()'.includes(spec[at] as string)) name += spec[at++];
      const path = name.trim().split('/');
      let node = tree;
      for (const [i, part] of path.entries()) {
        if (i < path.length - 1) {
          let next = node.get(part);
          if (!(next instanceof Map)) {
            next = new Map();
            node.set(part, next);
          }
          node = next;
        } else if (spec[at] === '(') {
          at++;
          node.set(part, list());
          if (spec[at++] !== ')') throw bad();
        } else if (part) node.set(part, true);
      }
      if (spec[at] !== ',') return tree;
      at++;
    }
  };
  const tree = list();
  if (at !== spec.length) throw bad();
  return tree;
}

/** The parts of a response a `fields` selector asks for. */
export function selectFields(value: unknown, tree: FieldTree): unknown {
  if (Array.isArray(value)) return value.map((item) => selectFields(item, tree));
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  // `*` selects every field; a named sub-selection still narrows its own field.
  const keys = tree.has('*') ? Object.keys(record) : [...tree.keys()];
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    const sub = tree.get(key) ?? true;
    out[key] = sub === true ? item : selectFields(item, sub);
  }
  return out;
}

/**
 * The boundary of a multipart Content-Type. Google's clients quote it in double quotes (Node
 * clients), single quotes (gcloud and gsutil, through Python's email package) or not at all.
 */
export function boundaryOf(contentType: string | undefined): string | undefined {
  const match = /boundary=(?:"([^"]+)"|'([^']+)'|([^\s;]+))/i.exec(contentType ?? '');
  return match?.[1] ?? match?.[2] ?? match?.[3];
}

/**
 * Splits a multipart/related body into its parts (content type, then bytes). Lines may end
 * in CRLF, as RFC 2046 has it, or in LF alone, as gcloud and gsutil send them; Google's
 * upload servers take both.
 */
export function multipartParts(
  body: Buffer,
  boundary: string,
): Array<{ type: string; data: Buffer }> {
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Array<{ type: string; data: Buffer }> = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start, next);
    const crlf = part.indexOf('\r\n\r\n');
    const lf = part.indexOf('\n\n');
    const [headerEnd, gap] = lf >= 0 && (crlf < 0 || lf < crlf) ? [lf, 2] : [crlf, 4];
    if (headerEnd < 0) break;
    const headers = part.subarray(0, headerEnd).toString('latin1');
    let data = part.subarray(headerEnd + gap);
    // The line break before the next delimiter belongs to the delimiter.
    if (data.subarray(-2).toString() === '\r\n') data = data.subarray(0, -2);
    else if (data.subarray(-1).toString() === '\n') data = data.subarray(0, -1);
    const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim() ?? '';
    parts.push({ type, data });
    at = next;
  }
  return parts;
}

const CHUNK_MULTIPLE = 256 * 1024;

/** The bytes a resumable upload session has received so far. */
export interface ResumableBytes {
  chunks: Buffer[];
  received: number;
}

/**
 * Takes one PUT to a resumable upload session: a chunk (`Content-Range: bytes a-b/total` or
 * `a-b/*`; chunks but the last are multiples of 256 KiB) or a status query (`bytes *\/total`,
 * `bytes *\/*`, or no range and no body). Returns the total size once known; a bad range or
 * chunk is the 400 that `fail` makes.
 * https://developers.google.com/drive/api/guides/manage-uploads#resumable
 * https://cloud.google.com/storage/docs/performing-resumable-uploads
 */
export function takeChunk(
  upload: ResumableBytes,
  range: string,
  body: Buffer,
  fail: (message: string) => Error,
): number | undefined {
  const status = /^bytes \*\/(\d+|\*)$/.exec(range);
  const chunk = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(range);
  let total: number | undefined;
  if (status) {
    total = status[1] === '*' ? undefined : Number(status[1]);
  } else if (chunk) {
    const start = Number(chunk[1]);
    const end = Number(chunk[2]);
    total = chunk[3] === '*' ? undefined : Number(chunk[3]);
    if (end - start + 1 !== body.length) {
      throw fail(
        `Invalid request. The Content-Range header says ${end - start + 1} bytes, the body has ${body.length}.`,
      );
    }
    if (start > upload.received) {
      throw fail(
        `Invalid request. The upload offset is ${start}, but only ${upload.received} bytes were persisted.`,
      );
    }
    const last = total !== undefined && end + 1 === total;
    if (!last && body.length % CHUNK_MULTIPLE !== 0) {
      throw fail(
        `Invalid request. The number of bytes uploaded is required to be equal or greater than 262144, except for the final request (it's recommended to be the exact multiple of 262144). The received request contained ${body.length} bytes, which does not meet this requirement.`,
      );
    }
    // Bytes sent again after a lost answer are skipped.
    const fresh = body.subarray(upload.received - start);
    if (fresh.length) upload.chunks.push(Buffer.from(fresh));
    upload.received += fresh.length;
  } else if (range !== '' || body.length !== 0) {
    throw fail(`Invalid Content-Range: ${range}`);
  }
  return total;
}

/** 308 Resume Incomplete, with the bytes held so far (no Range before the first byte). */
export function resumeIncomplete(res: ServerResponse, received: number): void {
  const headers: Record<string, string> = { 'Content-Length': '0' };
  if (received > 0) headers.Range = `bytes=0-${received - 1}`;
  res.writeHead(308, headers).end();
}
