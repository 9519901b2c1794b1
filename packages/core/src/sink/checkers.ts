// Reads a sink's input as blocks of whole lines and checks them in worker threads, in order.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SluiceError } from '../errors.js';
import { type BlockResult, blockChecker, type CheckOptions } from './check.js';
import type { CheckRequest, CheckResponse } from './check-worker.js';

/** Bytes of input checked at once: large enough to pay for the trip to a worker. */
export const BLOCK_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Worker threads that check lines (default: one fewer than the CPUs, at most 4, at least
 * 1; SLUICE_CHECK_THREADS sets it; 0 reads and checks line by line in this thread).
 */
export function checkThreads(env: NodeJS.ProcessEnv = process.env): number {
  const given = Number(env.SLUICE_CHECK_THREADS);
  if (env.SLUICE_CHECK_THREADS !== undefined && Number.isInteger(given) && given >= 0) {
    return Math.min(given, 16);
  }
  return Math.min(4, Math.max(1, availableParallelism() - 1));
}

// The worker's own file, next to this module's once built (a bundled CLI ships one next to
// itself); from the sources (tests), there is none and blocks are checked in this thread.
const WORKER_FILE = new URL('./check-worker.js', import.meta.url);

/** Checks blocks in worker threads (or in this thread), one run's options. */
export class BlockCheckers {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (result: BlockResult) => void; reject: (error: unknown) => void }
  >();
  private readonly inline: ((bytes: Buffer, firstLine: number) => BlockResult) | undefined;
  private next = 0;
  private failed: unknown;

  constructor(options: CheckOptions, threads = checkThreads()) {
    const path = WORKER_FILE.protocol === 'file:' ? fileURLToPath(WORKER_FILE) : '';
    if (!existsSync(path)) {
      this.inline = blockChecker(options);
      return;
    }
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(path, { workerData: options });
      worker.on('message', (response: CheckResponse) => this.answer(response));
      worker.on('error', (error) => this.fail(error));
      worker.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`a line-checking thread exited with code ${code}`));
      });
      this.workers.push(worker);
    }
  }

  /** How many blocks may be under way at once before the reader waits. */
  get depth(): number {
    return Math.max(2, this.workers.length * 2);
  }

  /** Checks a block; a worker reads `bytes` where they are when they are shared (see BlockReader), else a copy. */
  check(bytes: Buffer, firstLine: number): Promise<BlockResult> {
    if (this.inline) {
      try {
        return Promise.resolve(this.inline(bytes, firstLine));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const id = this.next++;
    const worker = this.workers[id % this.workers.length] as Worker;
    const shared = bytes.buffer instanceof SharedArrayBuffer;
    const view = shared ? bytes : new Uint8Array(bytes);
    const result = new Promise<BlockResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const request: CheckRequest = { id, bytes: view, firstLine };
      worker.postMessage(request, shared ? [] : [view.buffer as ArrayBuffer]);
    });
    // A run that stops early (a bad line) leaves blocks read ahead unchecked: their checks
    // then fail with close(), and nobody waits for them.
    result.catch(() => {});
    return result;
  }

  /** Stops the threads (every run does, however it ends). */
  async close(): Promise<void> {
    this.failed ??= new SluiceError('the line checks were stopped', { code: 'INTERNAL' });
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private answer(response: CheckResponse): void {
    const waiting = this.pending.get(response.id);
    if (!waiting) return;
    this.pending.delete(response.id);
    if ('error' in response) {
      waiting.reject(
        new SluiceError(`checking input lines failed: ${response.error}`, { code: 'INTERNAL' }),
      );
    } else waiting.resolve(response.result);
  }

  private fail(error: unknown): void {
    this.failed ??= new SluiceError(`checking input lines failed: ${(error as Error).message}`, {
      code: 'INTERNAL',
      cause: error,
    });
    for (const { reject } of this.pending.values()) reject(this.failed);
    this.pending.clear();
  }
}

/** A block of input on its way: its bytes, first line and check. */
export interface Block {
  bytes: Buffer;
  firstLine: number;
  result: Promise<BlockResult>;
}

function countLines(bytes: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

/**
 * Cuts input into blocks of whole lines of about BLOCK_BYTES and starts their checks, up to
 * `checkers.depth` ahead of the reader. A line too long for a block (past `maxLineBytes`
 * without an end) stops it: `next()` then answers `long`, and `rest()` hands back the input
 * from there, for a reader of long lines.
 */
export class BlockReader {
  private readonly queue: Block[] = [];
  /** Bytes read and not yet in a block: the start of `buffer`, shared with the checking threads. */
  private buffer = sharedBuffer(BLOCK_BYTES + BLOCK_BYTES / 4);
  private used = 0;
  private firstLine = 1;
  private done = false;
  private readonly iterator: AsyncIterator<Uint8Array | string>;

  constructor(
    input: AsyncIterable<Uint8Array | string>,
    private readonly checkers: BlockCheckers,
    private readonly maxLineBytes: number,
  ) {
    // An array of chunks does as well as a stream, as it does for `for await`.
    this.iterator =
      Symbol.asyncIterator in input
        ? input[Symbol.asyncIterator]()
        : (async function* () {
            yield* input as Iterable<Uint8Array | string>;
          })();
  }

  /** The next block, `long` (with the line it starts at) for a line too long, or undefined at the end. */
  async next(): Promise<Block | { long: number } | undefined> {
    while (!this.done && this.queue.length < this.checkers.depth) {
      const step = await this.iterator.next();
      if (step.done) {
        this.done = true;
        if (this.used > 0) this.start(this.used);
        break;
      }
      const value = step.value;
      const chunk =
        typeof value === 'string'
          ? Buffer.from(value)
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      // Copied once, into the block: a producer may reuse its buffer, and blocks outlive it.
      if (this.used + chunk.length > this.buffer.length) {
        const bigger = sharedBuffer(Math.max(2 * this.buffer.length, this.used + chunk.length));
        this.buffer.copy(bigger, 0, 0, this.used);
        this.buffer = bigger;
      }
      chunk.copy(this.buffer, this.used);
      this.used += chunk.length;
      if (this.used < BLOCK_BYTES) continue;
      const last = chunk.lastIndexOf(NEWLINE);
      if (last === -1) {
        // No line ends yet: past the limit, the long line is read another way.
        if (this.used > this.maxLineBytes + 1) {
          if (this.queue.length === 0) return { long: this.firstLine };
          break;
        }
        continue;
      }
      this.start(this.used - chunk.length + last + 1);
    }
    const block = this.queue.shift();
    if (block) return block;
    return this.done ? undefined : { long: this.firstLine };
  }

  /** The input from `block` on (or from what is held, when a long line was met), unchecked. */
  async *rest(block?: Block): AsyncGenerator<Uint8Array> {
    if (block) yield block.bytes;
    while (this.queue.length > 0) yield (this.queue.shift() as Block).bytes;
    if (this.used > 0) yield this.buffer.subarray(0, this.used);
    this.used = 0;
    for (;;) {
      const step = await this.iterator.next();
      if (step.done) return;
      yield typeof step.value === 'string' ? Buffer.from(step.value) : step.value;
    }
  }

  /** Makes the first `cut` bytes a block and starts its check; the rest starts the next one. */
  private start(cut: number): void {
    const bytes = this.buffer.subarray(0, cut);
    this.queue.push({
      bytes,
      firstLine: this.firstLine,
      result: this.checkers.check(bytes, this.firstLine),
    });
    this.firstLine += countLines(bytes);
    const next = sharedBuffer(Math.max(BLOCK_BYTES + BLOCK_BYTES / 4, this.used - cut));
    this.buffer.copy(next, 0, cut, this.used);
    this.buffer = next;
    this.used -= cut;
  }
}

/** A buffer the checking threads read without a copy. */
function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}
