import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Manifest, Sink, SinkOptions } from '../sink.js';
import type { Task } from '../task.js';
import { useFixture } from './fixture.js';

/** A fresh, empty location in the store under test. */
export interface SinkFixture {
  /** Base URL of the location, e.g. `s3://bucket/run-123`; tests append paths and templates. */
  url: string;
  /** Every object key under the location, relative to `url`, sorted. */
  list(): Promise<string[]>;
  /** An object's bytes (key relative to `url`), or undefined. */
  get(key: string): Promise<Buffer | undefined>;
  cleanup(): Promise<void>;
}

/** How a connector plugs into the sink suites. */
export interface SinkHarness {
  connector: string;
  setup(): Promise<SinkFixture>;
  /** Builds the connector's sink for a URL template. */
  sink(url: string, options?: SinkOptions): Sink;
}

export interface SinkSuiteOptions {
  skip?: Array<'write' | 'idempotence' | 'bad-input' | 'filters'>;
}

/** A small `db-out` export: answers, labels, a flagged example, scores, two annotators. */
export function sampleExport(): Task[] {
  const base = (text: string, extra: Partial<Task>): Task => ({
    text,
    _input_hash: text.length,
    _task_hash: text.length * 7,
    _view_id: 'classification',
    _session_id: 'ds-alice',
    _annotator_id: 'ds-alice',
    _timestamp: 1763000000,
    meta: { source: 's3://raw/tickets/a.jsonl' },
    ...extra,
  });
  return [
    base('Refund not received', {
      label: 'BILLING',
      answer: 'accept',
      meta: { source: 's3://raw/a.jsonl', score: 0.9 },
    }),
    base('App crashes on start', {
      label: 'BUG',
      answer: 'accept',
      meta: { source: 's3://raw/a.jsonl', score: 0.4 },
    }),
    base('Cannot log in', { label: 'ACCOUNT', answer: 'reject', flagged: true }),
    base('Invoice twice', {
      label: 'BILLING',
      answer: 'accept',
      _annotator_id: 'ds-bob',
      _session_id: 'ds-bob',
    }),
    base('???', {
      label: 'BUG',
      answer: 'ignore',
      meta: { source: 's3://raw/b.jsonl', score: 0.2 },
    }),
    base('Crash after update', {
      spans: [{ start: 0, end: 5, label: 'PROBLEM' }],
      answer: 'accept',
      meta: { source: 's3://raw/b.jsonl' },
    }),
  ];
}

const jsonl = (tasks: unknown[]) => `${tasks.map((task) => JSON.stringify(task)).join('\n')}\n`;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const bytesOf = (text: string) => Readable.from([Buffer.from(text)]);

async function manifestAt(fixture: SinkFixture, key: string): Promise<Manifest> {
  const body = await fixture.get(key);
  expect(body, `${key} exists`).toBeDefined();
  return JSON.parse((body as Buffer).toString('utf8')) as Manifest;
}

function records(bytes: Buffer): Task[] {
  return bytes
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Task);
}

/** Parts, templates and the manifest that describes them. */
export function testSinkWrite(harness: SinkHarness): void {
  describe(`${harness.connector} sink: write and manifest`, () => {
    const ctx = useFixture(() => harness.setup());

    it('writes parts and a manifest whose counts and sha256 match the bytes', async () => {
      const { fixture } = ctx;
      const tasks = sampleExport();
      const now = new Date('2026-11-23T10:00:00Z');
      const result = await harness
        .sink(`${fixture.url}/exports/{dataset}/{date}`, { dataset: 'tickets', now })
        .writeJsonl(bytesOf(jsonl(tasks)));
      expect(result.status).toBe('written');
      expect(await fixture.list()).toEqual([
        'exports/tickets/2026-11-23/manifest.json',
        'exports/tickets/2026-11-23/part-00000.jsonl',
      ]);
      const manifest = await manifestAt(fixture, 'exports/tickets/2026-11-23/manifest.json');
      expect(manifest).toMatchObject({
        sluice: 'manifest/1',
        dataset: 'tickets',
        counts: { records: 6, answers: { accept: 4, reject: 1, ignore: 1 }, flagged: 1 },
        input: { lines: 6, valid: 6, rejected: 0, filtered: 0 },
      });
      expect(manifest.counts.labels).toMatchObject({ BILLING: 2, BUG: 2, ACCOUNT: 1, PROBLEM: 1 });
      expect(manifest.counts.annotators).toEqual({ 'ds-alice': 5, 'ds-bob': 1 });
      expect(manifest.lineage.sources['s3://raw/b.jsonl']).toBe(2);
      expect(manifest.root.endsWith('exports/tickets/2026-11-23')).toBe(true);
      const [part] = manifest.parts;
      const bytes = (await fixture.get(`exports/tickets/2026-11-23/${part?.key}`)) as Buffer;
      expect(part?.sha256).toBe(sha256(bytes));
      expect(part?.bytes).toBe(bytes.length);
      expect(records(bytes)).toEqual(tasks);
    });

    it('groups parts by answer and compresses them with jsonl.gz', async () => {
      const { fixture } = ctx;
      await harness
        .sink(`${fixture.url}/by-answer/{answer}`, { format: 'jsonl.gz' })
        .write(sampleExport());
      expect(await fixture.list()).toEqual([
        'by-answer/accept/part-00000.jsonl.gz',
        'by-answer/ignore/part-00000.jsonl.gz',
        'by-answer/manifest.json',
        'by-answer/reject/part-00000.jsonl.gz',
      ]);
      const manifest = await manifestAt(fixture, 'by-answer/manifest.json');
      for (const part of manifest.parts) {
        const bytes = (await fixture.get(`by-answer/${part.key}`)) as Buffer;
        expect(part.sha256).toBe(sha256(bytes));
        expect(records(gunzipSync(bytes)).every((task) => task.answer === part.answer)).toBe(true);
      }
      expect(manifest.parts.map((part) => part.records)).toEqual([4, 1, 1]);
    });

    it('splits parts by size and keeps labels from escaping the root', async () => {
      const { fixture } = ctx;
      const tasks = sampleExport().map((task, i) => ({
        ...task,
        label: i === 0 ? '../../etc' : 'A',
      }));
      await harness
        .sink(`${fixture.url}/split`, { name: '{label}/part-{part}', maxPartRecords: 3 })
        .write(tasks);
      const keys = await fixture.list();
      expect(keys).toEqual([
        'split/.._.._etc/part-00000.jsonl',
        'split/A/part-00000.jsonl',
        'split/A/part-00001.jsonl',
        'split/manifest.json',
      ]);
    });

    it('refuses empty input, which a broken pipe upstream also produces, unless allowed', async () => {
      const { fixture } = ctx;
      await harness.sink(`${fixture.url}/kept`).write(sampleExport());
      await expect(
        harness.sink(`${fixture.url}/kept`).writeJsonl(bytesOf('')),
      ).rejects.toMatchObject({
        code: 'BAD_INPUT',
        message: expect.stringMatching(/is empty: nothing to export/),
      });
      expect((await manifestAt(fixture, 'kept/manifest.json')).counts.records).toBe(6);
      const empty = await harness
        .sink(`${fixture.url}/empty`, { allowEmpty: true })
        .writeJsonl(bytesOf(''));
      expect(empty.manifest.counts.records).toBe(0);
      expect(await fixture.list()).toContain('empty/manifest.json');
    });

    it('writes a manifest with no parts when filters keep nothing', async () => {
      const { fixture } = ctx;
      const result = await harness
        .sink(`${fixture.url}/none`, { label: ['NO_SUCH'] })
        .write(sampleExport());
      expect(result.manifest.counts.records).toBe(0);
      expect(result.manifest.input.filtered).toBe(6);
      expect(await fixture.list()).toEqual(['none/manifest.json']);
    });
  });
}

/** Reruns: the same export changes nothing; a new one replaces the old without leftovers. */
export function testSinkIdempotence(harness: SinkHarness): void {
  describe(`${harness.connector} sink: idempotence`, () => {
    const ctx = useFixture(() => harness.setup());

    it('changes nothing when the same export runs twice', async () => {
      const { fixture } = ctx;
      const url = `${fixture.url}/again/{dataset}`;
      const input = jsonl(sampleExport());
      const first = await harness.sink(url, { dataset: 'ds' }).writeJsonl(bytesOf(input));
      const before = await fixture.get('again/ds/manifest.json');
      const second = await harness
        .sink(url, { dataset: 'ds', now: new Date(Date.now() + 60_000) })
        .writeJsonl(bytesOf(input));
      expect(first.status).toBe('written');
      expect(second.status).toBe('unchanged');
      expect(second.written).toEqual([]);
      expect(await fixture.get('again/ds/manifest.json')).toEqual(before);
    });

    it('replaces a different export and removes its stale parts', async () => {
      const { fixture } = ctx;
      const url = `${fixture.url}/redo/{answer}`;
      await harness.sink(url).write(sampleExport());
      const accepted = sampleExport().filter((task) => task.answer === 'accept');
      const result = await harness.sink(url).write(accepted);
      expect(result.status).toBe('written');
      expect(result.removed.sort()).toEqual(['ignore/part-00000.jsonl', 'reject/part-00000.jsonl']);
      expect(await fixture.list()).toEqual(['redo/accept/part-00000.jsonl', 'redo/manifest.json']);
      expect((await manifestAt(fixture, 'redo/manifest.json')).counts.records).toBe(4);
    });

    it('refuses or skips a different export when told to', async () => {
      const { fixture } = ctx;
      const url = `${fixture.url}/guarded`;
      await harness.sink(url).write(sampleExport());
      const other = sampleExport().slice(0, 2);
      await expect(harness.sink(url, { ifExists: 'fail' }).write(other)).rejects.toMatchObject({
        code: 'CONFLICT',
      });
      expect((await harness.sink(url, { ifExists: 'skip' }).write(other)).status).toBe('skipped');
      expect((await manifestAt(fixture, 'guarded/manifest.json')).counts.records).toBe(6);
    });
  });
}

/** Bad input: nothing visible is written, unless bad lines are set aside on request. */
export function testSinkBadInput(harness: SinkHarness): void {
  describe(`${harness.connector} sink: bad input`, () => {
    const ctx = useFixture(() => harness.setup());
    const broken = () => {
      const lines = jsonl(sampleExport()).split('\n');
      lines.splice(2, 0, '{"text": "cut off');
      lines.splice(4, 0, '{"text": "bad span", "spans": [{"start": 5, "end": 2}]}');
      return lines.join('\n');
    };

    it('fails on the first bad line, naming it, and writes nothing', async () => {
      const { fixture } = ctx;
      await expect(
        harness.sink(`${fixture.url}/bad`, { inputName: 'stdin' }).writeJsonl(bytesOf(broken())),
      ).rejects.toThrow(/stdin line 3: invalid JSON/);
      const lines = jsonl(sampleExport()).split('\n');
      lines.splice(1, 0, '{"text": "bad span", "spans": [{"start": 5, "end": 2}]}');
      await expect(
        harness.sink(`${fixture.url}/bad`).writeJsonl(bytesOf(lines.join('\n'))),
      ).rejects.toThrow(/line 2: spans\[0\]\.end < start/);
      expect(await fixture.list()).toEqual([]);
    });

    it('leaves an existing export untouched when new input is bad', async () => {
      const { fixture } = ctx;
      await harness.sink(`${fixture.url}/stay`).write(sampleExport());
      const before = await fixture.get('stay/manifest.json');
      await expect(
        harness.sink(`${fixture.url}/stay`).writeJsonl(bytesOf(broken())),
      ).rejects.toThrow(/line 3/);
      expect(await fixture.get('stay/manifest.json')).toEqual(before);
      expect(await fixture.list()).toEqual(['stay/manifest.json', 'stay/part-00000.jsonl']);
    });

    it('sets bad lines aside in rejects.jsonl with skipInvalid', async () => {
      const { fixture } = ctx;
      const result = await harness
        .sink(`${fixture.url}/lenient`, { skipInvalid: true })
        .writeJsonl(bytesOf(broken()));
      expect(result.manifest.input).toMatchObject({ lines: 8, valid: 6, rejected: 2 });
      const rejects = records(
        (await fixture.get('lenient/rejects.jsonl')) as Buffer,
      ) as unknown as Array<{
        line: number;
        error: string;
        raw: string;
      }>;
      expect(rejects.map((reject) => reject.line)).toEqual([3, 5]);
      expect(rejects[0]?.raw).toBe('{"text": "cut off');
      expect(result.manifest.rejects?.sha256).toBe(
        sha256((await fixture.get('lenient/rejects.jsonl')) as Buffer),
      );
    });
  });
}

/** Filters for review routing: answers, flags, scores, labels. */
export function testSinkFilters(harness: SinkHarness): void {
  describe(`${harness.connector} sink: filters`, () => {
    const ctx = useFixture(() => harness.setup());
    const texts = async (fixture: SinkFixture, key: string) =>
      records((await fixture.get(key)) as Buffer).map((task) => task.text);

    it('routes flagged, ignored and low-score examples to a review location', async () => {
      const { fixture } = ctx;
      await harness
        .sink(`${fixture.url}/ignored`, { answer: ['ignore', 'reject'] })
        .write(sampleExport());
      expect(await texts(fixture, 'ignored/part-00000.jsonl')).toEqual(['Cannot log in', '???']);
      await harness.sink(`${fixture.url}/flagged`, { flagged: true }).write(sampleExport());
      expect(await texts(fixture, 'flagged/part-00000.jsonl')).toEqual(['Cannot log in']);
      const low = await harness.sink(`${fixture.url}/low`, { maxScore: 0.5 }).write(sampleExport());
      expect(await texts(fixture, 'low/part-00000.jsonl')).toEqual(['App crashes on start', '???']);
      expect(low.manifest.input.filtered).toBe(4);
      expect(low.manifest.filters).toEqual({ maxScore: 0.5 });
      const any = await harness
        .sink(`${fixture.url}/any`, {
          flagged: true,
          answer: ['ignore'],
          maxScore: 0.3,
          match: 'any',
        })
        .write(sampleExport());
      expect(await texts(fixture, 'any/part-00000.jsonl')).toEqual(['Cannot log in', '???']);
      expect(any.manifest.filters).toMatchObject({ match: 'any', flagged: true });
      await harness
        .sink(`${fixture.url}/labels`, { label: ['PROBLEM', 'ACCOUNT'] })
        .write(sampleExport());
      expect(await texts(fixture, 'labels/part-00000.jsonl')).toEqual([
        'Cannot log in',
        'Crash after update',
      ]);
    });
  });
}

/** Runs every sink suite the connector supports. */
export function testSink(harness: SinkHarness, options: SinkSuiteOptions = {}): void {
  const skip = new Set(options.skip ?? []);
  if (!skip.has('write')) testSinkWrite(harness);
  if (!skip.has('idempotence')) testSinkIdempotence(harness);
  if (!skip.has('bad-input')) testSinkBadInput(harness);
  if (!skip.has('filters')) testSinkFilters(harness);
  for (const name of skip)
    it.skip(`${harness.connector} sink: ${name} (declared unsupported)`, () => {});
}
