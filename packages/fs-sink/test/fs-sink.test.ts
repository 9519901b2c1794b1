import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { testSink } from '@sluice/core/testing';
import { fsSink } from '../src/fs-sink.js';

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

testSink({
  connector: 'fs',
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-fs-sink-'));
    return {
      url: dir,
      list: () => listFiles(dir),
      get: (key) => readFile(join(dir, ...key.split('/'))).catch(() => undefined),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  sink: (url, options) => fsSink({ ...options, url }),
});
