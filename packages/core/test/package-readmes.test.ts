import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain script of the repository, without types
import * as readmes from '../../../scripts/readmes.mjs';

// A package README is read on the registry's page, away from the repository: it must document
// every flag the CLI's --help shows, link absolutely, and have the sections a user looks for.
const packagesDir = fileURLToPath(new URL('../../', import.meta.url));
const published = readdirSync(packagesDir).filter((name) => {
  const path = join(packagesDir, name, 'package.json');
  return existsSync(path) && JSON.parse(readFileSync(path, 'utf8')).private !== true;
});
interface CliPackage {
  dir: string;
  bin: string;
  cli: string;
  readme: string;
}
const clis = new Map<string, CliPackage>(
  (readmes.cliPackages() as CliPackage[]).map((entry) => [entry.dir, entry]),
);

describe.each(published)('README of %s', (name) => {
  const readme = readFileSync(join(packagesDir, name, 'README.md'), 'utf8');
  const cli = clis.get(name);

  it('links only with absolute URLs or anchors, which work on the registry page', () => {
    const relative = [...readme.matchAll(/\]\(([^)#][^)]*)\)/g)]
      .map((m) => m[1] as string)
      .filter((target) => !/^(https?:|mailto:)/.test(target));
    expect(relative).toEqual([]);
  });

  it.runIf(cli)('has Install, Use, Options, Examples and Errors sections', () => {
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings).toEqual(
      expect.arrayContaining(['Install', 'Use', 'Options', 'Examples', 'Errors']),
    );
  });

  it.runIf(cli)('documents every flag that --help shows, for each command', () => {
    const missing: string[] = [];
    for (const [command, text] of readmes.helpTexts(cli) as Map<string, string>) {
      for (const [flags] of readmes.options(text) as [string, string][]) {
        const flag = readmes.longFlag(flags) as string;
        if (flag !== '--help' && !new RegExp(`${flag}(?![\\w-])`).test(readme)) {
          missing.push(`${command} ${flag}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });

  it.runIf(cli)('has its shared-options table up to date (npm run readmes)', () => {
    const fresh = readmes.withSharedOptions(cli);
    expect(readmes.sharedBlock(readme)).toBe(readmes.sharedBlock(fresh));
  });
});
