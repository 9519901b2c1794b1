import { defineConfig } from 'tsup';

// Only the standalone commands (serve, torture) are built; the tests import the sources.
export default defineConfig({
  entry: ['src/serve.ts', 'src/torture-cli.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node22',
});
