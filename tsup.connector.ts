import { defineConfig } from 'tsup';

/** The build every connector package shares: library entry with types, and the CLI. */
export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
