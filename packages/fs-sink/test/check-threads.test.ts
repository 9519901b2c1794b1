import { closeSync, openSync, readSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasStackTrace, runCli } from '@sluice/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The sink checks lines in worker threads, a block of about 1 MiB at a time, and keeps a
// block whose lines all go into a part as it came. Whatever the input, the export must be
// the one that reading and checking line by line in the main thread gives
// (SLUICE_CHECK_THREADS=0).
const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** An NER answer of about 1.2 KB, as db-out writes it. */
function answer(i: number): Record<string, unknown> {
  const text = `Ticket ${i}: ${'the invoice from Zürich was charged twice '.repeat(6)}`;
  return {
    text,
    _input_hash: i,
    _task_hash: -i,
    tokens: text.split(' ').map((word, id) => ({ text: word, id })),
    spans: [{ start: 0, end: 6, label: ['ORG', 'DATE', 'MONEY'][i % 3] }],
    meta: { source: `s3://raw/part-${i % 7}.jsonl`, score: (i % 10) / 10 },
    answer: ['accept', 'accept', 'reject', 'ignore'][i % 4],
    _annotator_id: `team-${i % 3}`,
    ...(i % 11 === 0 ? { flagged: true } : {}),
  };
}

const lines = (from: number, count: number) =>
  Array.from({ length: count }, (_, k) => JSON.stringify(answer(from + k)));

// About 3.5 MB, so several blocks; with every oddity a block may hold somewhere in it.
const clean = `${lines(0, 3000).join('\n')}\n`;
const inputs: Record<string, string> = {
  clean,
  'no final newline': clean.trimEnd(),
  'CRLF line endings': `${lines(0, 3000).join('\r\n')}\r\n`,
  'a byte order mark': `\ufeff${clean}`,
  'blank lines': `${lines(0, 1500).join('\n')}\n\n  \n${lines(1500, 1500).join('\n')}\n`,
  'a bad line late': `${clean}{"text": "cut off\n${lines(3000, 10).join('\n')}\n`,
  'a line that is not UTF-8': `${lines(0, 2000).join('\n')}\n{"text":"\udcff"}\n${lines(2000, 500).join('\n')}\n`,
};

describe('fs-sink line checks in worker threads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-check-threads-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The export a run makes: the manifest without what differs from run to run, and each file's text. */
  async function exported(
    input: string | Buffer | { fd: number },
    args: string[],
    threads: number,
  ) {
    const root = join(dir, `${threads}-${Math.random().toString(36).slice(2)}`);
    const run = await runCli(cli, [root, '--dataset', 'd', '--quiet', ...args], {
      ...(typeof input === 'object' && 'fd' in input ? { stdinFd: input.fd } : { input }),
      env: { SLUICE_CHECK_THREADS: String(threads) },
      timeout: 60_000,
    });
    if (run.code !== 0) return { code: run.code, stderr: run.stderr.replace(root, 'ROOT') };
    const manifest = JSON.parse(await readFile(join(root, 'manifest.json'), 'utf8'));
    const files: Record<string, string> = {};
    const entries = [...manifest.parts, manifest.rejects].filter(Boolean);
    for (const entry of entries) files[entry.name] = await readFile(join(root, entry.key), 'utf8');
    const { run: _, created: __, root: ___, ...rest } = manifest;
    const strip = (entry: { key?: string } | null) => entry && { ...entry, key: undefined };
    return {
      code: run.code,
      manifest: { ...rest, parts: rest.parts.map(strip), rejects: strip(rest.rejects) },
      files,
    };
  }

  const cases: Array<[string, string[], string]> = [];
  for (const [name, input] of Object.entries(inputs)) {
    cases.push([name, [], input]);
    cases.push([name, ['--skip-invalid'], input]);
  }
  cases.push(['clean', ['--answer', 'accept,ignore'], clean]);
  cases.push(['clean', ['--max-part-records', '777'], clean]);
  cases.push(['clean', ['--min-score', '0.3', '--flagged', '--match', 'any'], clean]);
  cases.push(['clean', ['--format', 'jsonl.gz'], clean]);
  cases.push(['clean', ['--name', '{answer}/part-{part}'], clean]);
  cases.push(['clean', ['--max-line-bytes', '1000', '--skip-invalid'], clean]);
  const longLine = `{"text":"${'x'.repeat(3_000_000)}"}`;
  cases.push([
    'a line longer than a block',
    ['--max-line-bytes', '2MB', '--skip-invalid'],
    `${lines(0, 500).join('\n')}\n${longLine}\n${lines(500, 500).join('\n')}\n`,
  ]);
  cases.push([
    'a line longer than a block',
    ['--max-line-bytes', '4MB'],
    `${lines(0, 500).join('\n')}\n${longLine}\n${lines(500, 500).join('\n')}\n`,
  ]);

  it.each(cases)(
    'exports %s with %j as the main thread alone does',
    async (_name, args, input) => {
      const alone = await exported(input, args, 0);
      const threaded = await exported(input, args, 2);
      expect(threaded).toEqual(alone);
    },
    120_000,
  );

  it('reads a file given as stdin from where its descriptor stands, as it reads a pipe', async () => {
    // `fs-sink ROOT < file` reads the file itself, in large reads; after a first line was
    // read off the same descriptor (as `(head -n 1 >/dev/null; fs-sink ROOT) < file` does),
    // it goes on from there.
    const file = join(dir, 'input.jsonl');
    await writeFile(file, clean);
    const first = clean.indexOf('\n') + 1;
    const firstBytes = Buffer.byteLength(clean.slice(0, first));
    const fd = openSync(file, 'r');
    try {
      expect(await exported({ fd }, [], 2)).toEqual(await exported(clean, [], 2));
    } finally {
      closeSync(fd);
    }
    const rest = openSync(file, 'r');
    try {
      readSync(rest, Buffer.alloc(firstBytes), 0, firstBytes, null);
      expect(await exported({ fd: rest }, [], 2)).toEqual(
        await exported(clean.slice(first), [], 2),
      );
    } finally {
      closeSync(rest);
    }
  }, 60_000);

  it('refuses a bad line with its number, whichever block it is in', async () => {
    const run = await exported(inputs['a bad line late'] as string, [], 2);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/stdin line 3001: invalid JSON/);
    // In the first block, with blocks behind it still being checked: the same one error, and
    // no crash from the checks the run no longer waits for.
    const early = await exported(`{"text": "cut off\n${clean}`, [], 2);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/^fs-sink: error: stdin line 1: invalid JSON/);
    expect(hasStackTrace(early.stderr ?? '')).toBe(false);
  }, 60_000);
});
