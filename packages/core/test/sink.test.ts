import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SluiceError } from '../src/errors.js';
import { createSink, type Manifest, type SinkDriver, type StagedPart } from '../src/sink/index.js';
import { hostIdentity } from '../src/sink/owner.js';
import { sweepStaging } from '../src/sink/staging.js';

interface Stored {
  body: Buffer;
  version: number;
}

/** Hooks a test uses to make the store fail or behave like a lax one. */
interface Faults {
  /** Called before each write of a file; may throw. */
  beforeWrite?: (key: string, count: number) => void | Promise<void>;
  /** Takes the write, then answers with this error (an answer lost on the way). */
  loseAnswer?: (key: string) => Error | undefined;
  /** Ignore commit preconditions, as s3rver does. */
  lax?: boolean;
  /** Answers a commit with this error without taking it. */
  refuseCommit?: (key: string) => Error | undefined;
}

let versions = 0;

/** The smallest sink driver: a Map, with conditional writes, and faults on request. */
function memoryDriver(store: Map<string, Stored>, faults: Faults = {}) {
  let writes = 0;
  return (root: string): SinkDriver => {
    const at = (key: string) => `${root}/${key}`;
    const put = async (key: string, part: StagedPart) => {
      store.set(at(key), { body: await readFile(part.path), version: ++versions });
      const lost = faults.loseAnswer?.(key);
      if (lost) throw lost;
    };
    return {
      connector: 'memory',
      root,
      commits: 'atomic',
      async read(key) {
        const stored = store.get(at(key));
        return stored && { body: stored.body, version: String(stored.version) };
      },
      async write(key, part) {
        await faults.beforeWrite?.(key, ++writes);
        await put(key, part);
      },
      async commit(key, part, expected) {
        const refused = faults.refuseCommit?.(key);
        if (refused) throw refused;
        const current = store.get(at(key));
        if (!faults.lax && (current ? String(current.version) : undefined) !== expected) {
          throw new SluiceError(`${at(key)} changed`, { code: 'CONFLICT', connector: 'memory' });
        }
        await put(key, part);
      },
      async delete(key) {
        store.delete(at(key));
      },
      async *list(prefix) {
        for (const key of [...store.keys()]) {
          if (key.startsWith(`${root}/${prefix}`)) yield key.slice(root.length + 1);
        }
      },
    };
  };
}

const keys = (store: Map<string, Stored>) => [...store.keys()].sort();
const manifestOf = (store: Map<string, Stored>, root = 'mem://x') =>
  JSON.parse((store.get(`${root}/manifest.json`) as Stored).body.toString()) as Manifest;
/** Keys a manifest accounts for: its files and itself. */
const exportKeys = (manifest: Manifest, root = 'mem://x') =>
  [
    'manifest.json',
    ...manifest.parts.map((p) => p.key),
    ...(manifest.rejects ? [manifest.rejects.key] : []),
    ...(manifest.review ? [manifest.review.key] : []),
    ...(manifest.guidelines ? [manifest.guidelines.key] : []),
  ]
    .map((key) => `${root}/${key}`)
    .sort();
/** A pid no process has any more. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid as number;

const tasks = (n: number, tag = '') =>
  Array.from({ length: n }, (_, i) => ({
    text: `t${i}${tag}`,
    answer: (['accept', 'reject', 'ignore'] as const)[i % 3],
  }));

describe('sink counts', () => {
  it('counts labels and annotators named like Object properties', async () => {
    const store = new Map<string, Stored>();
    const result = await createSink(memoryDriver(store), 'mem://x').write([
      { text: 'a', label: 'constructor', _annotator_id: '__proto__', meta: { source: 'toString' } },
      { text: 'b', label: 'constructor', _annotator_id: '__proto__', meta: { source: 'toString' } },
    ]);
    expect(result.manifest.counts.labels).toEqual({ constructor: 2 });
    expect(Object.entries(result.manifest.counts.annotators)).toEqual([['__proto__', 2]]);
    expect(result.manifest.lineage.sources).toEqual({ toString: 2 });
    expect(manifestOf(store).counts.labels.constructor).toBe(2);
  });

  it('keeps db-out lines byte for byte (floats such as 1.0 stay floats)', async () => {
    const store = new Map<string, Stored>();
    const lines =
      '{"text": "a", "score": 1.0, "answer": "accept"}\n{"text":"b","meta":{"p":2.50}}\n';
    const result = await createSink(memoryDriver(store), 'mem://x').writeJsonl(
      Readable.from([lines]),
    );
    const [part] = result.manifest.parts;
    expect(store.get(`mem://x/${part?.key}`)?.body.toString()).toBe(lines);
  });

  it('sets aside lines that are not UTF-8 with their exact bytes, and keeps unusual tokens', async () => {
    const store = new Map<string, Stored>();
    const latin1 = Buffer.from('{"text": "caf\xe9"}\n', 'latin1');
    const odd = '{"text":"ab","tokens":[{"text":"a","start":5,"end":1}],"answer":"accept"}\n';
    const result = await createSink(memoryDriver(store), 'mem://x', {
      skipInvalid: true,
    }).writeJsonl(Readable.from([Buffer.from(odd), latin1]));
    expect(result.manifest.input).toMatchObject({ lines: 2, valid: 1, rejected: 1 });
    const rejects = store.get(`mem://x/${result.manifest.rejects?.key}`)?.body.toString();
    const parsed = JSON.parse((rejects as string).trim());
    expect(parsed).toMatchObject({ line: 2, error: 'the line is not valid UTF-8 text' });
    expect(Buffer.from(parsed.raw_base64, 'base64').equals(latin1.subarray(0, -1))).toBe(true);
    expect(store.get(`mem://x/${result.manifest.parts[0]?.key}`)?.body.toString()).toBe(odd);
  });

  it('streams an over-long line into rejects.jsonl byte for byte, whatever the chunks', async () => {
    const store = new Map<string, Stored>();
    const long = `{"text": "${'é'.repeat(3000)}", "bytes": "\xff"}`;
    const input = Buffer.concat([
      Buffer.from('{"text":"a"}\n'),
      Buffer.from(long, 'latin1'),
      Buffer.from('\n{"text":"b"}\n'),
    ]);
    const pieces = Array.from({ length: Math.ceil(input.length / 997) }, (_, i) =>
      input.subarray(i * 997, (i + 1) * 997),
    );
    const result = await createSink(memoryDriver(store), 'mem://x', {
      skipInvalid: true,
      maxLineBytes: 500,
    }).writeJsonl(Readable.from(pieces));
    expect(result.manifest.input).toMatchObject({ lines: 3, valid: 2, rejected: 1 });
    const rejects = store.get(`mem://x/${result.manifest.rejects?.key}`)?.body.toString();
    const parsed = JSON.parse((rejects as string).trim());
    expect(parsed).toMatchObject({ line: 2, error: 'line is longer than 500 bytes' });
    expect(Buffer.from(parsed.raw_base64, 'base64').equals(Buffer.from(long, 'latin1'))).toBe(true);
  });

  it('refuses part names that would collide', async () => {
    const sink = createSink(memoryDriver(new Map()), 'mem://x', { name: 'all', maxPartRecords: 1 });
    await expect(sink.write([{ text: 'a' }, { text: 'b' }])).rejects.toThrow(
      /part key all\.jsonl would overwrite another part/,
    );
  });

  it('refuses a part name that climbs out of the export root', () => {
    expect(() => createSink(memoryDriver(new Map()), 'mem://x', { name: '../elsewhere' })).toThrow(
      /--name \.\.\/elsewhere\.jsonl would leave the export root/,
    );
  });

  it('gives labels that differ only in case names of their own (case-insensitive stores)', async () => {
    const store = new Map<string, Stored>();
    const result = await createSink(memoryDriver(store), 'mem://x', { name: '{label}' }).write([
      { text: 'a', label: 'ORG' },
      { text: 'b', label: 'org' },
    ]);
    const names = result.manifest.parts.map((part) => part.name);
    expect(names[0]).toBe('ORG.jsonl');
    expect(names[1]).toMatch(/^org~[0-9a-f]{6}\.jsonl$/);
  });

  it('puts the guidelines file in the export, checksummed in the manifest, and reruns stay unchanged', async () => {
    const store = new Map<string, Stored>();
    const dir = await mkdtemp(join(tmpdir(), 'sluice-guidelines-'));
    const file = join(dir, 'Labelling guide.html');
    await writeFile(file, '<h1>Label ORG for companies</h1>');
    const input = [{ text: 'a', answer: 'ignore' as const }];
    const sink = () => createSink(memoryDriver(store), 'mem://x', { guidelines: file });
    const first = await sink().write(input);
    const run = first.manifest.run;
    expect(first.written).toEqual([
      `part-00000.${run}.jsonl`,
      `guidelines.${run}.html`,
      'manifest.json',
    ]);
    expect(store.get(`mem://x/guidelines.${run}.html`)?.body.toString()).toBe(
      '<h1>Label ORG for companies</h1>',
    );
    expect(first.manifest.guidelines).toEqual({
      key: `guidelines.${run}.html`,
      name: 'Labelling guide.html',
      bytes: 32,
      sha256: '915c1dda8a8916dfd04bcf4fa3600dd16afb5192cf251d4b4acd49edb9dc6f77',
    });
    expect((await sink().write(input)).status).toBe('unchanged');
    // New guidelines are a different export: only they and the manifest are written again.
    await writeFile(file, '<h1>Label ORG and PRODUCT</h1>');
    const edited = await sink().write(input);
    expect(edited.written).toEqual([`guidelines.${edited.manifest.run}.html`, 'manifest.json']);
    expect(edited.removed).toEqual([`guidelines.${run}.html`]);
    expect(keys(store)).toEqual(exportKeys(edited.manifest));
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a guidelines path that is not a file before writing anything', async () => {
    const store = new Map<string, Stored>();
    const sink = createSink(memoryDriver(store), 'mem://x', {
      guidelines: '/nonexistent/guide.pdf',
    });
    await expect(sink.write([{ text: 'a' }])).rejects.toThrow(
      '--guidelines /nonexistent/guide.pdf: no such file',
    );
    expect(store.size).toBe(0);
  });
});

describe('sink commit protocol', () => {
  it('reads an export written as manifest/1 as the same export: an upgraded rerun writes nothing', async () => {
    const store = new Map<string, Stored>();
    const written = await createSink(memoryDriver(store), 'mem://x').write(tasks(4));
    // Rewrite it as a release before run tags would have: plain keys, manifest/1.
    const { run, ...rest } = written.manifest;
    const v1 = {
      ...rest,
      sluice: 'manifest/1',
      parts: rest.parts.map(({ name, ...part }) => ({ ...part, key: name })),
    };
    store.clear();
    const part = v1.parts[0] as { key: string };
    store.set(`mem://x/${part.key}`, {
      body: Buffer.from(
        tasks(4)
          .map((t) => `${JSON.stringify(t)}\n`)
          .join(''),
      ),
      version: 1,
    });
    store.set('mem://x/manifest.json', { body: Buffer.from(JSON.stringify(v1)), version: 2 });
    const before = new Map(store);
    const again = await createSink(memoryDriver(store), 'mem://x').write(tasks(4));
    expect(run).toMatch(/^[0-9a-z]{8}$/);
    expect(again.status).toBe('unchanged');
    expect(store).toEqual(before);
    // A changed rerun replaces it, and its plain-named part goes once the new manifest is in.
    const changed = await createSink(memoryDriver(store), 'mem://x').write(tasks(5));
    expect(changed.removed).toEqual(['part-00000.jsonl']);
    expect(keys(store)).toEqual(exportKeys(changed.manifest));
  });

  it('reuses unchanged parts and writes changed ones under new keys', async () => {
    const store = new Map<string, Stored>();
    const sink = () => createSink(memoryDriver(store), 'mem://x', { maxPartRecords: 3 });
    const first = await sink().write(tasks(9));
    const changed = tasks(9);
    changed[8] = { text: 'edited', answer: 'ignore' };
    const second = await sink().write(changed);
    const [a, b, c] = second.manifest.parts;
    expect([a?.key, b?.key]).toEqual(first.manifest.parts.slice(0, 2).map((p) => p.key));
    expect(c?.key).toBe(`part-00002.${second.manifest.run}.jsonl`);
    expect(second.written).toEqual([c?.key, 'manifest.json']);
    expect(second.removed).toEqual([first.manifest.parts[2]?.key]);
    expect(keys(store)).toEqual(exportKeys(second.manifest));
  });

  it('keeps the previous export whole when a write fails midway, and removes what the run wrote', async () => {
    const store = new Map<string, Stored>();
    await createSink(memoryDriver(store), 'mem://x', { maxPartRecords: 2 }).write(tasks(6));
    const before = new Map(store);
    const full = new SluiceError('mem://x/part-00001: no space left on the device', {
      code: 'IO',
      connector: 'memory',
      hint: 'free space',
    });
    const failing = memoryDriver(store, {
      beforeWrite: (_, count) => {
        if (count === 2) throw full;
      },
    });
    await expect(
      createSink(failing, 'mem://x', { maxPartRecords: 2 }).write(tasks(6, '-new')),
    ).rejects.toMatchObject({
      code: 'IO',
      hint: 'free space',
      message:
        'mem://x/part-00001: no space left on the device (nothing was published: mem://x still holds the previous export)',
    });
    expect(store).toEqual(before);
  });

  it('stops at an interrupt during publishing and publishes nothing', async () => {
    const store = new Map<string, Stored>();
    await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    const before = new Map(store);
    const abort = new AbortController();
    const driver = memoryDriver(store, { beforeWrite: () => abort.abort() });
    await expect(
      createSink(driver, 'mem://x', { signal: abort.signal, maxPartRecords: 1 }).write(
        tasks(3, '-new'),
      ),
    ).rejects.toMatchObject({
      code: 'INTERRUPTED',
      message: expect.stringMatching(/before the export was committed: nothing was published/),
    });
    expect(store).toEqual(before);
  });

  it('counts a commit whose answer was lost on the way as committed', async () => {
    const store = new Map<string, Stored>();
    const lost = memoryDriver(store, {
      loseAnswer: (key) =>
        key === 'manifest.json'
          ? new SluiceError('socket hang up', { code: 'IO', retryable: true })
          : undefined,
    });
    const result = await createSink(lost, 'mem://x').write(tasks(3));
    expect(result.status).toBe('written');
    expect(keys(store)).toEqual(exportKeys(manifestOf(store)));
  });

  it('leaves what it wrote for the next run when the commit got no answer', async () => {
    const store = new Map<string, Stored>();
    await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    const live = manifestOf(store);
    const silent = memoryDriver(store, {
      refuseCommit: (key) =>
        key === 'manifest.json' ? new SluiceError('socket hang up', { code: 'IO' }) : undefined,
    });
    await expect(createSink(silent, 'mem://x').write(tasks(4))).rejects.toMatchObject({
      code: 'IO',
      message:
        'socket hang up (the store did not answer the commit: run again to finish or undo it)',
    });
    // Its part and marker stay: had the manifest landed, they would be the export.
    expect(keys(store).length).toBeGreaterThan(exportKeys(live).length);
    expect(manifestOf(store)).toEqual(live);
    // The next run commits, and with that the silent run's commit can only fail: its files go
    // (its marker too, once its process is gone: here it is this one, still running).
    const again = await createSink(memoryDriver(store), 'mem://x').write(tasks(4));
    expect(again.status).toBe('written');
    expect(again.swept.length).toBeGreaterThan(0);
    const files = keys(store).filter((key) => !key.includes('/.sluice-run.'));
    expect(files).toEqual(exportKeys(again.manifest));
  });

  it('removes what a killed run left: its files, and its marker once its process is gone', async () => {
    const store = new Map<string, Stored>();
    const live = await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    // A run that died while writing: its marker, a part, nothing committed.
    const marker = {
      sluice: 'run/1',
      run: 'deadbeef',
      base: null,
      started: new Date().toISOString(),
      host: hostIdentity(),
      pid: deadPid(),
      supersedes: [],
    };
    const json = (value: unknown) => ({ body: Buffer.from(JSON.stringify(value)), version: 1 });
    store.set('mem://x/.sluice-run.deadbeef.json', json(marker));
    store.set('mem://x/part-00000.deadbeef.jsonl', json('half'));
    // The same export again writes nothing, and cleans up.
    const again = await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    expect(again.status).toBe('unchanged');
    expect(again.swept).toEqual(['part-00000.deadbeef.jsonl']);
    expect(keys(store)).toEqual(exportKeys(live.manifest));
  });

  it('finishes the cleanup of a run killed right after its commit, even on an unchanged rerun', async () => {
    const store = new Map<string, Stored>();
    const first = await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    const kept = new Map(store);
    const second = await createSink(memoryDriver(store), 'mem://x').write(tasks(2));
    // Put back what that run removed after its commit, and its marker: as if it was killed then.
    for (const [key, value] of kept) if (!store.has(key)) store.set(key, value);
    const marker = {
      sluice: 'run/1',
      run: second.manifest.run,
      base: 'x',
      started: new Date().toISOString(),
      host: 'elsewhere',
      pid: 1,
      supersedes: first.manifest.parts.map((part) => part.key),
    };
    store.set(`mem://x/.sluice-run.${second.manifest.run}.json`, {
      body: Buffer.from(JSON.stringify(marker)),
      version: 1,
    });
    const again = await createSink(memoryDriver(store), 'mem://x').write(tasks(2));
    expect(again.status).toBe('unchanged');
    expect(again.swept).toEqual(first.manifest.parts.map((part) => part.key));
    expect(keys(store)).toEqual(exportKeys(second.manifest));
  });

  it('leaves the files of a run that may still be writing elsewhere', async () => {
    const store = new Map<string, Stored>();
    await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    const live = (store.get('mem://x/manifest.json') as Stored).body;
    const { createHash } = await import('node:crypto');
    const marker = {
      sluice: 'run/1',
      run: 'a1b2c3d4',
      base: createHash('sha256').update(live).digest('hex'),
      started: new Date().toISOString(),
      host: 'another-machine',
      pid: 4242,
      supersedes: [],
    };
    store.set('mem://x/.sluice-run.a1b2c3d4.json', {
      body: Buffer.from(JSON.stringify(marker)),
      version: 1,
    });
    store.set('mem://x/part-00000.a1b2c3d4.jsonl', { body: Buffer.from('x'), version: 1 });
    const again = await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    expect(again.swept).toEqual([]);
    expect(store.has('mem://x/part-00000.a1b2c3d4.jsonl')).toBe(true);
  });

  it('on a store that ignores preconditions: warns, and shares no file between exports', async () => {
    const store = new Map<string, Stored>();
    const warnings: string[] = [];
    const sink = () =>
      createSink(memoryDriver(store, { lax: true }), 'mem://x', {
        maxPartRecords: 3,
        onWarning: (message) => warnings.push(message),
      });
    const first = await sink().write(tasks(6));
    expect(warnings[0]).toMatch(/the store ignores conditional writes/);
    const changed = tasks(6);
    changed[5] = { text: 'edited', answer: 'accept' };
    const second = await sink().write(changed);
    const before = new Set(first.manifest.parts.map((part) => part.key));
    expect(second.manifest.parts.every((part) => !before.has(part.key))).toBe(true);
    expect(keys(store)).toEqual(exportKeys(second.manifest));
  });

  it('reports CONFLICT when another export was committed meanwhile, and removes what it wrote', async () => {
    const store = new Map<string, Stored>();
    await createSink(memoryDriver(store), 'mem://x').write(tasks(3));
    // Another export is committed while this run writes its part.
    const racing = memoryDriver(store, {
      beforeWrite: async (key) => {
        if (key.startsWith('part-'))
          await createSink(memoryDriver(store), 'mem://x').write(tasks(1));
      },
    });
    await expect(createSink(racing, 'mem://x').write(tasks(2))).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringMatching(
        /^mem:\/\/x: another run committed an export here while this one was writing \(1 records in 1 parts, written .* by @sluice\/core, run [0-9a-z]{8}\); nothing of this run was published$/,
      ),
    });
    expect(keys(store)).toEqual(exportKeys(manifestOf(store)));
    expect(manifestOf(store).counts.records).toBe(1);
  });
});

describe('sink staging', () => {
  it('removes staging folders of processes that are gone, and keeps those of live ones', async () => {
    const dead = join(tmpdir(), `sluice-sink-${deadPid()}-abcdef`);
    const mine = join(tmpdir(), `sluice-sink-${process.pid}-ghijkl`);
    await mkdir(dead, { recursive: true });
    await mkdir(mine, { recursive: true });
    await writeFile(join(dead, '0'), 'staged bytes');
    const removed = await sweepStaging();
    expect(removed).toContain(dead);
    const left = await readdir(tmpdir());
    expect(left).not.toContain(dead.split('/').at(-1));
    expect(left).toContain(mine.split('/').at(-1));
    await rm(mine, { recursive: true, force: true });
  });
});
