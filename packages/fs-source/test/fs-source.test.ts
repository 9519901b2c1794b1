import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileUri } from '@sluice/core';
import { collect, testSource } from '@sluice/core/testing';
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

describe('fs source hashes', () => {
  it('keeps the hashes of a touched file, while its version records the new mtime', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-fs-touch-'));
    try {
      const file = join(dir, 'tickets.jsonl');
      await writeFile(file, '{"text":"Refund not received"}\n{"text":"App crashes"}\n');
      await utimes(file, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
      const before = await collect(fsSource({ url: dir }));
      await utimes(file, new Date('2026-06-01T00:00:00Z'), new Date('2026-06-01T00:00:00Z'));
      const after = await collect(fsSource({ url: dir }));
      expect(after.map((t) => t.sluice?.source?.version)).not.toEqual(
        before.map((t) => t.sluice?.source?.version),
      );
      expect(after.map((t) => [t._input_hash, t._task_hash])).toEqual(
        before.map((t) => [t._input_hash, t._task_hash]),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
