/**
 * Generated items for the test kit's servers: many objects (files, documents, pages) that share
 * one body, so a server holds 100,000 of them in a few megabytes and benchmarks can measure
 * clients against large stores (`testkit serve <store> --generate name:count:size:ext`).
 */

export interface GeneratedBucket {
  name: string;
  /** Number of objects: `{prefix}{index, zero-padded}.{ext}`. */
  keys: number;
  /** Size of every object's body in bytes. */
  size: number;
  /** Extension, which picks the body: `jsonl` (JSON lines of text tasks) or anything else (text). */
  ext: string;
  /** Key prefix (default `data/`). */
  prefix?: string;
}

/** A body of about `size` bytes: JSON lines of text tasks, or plain text lines. */
export function generatedBody(size: number, ext: string): Buffer {
  const lines: string[] = [];
  let bytes = 0;
  for (let i = 0; bytes < size; i++) {
    const text = `Customer ${i} reports the invoice was charged twice and asks for a refund.`;
    const line = ext === 'jsonl' ? `${JSON.stringify({ text, meta: { n: i } })}\n` : `${text}\n`;
    lines.push(line);
    bytes += Buffer.byteLength(line);
  }
  return Buffer.from(lines.join(''));
}

/** The keys and the shared body of a generated bucket, for the stub and for seeding real servers. */
export function generatedObjects(spec: GeneratedBucket): { keys: string[]; body: Buffer } {
  const prefix = spec.prefix ?? 'data/';
  const width = String(Math.max(spec.keys - 1, 0)).length;
  const keys = Array.from(
    { length: spec.keys },
    (_, i) => `${prefix}${String(i).padStart(width, '0')}.${spec.ext}`,
  );
  return { keys, body: generatedBody(spec.size, spec.ext) };
}

/** The first index of a sorted array whose key is not below `key`. */
export function lowerBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((keys[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Parses `name:keys:size:ext[:prefix]`, e.g. `small:10000:2048:jsonl`. */
export function parseGeneratedBucket(spec: string): GeneratedBucket {
  const [name, keys, size, ext, prefix] = spec.split(':');
  const bucket = {
    name: name ?? '',
    keys: Number(keys),
    size: Number(size),
    ext: ext ?? '',
    prefix,
  };
  if (
    !bucket.name ||
    !Number.isInteger(bucket.keys) ||
    !Number.isInteger(bucket.size) ||
    !bucket.ext
  ) {
    throw new Error(
      `--generate ${spec}: expected name:keys:size:ext[:prefix], e.g. small:10000:2048:jsonl`,
    );
  }
  return bucket;
}
