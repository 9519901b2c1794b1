import type { Stats } from 'node:fs';
import { type FileHandle, open, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import {
  assertSafeKey,
  createSource,
  fileUri,
  SluiceError,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  toLocalPath,
} from '@sluice/core';

/** Options of the local-folder source: core source options plus where to read. */
export interface FsSourceOptions extends SourceOptions {
  /** A folder or a single file: a path or a `file://` URL. */
  url: string;
}

export const FS_CONNECTOR = 'fs';
const SMALL_FILE_BYTES = 256 * 1024;
const STAT_BATCH = 64;
/** A large file is read in chunks from 64 KiB (the first tasks come at once) to 1 MiB (fewer reads and checks). */
const FIRST_CHUNK_BYTES = 64 * 1024;
const MAX_CHUNK_BYTES = 1024 * 1024;

/** `sluice.source.version` of a file: its modification time (ms) and size. */
const versionOf = (stats: Stats) => `${Math.trunc(stats.mtimeMs)}:${stats.size}`;

/** Whether a file is as it was: any write moves its change time (kept to a fraction of a microsecond). */
const unchanged = (a: Stats, b: Stats) =>
  a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

function changed(item: SourceItem): SluiceError {
  return new SluiceError(`${item.uri}: changed while it was being read`, {
    code: 'CHANGED',
    connector: FS_CONNECTOR,
    hint: 'run again once nothing writes to the file any more',
  });
}

/**
 * Reads a file in chunks, passing a chunk on only when the file has not changed since it was
 * opened, checked after the chunk was read: bytes of another version never go out with this
 * one's version. The next chunk is read while the last one is checked.
 */
async function* readChecked(
  handle: FileHandle,
  opened: Stats,
  item: SourceItem,
  start = 0,
  end = Number.POSITIVE_INFINITY,
): AsyncGenerator<Uint8Array> {
  let chunk = FIRST_CHUNK_BYTES;
  const read = (position: number) => {
    const buffer = Buffer.allocUnsafe(Math.min(chunk, end - position + 1));
    chunk = Math.min(chunk * 2, MAX_CHUNK_BYTES);
    return handle.read(buffer, 0, buffer.length, position);
  };
  let next = start <= end ? read(start) : undefined;
  try {
    for (let position = start; next; ) {
      const { bytesRead, buffer } = await next;
      const check = handle.stat();
      position += bytesRead;
      next = bytesRead > 0 && position <= end ? read(position) : undefined;
      if (!unchanged(opened, await check)) throw changed(item);
      if (bytesRead > 0) yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await next?.catch(() => {});
    await handle.close();
  }
}

/** Builds the driver over a folder (or one file); hidden entries (`.name`) are never listed. */
export async function createFsSourceDriver(url: string): Promise<SourceDriver> {
  const target = toLocalPath(url, 'source');
  const info = await stat(target).catch((error: NodeJS.ErrnoException) => {
    throw new SluiceError(
      `${target}: ${error.code === 'ENOENT' ? 'no such file or folder' : error.message}`,
      {
        code: error.code === 'ENOENT' ? 'NOT_FOUND' : 'IO',
        connector: FS_CONNECTOR,
        hint: 'check the path',
        cause: error,
      },
    );
  });
  const single = info.isFile() ? basename(target) : undefined;
  const rootPath = single ? dirname(target) : target;
  const root = fileUri(rootPath);
  const realRoot = await realpath(rootPath);
  const under = realRoot.endsWith(sep) ? realRoot : `${realRoot}${sep}`;

  /**
   * The item at a key; with `follow`, only when its real path lies under the root's: a link
   * (to a file, or a folder on the way) that leads out of the folder is not the source's.
   */
  const itemOf = async (key: string, follow: boolean): Promise<SourceItem | undefined> => {
    const path = join(rootPath, ...key.split('/'));
    if (follow) {
      const real = await realpath(path).catch(() => undefined);
      if (!real?.startsWith(under)) return undefined;
    }
    const stats = await stat(path).catch(() => undefined);
    if (!stats?.isFile()) return undefined;
    return {
      key,
      uri: `${root}/${key}`,
      size: stats.size,
      modified: stats.mtime,
      version: versionOf(stats),
    };
  };

  /** The first link left out of the listing, named in its one warning. */
  let outside: string | undefined;

  // Depth-first, names sorted, one folder read at a time: stable order, memory bounded by one
  // folder. Files are stat'ed in parallel batches, since a stat round trip per file dominates.
  async function* walk(
    prefix: string,
    signal: AbortSignal,
    warn?: (message: string) => void,
  ): AsyncGenerator<SourceItem> {
    const folder = join(rootPath, ...prefix.split('/').filter(Boolean));
    const entries = (await readdir(folder, { withFileTypes: true }))
      .filter((entry) => !entry.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (let i = 0; i < entries.length; i += STAT_BATCH) {
      if (signal.aborted) return;
      const batch = entries.slice(i, i + STAT_BATCH);
      // Folders are walked, not links to them; a link to a file counts when it stays inside.
      const items = await Promise.all(
        batch.map((entry) =>
          entry.isFile() || entry.isSymbolicLink()
            ? itemOf(prefix + entry.name, entry.isSymbolicLink())
            : undefined,
        ),
      );
      for (const [j, entry] of batch.entries()) {
        if (entry.isDirectory()) yield* walk(`${prefix}${entry.name}/`, signal, warn);
        else if (items[j]) yield items[j];
        else if (entry.isSymbolicLink() && !outside) {
          outside = `${prefix}${entry.name}`;
          warn?.(`skipping links that lead out of ${rootPath} or to folders, such as ${outside}`);
        }
      }
    }
  }

  return {
    connector: FS_CONNECTOR,
    root,
    async *list({ signal, warn }) {
      if (single) {
        const item = await itemOf(single, true);
        if (item) yield item;
        return;
      }
      yield* walk('', signal, warn);
    },
    async open(item, { start, end }) {
      const path = join(rootPath, ...item.key.split('/'));
      // One read for a small whole file (a stream per tiny file costs more than its bytes),
      // then one stat: a file that is not the version listed by then is read again by core.
      if (start === undefined && end === undefined && (item.size ?? Infinity) <= SMALL_FILE_BYTES) {
        const bytes = await readFile(path);
        const now = await stat(path);
        if (versionOf(now) !== item.version || now.size !== bytes.length) throw changed(item);
        return [bytes];
      }
      const handle = await open(path, 'r');
      let opened: Stats;
      try {
        opened = await handle.stat();
        // Replaced or rewritten since it was listed: core reads the new version.
        if (versionOf(opened) !== item.version) throw changed(item);
      } catch (error) {
        await handle.close().catch(() => {});
        throw error;
      }
      return readChecked(handle, opened, item, start, end);
    },
    async stat(key) {
      if (single && key !== single) return undefined;
      // Hidden entries are never listed, so they are never served either.
      if (
        assertSafeKey(key, FS_CONNECTOR)
          .split('/')
          .some((part) => part.startsWith('.'))
      ) {
        return undefined;
      }
      return itemOf(key, true);
    },
  };
}

/** Streams Prodigy tasks from a local folder or file. */
export function fsSource(options: FsSourceOptions): Source {
  return createSource(createFsSourceDriver(options.url), options);
}
