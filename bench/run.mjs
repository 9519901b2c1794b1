#!/usr/bin/env node
// Sluice against its peers, side by side in one run: `npm run bench` (or `-- --quick`).
// Starts the local S3 servers itself (the test kit's stub, s3rver, moto_server), seeds them,
// runs every scenario with the contenders alternating, and writes the results table with the
// machine's description into bench/README.md (and bench/results.json). See bench/README.md.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alternate, fsFolder, machine, measure, nerFile, textTasksFile, version } from './lib.mjs';
import { annotate, latencyProxy, percentile } from './media.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..');
const quick = process.argv.includes('--quick');
const listArg = (name) =>
  process.argv
    .find((a) => a.startsWith(`--${name}=`))
    ?.slice(name.length + 3)
    .split(',');
const only = listArg('only');
const chosenServers = listArg('servers');
const CLI = {
  source: join(root, 'packages/s3-source/dist/cli.js'),
  sink: join(root, 'packages/s3-sink/dist/cli.js'),
  fs: join(root, 'packages/fs-source/dist/cli.js'),
  serve: join(root, 'packages/testkit/dist/serve.js'),
};
const SDK_LOOP = join(here, 'sdk-loop.mjs');
const BARE_LOOP = join(here, 'bare-loop.mjs');
const CONCURRENCY = 16;
/** Rounds of the one-file CPU scenarios (convert, loader): a few seconds each, and the noisiest. */
const CPU_ROUNDS = 7;

// Sizes: the figures, or a run of about six minutes with --quick.
const P = quick
  ? {
      rounds: 3,
      small: 1_000,
      big: 20e6,
      servers: ['stub', 's3rver'],
      rss: [10_000, 30_000],
      sinkMB: 50,
      codecMB: 10,
      images: 40,
      tasks: 400_000,
    }
  : {
      rounds: 3,
      small: 10_000,
      big: 200e6,
      servers: ['stub', 's3rver', 'moto'],
      rss: [10_000, 100_000, 1_000_000],
      sinkMB: 500,
      codecMB: 100,
      images: 200,
      tasks: 400_000,
    };

for (const path of Object.values(CLI)) {
  try {
    statSync(path);
  } catch {
    console.error(
      `bench: ${path} is missing: build first (npx --yes pnpm@10.34.9 install && npx --yes pnpm@10.34.9 build)`,
    );
    process.exit(1);
  }
}

const log = (line) => console.error(`bench: ${line}`);
const work = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// --- peers ------------------------------------------------------------------------------

function ensureRclone() {
  if (version('rclone', ['version'])) return true;
  if (process.getuid?.() === 0 && version('apt-get', ['--version'])) {
    log('installing rclone from Debian (apt-get install rclone) ...');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    spawnSync('apt-get', ['install', '-y', '-qq', 'rclone'], { stdio: 'ignore' });
  }
  if (version('rclone', ['version'])) return true;
  log('rclone is missing and could not be installed: its columns are left out');
  return false;
}
const peers = { rclone: ensureRclone(), aws: Boolean(version('aws')) };
if (!peers.aws) log('the AWS CLI is missing (pip install awscli): its columns are left out');
// moto_server has no --version: look for it on the PATH, as the test kit does.
const hasMoto = (process.env.PATH ?? '')
  .split(delimiter)
  .some((dir) => dir !== '' && existsSync(join(dir, 'moto_server')));
if (!hasMoto) log('moto_server is missing: its rows are left out');
const servers = P.servers.filter(
  (s) => (s !== 'moto' || hasMoto) && (!chosenServers || chosenServers.includes(s)),
);

// --- servers ----------------------------------------------------------------------------

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a test-kit server in its own process (`testkit serve <store> ...args`) and resolves
 * once it serves, with the environment it prints (`export K=V ...` lines) and the URLs of its
 * generated buckets (`generated ... at <url>` lines), by name.
 */
async function startTestkit(store, args) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [CLI.serve, 'serve', store, '--port', String(port), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  await new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      reject(new Error(`testkit serve ${store} exited with ${code}: ${out}`)),
    );
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('Press Ctrl-C to stop.')) resolve();
    });
  });
  child.removeAllListeners('exit');
  child.stdout.resume();
  const lines = out.split('\n').map((line) => line.trim());
  const env = Object.fromEntries(
    lines
      .filter((line) => line.startsWith('export '))
      .flatMap((line) => line.slice(7).split(' '))
      .map((kv) => kv.split(/=(.*)/s).slice(0, 2)),
  );
  const generated = Object.fromEntries(
    lines
      .map((line) => /^generated (\S+): \d+ items of \d+ bytes at (\S+)$/.exec(line)?.slice(1))
      .filter(Boolean),
  );
  const stop = () =>
    new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGTERM');
    });
  process.on('exit', () => child.kill('SIGKILL'));
  return { env, generated, stop };
}

/**
 * Starts a test-kit S3 server in its own process with an empty `bucket` and the generated
 * buckets (held in memory by the stub, uploaded to the others); resolves with its environment.
 */
async function startServer(kind, generate, bucket) {
  const { env, stop } = await startTestkit('s3', [
    '--server',
    kind,
    '--bucket',
    bucket,
    ...generate.flatMap((g) => ['--generate', g]),
  ]);
  return { kind, env, endpoint: env.AWS_ENDPOINT_URL_S3, stop };
}

// --- contenders ---------------------------------------------------------------------------

function rcloneEnv(server) {
  const env = {
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
    RCLONE_CONFIG: join(work, 'rclone.conf'),
  };
  return env;
}

function awsConfig(concurrency) {
  const path = join(work, `aws-${concurrency}.ini`);
  writeFileSync(
    path,
    `[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = ${concurrency}\n`,
  );
  return path;
}

/** Environment for one contender against one server; rclone fails to load a CA bundle if AWS_CA_BUNDLE is set. */
function envFor(server, extra = {}) {
  return { ...server.env, AWS_CA_BUNDLE: '', ...extra };
}

function countFiles(dir) {
  let n = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile()) n++;
  return n;
}

/** The four ways to fetch `s3://bucket/data/` to nowhere (or to a scratch folder), checked. */
/** `pipe`: Sluice writes into a pipe that the harness drains, as `s3-source | prodigy ...` does. */
function sourceContenders(server, bucket, expectedObjects, { pipe = false } = {}) {
  const dir = join(work, 'copy');
  const check = (name, got) => {
    if (got !== expectedObjects)
      throw new Error(`${name} fetched ${got} objects from ${bucket}, expected ${expectedObjects}`);
  };
  const contenders = {
    async sluice() {
      const r = await measure(
        'node',
        [
          CLI.source,
          `s3://${bucket}/data/`,
          '--concurrency',
          String(CONCURRENCY),
          '--json-summary',
        ],
        { env: envFor(server), firstByte: pipe },
      );
      const summary = JSON.parse(r.stderr.trim().split('\n').pop());
      check('s3-source', summary.items);
      return { ...r, tasks: summary.tasks };
    },
    async sdk() {
      const r = await measure('node', [SDK_LOOP, `s3://${bucket}/data/`, String(CONCURRENCY)], {
        env: envFor(server),
      });
      check('sdk loop', JSON.parse(r.stderr.trim().split('\n').pop()).objects);
      return r;
    },
  };
  if (peers.rclone) {
    contenders.rclone = async () => {
      const r = await measure(
        'rclone',
        [
          'copy',
          `bench:${bucket}/data`,
          dir,
          '--transfers',
          String(CONCURRENCY),
          '--checkers',
          String(CONCURRENCY),
        ],
        {
          env: { ...envFor(server), ...rcloneEnv(server) },
        },
      );
      check('rclone', countFiles(dir));
      return r;
    };
  }
  if (peers.aws) {
    contenders.aws = async () => {
      const r = await measure(
        'aws',
        [
          's3',
          'cp',
          `s3://${bucket}/data/`,
          dir,
          '--recursive',
          '--quiet',
          '--endpoint-url',
          server.endpoint,
        ],
        {
          env: envFor(server, { AWS_CONFIG_FILE: awsConfig(CONCURRENCY) }),
        },
      );
      check('aws s3 cp', countFiles(dir));
      return r;
    };
  }
  const before = () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  };
  return { contenders, before };
}

// --- scenarios ------------------------------------------------------------------------------

const results = {
  machine: machine(),
  quick,
  concurrency: CONCURRENCY,
  rounds: P.rounds,
  scenarios: {},
};
const want = (name) => !only || only.includes(name);

async function withServer(kind, generate, fn, bucket = 'bench') {
  if (kind !== 'stub' && generate.length) log(`seeding ${kind} with ${generate.join(', ')} ...`);
  const server = await startServer(kind, generate, bucket);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

if (want('small')) {
  const rows = [];
  for (const kind of servers) {
    for (const ext of ['jsonl', 'txt']) {
      const bucket = `small-${ext}`;
      await withServer(kind, [`${bucket}:${P.small}:2048:${ext}`], async (server) => {
        const { contenders, before } = sourceContenders(server, bucket, P.small);
        const medians = await alternate(`small ${kind} ${ext}`, contenders, P.rounds, { before });
        rows.push({ server: kind, ext, objects: P.small, medians });
      });
    }
  }
  results.scenarios.small = rows;
}

if (want('big')) {
  const rows = [];
  for (const kind of servers) {
    await withServer(kind, [`big:1:${P.big}:jsonl`], async (server) => {
      const { contenders, before } = sourceContenders(server, 'big', 1);
      const medians = await alternate(`big ${kind}`, contenders, P.rounds, { before });
      rows.push({ server: kind, bytes: P.big, medians });
    });
  }
  results.scenarios.big = rows;
}

if (want('first')) {
  // Every connector on its test server (fs on a local folder), a bucket (folder, space) of
  // 1,000 and one of 100,000 generated items each, five alternating runs of each size.
  const sizes = [1_000, 100_000];
  const ITEM_BYTES = 512;
  const stores = {
    fs: { store: undefined, name: (n) => `first${n}` },
    s3: { store: 's3', args: ['--server', 'stub'], name: (n) => `first${n}` },
    gcs: { store: 'gcs', name: (n) => `first${n}` },
    gdrive: { store: 'gdrive', name: (n) => `first${n}` },
    confluence: { store: 'confluence', name: (n) => `FIRST${n}` },
    file360: { store: 'file360', name: (n) => `first${n}` },
  };
  const rows = {};
  for (const [connector, spec] of Object.entries(stores)) {
    if (chosenServers && !chosenServers.includes(connector)) continue;
    let server;
    let urls;
    if (spec.store === undefined) {
      urls = Object.fromEntries(
        await Promise.all(sizes.map(async (n) => [spec.name(n), await fsFolder(n, ITEM_BYTES)])),
      );
    } else {
      log(`generating ${sizes.join(' and ')} items on the ${connector} test server ...`);
      server = await startTestkit(spec.store, [
        ...(spec.args ?? []),
        ...sizes.map((n) => `--generate=${spec.name(n)}:${n}:${ITEM_BYTES}:jsonl`),
      ]);
      urls = server.generated;
    }
    try {
      const cli = join(root, `packages/${connector}-source/dist/cli.js`);
      const contenders = Object.fromEntries(
        sizes.map((n) => [
          `${n} items`,
          () =>
            measure('node', [cli, urls[spec.name(n)], '--quiet'], {
              env: { ...server?.env, AWS_CA_BUNDLE: '' },
              firstByte: true,
              stopAfterFirstByte: true,
            }).then((r) => ({ ...r, seconds: r.firstByte })),
        ]),
      );
      rows[connector] = await alternate(`first task ${connector}`, contenders, 5);
    } finally {
      await server?.stop();
    }
  }
  results.scenarios.first = rows;
}

if (want('rss')) {
  const rows = [];
  for (const keys of P.rss) {
    await withServer('stub', [`rss:${keys}:64:txt`], async (server) => {
      const { contenders } = sourceContenders(server, 'rss', keys, { pipe: true });
      // The SDK loop takes about twice Sluice's time: a peer up to 100,000 keys only (1,000,000 would add half an hour).
      const peers = keys <= 100_000 ? { sdk: contenders.sdk } : {};
      const medians = await alternate(`rss ${keys}`, { sluice: contenders.sluice, ...peers }, 1);
      rows.push({ keys, medians });
    });
  }
  results.scenarios.rss = rows;
}

if (want('sink') && peers.aws) {
  const file = await nerFile(P.sinkMB * 1e6);
  const bytes = statSync(file).size;
  const rows = [];
  for (const kind of servers) {
    await withServer(
      kind,
      [],
      async (server) => {
        let run = 0;
        const contenders = {
          sluice: () =>
            measure(
              'sh',
              [
                '-c',
                `exec node "$0" "s3://sink/sluice/$1/" --dataset bench --quiet < "$2"`,
                CLI.sink,
                String(run++),
                file,
              ],
              {
                env: envFor(server),
              },
            ),
          aws: () =>
            measure(
              'aws',
              [
                's3',
                'cp',
                file,
                `s3://sink/aws/${run++}/bench.jsonl`,
                '--quiet',
                '--endpoint-url',
                server.endpoint,
              ],
              {
                env: envFor(server, { AWS_CONFIG_FILE: awsConfig(4) }),
              },
            ),
        };
        const medians = await alternate(`sink ${kind}`, contenders, P.rounds);
        rows.push({ server: kind, bytes, medians });
      },
      'sink',
    );
  }
  results.scenarios.sink = rows;
}

if (want('codec')) {
  const codec = spawnSync(process.execPath, [join(here, 'codec.mjs'), '--json'], {
    env: { ...process.env, BENCH_MB: String(P.codecMB), BENCH_ROUNDS: String(quick ? 3 : 5) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (codec.status !== 0) throw new Error('codec benchmark failed');
  results.scenarios.codec = JSON.parse(codec.stdout);
}

if (want('convert')) {
  const file = await textTasksFile(P.tasks);
  const tasks = (r, name) => {
    const count = JSON.parse(r.stderr.trim().split('\n').pop()).tasks;
    if (count !== P.tasks) throw new Error(`${name} wrote ${count} tasks, expected ${P.tasks}`);
    return r;
  };
  const medians = await alternate(
    'convert',
    {
      sluice: async () =>
        tasks(await measure('node', [CLI.fs, file, '--quiet', '--json-summary']), 'fs-source'),
      bare: async () => tasks(await measure('node', [BARE_LOOP, file]), 'bare loop'),
    },
    CPU_ROUNDS,
  );
  results.scenarios.convert = {
    tasks: P.tasks,
    bytes: statSync(file).size,
    rounds: CPU_ROUNDS,
    medians,
  };
}

if (want('loader') && version('python3')) {
  // The same tasks (fs-source over the conversion file) read by Python both ways.
  const file = await textTasksFile(P.tasks);
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(CLI.fs, join(bin, 'fs-source'));
  const python = (args, extra) =>
    measure('python3', [join(here, 'loader.py'), ...args], {
      env: { PYTHONPATH: join(root, 'recipes'), SLUICE_BIN_DIR: bin, ...extra },
    });
  const tasks = (r, name) => {
    const count = JSON.parse(r.stderr.trim().split('\n').pop()).tasks;
    if (count !== P.tasks) throw new Error(`${name} read ${count} tasks, expected ${P.tasks}`);
    return r;
  };
  const medians = await alternate(
    'loader',
    {
      pipe: async () =>
        tasks(
          await measure('sh', [
            '-c',
            `node "$0" "$1" --quiet | exec python3 "$2" pipe`,
            CLI.fs,
            file,
            join(here, 'loader.py'),
          ]),
          'pipe',
        ),
      loader: async () => tasks(await python(['loader', file]), 'loader'),
    },
    CPU_ROUNDS,
  );
  results.scenarios.loader = { tasks: P.tasks, rounds: CPU_ROUNDS, medians };
}

if (want('media')) {
  // A cloud store seen from a laptop, a typical photo, and a brisk annotator.
  const latencyMs = 50;
  const size = 100_000;
  const thinkMs = 100;
  await withServer('stub', [`media:${P.images}:${size}:png`], async (server) => {
    const store = await latencyProxy(server.endpoint, latencyMs);
    const keyFile = join(work, 'media.key');
    const waits = { prefetch: [], proxy: [], direct: [] };
    const run = (name, flags) => async () => {
      const args = [
        `s3://media/data/`,
        '--quiet',
        '--media-port',
        String(await freePort()),
        '--media-key-file',
        keyFile,
        ...flags,
      ];
      const r = await annotate(CLI.source, args, {
        env: envFor(server, { AWS_ENDPOINT_URL_S3: store.url }),
        images: P.images,
        size,
        thinkMs,
      });
      waits[name].push(...r.waits);
      return r;
    };
    try {
      await alternate(
        'media',
        {
          prefetch: run('prefetch', []),
          proxy: run('proxy', ['--media-prefetch', '0']),
          direct: run('direct', ['--media', 'signed']),
        },
        P.rounds,
      );
    } finally {
      await store.close();
    }
    results.scenarios.media = {
      latencyMs,
      size,
      thinkMs,
      images: P.images,
      contenders: Object.fromEntries(
        Object.entries(waits).map(([name, ms]) => [
          name,
          { p50: percentile(ms, 50), p99: percentile(ms, 99), samples: ms.length },
        ]),
      ),
    };
  });
}

// --- report ---------------------------------------------------------------------------------

// A partial run (--only, --servers) updates its rows in the last run of the same size.
const resultsPath = join(here, 'results.json');
if ((only || chosenServers) && existsSync(resultsPath)) {
  const previous = JSON.parse(readFileSync(resultsPath, 'utf8'));
  if (previous.quick === quick) {
    const order = (row) => P.servers.indexOf(row.server ?? '');
    const id = (row) => `${row.server ?? ''}/${row.ext ?? ''}/${row.keys ?? ''}`;
    for (const [name, rows] of Object.entries(previous.scenarios)) {
      const fresh = results.scenarios[name];
      if (fresh === undefined) results.scenarios[name] = rows;
      else if (name === 'first') results.scenarios[name] = { ...rows, ...fresh };
      else if (Array.isArray(fresh) && Array.isArray(rows)) {
        const replaced = new Set(fresh.map(id));
        results.scenarios[name] = [...rows.filter((row) => !replaced.has(id(row))), ...fresh].sort(
          (a, b) => order(a) - order(b),
        );
      }
    }
  }
}
writeFileSync(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
const report = (await import('./report.mjs')).render(results);
const readme = join(here, 'README.md');
const text = readFileSync(readme, 'utf8');
const start = '<!-- results:start -->';
const end = '<!-- results:end -->';
const at = text.indexOf(start);
const next =
  at < 0
    ? `${text.trimEnd()}\n\n${start}\n${report}\n${end}\n`
    : `${text.slice(0, at)}${start}\n${report}\n${text.slice(text.indexOf(end))}`;
writeFileSync(readme, next);
// Formatted as the repository's linter wants, so a run can be committed as it is.
const biome = join(root, 'node_modules/.bin/biome');
if (existsSync(biome))
  spawnSync(biome, ['format', '--write', readme, resultsPath], { stdio: 'ignore' });
console.log(report);
