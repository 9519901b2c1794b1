import { testSink } from '@sluice/core/testing';
import { useGcs } from '@sluice/testkit';
import { describe } from 'vitest';
import { gcsSink } from '../src/gcs-sink.js';

// The shared sink suites, against the test kit's Cloud Storage server.
describe('on the test kit server', () => {
  const kit = useGcs(['exports']);
  let runs = 0;

  testSink({
    connector: 'gcs',
    async setup() {
      const prefix = `run-${++runs}`;
      return {
        url: `gs://exports/${prefix}`,
        async list() {
          const [files] = await kit.storage.bucket('exports').getFiles({ prefix: `${prefix}/` });
          return files.map((file) => file.name.slice(prefix.length + 1)).sort();
        },
        async get(key) {
          const file = kit.storage.bucket('exports').file(`${prefix}/${key}`);
          const [exists] = await file.exists();
          return exists ? (await file.download())[0] : undefined;
        },
        cleanup: async () => {},
      };
    },
    sink: (url, options) => gcsSink({ ...options, url, storage: kit.storage }),
  });
});
