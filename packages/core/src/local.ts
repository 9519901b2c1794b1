import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SluiceError } from './errors.js';

/** Canonical URI of a local path. Kept unescaped, like `s3://` URIs, so `root + '/' + key` always holds. */
export function fileUri(path: string): string {
  return `file://${path.split(sep).join('/')}`;
}

/**
 * Resolves a path or a `file://` URL to an absolute path, for the local-folder connectors;
 * another scheme is a usage error that names the connector to use instead.
 */
export function toLocalPath(url: string, role: 'source' | 'sink'): string {
  const usage = (message: string, hint: string, cause?: unknown) =>
    new SluiceError(message, { code: 'USAGE', connector: 'fs', hint, cause });
  if (/^file:/i.test(url)) {
    try {
      return fileURLToPath(url);
    } catch (error) {
      throw usage(
        `not a local file URL: ${url}`,
        'use a path (./data) or file:///absolute/path',
        error,
      );
    }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1];
  if (scheme) {
    throw usage(
      `fs-${role} works on local paths, not ${scheme}:// URLs`,
      `use the matching connector, e.g. npx @sluice/s3-${role} for s3:// URLs`,
    );
  }
  return resolve(url);
}
