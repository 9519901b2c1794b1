import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Unit tests run against the sources; the end-to-end tests run the built CLIs.
    alias: [
      { find: /^@sluice\/core\/testing$/, replacement: src('core/src/testing/index.ts') },
      { find: /^@sluice\/core$/, replacement: src('core/src/index.ts') },
      { find: /^@sluice\/s3-source$/, replacement: src('s3-source/src/index.ts') },
      { find: /^@sluice\/gcs-source$/, replacement: src('gcs-source/src/index.ts') },
      { find: /^@sluice\/gdrive-source$/, replacement: src('gdrive-source/src/index.ts') },
      { find: /^@sluice\/confluence-source$/, replacement: src('confluence-source/src/index.ts') },
      { find: /^@sluice\/file360-source$/, replacement: src('file360-source/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
