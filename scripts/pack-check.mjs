#!/usr/bin/env node
// Checks the packages as npm users get them, outside the workspace:
//   1. packs every public package with pnpm (which rewrites workspace: ranges),
//   2. lints each tarball with publint and @arethetypeswrong/cli,
//   3. installs all the tarballs into a fresh project under the system temp folder with npm,
//   4. on every Node given (SLUICE_CHECK_NODES, a colon-separated list of node binaries; default the
//      node running this), runs each CLI's --help, an fs-source | fs-sink pipe, an ESM import and a
//      require() of every package,
//   5. type-checks a consumer with tsc under moduleResolution node16 (ESM), nodenext (CommonJS)
//      and bundler.
// With --sizes it instead installs each package alone into its own project and prints the size of
// node_modules: what `npm install @sluice/<name>` costs a user.
//
// Needs the packages built (npm test builds them) and the npm registry for third-party dependencies.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const sizesOnly = process.argv.includes('--sizes');
const keep = process.argv.includes('--keep');
const nodes = (process.env.SLUICE_CHECK_NODES || process.execPath).split(':').filter(Boolean);

const packages = readdirSync(join(root, 'packages'))
  .map((dir) => ({ dir, pkg: readJson(join(root, 'packages', dir, 'package.json')) }))
  .filter(({ pkg }) => pkg && !pkg.private);

function readJson(path) {
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined;
}

let failures = 0;
function check(what, ok, detail = '') {
  if (ok) {
    console.log(`ok    ${what}`);
  } else {
    failures++;
    console.log(`FAIL  ${what}${detail ? `\n${detail.trim().replace(/^/gm, '      ')}` : ''}`);
  }
}

function run(command, args, options = {}) {
  return spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
}

function must(command, args, options = {}) {
  const result = run(command, args, options);
  if (result.status !== 0) {
    console.error(
      `pack-check: failed: ${command} ${args.join(' ')}\n${result.stderr}${result.stdout}`,
    );
    process.exit(1);
  }
  return result.stdout;
}

const work = mkdtempSync(join(tmpdir(), 'sluice-pack-check-'));
const tarballs = join(work, 'tarballs');
mkdirSync(tarballs);
const pnpm = ['--yes', rootPkg.packageManager];

// 1. Pack.
for (const entry of packages) {
  const out = must('npx', [...pnpm, 'pack', '--pack-destination', tarballs], {
    cwd: join(root, 'packages', entry.dir),
  });
  entry.tarball = out.trim().split('\n').pop().trim();
  if (!existsSync(entry.tarball)) {
    console.error(`pack-check: pnpm pack printed no tarball for ${entry.pkg.name}:\n${out}`);
    process.exit(1);
  }
}
console.log(`packed ${packages.length} packages into ${tarballs}`);

function consumerPackage(names, extra = {}) {
  const spec = (name) => `file:${packages.find((p) => p.pkg.name === name).tarball}`;
  // Every @sluice package from its tarball, also where another one depends on it: none is on the
  // registry in this check, and a registry copy must never be mixed in.
  const overrides = Object.fromEntries(packages.map(({ pkg }) => [pkg.name, spec(pkg.name)]));
  return {
    name: 'sluice-consumer',
    version: '0.0.0',
    private: true,
    dependencies: Object.fromEntries(names.map((name) => [name, spec(name)])),
    overrides,
    ...extra,
  };
}

function npmInstall(dir) {
  must('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir });
}

function duBytes(dir) {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

if (sizesOnly) {
  console.log('\ninstall size of each package alone (node_modules of a fresh project):');
  for (const { pkg } of packages) {
    const dir = join(work, `size-${pkg.name.replace('@sluice/', '')}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), JSON.stringify(consumerPackage([pkg.name])));
    npmInstall(dir);
    const mb = duBytes(join(dir, 'node_modules')) / 1e6;
    const count =
      must('npm', ['ls', '--all', '--parseable'], { cwd: dir }).trim().split('\n').length - 1;
    console.log(
      `${pkg.name.padEnd(28)} ${mb.toFixed(1).padStart(7)} MB  ${String(count).padStart(4)} packages`,
    );
    rmSync(dir, { recursive: true, force: true });
  }
  if (!keep) rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

// 2. Lint the tarballs.
const bin = (name) => join(root, 'node_modules', '.bin', name);
for (const { pkg, tarball } of packages) {
  const publint = run(bin('publint'), ['run', tarball, '--strict']);
  check(`publint ${pkg.name}`, publint.status === 0, publint.stdout + publint.stderr);
  // attw runs TypeScript 5.6, which predates require() of ES modules (TypeScript 5.8, module
  // nodenext); CommonJS consumers are checked below with tsc itself instead. node10 resolution
  // (no exports map support) is not a target: the packages need Node 22.12+.
  const attw = run(bin('attw'), [
    tarball,
    '--profile',
    'node16',
    '--ignore-rules',
    'cjs-resolves-to-esm',
    '--format',
    'table-flipped',
    '--no-emoji',
    '--no-color',
  ]);
  check(`attw ${pkg.name}`, attw.status === 0, attw.stdout + attw.stderr);
}

// 3. Install everything into one fresh project.
const consumer = join(work, 'consumer');
mkdirSync(consumer);
const names = packages.map(({ pkg }) => pkg.name);
writeFileSync(
  join(consumer, 'package.json'),
  JSON.stringify(
    consumerPackage(names, {
      devDependencies: {
        typescript: rootPkg.devDependencies.typescript,
        '@types/node': rootPkg.devDependencies['@types/node'],
      },
    }),
    null,
    2,
  ),
);
npmInstall(consumer);
console.log(`installed the tarballs into ${consumer}`);

// 4. Run them on every Node.
mkdirSync(join(consumer, 'data'));
writeFileSync(
  join(consumer, 'data', 'tickets.jsonl'),
  '{"text":"Refund not received","meta":{"ticket":1}}\n{"text":"App crashes on start","meta":{"ticket":2}}\n',
);
writeFileSync(join(consumer, 'data', 'notes.txt'), 'first note\nsecond note\n');
const bins = packages.flatMap(({ dir, pkg }) =>
  Object.entries(pkg.bin ?? {}).map(([name]) => ({
    name,
    script: realpathSync(join(consumer, 'node_modules', '.bin', name)),
    dir,
  })),
);
for (const node of nodes) {
  const version = must(node, ['--version']).trim();
  const env = { ...process.env, PATH: `${dirname(node)}:${process.env.PATH}` };
  const opts = { cwd: consumer, env };
  for (const { name, script } of bins) {
    const help = run(node, [script, '--help'], opts);
    check(`${version} ${name} --help`, help.status === 0 && /Usage/.test(help.stdout), help.stderr);
  }
  const fsSource = bins.find((b) => b.name === 'fs-source').script;
  const fsSink = bins.find((b) => b.name === 'fs-sink').script;
  const out = join(consumer, `export-${version}`);
  const pipe = run(
    'bash',
    [
      '-o',
      'pipefail',
      '-c',
      `"${node}" "${fsSource}" data | "${node}" "${fsSink}" "${out}" --dataset check`,
    ],
    opts,
  );
  const manifest = readJson(join(out, 'manifest.json'));
  check(
    `${version} fs-source data | fs-sink ${out}`,
    pipe.status === 0 && manifest?.counts?.records === 4,
    `${pipe.stderr}\nmanifest: ${JSON.stringify(manifest?.counts)}`,
  );
  for (const name of names) {
    const esm = run(
      node,
      [
        '--input-type=module',
        '-e',
        `const m = await import('${name}'); if (!Object.keys(m).length) process.exit(3);`,
      ],
      opts,
    );
    check(`${version} import('${name}')`, esm.status === 0, esm.stderr);
    const cjs = run(
      node,
      ['-e', `const m = require('${name}'); if (!Object.keys(m).length) process.exit(3);`],
      opts,
    );
    check(`${version} require('${name}')`, cjs.status === 0, cjs.stderr);
  }
}

// 5. Type-check a consumer under each module resolution a TypeScript user may have.
const imports = names
  .map(
    (name, i) =>
      `import * as p${i} from '${name}';\nexport const n${i}: number = Object.keys(p${i}).length;`,
  )
  .join('\n');
const usage = `
import { fsSource } from '@sluice/fs-source';
import { fsSink } from '@sluice/fs-sink';
import { inputHash, type Task } from '@sluice/core';
export async function copy(): Promise<string> {
  const tasks: Task[] = [];
  for await (const task of fsSource({ url: './data' })) tasks.push(task);
  const hash: number = inputHash(tasks[0] ?? { text: '' });
  const result = await fsSink({ url: './out', dataset: 'check' }).write(tasks);
  return \`\${hash} \${result.status}\`;
}
`;
const setups = {
  'node16-esm': { type: 'module', module: 'node16', moduleResolution: 'node16' },
  'nodenext-cjs': { type: 'commonjs', module: 'nodenext', moduleResolution: 'nodenext' },
  'bundler-esm': { type: 'module', module: 'esnext', moduleResolution: 'bundler' },
};
for (const [name, { type, ...options }] of Object.entries(setups)) {
  const dir = join(consumer, `ts-${name}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type }));
  writeFileSync(join(dir, 'index.ts'), `${imports}\n${usage}`);
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        ...options,
        target: 'es2022',
        strict: true,
        noEmit: true,
        types: ['node'],
      },
      files: ['index.ts'],
    }),
  );
  const tsc = run(
    process.execPath,
    [join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir],
    {
      cwd: consumer,
    },
  );
  check(`tsc --noEmit, ${name}`, tsc.status === 0, tsc.stdout + tsc.stderr);
}

if (!keep) rmSync(work, { recursive: true, force: true });
else console.log(`kept ${work}`);
if (failures) {
  console.error(`pack-check: ${failures} check(s) failed`);
  process.exit(1);
}
console.log('pack-check: every check passed');
