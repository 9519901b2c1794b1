import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { testSource } from '@sluice/core/testing';
import { fileUri, fsSource } from '../src/fs-source.js';

testSource({
  connector: 'fs',
  async setup() {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-fs-source-'));
    return {
      url: dir,
      uriPrefix: fileUri(dir),
      async put(key, body) {
        const path = join(dir, ...key.split('/'));
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, body);
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  source: (url, options) => fsSource({ ...options, url }),
});
