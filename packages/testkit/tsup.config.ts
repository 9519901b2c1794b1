import { defineConfig } from 'tsup';

// Only the standalone serve command is built; the tests import the sources.
export default defineConfig({
  entry: ['src/serve.ts'],
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node22',
});
