import { createHash } from 'node:crypto';
import type { Task } from '@sluice/core';
import { useGcs } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { gcsSink } from '../src/gcs-sink.js';

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

  it('uploads a large part in several resumable chunks, with dataset and sha256 as metadata', async () => {
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
    expect(stored?.metadata).toEqual({ sha256: part?.sha256, dataset: 'tickets «v2»' });
    expect(stored?.contentType).toBe('application/x-ndjson');
    expect((kit.server.requests['uploads.put'] ?? 0) - before).toBeGreaterThanOrEqual(6);
    expect(kit.server.openUploads).toBe(0);
    const lines = stored?.data.toString('utf8').trim().split('\n') ?? [];
    expect(lines).toHaveLength(12_000);
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
});
