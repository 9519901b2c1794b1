import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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

type Exports = Record<string, string | { types?: string; default?: string }>;

describe.each(packages)('package %s', (name) => {
  const dir = join(packagesDir, name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

  it('is publishable: ESM, engines, public, metadata, files without tests, README and LICENSE', () => {
    expect(pkg.type).toBe('module');
    expect(pkg.engines?.node).toMatch(/^>=22/);
    // A scoped package's first publish is restricted unless told otherwise.
    expect(pkg.publishConfig?.access).toBe('public');
    expect(pkg.repository?.directory).toBe(`packages/${name}`);
    expect(pkg.homepage).toMatch(/^https:\/\//);
    expect(pkg.bugs?.url).toMatch(/^https:\/\//);
    expect(pkg.keywords).toContain('prodigy');
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'README.md', 'LICENSE']));
    expect(pkg.files.some((entry: string) => entry.includes('test'))).toBe(false);
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
    expect(readFileSync(join(dir, 'LICENSE'), 'utf8')).toBe(
      readFileSync(join(packagesDir, '..', 'LICENSE'), 'utf8'),
    );
  });

  it('loads with require() as well as import (Node 22.12+ loads ES modules from require)', () => {
    // The exports map needs a condition require() matches: `default`, not only `import`.
    for (const [subpath, target] of Object.entries(pkg.exports as Exports)) {
      if (typeof target === 'string' || subpath === './testing') continue;
      // By name, so that the exports map is what resolves it (a package may refer to itself).
      const module = createRequire(join(dir, 'package.json'))(`${pkg.name}${subpath.slice(1)}`);
      expect(Object.keys(module).length, subpath).toBeGreaterThan(0);
    }
  });

  it('builds every file its exports map and bin name, and they import', async () => {
    for (const [subpath, target] of Object.entries(pkg.exports as Exports)) {
      if (typeof target === 'string') {
        expect(existsSync(join(dir, target)), `${subpath} -> ${target}`).toBe(true);
        continue;
      }
      for (const file of [target.types, target.default]) {
        expect(existsSync(join(dir, file as string)), `${subpath} -> ${file}`).toBe(true);
      }
      if (subpath === './testing') continue; // imports vitest, which only test runs provide
      const module = await import(pathToFileURL(join(dir, target.default as string)).href);
      expect(Object.keys(module).length).toBeGreaterThan(0);
    }
    for (const bin of Object.values((pkg.bin ?? {}) as Record<string, string>)) {
      const text = readFileSync(join(dir, bin), 'utf8');
      expect(text.startsWith('#!/usr/bin/env node')).toBe(true);
    }
  });
});
