#!/usr/bin/env node
// The README's two set-up commands: `npm run demo` and `npm test`.
// They need only Node and npm: pnpm runs through npx at the version pinned in
// package.json's packageManager field (corepack is not used: it is missing from
// newer Node releases and cannot verify signatures on some registry mirrors).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function run(command, args, options = {}) {
  console.error(`\n> ${[command, ...args].join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.status !== 0) {
    console.error(
      `\nfailed (exit ${result.status ?? result.signal}): ${[command, ...args].join(' ')}`,
    );
    process.exit(result.status || 1);
  }
}

// Sluice needs Node.js 22.12 or newer. On an older node (Node 20 is still the system node of many
// Linux images), both commands rerun themselves under Node 24 from the npm registry, and say so.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(`Node.js ${process.version} is older than 22.12, which Sluice needs.`);
  if (process.platform !== 'linux') {
    console.error('Install Node.js 22 or 24 (https://nodejs.org) and run this again.');
    process.exit(1);
  }
  const bin = execFileSync(process.execPath, [join(root, 'scripts', 'node.mjs'), '24'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  console.error(`Running under ${bin}/node (scripts/node.mjs) instead.`);
  const path = `${bin}:${process.env.PATH}`;
  const again = spawnSync(join(bin, 'node'), process.argv.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, PATH: path },
  });
  process.exit(again.status ?? 1);
}

const pnpm = (...args) => run('npx', ['--yes', packageManager, ...args]);

function setup() {
  pnpm('install', '--frozen-lockfile');
  pnpm('run', 'build');
}

const steps = {
  demo() {
    setup();
    run('bash', ['examples/demo.sh']);
  },
  test() {
    setup();
    pnpm('run', 'typecheck');
    pnpm('run', 'lint');
    pnpm('run', 'test:unit');
    // The Python package in recipes/ (pytest is the only thing it needs; the Node CLIs are built above).
    run('python3', ['-m', 'pytest', 'recipes', '-q']);
  },
};

const step = steps[process.argv[2]];
if (!step) {
  console.error(`usage: node scripts/dev.mjs ${Object.keys(steps).join('|')}`);
  process.exit(2);
}
step();
