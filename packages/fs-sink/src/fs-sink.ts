import { copyFile, mkdir, open, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import {
  assertSafeKey,
  createSink,
  fileUri,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  toLocalPath,
} from '@sluice/core';

/** Options of the local-folder sink: core sink options plus where to write. */
export interface FsSinkOptions extends SinkOptions {
  /** Export root: a path or `file://` URL; may use {dataset} {date} {timestamp} {answer} {label}. */
  url: string;
}

export const FS_CONNECTOR = 'fs';

/** Builds the driver over an export root folder; writes are atomic (temp file, then rename). */
export function createFsSinkDriver(rootUrl: string): SinkDriver {
  const rootPath = toLocalPath(rootUrl, 'sink');
  // Checked twice: the key's shape, then where it resolves, so no key can leave the root.
  const pathOf = (key: string) => {
    const path = resolve(rootPath, ...assertSafeKey(key, FS_CONNECTOR).split('/'));
    const rel = relative(rootPath, path);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new SluiceError(`refusing key "${key}": it resolves outside ${rootPath}`, {
        code: 'UNSAFE_KEY',
        connector: FS_CONNECTOR,
      });
    }
    return path;
  };
  return {
    connector: FS_CONNECTOR,
    root: fileUri(rootPath),
    async read(key) {
      try {
        return await readFile(pathOf(key));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },
    async write(key, part) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true });
      const temp = join(dirname(path), `.${process.pid}.${Date.now()}.sluice-tmp`);
      try {
        await copyFile(part.path, temp);
        // Flushed to disk before the rename, so after a power loss a part is whole or absent.
        const handle = await open(temp, 'r+');
        await handle.sync().finally(() => handle.close());
        await rename(temp, path);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    },
    async delete(key) {
      const path = pathOf(key);
      await rm(path, { force: true });
      // Folders a removed part leaves empty go too (a stale {label}/ of an earlier export).
      for (
        let folder = dirname(path);
        folder.startsWith(rootPath + sep);
        folder = dirname(folder)
      ) {
        if (
          !(await rmdir(folder).then(
            () => true,
            () => false,
          ))
        )
          break;
      }
    },
  };
}

/** Exports Prodigy tasks into a local folder: parts, then a manifest. */
export function fsSink(options: FsSinkOptions): Sink {
  return createSink(createFsSinkDriver, options.url, options);
}
