import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasStackTrace, jsonLines, TINY_PNG as PNG, runCli } from '@sluice/core/testing';
import {
  type CoreShareServer,
  coreShareClient,
  ENTERPRISE_WORKSPACE,
  type File360Server,
  startCoreShareServer,
  startFile360Server,
} from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const source = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const sink = fileURLToPath(new URL('../../file360-sink/dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(
  new URL('../../../examples/data/db-out/ner-news.jsonl', import.meta.url),
);

/** Runs a shell pipeline with the environment given, for redirections the CLIs see as files. */
function shell(
  command: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('bash', ['-c', command], { env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

/** A sink's file name without the run tag it is stored under (`review.k3v9x2qa.csv`). */
const untagged = (name: string) => name.replace(/\.[0-9a-z]{8}(?=(\.[^.]+)?$)/, '');

describe('file360 CLIs against the test kit server', () => {
  let server: File360Server;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  const password = 'cli-test-Pa55word!';
  const ids = {} as Record<'legal' | 'contracts' | 'scans' | 'exports' | 'memo', number>;
  /** A tree the tests have not seen: a workspace of nested folders, text, CSV, JSONL, an image. */
  beforeAll(async () => {
    let base: string;
    ({ server, base } = await startFile360Server());
    server.addUser('annotator', password);
    env = { FILE360_URL: base, FILE360_USERNAME: 'annotator', FILE360_PASSWORD: password };
    dir = await mkdtemp(join(tmpdir(), 'sluice-file360-cli-'));
    ids.legal = server.addFolder(ENTERPRISE_WORKSPACE, 'Legal');
    ids.memo = server.addDocument(ids.legal, 'Counsel memo.txt', 'Globex must sign by 1 March.\n');
    ids.contracts = server.addFolder(ids.legal, 'Contracts 2026');
    for (let i = 0; i < 30; i++) {
      server.addDocument(
        ids.contracts,
        `contract-${String(i).padStart(2, '0')}.txt`,
        `Agreement ${i} between Acme Ltd and Initech.\n`,
      );
    }
    const clauses = server.addFolder(ids.contracts, 'Clauses');
    server.addDocument(
      clauses,
      'clauses.csv',
      'text,label\nTermination on notice,TERM\nGoverning law,LAW\n',
    );
    server.addDocument(clauses, 'reviewed.jsonl', '{"text":"Payment in 30 days","label":"PAY"}\n');
    ids.scans = server.addFolder(ids.legal, 'Scans');
    server.addDocument(ids.scans, 'stamp.png', PNG);
    ids.exports = server.addFolder(ENTERPRISE_WORKSPACE, 'Annotation exports');
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams the tree with --recursive: documents, rows, media inline, lineage', async () => {
    const run = await runCli(
      source,
      [`file360://node/${ids.legal}`, '--recursive', '--media', 'inline', '--order', 'listing'],
      { env },
    );
    expect(run.stderr).not.toMatch(/error/i);
    expect(run.code).toBe(0);
    const tasks = jsonLines(run.stdout);
    expect(tasks).toHaveLength(1 + 30 + 2 + 1 + 1);
    expect(tasks[0]).toMatchObject({
      text: 'Globex must sign by 1 March.',
      meta: { source: `file360://node/${ids.memo}`, path: 'Counsel memo.txt' },
      sluice: { source: { version: '1' } },
    });
    const paths = tasks.map((t) => t.meta.path);
    expect(paths).toContain('Contracts 2026/Clauses/clauses.csv');
    expect(tasks.find((t) => t.label === 'LAW')?.text).toBe('Governing law');
    expect(tasks.find((t) => t.meta.path === 'Scans/stamp.png')?.image).toBe(
      `data:image/png;base64,${PNG.toString('base64')}`,
    );
  });

  it('logs in again when the ticket expires midway through a run', async () => {
    const logins = server.authCount;
    server.expireTicketsAfter(8);
    const run = await runCli(source, [`file360://node/${ids.contracts}`], { env });
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout)).toHaveLength(30);
    expect(server.authCount).toBe(logins + 2);
  });

  it('--state reruns emit only new and changed documents', async () => {
    const state = join(dir, 'state.json');
    const out = join(dir, 'first.jsonl');
    const command = (file: string) =>
      `node ${source} file360://node/${ids.contracts} --state ${state} > ${file}`;
    expect((await shell(command(out), env)).code).toBe(0);
    expect(jsonLines(await readFile(out, 'utf8'))).toHaveLength(30);
    const changed = server.find(ids.contracts, 'contract-07.txt')?.id as number;
    server.addVersion(changed, Buffer.from('Agreement 7, amended.\n'));
    server.addDocument(ids.contracts, 'contract-30.txt', 'Agreement 30.\n');
    const again = join(dir, 'again.jsonl');
    expect((await shell(command(again), env)).code).toBe(0);
    expect(
      jsonLines(await readFile(again, 'utf8'))
        .map((t) => [t.text, t.sluice.source.version])
        .sort(),
    ).toEqual([
      ['Agreement 30.', '1'],
      ['Agreement 7, amended.', '2'],
    ]);
  });

  it('fails with one line and a hint, and never shows the password', async () => {
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp, number]> = [
      [['file360://folder/12'], env, /not a File 360 URL/, 2],
      [['file360://node/99999999'], env, /file360:\/\/node\/99999999: not found/, 1],
      [
        [`file360://node/${ids.legal}`],
        { ...env, FILE360_PASSWORD: 'Wr0ng-Secret-99' },
        /credentials refused \(401\)/,
        1,
      ],
      [[`file360://node/${ids.legal}`], { ...env, FILE360_URL: '' }, /no File 360 server given/, 2],
    ];
    for (const [args, environment, message, code] of cases) {
      const run = await runCli(source, args, { env: environment });
      expect(run.code).toBe(code);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toMatch(/hint:/);
      expect(run.stderr).not.toContain('Wr0ng-Secret-99');
      expect(run.stderr).not.toContain(password);
      expect(hasStackTrace(run.stderr)).toBe(false);
      expect(run.stdout).toBe('');
    }
  });

  it('exports with the sink CLI, and a rerun of a changed export adds versions', async () => {
    const url = `file360://node/${ids.exports}/{dataset}/{date}`;
    const input = await readFile(dbOut);
    const first = await runCli(sink, [url, '--dataset', 'news', '--name', '{answer}/part-{part}'], {
      env,
      input,
    });
    expect(first.stderr).toMatch(/wrote 3 parts \(24 records\)/);
    expect(first.code).toBe(0);
    const news = server.find(ids.exports, 'news')?.id as number;
    const day = server.children(news)[0]?.id as number;
    const manifest = server.find(day, 'manifest.json');
    const keyOf = (answer: string) =>
      JSON.parse(
        server
          .node(manifest?.id as number)
          ?.versions.at(-1)
          ?.content.toString() ?? '{}',
      ).parts.find((part: { answer: string }) => part.answer === answer).key as string;
    const acceptFolder = server.find(day, 'accept')?.id as number;
    const accept = server.find(acceptFolder, keyOf('accept').split('/')[1] as string);
    expect(accept?.versions).toHaveLength(1);
    const same = await runCli(sink, [url, '--dataset', 'news', '--name', '{answer}/part-{part}'], {
      env,
      input,
    });
    expect(same.stderr).toMatch(/unchanged/);
    const lines = input.toString().split('\n').filter(Boolean);
    const edited = `${lines.map((line, i) => (i === 0 ? line.replace('Acme', 'Acme Inc') : line)).join('\n')}\n`;
    const second = await runCli(
      sink,
      [url, '--dataset', 'news', '--name', '{answer}/part-{part}', '--if-exists', 'version'],
      { env, input: edited },
    );
    expect(second.code).toBe(0);
    // The changed export went in beside the old one; manifest.json got version 2, and the
    // documents it replaced are gone.
    expect(server.node(manifest?.id as number)?.versions.map((v) => v.number)).toEqual([1, 2]);
    expect(keyOf('accept')).not.toBe(`accept/${accept?.name}`);
    expect(server.children(acceptFolder).map((n) => n.name)).toEqual([
      keyOf('accept').split('/')[1],
    ]);
    const refused = await runCli(
      sink,
      [url, '--dataset', 'news', '--name', '{answer}/part-{part}', '--if-exists', 'fail'],
      { env, input },
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds a different export/);
    const help = await runCli(sink, ['--help'], { env });
    expect(help.stdout).toMatch(
      /--if-exists <policy>\s+when the root holds a different export: version\s+\(replace\s+it: new documents, then a new version of\s+manifest.json\)/,
    );
  });

  it('round trip: a review package out, the corrected sheet back in with its hashes', async () => {
    const guide = join(dir, 'guidelines.html');
    await writeFile(guide, '<h1>NER guidelines</h1><p>Tag companies as ORG.</p>');
    const review = await runCli(
      sink,
      [
        `file360://node/${ids.exports}/review/{dataset}`,
        '--dataset',
        'news',
        '--review',
        '--guidelines',
        guide,
      ],
      { env, input: await readFile(dbOut) },
    );
    expect(review.code).toBe(0);
    const reviewFolder = server.find(server.find(ids.exports, 'review')?.id as number, 'news');
    const names = server.children(reviewFolder?.id as number).map((n) => n.name);
    expect(names.map(untagged).sort()).toEqual([
      'guidelines.html',
      'manifest.json',
      'part-00000.jsonl',
      'review.csv',
    ]);
    const named = (name: string) =>
      server.children(reviewFolder?.id as number).find((n) => untagged(n.name) === name);
    const sheet = named('review.csv');
    const csv = sheet?.versions.at(-1)?.content.toString() ?? '';
    const rows = csv.split('\n').filter(Boolean).length - 1;
    expect(rows).toBeGreaterThan(1);
    // An expert fixes the first row's label and checks the sheet in as version 2.
    server.addVersion(
      sheet?.id as number,
      Buffer.from(csv.replace(/^([^\n]*\n(?:"(?:[^"]|"")*"|[^,\n]*),)[^,\n]*/, '$1ORG')),
    );
    const back = await runCli(
      source,
      [`file360://node/${reviewFolder?.id}`, '--include', 'review.*.csv', '--order', 'listing'],
      { env },
    );
    expect(back.code).toBe(0);
    const corrected = jsonLines(back.stdout);
    expect(corrected).toHaveLength(rows);
    const reviewed = jsonLines(
      named('part-00000.jsonl')?.versions.at(-1)?.content.toString() ?? '',
    );
    expect(corrected.map((t) => [t._input_hash, t._task_hash])).toEqual(
      reviewed.map((t) => [t._input_hash, t._task_hash]),
    );
    expect(corrected[0]).toMatchObject({
      label: 'ORG',
      meta: { source: `file360://node/${sheet?.id}`, origin: reviewed[0].meta.source },
      sluice: { source: { version: '2' } },
    });
  });
});

describe('file360 CLIs against the test kit Core Share server', () => {
  let server: CoreShareServer;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    let url: string;
    ({ server, url } = await startCoreShareServer());
    const { clientId, clientSecret } = coreShareClient();
    server.otds.addClient(clientId, clientSecret);
    env = {
      FILE360_URL: url,
      FILE360_API: 'core-share',
      FILE360_OTDS_URL: url,
      FILE360_CLIENT_ID: clientId,
      FILE360_CLIENT_SECRET: clientSecret,
    };
  });
  afterAll(async () => {
    await server?.close();
  });

  it('round trip: a review package out, the corrected sheet back in with its hashes', async () => {
    const exports = server.addFolder(server.rootId, 'Annotation exports');
    const review = await runCli(
      sink,
      [`file360://node/${exports}/review/{dataset}`, '--dataset', 'news', '--review'],
      { env, input: await readFile(dbOut) },
    );
    expect(review.stderr).not.toMatch(/error/);
    expect(review.code).toBe(0);
    const folder = server.find(server.find(exports, 'review')?.id as string, 'news')?.id as string;
    expect(server.children(folder).map((n) => untagged(n.name))).toEqual([
      'manifest.json',
      'part-00000.jsonl',
      'review.csv',
    ]);
    const named = (name: string) => server.children(folder).find((n) => untagged(n.name) === name);
    const sheet = named('review.csv');
    const csv = sheet?.versions.at(-1)?.content.toString() ?? '';
    server.addVersion(
      sheet?.id as string,
      Buffer.from(csv.replace(/^([^\n]*\n(?:"(?:[^"]|"")*"|[^,\n]*),)[^,\n]*/, '$1ORG')),
    );
    const back = await runCli(
      source,
      [`file360://node/${folder}`, '--include', 'review.*.csv', '--order', 'listing'],
      { env },
    );
    expect(back.code).toBe(0);
    const corrected = jsonLines(back.stdout);
    const reviewed = jsonLines(
      named('part-00000.jsonl')?.versions.at(-1)?.content.toString() ?? '',
    );
    expect(corrected.map((t) => [t._input_hash, t._task_hash])).toEqual(
      reviewed.map((t) => [t._input_hash, t._task_hash]),
    );
    // A 19-digit id, whole, in the lineage.
    expect(corrected[0]).toMatchObject({
      label: 'ORG',
      meta: { source: `file360://node/${sheet?.id}` },
      sluice: { source: { version: '2' } },
    });
    expect(sheet?.id).toMatch(/^\d{19}$/);
  });

  it('fails with one line and a hint when OTDS refuses the client', async () => {
    const run = await runCli(source, [`file360://node/${server.rootId}`], {
      env: { ...env, FILE360_CLIENT_SECRET: 'not-the-secret-42' },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/OTDS refused the credentials/);
    expect(run.stderr).toMatch(/hint: check FILE360_CLIENT_ID/);
    expect(run.stderr).not.toContain('not-the-secret-42');
    expect(hasStackTrace(run.stderr)).toBe(false);
  });
});
