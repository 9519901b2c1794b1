import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

// Fails when a package's exports map, bin or files list and its build drift apart,
// which is what an npm user would hit first.
const packagesDir = fileURLToPath(new URL('../../', import.meta.url));
// Private packages (the test kit) are never published, so they are not checked.
const packages = readdirSync(packagesDir).filter((name) => {
  const path = join(packagesDir, name, 'package.json');
  return existsSync(path) && JSON.parse(readFileSync(path, 'utf8')).private !== true;
});

type Exports = Record<string, string | { types?: string; import?: string }>;

describe.each(packages)('package %s', (name) => {
  const dir = join(packagesDir, name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

  it('is publishable: ESM, engines, files without tests, a README', () => {
    expect(pkg.type).toBe('module');
    expect(pkg.engines?.node).toMatch(/^>=22/);
    expect(pkg.files).toEqual(expect.arrayContaining(['dist']));
    expect(pkg.files.some((entry: string) => entry.includes('test'))).toBe(false);
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
  });

  it('builds every file its exports map and bin name, and they import', async () => {
    for (const [subpath, target] of Object.entries(pkg.exports as Exports)) {
      if (typeof target === 'string') {
        expect(existsSync(join(dir, target)), `${subpath} -> ${target}`).toBe(true);
        continue;
      }
      for (const file of [target.types, target.import]) {
        expect(existsSync(join(dir, file as string)), `${subpath} -> ${file}`).toBe(true);
      }
      if (subpath === './testing') continue; // imports vitest, which only test runs provide
      const module = await import(pathToFileURL(join(dir, target.import as string)).href);
      expect(Object.keys(module).length).toBeGreaterThan(0);
    }
    for (const bin of Object.values((pkg.bin ?? {}) as Record<string, string>)) {
      const text = readFileSync(join(dir, bin), 'utf8');
      expect(text.startsWith('#!/usr/bin/env node')).toBe(true);
    }
  });
});
