#!/usr/bin/env node
// Package READMEs are read on the registry's page, where a reader needs every flag in one place.
// The flags every source (or every sink) shares come from core; their table in each connector's
// README, between `<!-- shared-options -->` and `<!-- /shared-options -->`, is generated from the
// connector CLI's own --help: `npm run readmes` rewrites the tables, and the test suite
// (packages/core/test/package-readmes.test.ts) fails when one is out of date or a flag --help
// shows is documented nowhere in the README.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The help text of a CLI (or one of its commands), wrapped at 80 columns as a pipe gets it. */
export function help(cli, args = []) {
  return execFileSync(process.execPath, [cli, ...args, '--help'], { encoding: 'utf8' });
}

/** The options a help text lists, as [flags, description], wrapped lines joined. */
export function options(text) {
  const block = text.split('\nOptions:\n')[1]?.split('\n\n')[0] ?? '';
  const rows = [];
  for (const line of block.split('\n')) {
    const entry = /^ {2}(-\S.*?)(?: {2,}(.*))?$/.exec(line);
    if (entry) rows.push([entry[1], entry[2] ?? '']);
    else if (rows.length) rows[rows.length - 1][1] = `${rows.at(-1)[1]} ${line.trim()}`.trim();
  }
  return rows;
}

/** The long flag of an options row (`--no-hashes`, `--media-port`). */
export const longFlag = (flags) => /--[\w-]+/.exec(flags)?.[0];

/** Every published package with a CLI: folder, bin name, built CLI, README path. */
export function cliPackages() {
  return readdirSync(join(root, 'packages')).flatMap((dir) => {
    const path = join(root, 'packages', dir, 'package.json');
    if (!existsSync(path)) return [];
    const pkg = JSON.parse(readFileSync(path, 'utf8'));
    if (pkg.private || !pkg.bin) return [];
    const [bin, file] = Object.entries(pkg.bin)[0];
    const cli = join(root, 'packages', dir, file);
    return [{ dir, bin, cli, readme: join(root, 'packages', dir, 'README.md') }];
  });
}

/** The main command's help and each `BIN word` it names that has help of its own. */
export function helpTexts({ bin, cli }) {
  const main = help(cli);
  const texts = new Map([[bin, main]]);
  for (const [, word] of main.matchAll(new RegExp(`${bin} ([a-z]+)\\b`, 'g'))) {
    const command = `${bin} ${word}`;
    if (texts.has(command)) continue;
    try {
      const text = help(cli, [word]);
      if (text.startsWith(`Usage: ${command} `)) texts.set(command, text);
    } catch {
      // a word of an example, not a command
    }
  }
  return texts;
}

/** Core's shared flags: those of the local-folder connectors, which add none of their own. */
function sharedFlags(kind) {
  const entry = cliPackages().find((p) => p.dir === `fs-${kind}`);
  return new Set(options(help(entry.cli)).map(([flags]) => longFlag(flags)));
}

const MARK = /<!-- shared-options -->[\s\S]*?<!-- \/shared-options -->/;

/** The README of a connector with its shared-options table regenerated (unchanged without the marks). */
export function withSharedOptions(entry) {
  const text = readFileSync(entry.readme, 'utf8');
  if (!MARK.test(text)) return text;
  const kind = entry.dir.endsWith('-sink') ? 'sink' : 'source';
  const shared = sharedFlags(kind);
  const rows = options(help(entry.cli))
    .filter(([flags]) => shared.has(longFlag(flags)) && longFlag(flags) !== '--help')
    .map(([flags, what]) => `| \`${flags}\` | ${what.replaceAll('|', '\\|')} |`);
  const table = [
    '<!-- shared-options -->',
    `<!-- generated from \`${entry.bin} --help\` by \`npm run readmes\`; edit the CLI, not this table -->`,
    '',
    '| flag | meaning |',
    '| --- | --- |',
    ...rows,
    '',
    '<!-- /shared-options -->',
  ].join('\n');
  return text.replace(MARK, () => table);
}

/** A shared-options block with the formatter's padding taken out, to compare content only. */
export function sharedBlock(text) {
  return (MARK.exec(text)?.[0] ?? '')
    .split('\n')
    .map((line) =>
      line
        .trim()
        .replace(/\s*\|\s*/g, '|')
        .replace(/-{3,}/g, '---'),
    )
    .join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const changed = [];
  for (const entry of cliPackages()) {
    const text = withSharedOptions(entry);
    if (sharedBlock(text) !== sharedBlock(readFileSync(entry.readme, 'utf8'))) {
      writeFileSync(entry.readme, text);
      changed.push(entry.readme);
    }
  }
  if (changed.length) {
    // Tables in the repository's own format (biome aligns them), so that lint passes as written.
    execFileSync(join(root, 'node_modules', '.bin', 'biome'), ['format', '--write', ...changed], {
      cwd: root,
      stdio: 'ignore',
    });
  }
  for (const path of changed) console.log(`updated ${path}`);
}
