import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateTask } from '@sluice/core';
import { hasStackTrace, runCli, startCli, TINY_PNG } from '@sluice/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const examples = fileURLToPath(new URL('../../../examples/data', import.meta.url));

const parse = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));

describe('fs-source CLI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-fs-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams valid tasks with lineage from the example data, and only JSONL on stdout', async () => {
    const run = await runCli(cli, [
      examples,
      '--exclude',
      'db-out/**',
      '--media',
      'inline',
      '--order',
      'listing',
    ]);
    expect(run.code).toBe(0);
    const tasks = parse(run.stdout);
    expect(tasks.length).toBeGreaterThan(30);
    for (const task of tasks) {
      expect(validateTask(task)).toBeUndefined();
      expect(task.meta.source).toMatch(/^file:\/\/\/.+\/examples\/data\//);
      expect(typeof task._input_hash).toBe('number');
    }
    const kinds = new Set(
      tasks.map((task) => ['text', 'html', 'image', 'audio', 'video'].find((k) => k in task)),
    );
    expect(kinds).toEqual(new Set(['text', 'html', 'image', 'audio', 'video']));
    expect(run.stderr).toMatch(/fs-source: done: \d+ tasks from \d+ items/);
  });

  it('exits 0 at once and quietly when the reader goes away (| head -1)', async () => {
    const big = join(dir, 'big');
    await mkdir(big);
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) =>
        writeFile(join(big, `${String(i).padStart(5, '0')}.txt`), `line ${i}\nmore\n`),
      ),
    );
    const child = spawn(
      'bash',
      ['-c', `set -o pipefail; node '${cli}' '${big}' --order listing | head -1`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(stdout).text).toBe('line 0');
    expect(hasStackTrace(stderr)).toBe(false);
    expect(stderr).not.toMatch(/EPIPE/);
  });

  it('keeps a checkpoint across runs with --state when writing to a file', async () => {
    const folder = join(dir, 'inbox');
    await mkdir(folder);
    await writeFile(join(folder, 'a.txt'), 'first\n');
    const state = join(dir, 'state', 'inbox.json');
    const out = join(dir, 'inbox.jsonl');
    // As a scheduled job would: stdout to a file, where everything written is delivered.
    const run = async (...flags: string[]) => {
      const child = spawn(
        'bash',
        ['-c', `node '${cli}' '${folder}' --state '${state}' ${flags.join(' ')} > '${out}'`],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const code = await new Promise((resolve) => child.on('close', resolve));
      return { code, tasks: parse(await readFile(out, 'utf8')), stderr };
    };
    const first = await run('--quiet');
    expect(first.tasks.map((task) => task.text)).toEqual(['first']);
    expect(first.stderr).toBe('');
    await writeFile(join(folder, 'b.txt'), 'second\n');
    const second = await run('--json-summary');
    expect(second.tasks.map((task) => task.text)).toEqual(['second']);
    expect(JSON.parse(second.stderr)).toMatchObject({ bin: 'fs-source', tasks: 1, unchanged: 1 });
    const saved = JSON.parse(await readFile(state, 'utf8'));
    expect(Object.keys(saved.items).sort()).toEqual([
      `file://${folder}/a.txt`,
      `file://${folder}/b.txt`,
    ]);
  });

  it('watches until stopped (SIGTERM: exit 143), never counting what may sit unread in the pipe', async () => {
    const folder = join(dir, 'watched');
    await mkdir(folder);
    await writeFile(join(folder, 'a.txt'), 'first\n');
    const state = join(dir, 'watched.json');
    const run = startCli(cli, [folder, '--watch', '0.2', '--state', state]);
    const lines = (n: number) => run.waitFor(({ stdout }) => parse(stdout).length >= n);
    await lines(1);
    await writeFile(join(folder, 'b.txt'), 'second\n');
    await lines(2);
    run.child.kill('SIGTERM');
    expect(await run.closed).toBe(143);
    expect(parse(run.stdout()).map((task) => task.text)).toEqual(['first', 'second']);
    expect(run.stderr()).toMatch(/interrupted after 2 tasks from 2 items/);
    expect(hasStackTrace(run.stderr())).toBe(false);
    // Both tasks are within the last MiB written to a pipe the reader may not have read:
    // a rerun emits them again, and Prodigy skips what it already has by hash.
    const rerun = await runCli(cli, [folder, '--state', state, '--quiet']);
    expect(
      parse(rerun.stdout)
        .map((task) => task.text)
        .sort(),
    ).toEqual(['first', 'second']);
  });

  it('through a pipe, records what is more than a MiB back and no more', async () => {
    const folder = join(dir, 'piped');
    await mkdir(folder);
    const line = `${JSON.stringify({ text: 'y'.repeat(500) })}\n`;
    // 3 MB of output in 60 items: the items of the last MiB are not recorded.
    for (let i = 0; i < 60; i++) await writeFile(join(folder, `${i}.jsonl`), line.repeat(100));
    const state = join(dir, 'piped.json');
    const child = spawn(
      'bash',
      ['-c', `node '${cli}' '${folder}' --state '${state}' --quiet | wc -c`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    await new Promise((resolve) => child.on('close', resolve));
    const bytes = Number(out.trim());
    expect(bytes).toBeGreaterThan(3e6);
    // Items end every bytes/60; those ending within the last MiB stay unrecorded.
    const expected = Math.floor(60 - (1024 * 1024) / (bytes / 60));
    const recorded = Object.keys(JSON.parse(await readFile(state, 'utf8')).items).length;
    expect(recorded).toBeGreaterThanOrEqual(expected - 2);
    expect(recorded).toBeLessThanOrEqual(expected);
  });

  it('exits on Ctrl-C even when the reader has stopped reading', async () => {
    const folder = join(dir, 'stalled');
    await mkdir(folder);
    const line = `${JSON.stringify({ text: 'x'.repeat(200) })}\n`;
    for (let i = 0; i < 40; i++) await writeFile(join(folder, `${i}.jsonl`), line.repeat(200));
    const child = spawn(process.execPath, [cli, folder, '--quiet'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout.pause(); // a reader that never reads: the pipe fills and the source blocks
    const closed = new Promise((resolve) => child.on('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    child.kill('SIGINT');
    const outcome = await Promise.race([
      closed,
      new Promise((resolve) => setTimeout(() => resolve('hung'), 10_000)),
    ]);
    if (outcome === 'hung') child.kill('SIGKILL');
    expect(outcome).toBe(130);
  });

  it('does not record tasks a reader that stopped early (| head -1) never read', async () => {
    const folder = join(dir, 'early');
    await mkdir(folder);
    for (let i = 0; i < 50; i++) await writeFile(join(folder, `${i}.txt`), `task ${i}\n`);
    const state = join(dir, 'early.json');
    const child = spawn('bash', ['-c', `node '${cli}' '${folder}' --state '${state}' | head -1`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise((resolve) => child.on('close', resolve));
    const rerun = await runCli(cli, [folder, '--state', state, '--quiet']);
    expect(parse(rerun.stdout)).toHaveLength(50);
    // Written to a file, everything written counts.
    const file = join(dir, 'early.jsonl');
    const toFile = spawn('bash', [
      '-c',
      `node '${cli}' '${folder}' --state '${state}' --quiet > '${file}'`,
    ]);
    expect(await new Promise((resolve) => toFile.on('close', resolve))).toBe(0);
    expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(50);
    expect(parse((await runCli(cli, [folder, '--state', state, '--quiet'])).stdout)).toHaveLength(
      0,
    );
  });

  it('ends stdout, serves media until interrupted, then exits 130', async () => {
    const media = join(dir, 'media');
    await mkdir(media);
    await writeFile(join(media, 'p.png'), TINY_PNG);
    const config = join(dir, 'config');
    const run = startCli(
      cli,
      [media, '--media-port', '0', '--quiet', '--media-origin', 'https://prodigy.acme.com'],
      { env: { XDG_CONFIG_HOME: config } },
    );
    // The reader (Prodigy reading stdin) must see the end of the stream, not wait for more.
    await new Promise((resolve) => run.child.stdout?.on('end', resolve));
    await run.waitFor(({ stderr }) => stderr.includes('serving media'));
    const task = JSON.parse(run.stdout());
    const response = await fetch(task.image);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(TINY_PNG);
    const prodigy = await fetch(task.image, { headers: { Origin: 'https://prodigy.acme.com' } });
    expect(prodigy.headers.get('access-control-allow-origin')).toBe('https://prodigy.acme.com');
    const page = await fetch(task.image, { headers: { Origin: 'http://localhost:8080' } });
    expect(page.status).toBe(403);
    // The key behind the URLs was made on first use, readable by its owner only.
    expect((await stat(join(config, 'sluice', 'media.key'))).mode & 0o777).toBe(0o600);
    run.child.kill('SIGINT');
    expect(await run.closed).toBe(130);
  });

  it('checks the checkpoint before the first task: a path it cannot write fails at once', async () => {
    const data = join(dir, 'unwritable');
    await mkdir(data);
    await writeFile(join(data, 'a.txt'), 'a\n');
    const blocker = join(dir, 'blocker');
    await writeFile(blocker, 'a file, not a folder');
    const state = join(blocker, 'state.json');
    const run = await runCli(cli, [data, '--state', state]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(
      new RegExp(`^fs-source: error: ${state}: cannot write a checkpoint here \\(`, 'm'),
    );
    expect(run.stderr).toMatch(/^fs-source: hint: /m);
    const bad = join(dir, 'bad-state.json');
    await writeFile(bad, '{"sluice":"state/1","updated":"x","items":[]}');
    const malformed = await runCli(cli, [data, '--state', bad]);
    expect(malformed.code).toBe(1);
    expect(malformed.stdout).toBe('');
    expect(malformed.stderr).toContain(`fs-source: error: ${bad}: malformed checkpoint`);
  });

  it('refuses a second run on a checkpoint another run holds, and releases it at exit', async () => {
    const data = join(dir, 'shared');
    await mkdir(data);
    await writeFile(join(data, 'a.txt'), 'a\n');
    const state = join(dir, 'shared-state', 'state.json');
    const first = startCli(cli, [data, '--state', state, '--watch', '0.2']);
    await first.waitFor(({ stdout }) => stdout.includes('"a"'));
    const second = await runCli(cli, [data, '--state', state]);
    expect(second.code).toBe(1);
    expect(second.stdout).toBe('');
    expect(second.stderr).toMatch(
      new RegExp(
        `${state}: the checkpoint is in use by another run \\(process ${first.child.pid} `,
      ),
    );
    first.child.kill('SIGINT');
    expect(await first.closed).toBe(130);
    const third = await runCli(cli, [data, '--state', state]);
    expect(third.code).toBe(0);
  });

  it('with --watch, stops with an error when the checkpoint cannot be saved any more', async () => {
    const data = join(dir, 'unsaved');
    await mkdir(data);
    await writeFile(join(data, 'a.txt'), 'a\n');
    const folder = join(dir, 'unsaved-state');
    const state = join(folder, 'state.json');
    const run = startCli(cli, [data, '--state', state, '--watch', '0.2']);
    await run.waitFor(({ stdout }) => stdout.includes('"a"'));
    // The checkpoint's folder turns into a file: every save fails from now on.
    await rm(folder, { recursive: true, force: true });
    await writeFile(folder, 'in the way');
    // Over a MiB of new tasks, so that a pipe's reader surely has the first ones: due for a save.
    await writeFile(join(data, 'b.txt'), `${'b'.repeat(80)}\n`.repeat(20_000));
    expect(await run.closed).toBe(1);
    expect(run.stderr()).toMatch(
      new RegExp(
        `fs-source: error: ${state}: cannot save the checkpoint \\(ENOTDIR; 4 attempts\\)`,
      ),
    );
  }, 30_000);

  it('prints help with examples, and one-line usage errors with exit 2', async () => {
    const help = await runCli(cli, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('--include <glob>');
    const missing = await runCli(cli, [join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/fs-source: error: .*nope: no such file or folder/);
    expect(hasStackTrace(missing.stderr)).toBe(false);
    const bad = await runCli(cli, [dir, '--shard', '5/4']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--shard must be k\/n/);
    expect(bad.stderr).toMatch(/hint: /);
    const unknown = await runCli(cli, [dir, '--no-such-flag']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option/);
  });
});
