import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasStackTrace, runCli } from '@sluice/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(new URL('../../../examples/data/db-out/', import.meta.url));

describe('fs-sink CLI', () => {
  let dir: string;
  let ner: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-fs-sink-cli-'));
    ner = await readFile(join(dbOut, 'ner-news.jsonl'), 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exports a db-out file into parts and a manifest whose sha256 values match', async () => {
    const run = await runCli(cli, [`${dir}/exports/{dataset}/{answer}`, '--dataset', 'news'], {
      input: ner,
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/fs-sink: wrote 3 parts \(24 records\) and manifest.json/);
    const root = join(dir, 'exports', 'news');
    const manifest = JSON.parse(await readFile(join(root, 'manifest.json'), 'utf8'));
    expect(manifest.counts.answers).toEqual({ accept: 17, reject: 4, ignore: 3 });
    for (const part of manifest.parts) {
      const bytes = await readFile(join(root, part.key));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(part.sha256);
    }
    expect(manifest.tool.name).toBe('@sluice/fs-sink');
  });

  it('changes nothing when run twice', async () => {
    const args = [`${dir}/twice`, '--dataset', 'news'];
    expect((await runCli(cli, args, { input: ner })).code).toBe(0);
    const before = await stat(join(dir, 'twice', 'manifest.json'));
    const again = await runCli(cli, [...args, '--json-summary'], { input: ner });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stderr)).toMatchObject({
      status: 'unchanged',
      written: [],
      removed: [],
    });
    const after = await stat(join(dir, 'twice', 'manifest.json'));
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('leaves no manifest and names the line when the input is malformed', async () => {
    const input = await readFile(join(dbOut, 'bad-line.jsonl'));
    const run = await runCli(cli, [`${dir}/broken`], { input });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^fs-sink: error: stdin line 3: invalid JSON/m);
    expect(run.stderr).toMatch(/hint: .*--skip-invalid/);
    expect(hasStackTrace(run.stderr)).toBe(false);
    await expect(readdir(join(dir, 'broken'))).rejects.toThrow();
    const lenient = await runCli(cli, [`${dir}/broken`, '--skip-invalid'], { input });
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toMatch(/1 bad line set aside in rejects.jsonl/);
    const manifest = JSON.parse(await readFile(join(dir, 'broken', 'manifest.json'), 'utf8'));
    expect((await readdir(join(dir, 'broken'))).sort()).toEqual([
      'manifest.json',
      `part-00000.${manifest.run}.jsonl`,
      `rejects.${manifest.run}.jsonl`,
    ]);
  });

  it('explains usage errors in one line with exit 2', async () => {
    const run = await runCli(cli, [`${dir}/x/{dataset}`], { input: ner });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/uses \{dataset\} but no dataset was given/);
    expect(run.stderr).toMatch(/hint: pass --dataset/);
    const bad = await runCli(cli, [`${dir}/x`, '--answer', 'maybe'], { input: ner });
    expect(bad.code).toBe(2);
    const s3 = await runCli(cli, ['s3://bucket/x'], { input: ner });
    expect(s3.code).toBe(2);
    expect(s3.stderr).toMatch(/s3-sink/);
  });
});
