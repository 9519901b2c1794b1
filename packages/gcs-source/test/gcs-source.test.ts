import { testSource } from '@sluice/core/testing';
import { useGcs } from '@sluice/testkit';
import { describe } from 'vitest';
import { gcsSource } from '../src/gcs-source.js';

// The shared source suites, against the test kit's Cloud Storage server.
describe('on the test kit server', () => {
  const kit = useGcs(['conformance']);
  let runs = 0;

  testSource({
    connector: 'gcs',
    async setup() {
      const prefix = `run-${++runs}`;
      return {
        url: `gs://conformance/${prefix}/`,
        uriPrefix: `gs://conformance/${prefix}`,
        put: async (key, body) => {
          await kit.storage
            .bucket('conformance')
            .file(`${prefix}/${key}`)
            .save(Buffer.from(body), { resumable: false });
        },
        cleanup: async () => {}, // each test has its own prefix; the server goes with the file
      };
    },
    // A small page size, so the lazy-listing case shows the listing stops early.
    source: (url, options) => gcsSource({ ...options, url, storage: kit.storage, pageSize: 20 }),
  });
});
