import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import type { StagedPart } from '@sluice/core';
import { sampleExport, testSink } from '@sluice/core/testing';
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
    return {
      url: dir,
      list: () => listFiles(dir),
      get: (key) => readFile(join(dir, ...key.split('/'))).catch(() => undefined),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
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
});
