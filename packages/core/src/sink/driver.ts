// The small surface a connector implements to be a sink. The commit protocol that uses it
// (commit.ts) is core's, once, for every store.
import { SluiceError } from '../errors.js';

/** A staged file, complete on local disk, ready to upload. */
export interface StagedPart {
  /** Local file holding the exact bytes to store. */
  path: string;
  bytes: number;
  /** Hex sha256 of the bytes; drivers may send it as an integrity check. */
  sha256: string;
  contentType: string;
  /** Object metadata for stores that keep it (`sha256`, and `dataset` when known). */
  metadata?: Record<string, string>;
}

/** A small object read back, with the store's version of it for a conditional replace. */
export interface StoredObject {
  body: Buffer;
  /** What `commit` compares against: an ETag, a generation, a revision, a checksum. */
  version: string;
}

/**
 * How far a driver's `commit` can be trusted. `atomic`: the store applies the precondition
 * itself (S3 conditional writes, GCS generations, a local lock), so of two runs committing at
 * once exactly one succeeds. `checked`: the driver reads the version and then writes, so two
 * runs committing in the same instant may both succeed (Drive, File 360); core then never
 * shares a file between two exports, so each manifest still matches its own files.
 */
export type CommitGuarantee = 'atomic' | 'checked';

/**
 * What a connector implements to be a sink. Keys are relative to the root, `/`-separated and
 * checked by core. Core never writes a key twice: every file of a run carries the run's tag,
 * and only `commit` replaces an object (the manifest).
 */
export interface SinkDriver {
  readonly connector: string;
  /** Canonical URI of the export root that keys are relative to. */
  readonly root: string;
  /** What `commit` guarantees on this store. */
  readonly commits: CommitGuarantee;
  /** Optional: proves the root can be written before stdin is read (a local folder's permissions). */
  check?(): Promise<void>;
  /** Reads a small object under the root with its version; undefined when it does not exist. */
  read(key: string): Promise<StoredObject | undefined>;
  /** Writes a new file so that readers see the whole of it or nothing; `signal` may cut a long upload short. */
  write(key: string, part: StagedPart, signal?: AbortSignal): Promise<void>;
  /**
   * Writes `key` only if its version is still `expected` (undefined: only if it does not
   * exist), else rejects with a SluiceError of code CONFLICT and changes nothing.
   */
  commit(key: string, part: StagedPart, expected: string | undefined): Promise<void>;
  /** Removes a key; a key that is already gone is no error. */
  delete(key: string): Promise<void>;
  /** Keys under the root that start with `prefix` (`''` for all), at any depth, the store's temporary files included. */
  list(prefix: string): AsyncIterable<string>;
  /**
   * Optional: removes what interrupted uploads leave outside the listed keys (S3's multipart
   * uploads) for keys where `owned` holds; resolves to the keys it cleaned up.
   */
  sweep?(owned: (key: string) => boolean): Promise<string[]>;
  close?(): Promise<void>;
  /**
   * Optional: starts writing a large part while it is still being staged, so that staging
   * and upload overlap (S3 feeds a multipart upload). Core uses it only for a root with no
   * export yet, without {hash}, {answer} or {label} in the name, once a part has grown past
   * `streamFrom` bytes. Its metadata holds what is known at the start (the dataset).
   */
  stream?(key: string, part: StreamedPart): PartStream;
  /** Bytes a part must reach before it is streamed (default 8 MiB). */
  readonly streamFrom?: number;
}

/** What a driver knows of a part when its stream starts. */
export interface StreamedPart {
  contentType: string;
  metadata: Record<string, string>;
}

/** A part being written as it is staged. */
export interface PartStream {
  /** Takes the part's bytes in order; ended by core when the part is complete. */
  readonly body: NodeJS.WritableStream;
  /** Settles once the object is written, or rejects with the upload's error. */
  readonly done: Promise<void>;
  /** Stops the upload and discards what it sent; resolves once nothing will appear. */
  abort(): Promise<void>;
}

/**
 * A part stream over an upload that takes `body`: `done` settles with the upload, its errors
 * made a SluiceError by `toError`; `abort` fails the body, which the store's client turns into
 * a cancelled upload (nothing appears), and waits for that.
 */
export function uploadStream(
  body: NodeJS.WritableStream & { destroy(error?: Error): unknown },
  upload: Promise<unknown>,
  toError: (error: unknown) => Error,
): PartStream {
  const done = upload.then(
    () => undefined,
    (error: unknown) => {
      throw error instanceof SluiceError ? error : toError(error);
    },
  );
  done.catch(() => {});
  return {
    body,
    done,
    async abort() {
      body.destroy(new SluiceError('export abandoned', { code: 'INTERRUPTED' }));
      await done.catch(() => {});
    },
  };
}

/**
 * For sinks on stores with real folders (Drive, File 360): the id of the folder at a path below
 * `root`, found (or made, when `create` is set) one segment at a time by `step`, once per run.
 * A path looked up and missing, or whose lookup failed, is looked up again next time.
 */
export function folderPaths<Id>(
  root: Id,
  step: (parent: Id, name: string, create: boolean) => Promise<Id | undefined>,
): (segments: string[], create: boolean) => Promise<Id | undefined> {
  const known = new Map<string, Promise<Id | undefined>>();
  const folderAt = (segments: string[], create: boolean): Promise<Id | undefined> => {
    if (segments.length === 0) return Promise.resolve(root);
    const path = segments.join('/');
    const seen = known.get(path);
    if (seen) return seen;
    const pending = folderAt(segments.slice(0, -1), create).then((parent) =>
      parent === undefined ? undefined : step(parent, segments.at(-1) as string, create),
    );
    known.set(path, pending);
    pending.then(
      (id) => id === undefined && known.delete(path),
      () => known.delete(path),
    );
    return pending;
  };
  return folderAt;
}
