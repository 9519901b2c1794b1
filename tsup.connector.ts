import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { defineConfig } from 'tsup';

const shared = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // Minified, the bundle also takes about 13 MB less memory while running; names are kept
  // so that stack traces stay readable.
  minify: true,
  keepNames: true,
  logLevel: 'warning',
  // Bundled CommonJS modules call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __sluiceRequire } from 'node:module';\nconst require = __sluiceRequire(import.meta.url);",
  },
} as const;

/**
 * The build every connector package shares: the library entry with types, its dependencies
 * left as imports; then the CLI as one self-contained file. Loading one file instead of a few
 * hundred modules (the AWS SDK alone is over a hundred) takes about 0.1 s off every start.
 */
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node22',
  onSuccess: async () => {
    await build({ ...shared, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js' });
    // A sink checks its input's lines in worker threads, which start this file next to the CLI.
    const { name } = JSON.parse(readFileSync('package.json', 'utf8')) as { name: string };
    if (name.endsWith('-sink')) {
      const core = createRequire(`${process.cwd()}/`).resolve('@sluice/core/package.json');
      const worker = join(dirname(core), 'dist/check-worker.js');
      await build({ ...shared, entryPoints: [worker], outfile: 'dist/check-worker.js' });
    }
  },
});
