import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileUri } from '@sluice/core';
import { testSource } from '@sluice/core/testing';
import { describe, expect, it } from 'vitest';
import { createFsSourceDriver, fsSource } from '../src/fs-source.js';

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

describe('fs source driver', () => {
  it('neither lists nor serves hidden files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-fs-hidden-'));
    try {
      await mkdir(join(dir, '.git'));
      await writeFile(join(dir, '.env'), 'SECRET=1\n');
      await writeFile(join(dir, '.git', 'a.png'), 'x');
      await writeFile(join(dir, 'seen.txt'), 'seen\n');
      const driver = await createFsSourceDriver(dir);
      const keys = [];
      for await (const item of driver.list({ signal: new AbortController().signal }))
        keys.push(item.key);
      expect(keys).toEqual(['seen.txt']);
      expect(await driver.stat('.env')).toBeUndefined();
      expect(await driver.stat('.git/a.png')).toBeUndefined();
      expect((await driver.stat('seen.txt'))?.size).toBe(5);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
