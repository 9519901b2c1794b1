import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
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

  const itemOf = async (key: string): Promise<SourceItem | undefined> => {
    const path = join(rootPath, ...key.split('/'));
    const stats = await stat(path).catch(() => undefined);
    if (!stats?.isFile()) return undefined;
    return {
      key,
      uri: `${root}/${key}`,
      size: stats.size,
      modified: stats.mtime,
      version: `${Math.trunc(stats.mtimeMs)}:${stats.size}`,
    };
  };

  // Depth-first, names sorted, one folder read at a time: stable order, memory bounded by one
  // folder. Files are stat'ed in parallel batches, since a stat round trip per file dominates.
  async function* walk(prefix: string, signal: AbortSignal): AsyncGenerator<SourceItem> {
    const folder = join(rootPath, ...prefix.split('/').filter(Boolean));
    const entries = (await readdir(folder, { withFileTypes: true }))
      .filter((entry) => !entry.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (let i = 0; i < entries.length; i += STAT_BATCH) {
      if (signal.aborted) return;
      const batch = entries.slice(i, i + STAT_BATCH);
      const items = await Promise.all(
        batch.map((entry) =>
          entry.isFile() || entry.isSymbolicLink() ? itemOf(prefix + entry.name) : undefined,
        ),
      );
      for (const [j, entry] of batch.entries()) {
        if (entry.isDirectory()) yield* walk(`${prefix}${entry.name}/`, signal);
        else if (items[j]) yield items[j];
      }
    }
  }

  return {
    connector: FS_CONNECTOR,
    root,
    async *list({ signal }) {
      if (single) {
        const item = await itemOf(single);
        if (item) yield item;
        return;
      }
      yield* walk('', signal);
    },
    async open(item, { start, end }) {
      const path = join(rootPath, ...item.key.split('/'));
      // One read call for small whole files: a stream per tiny file costs more than the bytes.
      if (start === undefined && end === undefined && (item.size ?? Infinity) <= SMALL_FILE_BYTES) {
        return [await readFile(path)];
      }
      return createReadStream(path, { start, end });
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
      return itemOf(key);
    },
  };
}

/** Streams Prodigy tasks from a local folder or file. */
export function fsSource(options: FsSourceOptions): Source {
  return createSource(createFsSourceDriver(options.url), options);
}
