import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { hostIdentity, type StagedPart } from '@sluice/core';
import { readExport, sampleExport, testSink } from '@sluice/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFsSinkDriver, fsSink } from '../src/fs-sink.js';

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
    return { ...fsFixture(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
  sink: (url, options) => fsSink({ ...options, url }),
});

describe('fs sink driver', () => {
  let dir: string;
  let part: StagedPart;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-fs-driver-'));
    const path = join(dir, 'staged');
    await writeFile(path, 'x\n');
    part = { path, bytes: 2, sha256: '0'.repeat(64), contentType: 'application/x-ndjson' };
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it.each(['../outside.jsonl', '/etc/x', 'a/../../b', 'a\\..\\b'])(
    'refuses the key %j, even when called directly',
    async (key) => {
      const driver = createFsSinkDriver(join(dir, 'root'));
      await expect(driver.write(key, part)).rejects.toMatchObject({ code: 'UNSAFE_KEY' });
      expect(await listFiles(dir)).toEqual(['staged']);
    },
  );

  it('removes folders that stale parts leave empty', async () => {
    const url = join(dir, 'out', '{answer}');
    await fsSink({ url }).write(sampleExport());
    await fsSink({ url }).write(sampleExport().filter((task) => task.answer === 'accept'));
    expect((await readdir(join(dir, 'out'))).sort()).toEqual(['accept', 'manifest.json']);
  });

  it('leaves no temporary file behind when a write fails', async () => {
    const driver = createFsSinkDriver(join(dir, 'root'));
    await mkdir(join(dir, 'root', 'taken', 'part.jsonl'), { recursive: true }); // a folder where the file goes
    await expect(driver.write('taken/part.jsonl', part)).rejects.toThrow();
    expect(await readdir(join(dir, 'root', 'taken'))).toEqual(['part.jsonl']);
  });

  it('never writes through a link inside the root', async () => {
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(join(dir, 'exp'), { recursive: true });
    await mkdir(elsewhere);
    await symlink(elsewhere, join(dir, 'exp', 'ORG'));
    await expect(
      fsSink({ url: join(dir, 'exp', '{label}') }).write([{ text: 'a', label: 'ORG' }]),
    ).rejects.toMatchObject({
      code: 'UNSAFE_KEY',
      message: expect.stringContaining('is a symbolic link inside the export root'),
    });
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it('never deletes through a link, even when a planted manifest lists a file behind it', async () => {
    const victim = join(dir, 'victim');
    const root = join(dir, 'exp');
    await mkdir(victim);
    await mkdir(root);
    await writeFile(join(victim, 'notes.txt'), 'keep me');
    await symlink(victim, join(root, 'x'));
    const planted = {
      sluice: 'manifest/1',
      parts: [{ key: 'x/notes.txt', records: 1, bytes: 7, sha256: '0'.repeat(64) }],
      counts: { records: 1 },
    };
    await writeFile(join(root, 'manifest.json'), JSON.stringify(planted));
    const warnings: string[] = [];
    const result = await fsSink({ url: root, onWarning: (m) => warnings.push(m) }).write(
      sampleExport(),
    );
    expect(result.status).toBe('written');
    expect(warnings.join('\n')).toMatch(/removing the files it replaced failed .*symbolic link/);
    expect(await readFile(join(victim, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  it('checks that the root can be written before it reads the input', async () => {
    await writeFile(join(dir, 'a-file'), 'x');
    let read = false;
    const input = (async function* () {
      read = true;
      yield '{"text":"a"}\n';
    })();
    await expect(
      fsSink({ url: join(dir, 'a-file', 'exp') }).writeJsonl(input),
    ).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/cannot make .*: .*a-file is a file/),
    });
    expect(read).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)(
    'refuses a root it may not write before reading the input, in one line',
    async () => {
      const locked = join(dir, 'locked');
      await mkdir(locked);
      await chmod(locked, 0o555);
      let read = false;
      const input = (async function* () {
        read = true;
        yield '{"text":"a"}\n';
      })();
      await expect(fsSink({ url: join(locked, 'exp') }).writeJsonl(input)).rejects.toMatchObject({
        code: 'AUTH',
        message: `cannot write to ${locked}: permission denied`,
      });
      expect(read).toBe(false);
      await chmod(locked, 0o755);
    },
  );

  it('removes the temporary files and lock that killed runs left, even on a rerun that writes nothing', async () => {
    const root = join(dir, 'left');
    const first = await fsSink({ url: root }).write(sampleExport());
    const pid = spawnSync(process.execPath, ['-e', '0']).pid;
    const host = createHash('sha256').update(hostIdentity()).digest('hex').slice(0, 6);
    const yesterday = Date.now() - 2 * 24 * 60 * 60 * 1000;
    const planted = [
      `.part-00000.abcdefgh.jsonl.${host}-${pid}.sluice-tmp`, // a copy cut short
      `..sluice-run.abcdefgh.json.${host}-${pid}.sluice-tmp`, // a marker never finished
      `.${pid}.${yesterday}.sluice-tmp`, // an older release's
    ];
    for (const name of planted) await writeFile(join(root, name), 'half');
    await writeFile(join(root, '.sluice-lock'), JSON.stringify({ host: hostIdentity(), pid }));
    const alive = `.part-00001.abcdefgh.jsonl.${host}-${process.pid}.sluice-tmp`;
    await writeFile(join(root, alive), 'still being written');
    const again = await fsSink({ url: root }).write(sampleExport());
    expect(again.status).toBe('unchanged');
    expect(again.swept.sort()).toEqual([...planted, '.sluice-lock'].sort());
    expect((await listFiles(root)).sort()).toEqual(
      [alive, 'manifest.json', ...first.manifest.parts.map((part) => part.key)].sort(),
    );
  });

  it('breaks the commit lock of a process that is gone', async () => {
    const root = join(dir, 'locked-root');
    await mkdir(root);
    const pid = spawnSync(process.execPath, ['-e', '0']).pid;
    await writeFile(join(root, '.sluice-lock'), JSON.stringify({ host: hostIdentity(), pid }));
    const result = await fsSink({ url: root }).write(sampleExport());
    expect(result.status).toBe('written');
    expect((await readExport(fsFixture(dir), 'locked-root')).counts.records).toBe(6);
    expect(hostname()).toBeTruthy();
  });

  it.skipIf(!canMount())(
    'on a full disk: one line with a hint, the previous export whole, nothing left behind',
    async () => {
      const mount = join(dir, 'small');
      await mkdir(mount);
      spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
      try {
        const root = join(mount, 'exp');
        const small = sampleExport();
        await fsSink({ url: root }).write(small);
        const before = await listFiles(mount);
        const big = Array.from({ length: 3000 }, (_, i) => ({
          text: `${i} ${'lorem ipsum '.repeat(10)}`,
          answer: 'accept' as const,
        }));
        const error = await fsSink({ url: root, maxPartRecords: 500 })
          .write(big)
          .catch((e: unknown) => e);
        expect(error).toMatchObject({
          code: 'IO',
          message: expect.stringMatching(
            /: no space left on the device \(nothing was published: file:.* still holds the previous export\)$/,
          ),
          hint: 'free space there, or export elsewhere, and run again',
        });
        expect(await listFiles(mount)).toEqual(before);
        expect((await readExport(fsFixture(mount), 'exp')).counts.records).toBe(small.length);
      } finally {
        spawnSync('umount', [mount]);
      }
    },
  );
});

/** The suites' view of a local folder. */
function fsFixture(dir: string) {
  return {
    url: dir,
    list: () => listFiles(dir),
    get: (key: string) => readFile(join(dir, ...key.split('/'))).catch(() => undefined),
    cleanup: async () => {},
  };
}

/** Whether this process may mount a small tmpfs (root on Linux), to fill a disk for real. */
function canMount(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = join(tmpdir(), `sluice-mount-probe-${process.pid}`);
  spawnSync('mkdir', ['-p', probe]);
  const mounted =
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (mounted) spawnSync('umount', [probe]);
  spawnSync('rmdir', [probe]);
  return mounted;
}
