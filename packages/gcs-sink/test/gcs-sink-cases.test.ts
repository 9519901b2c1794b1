import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Storage } from '@google-cloud/storage';
import type { Task } from '@sluice/core';
import { startFaultProxy } from '@sluice/core/testing';
import { useGcs } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { gcsSink } from '../src/gcs-sink.js';

const unavailable = JSON.stringify({
  error: {
    code: 503,
    message: 'We encountered an internal error. Please try again.',
    errors: [{ message: 'Backend Error', domain: 'global', reason: 'backendError' }],
  },
});
const uploads = ({ method, url }: { method: string; url: string }) =>
  method === 'POST' && url.startsWith('/upload/');

const answers = (n: number): Task[] =>
  Array.from({ length: n }, (_, i) => ({
    text: `Ticket ${i}: the invoice was charged twice and the customer asks for a refund.`,
    answer: 'accept',
    _input_hash: i,
    _task_hash: -i,
    spans: [{ start: 0, end: 6, label: 'DOC' }],
  }));

describe('gcs sink', () => {
  const kit = useGcs(['exports']);

  it('uploads a large part in several resumable chunks while it is staged, with the dataset as metadata', async () => {
    const tasks = answers(12_000); // about 1.5 MB: six chunks of 256 KiB
    const before = kit.server.requests['uploads.put'] ?? 0;
    const result = await gcsSink({
      url: 'gs://exports/big/{dataset}/',
      dataset: 'tickets «v2»',
      storage: kit.storage,
      chunkSize: 256 * 1024,
    }).write(tasks);
    expect(result.status).toBe('written');
    const part = result.manifest.parts[0];
    const stored = kit.server.getObject('exports', `big/tickets %C2%ABv2%C2%BB/${part?.key}`);
    expect(stored?.data.length).toBe(part?.bytes);
    expect(
      createHash('sha256')
        .update(stored?.data ?? '')
        .digest('hex'),
    ).toBe(part?.sha256);
    // Streamed while staged, the part's sha256 is not known when its upload starts: the
    // manifest holds it.
    expect(stored?.metadata).toEqual({ dataset: 'tickets «v2»' });
    expect(stored?.contentType).toBe('application/x-ndjson');
    expect((kit.server.requests['uploads.put'] ?? 0) - before).toBeGreaterThanOrEqual(6);
    expect(kit.server.openUploads).toBe(0);
    const lines = stored?.data.toString('utf8').trim().split('\n') ?? [];
    expect(lines).toHaveLength(12_000);
  });

  it('uploads a large part from its staged file when its upload while staging fails', async () => {
    // A caller's own client retries nothing: one 503 on a chunk ends the upload that streams
    // the part, and the run publishes the staged copy instead, with the sink's own retries.
    const chunks = ({ method, url }: { method: string; url: string }) =>
      method === 'PUT' && url.startsWith('/upload/');
    const proxy = await startFaultProxy(kit.url, [
      { status: 503, body: unavailable, every: 1, times: 1, match: chunks },
    ]);
    try {
      const storage = new Storage({ apiEndpoint: proxy.url, projectId: 'sluice-test' });
      const result = await gcsSink({
        url: 'gs://exports/restaged/',
        storage,
        chunkSize: 256 * 1024,
      }).write(answers(12_000));
      expect(result.status).toBe('written');
      expect(proxy.injected).toBe(1);
      const part = result.manifest.parts[0];
      const stored = kit.server.getObject('exports', `restaged/${part?.key}`);
      expect(stored?.data.toString('utf8').trim().split('\n')).toHaveLength(12_000);
      expect(
        createHash('sha256')
          .update(stored?.data ?? '')
          .digest('hex'),
      ).toBe(part?.sha256);
      expect(kit.server.list('exports').filter((name) => name.startsWith('restaged/'))).toEqual(
        [`restaged/${part?.key}`, 'restaged/manifest.json'].sort(),
      );
    } finally {
      await proxy.close();
    }
  });

  it('leaves nothing when a bad line comes after a large part began uploading', async () => {
    const lines = answers(12_000).map((task) => JSON.stringify(task));
    lines.push('{"text": "cut off');
    const sessions = kit.server.requests['objects.insert(resumable)'] ?? 0;
    await expect(
      gcsSink({
        url: 'gs://exports/broken/',
        storage: kit.storage,
        chunkSize: 256 * 1024,
      }).writeJsonl(Readable.from([Buffer.from(`${lines.join('\n')}\n`)])),
    ).rejects.toThrow(/input line 12001: invalid JSON/);
    // The upload had begun, and never finished: no object appears.
    expect(kit.server.requests['objects.insert(resumable)'] ?? 0).toBeGreaterThan(sessions);
    expect(kit.server.list('exports').filter((name) => name.startsWith('broken/'))).toEqual([]);
  });

  it('with --if-exists fail, does not overwrite an export that appears meanwhile', async () => {
    const sink = gcsSink({
      url: 'gs://exports/race/',
      storage: kit.storage,
      ifExists: 'fail',
    });
    // Another run's manifest lands after this run looked for one and before it writes its own.
    const rival = '{"sluice":"manifest/1","dataset":null,"parts":[]}\n';
    const tasks = (async function* () {
      yield* answers(3);
      kit.server.putObject('exports', 'race/manifest.json', rival);
    })();
    await expect(sink.write(tasks)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(kit.server.getObject('exports', 'race/manifest.json')?.data.toString()).toBe(rival);
  });

  it("retries uploads through a caller's own client, whose default retries none", async () => {
    const proxy = await startFaultProxy(kit.url, [
      { status: 503, body: unavailable, every: 2, times: 2, match: uploads },
    ]);
    try {
      const storage = new Storage({ apiEndpoint: proxy.url, projectId: 'sluice-test' });
      const result = await gcsSink({ url: 'gs://exports/own-client/', storage }).write(answers(5));
      expect(result.status).toBe('written');
      expect(proxy.injected).toBe(2);
      const part = kit.server.getObject('exports', `own-client/${result.manifest.parts[0]?.key}`);
      expect(
        createHash('sha256')
          .update(part?.data ?? '')
          .digest('hex'),
      ).toBe(result.manifest.parts[0]?.sha256);
      expect(kit.server.getObject('exports', 'own-client/manifest.json')).toBeDefined();
    } finally {
      await proxy.close();
    }
  });

  it('takes a conditional write whose answer was lost, found on the retry, as written', async () => {
    // The first upload (the run's marker, created with ifGenerationMatch=0) lands, its answer
    // is cut: the retry fails with 412, and the object found holds this run's bytes.
    const proxy = await startFaultProxy(kit.url, [{ cutAfterBytes: 1, times: 1, match: uploads }]);
    try {
      const storage = new Storage({ apiEndpoint: proxy.url, projectId: 'sluice-test' });
      const result = await gcsSink({ url: 'gs://exports/lost/', storage, ifExists: 'fail' }).write(
        answers(5),
      );
      expect(result.status).toBe('written');
      expect(proxy.injected).toBe(1);
      expect(kit.server.list('exports').filter((name) => name.startsWith('lost/'))).toEqual([
        'lost/manifest.json',
        `lost/${result.manifest.parts[0]?.key}`,
      ]);
    } finally {
      await proxy.close();
    }
  });
});

describe('gcs sink against the write rate of one object', () => {
  // Cloud Storage takes one write a second to one object name: replacing an export deletes
  // the old manifest and writes the new one at once, and both meet 429s.
  const busy = useGcs(['busy'], { objectWriteRate: 1 });

  it("replaces an export through 429s on the manifest, with a caller's own client", async () => {
    const storage = new Storage({ apiEndpoint: busy.url, projectId: 'sluice-test' });
    const url = 'gs://busy/again/';
    expect((await gcsSink({ url, storage }).write(answers(3))).status).toBe('written');
    const second = await gcsSink({ url, storage }).write(answers(4));
    expect(second.status).toBe('written');
    const manifest = JSON.parse(
      busy.server.getObject('busy', 'again/manifest.json')?.data.toString() ?? '{}',
    );
    expect(manifest.counts.records).toBe(4);
  });
});
