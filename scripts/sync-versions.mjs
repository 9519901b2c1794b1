#!/usr/bin/env node
// After `changeset version` has bumped the npm packages (all under one version, see
// .changeset/config.json), gives the Python package prodigy-sluice the same version, and its npx
// fallback that version of the CLIs (prodigy_sluice/_version.py holds both; the build backend
// reads the package version from there). `npm run version-packages` runs both.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'packages/core/package.json'), 'utf8'));

function replace(relative, pattern, line) {
  const path = join(root, relative);
  const text = readFileSync(path, 'utf8');
  if (!pattern.test(text)) {
    console.error(`sync-versions: no version line in ${relative} (${pattern})`);
    process.exit(1);
  }
  writeFileSync(path, text.replace(pattern, line));
  console.log(`${relative}: ${version}`);
}

const versions = 'recipes/prodigy_sluice/_version.py';
replace(versions, /^__version__ = "[^"]*"$/m, `__version__ = "${version}"`);
replace(versions, /^CLI_VERSION = "[^"]*"$/m, `CLI_VERSION = "${version}"`);
