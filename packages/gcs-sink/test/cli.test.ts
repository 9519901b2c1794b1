import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { hasStackTrace, runCli, startFaultProxy } from '@sluice/core/testing';
import { type GcsServer, startGcsServer } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(
  new URL('../../../examples/data/db-out/ner-news.jsonl', import.meta.url),
);

const unavailable = JSON.stringify({
  error: {
    code: 503,
    message: 'We encountered an internal error. Please try again.',
    errors: [{ message: 'Backend Error', domain: 'global', reason: 'backendError' }],
  },
});

describe('gcs-sink CLI against the test kit server', () => {
  let server: GcsServer;
  let url: string;
  let input: Buffer;
  const get = (name: string) => server.getObject('labels', name)?.data ?? Buffer.alloc(0);
  beforeAll(async () => {
    ({ server, url } = await startGcsServer());
    server.createBucket('labels');
    input = await readFile(dbOut);
  });
  afterAll(() => server?.close());

  it('exports db-out with every record byte for byte, object metadata and a manifest', async () => {
    const run = await runCli(
      cli,
      ['gs://labels/exports/{dataset}/', '--dataset', 'news', '--endpoint', url],
      {
        input,
      },
    );
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(
      /gcs-sink: wrote 1 part \(24 records\) and manifest.json to gs:\/\/labels\/exports\/news/,
    );
    const manifest = JSON.parse(get('exports/news/manifest.json').toString());
    const key = `exports/news/${manifest.parts[0].key}`;
    expect(manifest.parts[0].name).toBe('part-00000.jsonl');
    const part = get(key);
    expect(part).toEqual(input);
    expect(manifest.parts[0].sha256).toBe(createHash('sha256').update(part).digest('hex'));
    expect(server.getObject('labels', key)?.metadata).toEqual({
      dataset: 'news',
      sha256: manifest.parts[0].sha256,
    });
  });

  it('writes a byte-identical export through injected faults', async () => {
    const args = (root: string, endpoint: string) => [
      `gs://labels/${root}/{answer}/`,
      '--format',
      'jsonl.gz',
      '--endpoint',
      endpoint,
    ];
    expect((await runCli(cli, args('clean', url), { input })).code).toBe(0);
    const proxy = await startFaultProxy(url, [
      { status: 503, body: unavailable, every: 2, times: 3 },
    ]);
    try {
      const faulty = await runCli(cli, args('faulty', proxy.url), { input });
      expect(faulty.stderr).toMatch(/gcs-sink: wrote/);
      expect(faulty.code).toBe(0);
      expect(proxy.injected).toBe(3);
    } finally {
      await proxy.close();
    }
    const clean = JSON.parse(get('clean/manifest.json').toString());
    const faulty = JSON.parse(get('faulty/manifest.json').toString());
    const same = (parts: Array<{ key: string }>) => parts.map(({ key: _, ...part }) => part);
    expect(same(faulty.parts)).toEqual(same(clean.parts));
    for (const [i, part] of clean.parts.entries())
      expect(get(`faulty/${faulty.parts[i].key}`)).toEqual(get(`clean/${part.key}`));
  }, 60_000);

  it('changes nothing when the same export runs again', async () => {
    const args = ['gs://labels/again/', '--json-summary', '--endpoint', url];
    expect((await runCli(cli, args, { input })).code).toBe(0);
    const partKey = () => `again/${JSON.parse(get('again/manifest.json').toString()).parts[0].key}`;
    const generation = server.getObject('labels', partKey())?.generation;
    const again = await runCli(cli, args, { input });
    expect(JSON.parse(again.stderr)).toMatchObject({ status: 'unchanged', written: [] });
    expect(server.getObject('labels', partKey())?.generation).toBe(generation);
  });

  it('refuses to replace a different export with --if-exists fail', async () => {
    const first = input.toString().split('\n').slice(0, 5).join('\n');
    expect(
      (await runCli(cli, ['gs://labels/kept/', '--endpoint', url], { input: first })).code,
    ).toBe(0);
    const before = get('kept/manifest.json');
    const run = await runCli(cli, ['gs://labels/kept/', '--if-exists', 'fail', '--endpoint', url], {
      input,
    });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/gs:\/\/labels\/kept already holds a different export/);
    expect(get('kept/manifest.json')).toEqual(before);
  });

  it('fails on a missing bucket before staging the input, in one line', async () => {
    const run = await runCli(cli, ['gs://no-such-bucket/x/', '--endpoint', url], { input });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /gcs-sink: error: gs:\/\/no-such-bucket\/x\/manifest.json: no such bucket/,
    );
    expect(hasStackTrace(run.stderr)).toBe(false);
  });
});
