import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assertSafeKey,
  createSource,
  SluiceError,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
} from '@sluice/core';

/** Options of the local-folder source: core source options plus where to read. */
export interface FsSourceOptions extends SourceOptions {
  /** A folder or a single file: a path or a `file://` URL. */
  url: string;
}

export const FS_CONNECTOR = 'fs';

/** Canonical URI of a local path. Kept unescaped, like `s3://` URIs, so `root + '/' + key` always holds. */
export function fileUri(path: string): string {
  return `file://${path.split(sep).join('/')}`;
}

/** Resolves a path or a `file://` URL to an absolute path. */
export function toPath(url: string): string {
  if (/^file:/i.test(url)) {
    try {
      return fileURLToPath(url);
    } catch (error) {
      throw new SluiceError(`not a local file URL: ${url}`, {
        code: 'USAGE',
        connector: FS_CONNECTOR,
        hint: 'use a path (./data) or file:///absolute/path',
        cause: error,
      });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new SluiceError(`fs connectors read local paths, not ${url.split(':')[0]}:// URLs`, {
      code: 'USAGE',
      connector: FS_CONNECTOR,
      hint: 'use the matching connector, e.g. npx @sluice/s3-source for s3:// URLs',
    });
  }
  return resolve(url);
}

/** Builds the driver over a folder (or one file); hidden entries (`.name`) are never listed. */
export async function createFsSourceDriver(url: string): Promise<SourceDriver> {
  const target = toPath(url);
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

  // Depth-first, names sorted, one folder read at a time: stable order, memory bounded by one folder.
  async function* walk(prefix: string, signal: AbortSignal): AsyncGenerator<SourceItem> {
    const folder = join(rootPath, ...prefix.split('/').filter(Boolean));
    const entries = await readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (signal.aborted) return;
      if (entry.name.startsWith('.')) continue;
      const key = prefix + entry.name;
      if (entry.isDirectory()) yield* walk(`${key}/`, signal);
      else if (entry.isFile() || entry.isSymbolicLink()) {
        const item = await itemOf(key);
        if (item) yield item;
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
      return createReadStream(join(rootPath, ...item.key.split('/')), { start, end });
    },
    async stat(key) {
      if (single && key !== single) return undefined;
      return itemOf(assertSafeKey(key, FS_CONNECTOR));
    },
  };
}

/** Streams Prodigy tasks from a local folder or file. */
export function fsSource(options: FsSourceOptions): Source {
  return createSource(createFsSourceDriver(options.url), options);
}
