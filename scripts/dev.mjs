#!/usr/bin/env node
// The README's two set-up commands: `npm run demo` and `npm test`.
// They need only Node and npm: pnpm runs through npx at the version pinned in
// package.json's packageManager field (corepack is not used: it is missing from
// newer Node releases and cannot verify signatures on some registry mirrors).
import { spawnSync } from 'node:child_process';
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
