import { mkdir, mkdtemp, open, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileUri, type Task } from '@sluice/core';
import { collect, freePort, TINY_PNG, testSource } from '@sluice/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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

describe('fs source: links and files that change', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-fs-links-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('neither lists nor serves what a link leads to outside the folder', async () => {
    const root = join(dir, 'photos');
    const secret = join(dir, 'elsewhere', 'secretdir');
    await mkdir(join(root, 'inside'), { recursive: true });
    await mkdir(secret, { recursive: true });
    await writeFile(join(secret, 'private.png'), TINY_PNG);
    await writeFile(join(root, 'inside', 'kept.png'), TINY_PNG);
    await writeFile(join(root, 'a.png'), TINY_PNG);
    await symlink(secret, join(root, 'linkdir'));
    await symlink(join(secret, 'private.png'), join(root, 'linked.png'));
    await symlink(join(root, 'inside', 'kept.png'), join(root, 'z-alias.png'));
    const driver = await createFsSourceDriver(root);
    const warnings: string[] = [];
    const keys = [];
    for await (const item of driver.list({
      signal: new AbortController().signal,
      warn: (message) => warnings.push(message),
    }))
      keys.push(item.key);
    // A link to a file inside the folder is an item like any other.
    expect(keys).toEqual(['a.png', 'inside/kept.png', 'z-alias.png']);
    expect(warnings).toEqual([
      `skipping links that lead out of ${root} or to folders, such as linkdir`,
    ]);
    expect(await driver.stat('linkdir/private.png')).toBeUndefined();
    expect(await driver.stat('linked.png')).toBeUndefined();
    expect((await driver.stat('z-alias.png'))?.size).toBe(TINY_PNG.length);
    const source = fsSource({
      url: root,
      mediaPort: await freePort(),
      mediaKeyFile: join(dir, 'key'),
    });
    try {
      const images = (await collect(source)).map((task) => task.image as string);
      expect(images).toHaveLength(3);
      for (const url of images) expect((await fetch(url)).status).toBe(200);
    } finally {
      await source.close();
    }
  });

  it('fails a file rewritten while it streams, never passing on its new lines under the old version', async () => {
    const path = join(dir, 'big.jsonl');
    const lines = (word: string) =>
      Array.from({ length: 150_000 }, (_, i) => `{"text":"${word} ${i}"}\n`).join('');
    await writeFile(path, lines('old'));
    const listed = await createFsSourceDriver(dir);
    const version = (await listed.stat('big.jsonl'))?.version;
    const seen: Task[] = [];
    const source = fsSource({ url: dir, concurrency: 1 });
    await expect(
      (async () => {
        for await (const task of source) {
          seen.push(task);
          if (seen.length === 1) {
            // In place, as an editor or a logger does: same file, new bytes from the start.
            const handle = await open(path, 'r+');
            await handle.write(lines('new'), 0);
            await handle.close();
          }
        }
      })(),
    ).rejects.toMatchObject({
      code: 'CHANGED',
      message: `${fileUri(path)}: changed while it was being read`,
    });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThan(150_000);
    for (const task of seen) {
      expect(task.text).toMatch(/^old /);
      expect(task.sluice?.source?.version).toBe(version);
    }
  });

  it('with --skip-errors and --state, records what went out of a rewritten file and reads its new version whole', async () => {
    const path = join(dir, 'data', 'big.jsonl');
    await mkdir(dirname(path));
    const lines = (word: string) =>
      Array.from({ length: 150_000 }, (_, i) => `{"text":"${word} ${i}"}\n`).join('');
    await writeFile(path, lines('old'));
    const state = join(dir, 'state.json');
    const warnings: string[] = [];
    let first = 0;
    for await (const task of fsSource({
      url: join(dir, 'data'),
      state,
      skipErrors: true,
      onWarning: (message) => warnings.push(message),
    })) {
      if (first++ === 0) await writeFile(path, lines('new'));
      expect(task.text).toMatch(/^old /);
    }
    expect(warnings.join('\n')).toMatch(
      /skipping the rest of .*big\.jsonl after \d+ tasks: .*changed while it was being read/,
    );
    const saved = JSON.parse(await readFile(state, 'utf8'));
    expect(saved.partial[fileUri(path)].tasks).toBe(first);
    const rerun = await collect(fsSource({ url: join(dir, 'data'), state }));
    expect(rerun).toHaveLength(150_000);
    expect(rerun.every((task) => task.text?.startsWith('new '))).toBe(true);
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
