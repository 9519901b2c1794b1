import { copyFile, mkdir, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  assertSafeKey,
  createSink,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
} from '@sluice/core';

/** Options of the local-folder sink: core sink options plus where to write. */
export interface FsSinkOptions extends SinkOptions {
  /** Export root: a path or `file://` URL; may use {dataset} {date} {timestamp} {answer} {label}. */
  url: string;
}

export const FS_CONNECTOR = 'fs';

function toPath(url: string): string {
  if (/^file:/i.test(url)) return fileURLToPath(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new SluiceError(`fs-sink writes to local paths, not ${url.split(':')[0]}:// URLs`, {
      code: 'USAGE',
      connector: FS_CONNECTOR,
      hint: 'use the matching connector, e.g. npx @sluice/s3-sink for s3:// URLs',
    });
  }
  return resolve(url);
}

/** Builds the driver over an export root folder; writes are atomic (temp file, then rename). */
export function createFsSinkDriver(rootUrl: string): SinkDriver {
  const rootPath = toPath(rootUrl);
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
    root: `file://${rootPath.split(sep).join('/')}`,
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
