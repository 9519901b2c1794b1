import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Manifest, ManifestFile, Sink, SinkOptions } from '../sink/index.js';
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
  /**
   * Of two runs committing at once, exactly one wins: `always` (the default: the store enforces
   * preconditions), `new-root` (only where no export exists yet: creating the manifest is
   * exclusive, replacing it is checked, so both may win), `never` (the store ignores
   * preconditions, as s3rver does).
   */
  exclusive?: 'always' | 'new-root' | 'never';
}

export interface SinkSuiteOptions {
  skip?: Array<'write' | 'idempotence' | 'commit' | 'names' | 'bad-input' | 'filters'>;
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
const under = (root: string, key: string) => (root ? `${root}/${key}` : key);

async function manifestAt(fixture: SinkFixture, key: string): Promise<Manifest> {
  const body = await fixture.get(key);
  expect(body, `${key} exists`).toBeDefined();
  return JSON.parse((body as Buffer).toString('utf8')) as Manifest;
}

/** Every file a manifest lists. */
function filesOf(manifest: Manifest): ManifestFile[] {
  return [
    ...manifest.parts,
    ...(manifest.rejects ? [manifest.rejects] : []),
    ...(manifest.review ? [manifest.review] : []),
    ...(manifest.guidelines ? [manifest.guidelines] : []),
  ];
}

/**
 * The export at `root` (relative to the fixture), checked as a reader would: every file the
 * manifest lists holds the bytes its sha256 says, each key carries the tag of a run, and
 * nothing else is under the root (no leftovers of earlier runs, markers or temporary files).
 */
export async function readExport(fixture: SinkFixture, root: string): Promise<Manifest> {
  const manifest = await manifestAt(fixture, under(root, 'manifest.json'));
  const prefix = root ? `${root}/` : '';
  const listed = (await fixture.list())
    .filter((key) => key.startsWith(prefix))
    .map((key) => key.slice(prefix.length));
  const files = filesOf(manifest);
  expect(listed).toEqual(['manifest.json', ...files.map((file) => file.key)].sort());
  for (const file of files) {
    const bytes = (await fixture.get(under(root, file.key))) as Buffer;
    expect(sha256(bytes), `${file.key} holds the bytes of its sha256`).toBe(file.sha256);
    expect(file.key).toMatch(/\.[0-9a-z]{8}(\.[^/]+)?$/);
  }
  return manifest;
}

/** Records of the file named `name` (untagged) of the export at `root`. */
async function recordsOf(fixture: SinkFixture, root: string, name: string): Promise<Task[]> {
  const manifest = await manifestAt(fixture, under(root, 'manifest.json'));
  const file = filesOf(manifest).find((f) => f.name === name);
  expect(file, `${name} is in the manifest`).toBeDefined();
  return records((await fixture.get(under(root, (file as ManifestFile).key))) as Buffer);
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
      const manifest = await readExport(fixture, 'exports/tickets/2026-11-23');
      expect(manifest).toMatchObject({
        sluice: 'manifest/2',
        dataset: 'tickets',
        counts: { records: 6, answers: { accept: 4, reject: 1, ignore: 1 }, flagged: 1 },
        input: { lines: 6, valid: 6, rejected: 0, filtered: 0 },
      });
      expect(manifest.counts.labels).toMatchObject({ BILLING: 2, BUG: 2, ACCOUNT: 1, PROBLEM: 1 });
      expect(manifest.counts.annotators).toEqual({ 'ds-alice': 5, 'ds-bob': 1 });
      expect(manifest.lineage.sources['s3://raw/b.jsonl']).toBe(2);
      expect(manifest.root.endsWith('exports/tickets/2026-11-23')).toBe(true);
      const [part] = manifest.parts;
      expect(part?.name).toBe('part-00000.jsonl');
      expect(part?.key).toBe(`part-00000.${manifest.run}.jsonl`);
      const bytes = (await fixture.get(`exports/tickets/2026-11-23/${part?.key}`)) as Buffer;
      expect(part?.bytes).toBe(bytes.length);
      expect(records(bytes)).toEqual(tasks);
    });

    it('groups parts by answer and compresses them with jsonl.gz', async () => {
      const { fixture } = ctx;
      await harness
        .sink(`${fixture.url}/by-answer/{answer}`, { format: 'jsonl.gz' })
        .write(sampleExport());
      const manifest = await readExport(fixture, 'by-answer');
      expect(manifest.parts.map((part) => part.name)).toEqual([
        'accept/part-00000.jsonl.gz',
        'ignore/part-00000.jsonl.gz',
        'reject/part-00000.jsonl.gz',
      ]);
      for (const part of manifest.parts) {
        const bytes = (await fixture.get(`by-answer/${part.key}`)) as Buffer;
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
      const manifest = await readExport(fixture, 'split');
      expect(manifest.parts.map((part) => part.name)).toEqual([
        '%2E.%2F..%2Fetc/part-00000.jsonl',
        'A/part-00000.jsonl',
        'A/part-00001.jsonl',
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
      expect((await readExport(fixture, 'kept')).counts.records).toBe(6);
      const empty = await harness
        .sink(`${fixture.url}/empty`, { allowEmpty: true })
        .writeJsonl(bytesOf(''));
      expect(empty.manifest.counts.records).toBe(0);
      expect((await readExport(fixture, 'empty')).parts).toEqual([]);
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
      const listed = await fixture.list();
      const second = await harness
        .sink(url, { dataset: 'ds', now: new Date(Date.now() + 60_000) })
        .writeJsonl(bytesOf(input));
      expect(first.status).toBe('written');
      expect(second.status).toBe('unchanged');
      expect(second.written).toEqual([]);
      expect(await fixture.get('again/ds/manifest.json')).toEqual(before);
      expect(await fixture.list()).toEqual(listed);
    });

    it('replaces a different export and removes its stale parts', async () => {
      const { fixture } = ctx;
      const url = `${fixture.url}/redo/{answer}`;
      const first = await harness.sink(url).write(sampleExport());
      const accepted = sampleExport().filter((task) => task.answer === 'accept');
      const result = await harness.sink(url).write(accepted);
      expect(result.status).toBe('written');
      const stale = first.manifest.parts
        .filter((part) => part.answer !== 'accept')
        .map((part) => part.key);
      expect(result.removed.filter((key) => stale.includes(key)).sort()).toEqual(stale.sort());
      const manifest = await readExport(fixture, 'redo');
      expect(manifest.parts.map((part) => part.name)).toEqual(['accept/part-00000.jsonl']);
      expect(manifest.counts.records).toBe(4);
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
      expect((await readExport(fixture, 'guarded')).counts.records).toBe(6);
    });
  });
}

/**
 * An input that holds back its last line until `gate` opens, so that runs given such inputs
 * have all read the root (which comes before stdin) before any of them can commit.
 */
async function* heldBack(text: string, arrived: () => void, gate: Promise<void>) {
  const lines = text.split('\n');
  yield Buffer.from(`${lines.slice(0, -2).join('\n')}\n`);
  arrived();
  await gate;
  yield Buffer.from(`${lines.slice(-2).join('\n')}`);
}

/** Runs several sinks on one root at once, each past reading the root before any commits. */
async function together(
  runs: Array<(input: AsyncIterable<Buffer>) => Promise<unknown>>,
  inputs: string[],
) {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  let waiting = runs.length;
  const arrived = () => {
    if (--waiting === 0) open();
  };
  return Promise.allSettled(
    runs.map((run, i) => run(heldBack(inputs[i] as string, arrived, gate))),
  );
}

/** The commit protocol: immutable parts, one manifest replace, one winner among writers. */
export function testSinkCommit(harness: SinkHarness): void {
  describe(`${harness.connector} sink: commit`, () => {
    const ctx = useFixture(() => harness.setup());

    it('writes a changed part under a new key, never over a part the live manifest lists', async () => {
      const { fixture } = ctx;
      const url = `${fixture.url}/versions/{answer}`;
      const first = await harness.sink(url).write(sampleExport());
      const changed = sampleExport();
      (changed[0] as Task).text = 'Refund not received (edited)';
      const second = await harness.sink(url).write(changed);
      const key = (m: Manifest, answer: string) => m.parts.find((p) => p.answer === answer)?.key;
      expect(key(second.manifest, 'accept')).not.toBe(key(first.manifest, 'accept'));
      expect(second.written).toContain(key(second.manifest, 'accept'));
      expect(second.manifest.run).not.toBe(first.manifest.run);
      const manifest = await readExport(fixture, 'versions');
      expect((await recordsOf(fixture, 'versions', 'accept/part-00000.jsonl'))[0]?.text).toBe(
        'Refund not received (edited)',
      );
      expect(manifest.counts.records).toBe(6);
    });

    const exclusive = harness.exclusive ?? 'always';
    it.skipIf(exclusive === 'never').each([
      ['overwrite', undefined],
      ['fail', 'fail' as const],
    ])('lets exactly one of two runs on a new root win (--if-exists %s)', async (_, ifExists) => {
      const { fixture } = ctx;
      const url = `${fixture.url}/race`;
      const inputs = [jsonl(sampleExport()), jsonl(sampleExport().slice(0, 4))];
      const results = await together(
        inputs.map(() => (input) => harness.sink(url, { ifExists }).writeJsonl(input)),
        inputs,
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]?.reason).toMatchObject({
        code: 'CONFLICT',
        message: expect.stringMatching(
          /another run committed an export here .*records.*; nothing of this run was published/,
        ),
      });
      const manifest = await readExport(fixture, 'race');
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      expect(manifest.counts.records).toBe(winner === 0 ? 6 : 4);
    });

    it.skipIf(exclusive !== 'always')(
      'lets exactly one of two runs replacing an export win, and keeps an export whole',
      async () => {
        const { fixture } = ctx;
        const url = `${fixture.url}/replace/{answer}`;
        await harness.sink(url).write(sampleExport());
        const inputs = [jsonl(sampleExport().slice(1)), jsonl(sampleExport().slice(2))];
        const results = await together(
          inputs.map(() => (input) => harness.sink(url).writeJsonl(input)),
          inputs,
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const manifest = await readExport(fixture, 'replace');
        expect([5, 4]).toContain(manifest.counts.records);
      },
    );
  });
}

/** Names from data: escaped injectively, never a reserved name, never too long. */
export function testSinkNames(harness: SinkHarness): void {
  describe(`${harness.connector} sink: names from data`, () => {
    const ctx = useFixture(() => harness.setup());

    it('gives distinct values distinct names and keeps Sluice names out of reach', async () => {
      const { fixture } = ctx;
      const long = 'é'.repeat(200);
      const labels = ['manifest.json', 'rejects', 'team/ner', 'team_ner', '..', '_', long];
      const tasks = labels.map((label, i) => ({ text: `t${i}`, label, answer: 'accept' as const }));
      const sink = () => harness.sink(`${fixture.url}/names`, { name: '{label}/part-{part}' });
      const result = await sink().write(tasks);
      const manifest = await readExport(fixture, 'names');
      const byLabel = new Map(manifest.parts.map((part) => [part.label, part.name]));
      expect(byLabel.get('manifest.json')).toBe('%6Danifest.json/part-00000.jsonl');
      expect(byLabel.get('rejects')).toBe('%72ejects/part-00000.jsonl');
      expect(byLabel.get('team/ner')).toBe('team%2Fner/part-00000.jsonl');
      expect(byLabel.get('team_ner')).toBe('team_ner/part-00000.jsonl');
      expect(byLabel.get('..')).toBe('%2E%2E/part-00000.jsonl');
      expect(byLabel.get('_')).toBe('_/part-00000.jsonl');
      expect(byLabel.get(long)).toMatch(/^(é){40,48}~[0-9a-f]{12}\/part-00000\.jsonl$/);
      expect(new Set(byLabel.values()).size).toBe(labels.length);
      for (const part of manifest.parts) {
        const texts = (await recordsOf(fixture, 'names', part.name)).map((t) => t.label);
        expect(texts).toEqual([part.label]);
      }
      expect(result.status).toBe('written');
      expect((await sink().write(tasks)).status).toBe('unchanged');
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
      const listed = await fixture.list();
      await expect(
        harness.sink(`${fixture.url}/stay`).writeJsonl(bytesOf(broken())),
      ).rejects.toThrow(/line 3/);
      expect(await fixture.get('stay/manifest.json')).toEqual(before);
      expect(await fixture.list()).toEqual(listed);
    });

    it('sets bad lines aside in rejects.jsonl with skipInvalid', async () => {
      const { fixture } = ctx;
      const result = await harness
        .sink(`${fixture.url}/lenient`, { skipInvalid: true })
        .writeJsonl(bytesOf(broken()));
      expect(result.manifest.input).toMatchObject({ lines: 8, valid: 6, rejected: 2 });
      const manifest = await readExport(fixture, 'lenient');
      expect(manifest.rejects?.name).toBe('rejects.jsonl');
      const rejects = (await recordsOf(fixture, 'lenient', 'rejects.jsonl')) as unknown as Array<{
        line: number;
        error: string;
        raw: string;
      }>;
      expect(rejects.map((reject) => reject.line)).toEqual([3, 5]);
      expect(rejects[0]?.raw).toBe('{"text": "cut off');
    });

    it('keeps the bytes of a line over the limit in rejects.jsonl', async () => {
      const { fixture } = ctx;
      const long = JSON.stringify({ text: 'x'.repeat(5000), answer: 'accept' });
      const input = `${jsonl(sampleExport().slice(0, 2))}${long}\n${jsonl(sampleExport().slice(2))}`;
      const result = await harness
        .sink(`${fixture.url}/long`, { skipInvalid: true, maxLineBytes: 1000 })
        .writeJsonl(Readable.from(chunks(input, 700)));
      expect(result.manifest.input).toMatchObject({ lines: 7, valid: 6, rejected: 1 });
      const [reject] = (await recordsOf(fixture, 'long', 'rejects.jsonl')) as unknown as Array<{
        line: number;
        error: string;
        raw_base64: string;
      }>;
      expect(reject).toMatchObject({ line: 3, error: 'line is longer than 1000 bytes' });
      expect(Buffer.from(reject?.raw_base64 ?? '', 'base64').toString()).toBe(long);
    });

    it('refuses a score that is not a number when filtering by score', async () => {
      const { fixture } = ctx;
      const tasks = [...sampleExport(), { text: 'odd', answer: 'accept', score: 'high' }];
      await expect(
        harness.sink(`${fixture.url}/score`, { maxScore: 0.5 }).writeJsonl(bytesOf(jsonl(tasks))),
      ).rejects.toThrow(/line 7: score must be a number to filter by score, got "high"/);
      expect(await fixture.list()).toEqual([]);
    });
  });
}

/** The bytes of `text` in chunks of `size`, as a pipe delivers them. */
function chunks(text: string, size: number): Buffer[] {
  const bytes = Buffer.from(text);
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

/** Filters for review routing: answers, flags, scores, labels. */
export function testSinkFilters(harness: SinkHarness): void {
  describe(`${harness.connector} sink: filters`, () => {
    const ctx = useFixture(() => harness.setup());
    const texts = async (fixture: SinkFixture, root: string) =>
      (await recordsOf(fixture, root, 'part-00000.jsonl')).map((task) => task.text);

    it('routes flagged, ignored and low-score examples to a review location', async () => {
      const { fixture } = ctx;
      await harness
        .sink(`${fixture.url}/ignored`, { answer: ['ignore', 'reject'] })
        .write(sampleExport());
      expect(await texts(fixture, 'ignored')).toEqual(['Cannot log in', '???']);
      await harness.sink(`${fixture.url}/flagged`, { flagged: true }).write(sampleExport());
      expect(await texts(fixture, 'flagged')).toEqual(['Cannot log in']);
      const low = await harness.sink(`${fixture.url}/low`, { maxScore: 0.5 }).write(sampleExport());
      expect(await texts(fixture, 'low')).toEqual(['App crashes on start', '???']);
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
      expect(await texts(fixture, 'any')).toEqual(['Cannot log in', '???']);
      expect(any.manifest.filters).toMatchObject({ match: 'any', flagged: true });
      await harness
        .sink(`${fixture.url}/labels`, { label: ['PROBLEM', 'ACCOUNT'] })
        .write(sampleExport());
      expect(await texts(fixture, 'labels')).toEqual(['Cannot log in', 'Crash after update']);
    });
  });
}

/** Runs every sink suite the connector supports. */
export function testSink(harness: SinkHarness, options: SinkSuiteOptions = {}): void {
  const skip = new Set(options.skip ?? []);
  if (!skip.has('write')) testSinkWrite(harness);
  if (!skip.has('idempotence')) testSinkIdempotence(harness);
  if (!skip.has('commit')) testSinkCommit(harness);
  if (!skip.has('names')) testSinkNames(harness);
  if (!skip.has('bad-input')) testSinkBadInput(harness);
  if (!skip.has('filters')) testSinkFilters(harness);
  for (const name of skip)
    it.skip(`${harness.connector} sink: ${name} (declared unsupported)`, () => {});
}
