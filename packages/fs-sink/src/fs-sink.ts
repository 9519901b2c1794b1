import { createHash, randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import {
  access,
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  assertSafeKey,
  createSink,
  fileUri,
  hostIdentity,
  processAlive,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  type StagedPart,
  toLocalPath,
  toSluiceError,
} from '@sluice/core';

/** Options of the local-folder sink: core sink options plus where to write. */
export interface FsSinkOptions extends SinkOptions {
  /** Export root: a path or `file://` URL; may use {dataset} {date} {timestamp} {answer} {label}. */
  url: string;
}

export const FS_CONNECTOR = 'fs';

/** The lock a commit holds at the root while it compares and replaces the manifest. */
const LOCK = '.sluice-lock';
/** A commit takes milliseconds: a lock older than this was left by a process that died. */
const LOCK_STALE_MS = 30_000;
/** How long a commit waits for another run's commit before giving up. */
const LOCK_WAIT_MS = 10_000;
const TEMP_SUFFIX = '.sluice-tmp';
/**
 * A temporary file: `.<name>.<host>-<pid>.sluice-tmp`, with a hash of the machine and the pid
 * of the process writing it, so that a later run can tell one whose writer is gone.
 */
const TEMP = /^\.(.+)\.([0-9a-f]{6})-(\d+)\.sluice-tmp$/;
/** Temporary files of releases before that (`.<pid>.<ms>.sluice-tmp`) go after a day. */
const LEGACY_TEMP = /^\.\d+\.(\d+)\.sluice-tmp$/;
const DAY_MS = 24 * 60 * 60 * 1000;

/** This process in temporary file names: a hash of the machine, and the pid. */
function writer(): string {
  const host = createHash('sha256').update(hostIdentity()).digest('hex').slice(0, 6);
  return `${host}-${process.pid}`;
}

const errno = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code;

/** A file system failure as one line naming the path, with a hint for the errors a user can fix. */
function fsError(error: unknown, path: string): SluiceError {
  if (error instanceof SluiceError) return error;
  const known: Record<string, [string, SluiceError['code'], string]> = {
    ENOSPC: [
      'no space left on the device',
      'IO',
      'free space there, or export elsewhere, and run again',
    ],
    EDQUOT: ['disk quota exceeded', 'IO', 'free space there, or export elsewhere, and run again'],
    EACCES: ['permission denied', 'AUTH', 'check the permissions of the export folder'],
    EPERM: ['operation not permitted', 'AUTH', 'check the permissions of the export folder'],
    EROFS: ['read-only file system', 'AUTH', 'export to a folder that can be written'],
  };
  const entry = known[errno(error) ?? ''];
  if (!entry) {
    const wrapped = toSluiceError(error, FS_CONNECTOR);
    return new SluiceError(`${path}: ${wrapped.message}`, {
      code: wrapped.code,
      connector: FS_CONNECTOR,
      cause: error,
      retryable: wrapped.retryable,
    });
  }
  const [what, code, hint] = entry;
  return new SluiceError(`${path}: ${what}`, { code, connector: FS_CONNECTOR, hint, cause: error });
}

function unsafe(path: string): SluiceError {
  return new SluiceError(`refusing ${path}: it is a symbolic link inside the export root`, {
    code: 'UNSAFE_KEY',
    connector: FS_CONNECTOR,
    hint: 'a sink never writes, reads or deletes through links in its root; replace the link with a folder, or export elsewhere',
  });
}

/** The path with every existing folder resolved (links above the root are the user's own). */
async function realRoot(path: string): Promise<string> {
  const rest: string[] = [];
  let at = path;
  for (;;) {
    try {
      return join(await realpath(at), ...rest.reverse());
    } catch (error) {
      const parent = dirname(at);
      // Missing, or under a file (check() says which): resolve what exists above it.
      if (!['ENOENT', 'ENOTDIR'].includes(errno(error) ?? '') || parent === at) {
        throw fsError(error, at);
      }
      rest.push(basename(at));
      at = parent;
    }
  }
}

async function fsync(path: string): Promise<void> {
  const handle = await open(path, 'r');
  await handle.sync().finally(() => handle.close());
}

/**
 * Builds the driver over an export root folder. Files are copied to a temporary name, flushed
 * and renamed, so a reader sees a file whole or not at all. The manifest is replaced under a
 * lock file (`.sluice-lock`, with its owner's host and pid) only if it is still the one the run
 * started from. No path inside the root is followed through a symbolic link.
 */
export function createFsSinkDriver(rootUrl: string): SinkDriver {
  const given = toLocalPath(rootUrl, 'sink');
  let resolved: Promise<string> | undefined;
  const rootPath = () => {
    resolved ??= realRoot(given);
    return resolved;
  };

  /** The folder holding `key`, each step checked for links; made when `create` is set. */
  const folderOf = async (key: string, create: boolean): Promise<string | undefined> => {
    const segments = assertSafeKey(key, FS_CONNECTOR).split('/');
    let folder = await rootPath();
    if (create)
      await mkdir(folder, { recursive: true }).catch((e) => Promise.reject(fsError(e, folder)));
    for (const segment of segments.slice(0, -1)) {
      folder = join(folder, segment);
      let info = await lstat(folder).catch((error: unknown) => {
        if (errno(error) === 'ENOENT') return undefined;
        throw fsError(error, folder);
      });
      if (!info) {
        if (!create) return undefined;
        await mkdir(folder).catch((error: unknown) => {
          if (errno(error) !== 'EEXIST') throw fsError(error, folder);
        });
        info = await lstat(folder);
      }
      if (info.isSymbolicLink()) throw unsafe(folder);
      if (!info.isDirectory()) {
        throw new SluiceError(`${folder} is a file where the export needs a folder`, {
          code: 'CONFLICT',
          connector: FS_CONNECTOR,
          hint: 'move that file away, or export elsewhere',
        });
      }
    }
    return folder;
  };

  const pathOf = async (key: string, create: boolean) => {
    const folder = await folderOf(key, create);
    return folder === undefined ? undefined : join(folder, key.slice(key.lastIndexOf('/') + 1));
  };

  /** Copies a staged file in under a temporary name, flushes it and renames it into place. */
  const place = async (path: string, part: StagedPart, durable: boolean) => {
    const temp = join(dirname(path), `.${basename(path)}.${writer()}${TEMP_SUFFIX}`);
    try {
      // EXCL: a link planted under the temporary name is never written through.
      await copyFile(part.path, temp, constants.COPYFILE_EXCL);
      // Flushed to disk before the rename, so after a power loss a file is whole or absent.
      await fsync(temp);
      await rename(temp, path);
      if (durable) await fsync(dirname(path));
    } catch (error) {
      await rm(temp, { force: true });
      throw fsError(error, path);
    }
  };

  const read = async (key: string) => {
    const path = await pathOf(key, false);
    if (!path) return undefined;
    let body: Buffer;
    try {
      body = await readFile(path, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      if (errno(error) === 'ELOOP') throw unsafe(path);
      throw fsError(error, path);
    }
    // The bytes themselves are the version: a commit compares them under the lock.
    return { body, version: createHash('sha256').update(body).digest('hex') };
  };

  /** Whether the lock file at `path` was left by a process that is gone (or long ago). */
  const staleLock = async (path: string): Promise<boolean> => {
    const held = await readFile(path, 'utf8').catch(() => undefined);
    const info = await lstat(path).catch(() => undefined);
    if (held === undefined || !info) return false;
    if (Date.now() - info.mtimeMs > LOCK_STALE_MS) return true;
    try {
      const { host, pid } = JSON.parse(held) as { host?: string; pid?: number };
      return host === hostIdentity() && typeof pid === 'number' && !processAlive(pid);
    } catch {
      return false; // not ours to read: only its age counts
    }
  };

  /** Takes the root's commit lock, breaking one whose owner is gone; resolves to its release. */
  const lock = async (): Promise<() => Promise<void>> => {
    const root = await rootPath();
    const path = join(root, LOCK);
    // Written whole under a temporary name, then linked in: the lock is never seen empty.
    const attempt = randomBytes(4).toString('hex'); // runs in one process each have their own
    const temp = join(root, `${LOCK}.${attempt}.${writer()}${TEMP_SUFFIX}`);
    const owner = JSON.stringify({ host: hostIdentity(), pid: process.pid, at: Date.now() });
    await writeFile(temp, owner).catch((error: unknown) => {
      throw fsError(error, temp);
    });
    const deadline = Date.now() + LOCK_WAIT_MS;
    try {
      for (;;) {
        try {
          await link(temp, path);
          return () => unlink(path).catch(() => {});
        } catch (error) {
          if (errno(error) !== 'EEXIST') throw fsError(error, path);
        }
        if (await staleLock(path)) {
          await unlink(path).catch(() => {});
          continue;
        }
        if (Date.now() > deadline) {
          throw new SluiceError(
            `${path}: another run has held the commit lock for ${LOCK_WAIT_MS / 1000} s`,
            {
              code: 'CONFLICT',
              connector: FS_CONNECTOR,
              hint: `another sink is committing to this folder; if none runs, remove ${path}`,
            },
          );
        }
        await sleep(20 + Math.random() * 30);
      }
    } finally {
      await unlink(temp).catch(() => {});
    }
  };

  /** Files under `folder` (at key `at`) whose keys start with `prefix`, never through a link. */
  async function* walk(folder: string, at: string, prefix: string): AsyncGenerator<string> {
    let entries: Dirent[];
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (error) {
      if (errno(error) === 'ENOENT' || errno(error) === 'ENOTDIR') return;
      throw fsError(error, folder);
    }
    for (const entry of entries) {
      const key = `${at}${entry.name}`;
      if (entry.isDirectory()) {
        const inner = `${key}/`;
        if (inner.startsWith(prefix) || prefix.startsWith(inner)) {
          yield* walk(join(folder, entry.name), inner, prefix);
        }
      } else if (entry.isFile() && key.startsWith(prefix)) yield key;
    }
  }

  return {
    connector: FS_CONNECTOR,
    root: fileUri(given),
    commits: 'atomic',
    async check() {
      const target = await rootPath();
      let at = target;
      let info = await stat(at).catch(() => undefined);
      while (!info && dirname(at) !== at) {
        at = dirname(at);
        info = await stat(at).catch(() => undefined);
      }
      if (info && !info.isDirectory()) {
        throw new SluiceError(
          at === target
            ? `${target} is a file, not a folder`
            : `cannot make ${target}: ${at} is a file`,
          { code: 'USAGE', connector: FS_CONNECTOR, hint: 'export into a folder' },
        );
      }
      await access(at, constants.W_OK | constants.X_OK).catch((error: unknown) => {
        throw new SluiceError(
          `cannot write to ${at}: ${errno(error) === 'EROFS' ? 'read-only file system' : 'permission denied'}`,
          {
            code: 'AUTH',
            connector: FS_CONNECTOR,
            hint: "check the folder's permissions, or export elsewhere",
            cause: error,
          },
        );
      });
    },
    read,
    async write(key, part) {
      await place((await pathOf(key, true)) as string, part, false);
    },
    async commit(key, part, expected) {
      const path = (await pathOf(key, true)) as string;
      const release = await lock();
      try {
        const current = await read(key);
        if (current?.version !== expected) {
          throw new SluiceError(`${path} changed since this run read it`, {
            code: 'CONFLICT',
            connector: FS_CONNECTOR,
          });
        }
        await place(path, part, true);
      } finally {
        await release();
      }
    },
    async delete(key) {
      const path = await pathOf(key, false);
      if (!path) return;
      try {
        await unlink(path);
      } catch (error) {
        if (errno(error) === 'ENOENT') return;
        throw fsError(error, path);
      }
      // Folders a removed file leaves empty go too (a stale {label}/ of an earlier export).
      const top = await rootPath();
      for (let folder = dirname(path); folder.startsWith(top + sep); folder = dirname(folder)) {
        if (
          !(await rmdir(folder).then(
            () => true,
            () => false,
          ))
        )
          break;
      }
    },
    async *list(prefix) {
      yield* walk(await rootPath(), '', prefix);
    },
    async sweep(owned) {
      // What killed runs leave that no marker names: temporary files of processes that are
      // gone (a run killed while writing its marker has none yet), and a lock they held.
      const removed: string[] = [];
      const root = await rootPath();
      for await (const key of walk(root, '', '')) {
        const name = key.slice(key.lastIndexOf('/') + 1);
        const temp = TEMP.exec(name);
        const legacy = LEGACY_TEMP.exec(name);
        const gone = temp
          ? temp[2] === writer().slice(0, 6) && !processAlive(Number(temp[3]))
          : legacy !== null && Date.now() - Number(legacy[1]) > DAY_MS;
        const stale = key === LOCK && (await staleLock(join(root, LOCK)));
        if (gone || stale || (name.endsWith(TEMP_SUFFIX) && owned(key))) {
          await unlink(join(root, ...key.split('/'))).catch(() => {});
          removed.push(key);
        }
      }
      return removed;
    },
  };
}

/** Exports Prodigy tasks into a local folder: parts, then a manifest. */
export function fsSink(options: FsSinkOptions): Sink {
  return createSink(createFsSinkDriver, options.url, options);
}
