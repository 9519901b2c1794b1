import { type PyDumpWriter, releasePyDumpWriter, takePyDumpWriter } from './python-json.js';
import type { Task } from './task.js';

/** Fields whose values identify a task's input, in the order Prodigy concatenates them. */
export const INPUT_KEYS: readonly string[] = Object.freeze(['text', 'image', 'html', 'input']);

/** Fields that, with the input hash, identify the question asked about the input. */
export const TASK_KEYS: readonly string[] = Object.freeze(['spans', 'label', 'options', 'arcs']);

/** Keys dropped at every depth before hashing, so scores, provenance and answers do not count. */
export const IGNORE_KEYS: readonly string[] = Object.freeze([
  'score',
  'rank',
  'model',
  'source',
  'pattern',
  'priority',
  'path',
  '_view_id',
  '_session_id',
  '_annotator_id',
  'answer',
]);

/** Which fields the hashes are computed over; defaults are Prodigy's. */
export interface HashKeyOptions {
  inputKeys?: readonly string[];
  taskKeys?: readonly string[];
  ignore?: readonly string[];
}

/** Options of {@link setHashes}. */
export interface SetHashesOptions extends HashKeyOptions {
  /** Recompute hashes the task already holds (Prodigy's `rehash=True`). Default false. */
  overwrite?: boolean;
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(4096);

/** `s` as UTF-8 in a reused buffer (valid until the next call), without allocating per call. */
function utf8(s: string): Uint8Array {
  // Three bytes per UTF-16 unit at most.
  if (s.length * 3 > scratch.length) scratch = new Uint8Array(s.length * 3);
  const { written } = encoder.encodeInto(s, scratch);
  return scratch.subarray(0, written);
}

/** MurmurHash3 x86 32-bit with seed 0 over the UTF-8 bytes of `s`, as a signed int32. */
export function murmurhash3_32(s: string): number {
  const bytes = utf8(s);
  return murmurBytes(bytes, bytes.length);
}

/** MurmurHash3 x86 32-bit with seed 0 over the first `length` bytes, as a signed int32. */
function murmurBytes(bytes: Uint8Array, length: number): number {
  // Austin Appleby's public-domain algorithm.
  const tail = length & ~3;
  let h = 0;
  for (let i = 0; i < tail; i += 4) {
    let k =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = length & 3;
  if (rest > 0) {
    let k = bytes[tail] as number;
    if (rest > 1) k |= (bytes[tail + 1] as number) << 8;
    if (rest > 2) k |= (bytes[tail + 2] as number) << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The hash of what `writer` holds. */
function digest(writer: PyDumpWriter): number {
  return murmurBytes(writer.bytes, writer.length);
}

const ignoreSets = new WeakMap<readonly string[], ReadonlySet<string>>();
const DEFAULT_IGNORE: ReadonlySet<string> = new Set(IGNORE_KEYS);

function ignoreSet(keys: readonly string[] | undefined): ReadonlySet<string> {
  if (keys === undefined || keys === IGNORE_KEYS) return DEFAULT_IGNORE;
  let set = ignoreSets.get(keys);
  if (!set) {
    set = new Set(keys);
    ignoreSets.set(keys, set);
  }
  return set;
}

// Ignored keys are dropped inside lists as well as objects: the golden entity-linking tasks only
// hash right when `score`, `rank` and `source` are dropped from the span objects inside `spans`.
// Writes `key=` and the dump of each of `keys` the task holds; false when it holds none.
function keyedParts(
  writer: PyDumpWriter,
  task: Task,
  keys: readonly string[],
  ignore: ReadonlySet<string>,
): boolean {
  let any = false;
  for (const key of keys) {
    const value = task[key];
    if (value === undefined) continue;
    writer.text(key);
    writer.text('=');
    if (!writer.value(value, ignore)) {
      throw new TypeError(`cannot serialize a value of type ${typeof value}`);
    }
    any = true;
  }
  return any;
}

const NO_HASHES = { _input_hash: undefined, _task_hash: undefined };

function computeInputHash(task: Task, options: HashKeyOptions): number {
  const ignore = ignoreSet(options.ignore);
  const writer = takePyDumpWriter();
  try {
    if (!keyedParts(writer, task, options.inputKeys ?? INPUT_KEYS, ignore)) {
      // No input key: the whole stripped task stands in. Hashes it may already hold are left
      // out so that rehashing is stable; Prodigy hashes a fresh task, which holds none.
      writer.replaced(task, NO_HASHES, ignore);
    }
    return digest(writer);
  } finally {
    releasePyDumpWriter(writer);
  }
}

function computeTaskHash(task: Task, inputHashValue: number, options: HashKeyOptions): number {
  const ignore = ignoreSet(options.ignore);
  const writer = takePyDumpWriter();
  try {
    writer.text(String(inputHashValue));
    const prefixed = writer.length;
    if (!keyedParts(writer, task, options.taskKeys ?? TASK_KEYS, ignore)) {
      // No task key: Prodigy dumps the whole task, which by then already holds its
      // `_input_hash` (the golden NER files only match with it included), after the prefix.
      writer.length = prefixed;
      writer.replaced(task, { _input_hash: inputHashValue, _task_hash: undefined }, ignore);
    }
    return digest(writer);
  } finally {
    releasePyDumpWriter(writer);
  }
}

/** Prodigy's `_input_hash` of a task, computed from its fields (a stored hash is ignored). */
export function inputHash(task: Task, options: HashKeyOptions = {}): number {
  return computeInputHash(task, options);
}

/** Prodigy's `_task_hash` of a task, computed from its fields (stored hashes are ignored). */
export function taskHash(task: Task, options: HashKeyOptions = {}): number {
  return computeTaskHash(task, computeInputHash(task, options), options);
}

/**
 * Sets `_input_hash` and `_task_hash` on the task itself and returns it, like Prodigy's
 * `set_hashes`. Without `overwrite`, hashes the task already holds are kept.
 */
export function setHashes<T extends object>(
  task: T,
  options: SetHashesOptions = {},
): T & { _input_hash: number; _task_hash: number } {
  const t = task as Task;
  const overwrite = options.overwrite ?? false;
  const keepInput = !overwrite && t._input_hash !== undefined;
  const keepTask = !overwrite && t._task_hash !== undefined;
  if (!keepInput) t._input_hash = computeInputHash(t, options);
  // The task hash is prefixed by whatever input hash the task ends up with, kept or new.
  if (!keepTask) t._task_hash = computeTaskHash(t, t._input_hash as number, options);
  return task as T & { _input_hash: number; _task_hash: number };
}
