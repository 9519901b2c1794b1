// Staging: every line is checked and written to local files first, so nothing reaches the store
// before the whole input proved good, and each part's sha256 is known before it is uploaded.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { createGzip, type Gzip } from 'node:zlib';
import { SluiceError, usageError } from '../errors.js';
import type { PartStream, StagedPart } from './driver.js';
import { GUIDELINES_KEY } from './naming.js';
import { processAlive } from './owner.js';

export type SinkFormat = 'jsonl' | 'jsonl.gz' | 'json';
export const SINK_FORMATS: readonly SinkFormat[] = ['jsonl', 'jsonl.gz', 'json'];
export const CONTENT_TYPES: Record<SinkFormat, string> = {
  jsonl: 'application/x-ndjson',
  'jsonl.gz': 'application/gzip',
  json: 'application/json',
};
export const EXTENSIONS: Record<SinkFormat, string> = {
  jsonl: '.jsonl',
  'jsonl.gz': '.jsonl.gz',
  json: '.json',
};
const GUIDELINES_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.pdf': 'application/pdf',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
};

export function stagingError(error: unknown): SluiceError {
  const full = (error as NodeJS.ErrnoException).code === 'ENOSPC';
  return new SluiceError(
    `cannot stage the export locally${full ? ` in ${tmpdir()}: no space left on the device` : `: ${(error as Error).message}`}`,
    {
      code: 'IO',
      hint: 'free space or fix permissions of the temporary folder, or set TMPDIR to move it; nothing was written to the store',
      cause: error,
    },
  );
}

/** Staging folders are `sluice-sink-<pid>-XXXXXX`: the pid tells a later run whether its owner is gone. */
const STAGING_PREFIX = 'sluice-sink-';
/** Staging folders of releases before the pid was in the name are removed after this long. */
const LEGACY_STAGING_AGE_MS = 24 * 60 * 60 * 1000;

/** Makes this run's staging folder in TMPDIR. */
export async function createStaging(): Promise<string> {
  return mkdtemp(join(tmpdir(), `${STAGING_PREFIX}${process.pid}-`)).catch((error: unknown) => {
    throw stagingError(error);
  });
}

/**
 * Removes staging folders that runs killed before they could clean up left in TMPDIR: those
 * whose process is gone (a pid in use, perhaps by another program, keeps its folder).
 */
export async function sweepStaging(): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(tmpdir());
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const path = join(tmpdir(), name);
    const pid = /^sluice-sink-(\d+)-[^-]+$/.exec(name)?.[1];
    let stale: boolean;
    if (pid !== undefined) stale = !processAlive(Number(pid));
    else {
      const info = await stat(path).catch(() => undefined);
      stale = info !== undefined && Date.now() - info.mtimeMs > LEGACY_STAGING_AGE_MS;
    }
    if (stale) {
      await rm(path, { recursive: true, force: true }).catch(() => {});
      removed.push(path);
    }
  }
  return removed;
}

// Lines are gathered into slabs before they reach the file stream: one write per line would
// cost more than the copy, and with the stream's default 16 KiB buffer each few lines would
// wait for a round trip to the file system thread.
const SLAB_BYTES = 1024 * 1024;
const STAGING_BUFFER = 4 * 1024 * 1024;
const NEWLINE = Buffer.from('\n');
const JSON_SEPARATOR = Buffer.from(',\n');

/** One staged file being written, gzip-compressed or not, with backpressure, hashed as written. */
export class StagedFile {
  records = 0;
  private readonly file: WriteStream;
  private readonly head: WriteStream | Gzip;
  private readonly hash = createHash('sha256');
  /** Rejects on the first error of either stream, so no write waits forever on a dead stream. */
  private readonly failure: Promise<never>;
  private finished: Promise<StagedPart> | undefined;
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;
  /** Staged bytes kept for a stream that has not started yet, and their size. */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The part's stream once started. */
  streamed: PartStream | undefined;
  /** Whether that stream failed: the part is then uploaded from its staged file at publish. */
  private streamLost = false;

  constructor(
    readonly path: string,
    private readonly format: SinkFormat,
    /** Starts streaming the part once it holds `from` bytes. */
    private readonly early?: { from: number; open: () => PartStream },
  ) {
    this.file = createWriteStream(path, { highWaterMark: STAGING_BUFFER });
    if (format === 'jsonl.gz') {
      const gzip = createGzip();
      gzip.on('data', (chunk: Buffer) => {
        this.hash.update(chunk);
        this.feed(chunk);
      });
      gzip.pipe(this.file);
      this.head = gzip;
    } else {
      this.head = this.file;
    }
    this.failure = new Promise<never>((_, reject) => {
      const broken = (error: unknown) => reject(stagingError(error));
      this.file.once('error', broken);
      if (this.head !== this.file) this.head.once('error', broken);
    });
    this.failure.catch(() => {});
    if (format === 'json') this.append('[\n');
  }

  /** Adds one record; returns a promise only when the file or the stream asks to wait. */
  add(line: Buffer | string): Promise<void> | undefined {
    const json = this.format === 'json';
    if (json && this.records > 0) this.append(JSON_SEPARATOR);
    this.records++;
    this.append(line);
    if (!json) this.append(NEWLINE);
    return this.settle();
  }

  /**
   * Adds a JSONL record in pieces, for one too long to hold in memory (a rejected over-long
   * line); `last` ends the record. Waits as `add` does.
   */
  addPiece(piece: Buffer | string, last: boolean): Promise<void> | undefined {
    this.append(piece);
    if (last) {
      this.records++;
      this.append(NEWLINE);
    }
    return this.settle();
  }

  /**
   * Adds whole JSONL records as they came, `records` of them: bytes that end in LF, handed
   * over (the caller does not change them afterwards). Waits as `add` does.
   */
  addBlock(bytes: Buffer, records: number): Promise<void> | undefined {
    this.flush();
    this.records += records;
    return this.wait(this.write(bytes));
  }

  private settle(): Promise<void> | undefined {
    if (this.used < SLAB_BYTES / 2) return undefined;
    return this.wait(this.flush());
  }

  /** What a writer waits for: the file to drain (unless `ready`), and the part's stream. */
  private wait(ready: boolean): Promise<void> | undefined {
    const waits: Promise<unknown>[] = [];
    if (!ready) waits.push(once(this.head, 'drain'));
    const streamed = this.streamLost ? undefined : this.streamed;
    if ((streamed?.body as { writableNeedDrain?: boolean } | undefined)?.writableNeedDrain) {
      // Until it drains or fails: a failed stream no longer holds staging back.
      const drained = once(streamed?.body as NodeJS.EventEmitter, 'drain').catch(() => {});
      waits.push(Promise.race([drained, streamed?.done.catch(() => {})]));
    }
    return waits.length > 0
      ? Promise.race([Promise.all(waits), this.failure]).then(() => {})
      : undefined;
  }

  /** Passes staged bytes to the part's stream, starting it once the part is large enough. */
  private feed(chunk: Buffer): void {
    if (this.streamLost) return;
    if (this.streamed) {
      this.streamed.body.write(chunk);
      return;
    }
    if (!this.early) return;
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.early.from) return;
    const streamed = this.early.open();
    this.streamed = streamed;
    // An upload that fails is let go: staging goes on, and publishing uploads the staged file.
    streamed.done.catch(() => {
      this.streamLost = true;
      this.held = [];
    });
    for (const held of this.held) streamed.body.write(held);
    this.held = [];
  }

  private append(data: Buffer | string): void {
    // A UTF-16 unit never takes more than 3 UTF-8 bytes.
    const bound = typeof data === 'string' ? data.length * 3 : data.length;
    if (this.used + bound > this.slab.length) {
      this.flush();
      if (bound > this.slab.length) {
        this.write(Buffer.from(data)); // a copy: the caller may reuse its buffer
        return;
      }
    }
    this.used +=
      typeof data === 'string' ? this.slab.write(data, this.used) : data.copy(this.slab, this.used);
  }

  /** Hands the slab to the stream; false when the stream asks to wait. */
  private flush(): boolean {
    if (this.used === 0) return true;
    const chunk = this.slab.subarray(0, this.used);
    this.slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.used = 0;
    return this.write(chunk);
  }

  private write(chunk: Buffer): boolean {
    if (this.head === this.file) {
      this.hash.update(chunk);
      this.feed(chunk);
    }
    return this.head.write(chunk);
  }

  /** Closes the file (once). */
  finish(): Promise<StagedPart> {
    this.finished ??= (async () => {
      if (this.format === 'json') this.append(`${this.records > 0 ? '\n' : ''}]\n`);
      this.flush();
      const closed = once(this.file, 'close');
      this.head.end();
      await Promise.race([closed, this.failure]);
      this.held = [];
      if (!this.streamLost) this.streamed?.body.end();
      return {
        path: this.path,
        bytes: this.file.bytesWritten,
        sha256: this.hash.digest('hex'),
        // gzip is the type, not a Content-Encoding: HTTP clients would unpack the latter
        // silently and the bytes would no longer match the manifest's sha256.
        contentType: CONTENT_TYPES[this.format],
      };
    })();
    return this.finished;
  }
}

/** The name a guidelines file takes in an export: `guidelines` plus its extension, when plain. */
export function guidelinesName(file: string): string {
  const extension = extname(file).toLowerCase();
  return `${GUIDELINES_KEY}${/^\.[a-z0-9]{1,8}$/.test(extension) ? extension : ''}`;
}

/** Copies the guidelines file into staging: its name in the export, its own name, the staged copy. */
export async function stageGuidelines(
  path: string,
  staged: string,
): Promise<{ name: string; original: string; staged: StagedPart }> {
  let body: Buffer;
  try {
    body = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw usageError(
      `--guidelines ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a folder, not a file' : (error as Error).message}`,
      'give the guidelines as one file (HTML, PDF, Markdown), e.g. from `confluence-source guidelines`',
    );
  }
  await writeFile(staged, body).catch((error: unknown) => {
    throw stagingError(error);
  });
  const sha256 = createHash('sha256').update(body).digest('hex');
  return {
    name: guidelinesName(path),
    original: basename(path),
    staged: {
      path: staged,
      bytes: body.length,
      sha256,
      contentType: GUIDELINES_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
    },
  };
}
