import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Checkpoint, fileStateStore, parseState, type StateData } from '../src/state.js';

describe('file checkpoints', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-state-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const data = (items: Record<string, string>): StateData => ({
    sluice: 'state/1',
    updated: new Date().toISOString(),
    items,
  });

  it('never writes through a link planted where a temporary file could be', async () => {
    const path = join(dir, 'state.json');
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'keep me\n');
    // The names the earlier scheme used (<state>.<pid>.<n>.tmp) were predictable.
    for (let n = 1; n <= 5; n++) await symlink(victim, `${path}.${process.pid}.${n}.tmp`);
    const store = fileStateStore(path);
    await store.open?.();
    for (let n = 0; n < 5; n++) await store.save(data({ [`file:///a${n}`]: `${n}` }));
    await store.close?.();
    expect(await readFile(victim, 'utf8')).toBe('keep me\n');
    expect(parseState(await readFile(path, 'utf8'), path).items).toEqual({ 'file:///a4': '4' });
    // No temporary file is left behind, and the planted links are still only links.
    const names = (await readdir(dir)).filter((name) => !name.startsWith('state.json.'));
    expect(names.sort()).toEqual(['state.json', 'victim.txt']);
  });

  it('refuses a checkpoint path that is a link, or not a file', async () => {
    const target = join(dir, 'elsewhere.json');
    await writeFile(target, '{}');
    const link = join(dir, 'link.json');
    await symlink(target, link);
    await expect(fileStateStore(link).open?.()).rejects.toThrow(
      `${link}: the checkpoint is a symbolic link`,
    );
    await expect(fileStateStore(dir).open?.()).rejects.toThrow(`${dir}: not a file`);
  });

  it('checks that the checkpoint can be written before anything is emitted', async () => {
    const blocker = join(dir, 'not-a-folder');
    await writeFile(blocker, 'x');
    const path = join(blocker, 'state.json');
    const checkpoint = new Checkpoint(fileStateStore(path));
    await expect(checkpoint.load()).rejects.toMatchObject({
      code: 'STATE',
      message: expect.stringMatching(
        new RegExp(`^${path}: cannot write a checkpoint here \\((ENOTDIR|EEXIST)\\)`),
      ),
    });
  });

  it('refuses a second run on the same checkpoint, and takes over from a run that is gone', async () => {
    const path = join(dir, 'state.json');
    const first = fileStateStore(path);
    await first.open?.();
    const second = fileStateStore(path);
    await expect(second.open?.()).rejects.toThrow(
      new RegExp(`^${path}: the checkpoint is in use by another run \\(process ${process.pid} `),
    );
    await first.close?.();
    await second.open?.();
    await second.close?.();
    // A lock left by a process that died without removing it.
    const dead = spawn(process.execPath, ['-e', '']);
    const pid = dead.pid as number;
    await new Promise((resolve) => dead.on('close', resolve));
    await writeFile(`${path}.lock`, JSON.stringify({ pid, host: hostname() }));
    const third = fileStateStore(path);
    await third.open?.();
    expect(JSON.parse(await readFile(`${path}.lock`, 'utf8')).pid).toBe(process.pid);
    await third.close?.();
    await expect(lstat(`${path}.lock`)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a malformed checkpoint, naming the file', () => {
    const path = '/data/state.json';
    expect(() => parseState('{"sluice":"state/1","items":[]}', path)).toThrow(
      `${path}: malformed checkpoint: "items" must map item URIs to versions`,
    );
    expect(() => parseState('{"sluice":"state/1","items":{"a":1}}', path)).toThrow(
      /malformed checkpoint/,
    );
    expect(() =>
      parseState('{"sluice":"state/1","items":{},"partial":{"a":{"version":"1"}}}', path),
    ).toThrow(/"partial" must map/);
    expect(() => parseState('null', path)).toThrow(`${path}: not a Sluice checkpoint`);
    expect(() => parseState('{"sluice":"state/1"', path)).toThrow(
      `${path}: checkpoint is not valid JSON`,
    );
    expect(parseState('{"sluice":"state/1","items":{"a":"1"}}', path).items).toEqual({ a: '1' });
  });

  it('retries a failing save, then fails with the path and the reason', async () => {
    let failures = 2;
    const saved: StateData[] = [];
    const flaky = new Checkpoint({
      location: 'flaky.json',
      load: async () => undefined,
      async save(state) {
        if (failures-- > 0) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
        saved.push(state);
      },
    });
    flaky.complete('file:///a', '1', 1);
    await flaky.commit(1);
    expect(saved.map((state) => state.items)).toEqual([{ 'file:///a': '1' }]);

    const broken = new Checkpoint({
      location: 'broken.json',
      load: async () => undefined,
      save: async () => {
        throw Object.assign(new Error('read-only'), { code: 'EROFS' });
      },
    });
    broken.complete('file:///a', '1', 1);
    const started = Date.now();
    await expect(broken.commit(1)).rejects.toMatchObject({
      code: 'STATE',
      message: 'broken.json: cannot save the checkpoint (EROFS; 4 attempts)',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('records what a failed item emitted, and forgets it once the item is complete', async () => {
    const path = join(dir, 'nested', 'state.json');
    const checkpoint = new Checkpoint(fileStateStore(path));
    await checkpoint.load();
    checkpoint.fail('file:///big.jsonl', 'v1', 4999, 4999);
    await checkpoint.commit(4998);
    await expect(readFile(path, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
    await checkpoint.commit(4999);
    expect(JSON.parse(await readFile(path, 'utf8')).partial).toEqual({
      'file:///big.jsonl': { version: 'v1', tasks: 4999 },
    });
    await checkpoint.close();
    const rerun = new Checkpoint(fileStateStore(path));
    await rerun.load();
    expect(rerun.partial('file:///big.jsonl')).toEqual({ version: 'v1', tasks: 4999 });
    rerun.complete('file:///big.jsonl', 'v2', 10);
    await rerun.commit(10);
    await rerun.close();
    const saved = JSON.parse(await readFile(path, 'utf8'));
    expect(saved.items).toEqual({ 'file:///big.jsonl': 'v2' });
    expect(saved.partial).toBeUndefined();
  });
});
