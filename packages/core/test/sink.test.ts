import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createSink, type SinkDriver } from '../src/sink.js';

/** The smallest sink driver: a Map. */
function memoryDriver(store: Map<string, Buffer>): (root: string) => SinkDriver {
  return (root) => ({
    connector: 'memory',
    root,
    read: async (key) => store.get(`${root}/${key}`),
    write: async (key, part) => {
      store.set(`${root}/${key}`, await readFile(part.path));
    },
    delete: async (key) => {
      store.delete(`${root}/${key}`);
    },
  });
}

describe('sink counts', () => {
  it('counts labels and annotators named like Object properties', async () => {
    const store = new Map<string, Buffer>();
    const result = await createSink(memoryDriver(store), 'mem://x').write([
      { text: 'a', label: 'constructor', _annotator_id: '__proto__', meta: { source: 'toString' } },
      { text: 'b', label: 'constructor', _annotator_id: '__proto__', meta: { source: 'toString' } },
    ]);
    expect(result.manifest.counts.labels).toEqual({ constructor: 2 });
    expect(Object.entries(result.manifest.counts.annotators)).toEqual([['__proto__', 2]]);
    expect(result.manifest.lineage.sources).toEqual({ toString: 2 });
    const manifest = JSON.parse((store.get('mem://x/manifest.json') as Buffer).toString());
    expect(manifest.counts.labels.constructor).toBe(2);
  });

  it('keeps db-out lines byte for byte (floats such as 1.0 stay floats)', async () => {
    const store = new Map<string, Buffer>();
    const lines =
      '{"text": "a", "score": 1.0, "answer": "accept"}\n{"text":"b","meta":{"p":2.50}}\n';
    const result = await createSink(memoryDriver(store), 'mem://x').writeJsonl(
      Readable.from([lines]),
    );
    const [part] = result.manifest.parts;
    expect((store.get(`mem://x/${part?.key}`) as Buffer).toString()).toBe(lines);
  });

  it('sets aside lines that are not UTF-8 with their exact bytes, and keeps unusual tokens', async () => {
    const store = new Map<string, Buffer>();
    const latin1 = Buffer.from('{"text": "caf\xe9"}\n', 'latin1');
    const odd = '{"text":"ab","tokens":[{"text":"a","start":5,"end":1}],"answer":"accept"}\n';
    const result = await createSink(memoryDriver(store), 'mem://x', {
      skipInvalid: true,
    }).writeJsonl(Readable.from([Buffer.from(odd), latin1]));
    expect(result.manifest.input).toMatchObject({ lines: 2, valid: 1, rejected: 1 });
    const [reject] = (store.get('mem://x/rejects.jsonl') as Buffer).toString().trim().split('\n');
    const parsed = JSON.parse(reject as string);
    expect(parsed).toMatchObject({ line: 2, error: 'the line is not valid UTF-8 text' });
    expect(Buffer.from(parsed.raw_base64, 'base64').equals(latin1.subarray(0, -1))).toBe(true);
    expect((store.get(`mem://x/${result.manifest.parts[0]?.key}`) as Buffer).toString()).toBe(odd);
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

  it('puts the guidelines file in the export, checksummed in the manifest, and reruns stay unchanged', async () => {
    const store = new Map<string, Buffer>();
    const dir = await mkdtemp(join(tmpdir(), 'sluice-guidelines-'));
    const file = join(dir, 'Labelling guide.html');
    await writeFile(file, '<h1>Label ORG for companies</h1>');
    const tasks = [{ text: 'a', answer: 'ignore' as const }];
    const first = await createSink(memoryDriver(store), 'mem://x', { guidelines: file }).write(
      tasks,
    );
    expect(first.written).toEqual(['part-00000.jsonl', 'guidelines.html', 'manifest.json']);
    expect(store.get('mem://x/guidelines.html')?.toString()).toBe(
      '<h1>Label ORG for companies</h1>',
    );
    expect(first.manifest.guidelines).toEqual({
      key: 'guidelines.html',
      name: 'Labelling guide.html',
      bytes: 32,
      sha256: '915c1dda8a8916dfd04bcf4fa3600dd16afb5192cf251d4b4acd49edb9dc6f77',
    });
    const again = await createSink(memoryDriver(store), 'mem://x', { guidelines: file }).write(
      tasks,
    );
    expect(again.status).toBe('unchanged');
    // New guidelines are a different export: only they and the manifest are written again.
    await writeFile(file, '<h1>Label ORG and PRODUCT</h1>');
    const edited = await createSink(memoryDriver(store), 'mem://x', { guidelines: file }).write(
      tasks,
    );
    expect(edited.written).toEqual(['guidelines.html', 'manifest.json']);
  });

  it('refuses a guidelines path that is not a file before writing anything', async () => {
    const store = new Map<string, Buffer>();
    const sink = createSink(memoryDriver(store), 'mem://x', {
      guidelines: '/nonexistent/guide.pdf',
    });
    await expect(sink.write([{ text: 'a' }])).rejects.toThrow(
      '--guidelines /nonexistent/guide.pdf: no such file',
    );
    expect(store.size).toBe(0);
  });
});
