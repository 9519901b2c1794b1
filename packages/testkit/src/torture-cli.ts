#!/usr/bin/env node
// npm run torture: the commit protocol's torture harness (see torture.ts) against the built
// fs-sink and s3-sink CLIs, with figures as a table. Exits 1 when any count is not zero.
import { parseArgs } from 'node:util';
import { hasMoto } from './s3.js';
import { type TortureStore, torture, torturePassed, tortureTable } from './torture.js';

const { values } = parseArgs({
  options: {
    stores: { type: 'string', default: hasMoto ? 'fs,moto,s3rver' : 'fs,s3rver' },
    kills: { type: 'string', default: '20' },
    writers: { type: 'string', default: '4' },
    disks: { type: 'string', default: '3' },
    lines: { type: 'string', default: '4000' },
    seed: { type: 'string', default: '19' },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    'Usage: npm run torture -- [--stores fs,moto,s3rver] [--kills 20] [--writers 4] [--disks 3] [--lines 4000] [--seed 19] [--quiet]\n\nBuild first (npx pnpm@10.34.9 build). Kills fs-sink and s3-sink runs at random moments, fills a disk, and runs two and three writers at once; prints the figures and exits 1 unless every count is zero.',
  );
  process.exit(0);
}
const started = Date.now();
const figures = await torture({
  stores: values.stores.split(',') as TortureStore[],
  kills: Number(values.kills),
  writers: Number(values.writers),
  disks: Number(values.disks),
  lines: Number(values.lines),
  seed: Number(values.seed),
  log: values.quiet ? undefined : (line) => console.error(line),
});
console.log(tortureTable(figures));
for (const figure of figures) {
  for (const note of figure.notes) console.log(`- ${figure.scenario} (${figure.store}): ${note}`);
}
const runs = figures.reduce((n, f) => n + f.runs, 0);
console.log(`${runs} runs in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (figures.some((f) => f.unguaranteed)) {
  console.log(
    '(not guaranteed): s3rver ignores If-None-Match and If-Match on PUT, so its writer rows show what happens without conditional writes; moto and S3 honour them.',
  );
}
process.exit(torturePassed(figures) ? 0 : 1);
