/**
 * A torture harness for the sinks' commit protocol: the built fs-sink and s3-sink CLIs, run as
 * users run them, killed with SIGKILL at random moments (with and without an export already
 * at the root), on a full disk (a small tmpfs where this process may mount one, else ENOSPC
 * injected into the CLI's file copies), and as two or three writers on one root at once (with
 * and without `--if-exists fail`). After each run and after the next successful run it reads
 * the root as a reader would and counts:
 * - roots with no readable export where one must be (an export was there before, or a run
 *   that exited 0 wrote one);
 * - manifests whose files do not hold the bytes their sha256 says, or are missing;
 * - previous exports lost (neither the previous nor a complete new export is readable);
 * - leftovers after the next successful run: files under the root the manifest does not list
 *   (parts, run markers, temporary files, locks), staging folders in TMPDIR, and on S3 servers
 *   that list them, multipart uploads under the root.
 * All four must be zero. `npm run torture` runs it for minutes; the test suite runs a short one.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { type S3Server, startS3 } from './s3.js';

export type TortureStore = 'fs' | 'moto' | 's3rver';

export interface TortureOptions {
  stores: TortureStore[];
  /** Runs of each kill scenario (fresh root, and replacing an export), per store. */
  kills: number;
  /** Runs of each writer configuration (2 and 3 writers, with and without --if-exists fail and an export), per store. */
  writers: number;
  /** Runs of the full-disk scenario, per store. */
  disks: number;
  /** How many writers run at once in the writer scenarios (default 2 and 3). */
  writerCounts?: number[];
  /** Input lines of an export (default 6000, about 2 MB in 30 parts). */
  lines?: number;
  /** Seeds the kill moments and starts (default 19). */
  seed?: number;
  /** Receives a line per run. */
  log?: (line: string) => void;
}

/** Figures of one scenario on one store. */
export interface TortureFigures {
  scenario: string;
  store: TortureStore;
  runs: number;
  /** Roots with no readable export where one must be. */
  unreadable: number;
  /** Manifests whose files are missing or hold other bytes than their sha256 says. */
  mismatched: number;
  /** Previous exports neither kept nor replaced by a complete one. */
  lost: number;
  /** Runs after whose next successful run something was left over. */
  leftovers: number;
  /** Writer runs where not exactly one writer won (none with --if-exists fail and an export there). */
  wrongWinners?: number;
  /** Failed runs whose error was not one line with a hint (or came with a stack trace). */
  badErrors?: number;
  /** The store does not give the guarantee this scenario tests (s3rver ignores conditional writes). */
  unguaranteed?: boolean;
  /** Other observations: winners among writers, error lines, what was left over. */
  notes: string[];
}

const here = fileURLToPath(new URL('.', import.meta.url));

const figureOf = (scenario: string, store: TortureStore): TortureFigures => ({
  scenario,
  store,
  runs: 0,
  unreadable: 0,
  mismatched: 0,
  lost: 0,
  leftovers: 0,
  notes: [],
});
const CLIS: Record<'fs' | 's3', string> = {
  fs: join(here, '../../fs-sink/dist/cli.js'),
  s3: join(here, '../../s3-sink/dist/cli.js'),
};
const PART_RECORDS = 200;
/** Long enough for a CLI to start and read its root before its input flows. */
const STARTUP_MS = 1500;
const BUCKET = 'torture';

/** A deterministic random source (mulberry32), so a run can be repeated. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Target {
  name: TortureStore;
  cli: string;
  env: NodeJS.ProcessEnv;
  url(root: string): string;
  /** Keys under the root, relative to it. */
  list(root: string): Promise<string[]>;
  get(root: string, key: string): Promise<Buffer | undefined>;
  /** Multipart uploads left open under the root (0 where the server cannot list them). */
  uploads(root: string): Promise<number>;
  /** A folder for fs roots (to mount a small disk on), else undefined. */
  folder?(root: string): string;
  close(): Promise<void>;
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile() || entry.isSymbolicLink())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'))
    .sort();
}

async function fsTarget(work: string): Promise<Target> {
  const base = join(work, 'fs');
  await mkdir(base, { recursive: true });
  return {
    name: 'fs',
    cli: CLIS.fs,
    env: {},
    url: (root) => join(base, root),
    folder: (root) => join(base, root),
    list: (root) => listFiles(join(base, root)),
    get: (root, key) => readFile(join(base, root, ...key.split('/'))).catch(() => undefined),
    uploads: async () => 0,
    close: async () => {},
  };
}

async function s3Target(name: 'moto' | 's3rver'): Promise<Target> {
  const server: S3Server = await startS3(name);
  const client = new S3Client(server.clientConfig);
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const { accessKeyId, secretAccessKey } = server.clientConfig.credentials;
  return {
    name,
    cli: CLIS.s3,
    env: {
      AWS_ENDPOINT_URL_S3: server.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...(name === 's3rver'
        ? {
            AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
            AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
          }
        : {}),
    },
    url: (root) => `s3://${BUCKET}/${root}/`,
    async list(root) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({
            Bucket: BUCKET,
            Prefix: `${root}/`,
            ContinuationToken: token,
          }),
        );
        for (const object of page.Contents ?? []) {
          keys.push((object.Key as string).slice(root.length + 1));
        }
        token = page.NextContinuationToken;
      } while (token);
      return keys.sort();
    },
    async get(root, key) {
      try {
        const answer = await client.send(
          new GetObjectCommand({ Bucket: BUCKET, Key: `${root}/${key}` }),
        );
        return Buffer.from(
          await (
            answer.Body as { transformToByteArray(): Promise<Uint8Array> }
          ).transformToByteArray(),
        );
      } catch {
        return undefined;
      }
    },
    async uploads(root) {
      if (name === 's3rver') return 0; // s3rver lacks ListMultipartUploads
      const page = await client.send(
        new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${root}/` }),
      );
      return page.Uploads?.length ?? 0;
    },
    async close() {
      client.destroy();
      await server.stop();
    },
  };
}

/** Writes an input file of `lines` Prodigy answers; `variant` makes exports differ. */
async function input(dir: string, variant: string, lines: number): Promise<string> {
  const path = join(dir, `input-${variant}-${lines}.jsonl`);
  const answers = ['accept', 'reject', 'ignore'];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    out.push(
      JSON.stringify({
        text: `${variant} ${i}: the invoice was charged twice and the customer asks for a refund of the second charge.`,
        label: ['BILLING', 'BUG', 'ACCOUNT'][i % 3],
        answer: answers[i % 3],
        _input_hash: i,
        _task_hash: -i,
        meta: { source: `s3://raw/${variant}.jsonl`, line: i + 1 },
      }),
    );
  }
  await writeFile(path, `${out.join('\n')}\n`);
  return path;
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Starts a sink CLI with a file as stdin; with `gate`, the file is piped in only once the gate
 * opens, so that writers started together have all read the root before any of them commits.
 */
function start(
  target: Target,
  args: string[],
  file: string,
  env: NodeJS.ProcessEnv,
  gate?: Promise<void>,
): { child: ChildProcess; done: Promise<Finished> } {
  const fd = gate ? undefined : openSync(file, 'r');
  const child = spawn(process.execPath, [target.cli, ...args], {
    env: { ...process.env, ...target.env, ...env },
    stdio: [fd ?? 'pipe', 'ignore', 'pipe'],
  });
  if (fd !== undefined) closeSync(fd);
  else {
    child.stdin?.on('error', () => {});
    void gate?.then(() => createReadStream(file).pipe(child.stdin as NodeJS.WritableStream));
  }
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<Finished>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, done };
}

interface Inspection {
  state: 'none' | 'ok' | 'mismatch';
  run?: string;
  records?: number;
  /** Keys under the root that the manifest does not account for. */
  extra: string[];
}

/** Reads the export at a root as a reader would. */
async function inspect(target: Target, root: string): Promise<Inspection> {
  const listed = await target.list(root);
  const body = await target.get(root, 'manifest.json');
  if (!body) return { state: 'none', extra: listed };
  let manifest: {
    run?: string;
    counts?: { records?: number };
    parts?: Array<{ key: string; sha256: string }>;
    rejects?: { key: string; sha256: string } | null;
  };
  try {
    manifest = JSON.parse(body.toString('utf8'));
  } catch {
    return { state: 'mismatch', extra: listed };
  }
  const files = [...(manifest.parts ?? []), ...(manifest.rejects ? [manifest.rejects] : [])];
  let state: Inspection['state'] = 'ok';
  for (const file of files) {
    const bytes = await target.get(root, file.key);
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== file.sha256) {
      state = 'mismatch';
    }
  }
  const known = new Set(['manifest.json', ...files.map((file) => file.key)]);
  return {
    state,
    run: manifest.run,
    records: manifest.counts?.records,
    extra: listed.filter((key) => !known.has(key)),
  };
}

/** Whether this process may mount a small tmpfs, to fill a disk for real. */
function canMount(work: string): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = join(work, 'mount-probe');
  spawnSync('mkdir', ['-p', probe]);
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (ok) spawnSync('umount', [probe]);
  return ok;
}

/** A preload that makes the CLI's file copies under `SLUICE_TORTURE_FULL` fail with ENOSPC after a few. */
const ENOSPC_PRELOAD = `import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const under = process.env.SLUICE_TORTURE_FULL;
let left = Number(process.env.SLUICE_TORTURE_FREE_FILES ?? '3');
const copy = fs.promises.copyFile;
fs.promises.copyFile = async (from, to, mode) => {
  if (under && String(to).startsWith(under) && left-- <= 0) {
    const error = new Error("ENOSPC: no space left on device, copyfile '" + from + "' -> '" + to + "'");
    Object.assign(error, { code: 'ENOSPC', errno: -28, syscall: 'copyfile', path: String(from), dest: String(to) });
    throw error;
  }
  return copy(from, to, mode);
};
syncBuiltinESMExports();
`;

/** Runs the scenarios and returns their figures. */
export async function torture(options: TortureOptions): Promise<TortureFigures[]> {
  const lines = options.lines ?? 6000;
  const rand = random(options.seed ?? 19);
  const log = options.log ?? (() => {});
  const work = await mkdtemp(join(tmpdir(), 'sluice-torture-'));
  const staging = join(work, 'tmp');
  await mkdir(staging);
  const mountable = canMount(work);
  const preload = join(work, 'enospc.mjs');
  await writeFile(preload, ENOSPC_PRELOAD);
  const figures: TortureFigures[] = [];
  const files = {
    a: await input(work, 'a', Math.max(200, Math.floor(lines / 4))),
    b: await input(work, 'b', lines),
    c: await input(work, 'c', Math.floor(lines * 0.9)),
    d: await input(work, 'd', Math.floor(lines * 0.8)),
  };
  const args = (target: Target, root: string, extra: string[] = []) => [
    target.url(root),
    '--max-part-records',
    String(PART_RECORDS),
    '--quiet',
    ...extra,
  ];
  const env = { TMPDIR: staging };
  let roots = 0;
  try {
    for (const name of options.stores) {
      const target = name === 'fs' ? await fsTarget(work) : await s3Target(name);
      try {
        const run = (root: string, file: string, extra: string[] = [], more = {}) =>
          start(target, args(target, root, extra), file, { ...env, ...more }).done;
        /**
         * The next successful run, as a user would start it after a failure: the export must be
         * readable and whole, and nothing may be left over (under the root, in TMPDIR, uploads).
         */
        const recover = async (root: string, figure: TortureFigures) => {
          const next = await run(root, files.b);
          const final = await inspect(target, root);
          if (next.code !== 0 || final.state !== 'ok') figure.unreadable++;
          if (final.state === 'mismatch') figure.mismatched++;
          const stagingLeft = (await readdir(staging)).filter((n) => n.startsWith('sluice-sink-'));
          const uploads = await target.uploads(root);
          const left = [
            ...final.extra,
            ...stagingLeft.map((n) => `$TMPDIR/${n}`),
            ...(uploads ? [`${uploads} multipart uploads`] : []),
          ];
          if (left.length) {
            figure.leftovers++;
            figure.notes.push(
              `left: ${left.join(', ')}${next.stderr ? ` (next run: ${next.stderr.trim()})` : ''}`,
            );
          }
          return { next, final, left };
        };
        // How long one export takes here (the median of three): kills land across it.
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
          const t0 = Date.now();
          const reference = await run(`ref-${roots++}`, files.b);
          if (reference.code !== 0) throw new Error(`reference run failed: ${reference.stderr}`);
          times.push(Date.now() - t0);
        }
        const duration = times.sort((x, y) => x - y)[1] as number;
        log(`${name}: one export of ${lines} lines takes ${duration} ms`);

        for (const previous of [false, true]) {
          const figure = figureOf(
            previous ? 'kill -9, replacing an export' : 'kill -9, new root',
            name,
          );
          let committed = 0;
          let cut = 0;
          let publishing = 0;
          for (let i = 0; i < options.kills; i++) {
            const root = `kill-${roots++}`;
            if (previous && (await run(root, files.a)).code !== 0)
              throw new Error('set-up run failed');
            const before = previous ? await inspect(target, root) : undefined;
            const running = start(target, args(target, root), files.b, env);
            // Half the kills anywhere in the run, half in its last part, where it publishes.
            const at = rand() < 0.5 ? 0.05 + rand() * 0.9 : 0.6 + rand() * 0.5;
            await sleep(duration * at);
            running.child.kill('SIGKILL');
            const killed = await running.done;
            figure.runs++;
            if (killed.signal === 'SIGKILL') cut++;
            const after = await inspect(target, root);
            if (after.state === 'mismatch') figure.mismatched++;
            if (previous && after.state !== 'ok') figure.lost++;
            if (previous && after.state === 'none') figure.unreadable++;
            const replaced = after.state === 'ok' && after.run !== before?.run;
            if (replaced && killed.signal === 'SIGKILL') committed++;
            else if (after.extra.some((key) => key.startsWith('.sluice-run.'))) publishing++;
            const { next, final, left } = await recover(root, figure);
            log(
              `${name} ${figure.scenario} #${i + 1}: killed ${killed.signal ?? killed.code}, then ${after.state}; next run ${next.code}, ${final.state}${left.length ? `, left ${left.length}` : ''}`,
            );
          }
          figure.notes.unshift(
            `${cut} of ${figure.runs} killed while running: ${publishing} while publishing (a run marker was there), ${committed} after their commit`,
          );
          figures.push(figure);
        }

        for (const writers of options.writerCounts ?? [2, 3]) {
          for (const fail of [false, true]) {
            for (const previous of [false, true]) {
              const figure = figureOf(
                `${writers} writers${fail ? ', --if-exists fail' : ''}, ${previous ? 'replacing an export' : 'new root'}`,
                name,
              );
              // s3rver takes If-None-Match and If-Match and ignores them: shown, not counted.
              figure.unguaranteed = name === 's3rver';
              let expected = 0;
              let oneLine = 0;
              for (let i = 0; i < options.writers; i++) {
                const root = `writers-${roots++}`;
                if (previous && (await run(root, files.a)).code !== 0)
                  throw new Error('set-up run failed');
                const inputs = [files.b, files.c, files.d].slice(0, writers);
                // Stdin flows once every writer has started and read the root: they overlap.
                const gate = sleep(STARTUP_MS);
                const finished = await Promise.all(
                  inputs.map(
                    (file) =>
                      start(
                        target,
                        args(target, root, fail ? ['--if-exists', 'fail'] : []),
                        file,
                        env,
                        gate.then(() => sleep(rand() * 20)),
                      ).done,
                  ),
                );
                figure.runs++;
                const winners = finished.filter((f) => f.code === 0).length;
                // With --if-exists fail and an export there, all refuse; otherwise one wins.
                if (winners === (fail && previous ? 0 : 1)) expected++;
                else figure.wrongWinners = (figure.wrongWinners ?? 0) + 1;
                const losers = finished.filter((f) => f.code !== 0);
                if (
                  losers.every(
                    (f) =>
                      f.code === 1 &&
                      /^s3-sink: error: |^fs-sink: error: /.test(f.stderr) &&
                      /(another run committed an export here|already holds a different export)/.test(
                        f.stderr,
                      ) &&
                      /\n(fs|s3)-sink: hint: /.test(f.stderr) &&
                      !/\n\s+at /.test(f.stderr),
                  )
                ) {
                  oneLine++;
                } else {
                  figure.badErrors = (figure.badErrors ?? 0) + 1;
                  figure.notes.push(
                    `loser said: ${losers.map((f) => f.stderr.trim()).join(' / ')}`,
                  );
                }
                const after = await inspect(target, root);
                if (after.state === 'mismatch') figure.mismatched++;
                if (after.state === 'none' && (previous || winners > 0)) figure.unreadable++;
                if (previous && after.state !== 'ok') figure.lost++;
                const { next, final, left } = await recover(root, figure);
                log(
                  `${name} ${figure.scenario} #${i + 1}: exits ${finished.map((f) => f.code).join(' ')}, ${after.state}; next run ${next.code}, ${final.state}${left.length ? `, left ${left.length}` : ''}`,
                );
              }
              figure.notes.unshift(
                `winners as expected in ${expected} of ${figure.runs}; losers' errors one line with a hint in ${oneLine} of ${figure.runs}`,
              );
              figures.push(figure);
            }
          }
        }

        const figure = figureOf(
          name === 'fs'
            ? 'full disk, replacing an export'
            : 'full staging disk, replacing an export',
          name,
        );
        let hinted = 0;
        const real = mountable;
        // Room for the first export and half of the second, so the second fills the disk.
        const room = (await stat(files.a)).size + (await stat(files.b)).size / 2;
        const size = `${Math.ceil(room / 4096) * 4 + 64}k`;
        for (let i = 0; i < options.disks && (real || name === 'fs'); i++) {
          const root = `disk-${roots++}`;
          const small = join(work, `small-${roots}`);
          // fs: the export root sits on the small disk; S3: the staging folder (TMPDIR) does.
          const mount = name === 'fs' ? (target.folder?.(root) as string) : small;
          await mkdir(mount, { recursive: true });
          let faults: NodeJS.ProcessEnv = {};
          if (real) {
            spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mount]);
          } else {
            faults = {
              NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`,
              SLUICE_TORTURE_FULL: mount,
            };
          }
          try {
            const setUp = await run(root, files.a);
            if (setUp.code !== 0) throw new Error(`set-up run failed: ${setUp.stderr}`);
            const before = await inspect(target, root);
            const full = await run(root, files.b, [], {
              ...faults,
              ...(name === 'fs' ? {} : { TMPDIR: mount }),
            });
            figure.runs++;
            const stderr = full.stderr.trim().split('\n');
            if (
              full.code === 1 &&
              stderr.length === 2 &&
              /no space left on the device/.test(stderr[0] ?? '') &&
              /hint: /.test(stderr[1] ?? '')
            ) {
              hinted++;
            } else {
              figure.badErrors = (figure.badErrors ?? 0) + 1;
              figure.notes.push(`exit ${full.code}: ${full.stderr.trim()}`);
            }
            const after = await inspect(target, root);
            if (after.state !== 'ok' || after.run !== before.run) figure.lost++;
            if (after.state === 'none') figure.unreadable++;
            if (after.state === 'mismatch') figure.mismatched++;
            if (real) spawnSync('mount', ['-o', 'remount,size=64m', mount]);
            const { next, final, left } = await recover(root, figure);
            log(
              `${name} ${figure.scenario} #${i + 1}: exit ${full.code}, previous ${after.state}; next run ${next.code}, ${final.state}${left.length ? `, left ${left.length}` : ''}`,
            );
          } finally {
            if (real) spawnSync('umount', ['-l', mount]);
          }
        }
        if (figure.runs > 0) {
          figure.notes.unshift(
            `${real ? `a tmpfs of ${size}B` : 'ENOSPC injected into file copies'}; one line with a hint in ${hinted} of ${figure.runs}`,
          );
          figures.push(figure);
        }
      } finally {
        await target.close();
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return figures;
}

/** The figures as a table, one scenario per line. */
export function tortureTable(figures: TortureFigures[]): string {
  const head = [
    'scenario',
    'store',
    'runs',
    'no readable export',
    'manifest ≠ parts',
    'previous lost',
    'leftovers',
  ];
  const rows = figures.map((f) => [
    f.unguaranteed ? `${f.scenario} (not guaranteed)` : f.scenario,
    f.store,
    String(f.runs),
    String(f.unreadable),
    String(f.mismatched),
    String(f.lost),
    String(f.leftovers),
  ]);
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] as string).length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [
    line(head),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

/** Whether the figures hold the guarantee: all four counts zero wherever the store gives it. */
export function torturePassed(figures: TortureFigures[]): boolean {
  return figures.every(
    (f) =>
      f.unguaranteed ||
      f.unreadable +
        f.mismatched +
        f.lost +
        f.leftovers +
        (f.wrongWinners ?? 0) +
        (f.badErrors ?? 0) ===
        0,
  );
}
