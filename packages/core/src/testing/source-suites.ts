import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inputHash } from '../hash.js';
import { mediaPath } from '../media.js';
import type { Source, SourceOptions } from '../source.js';
import type { Task } from '../task.js';
import { useFixture } from './fixture.js';

/** A fresh, empty location in the store under test. */
export interface SourceFixture {
  /** URL a source reads, e.g. `s3://bucket/run-123/`. */
  url: string;
  /** Canonical URI prefix that item URIs start with (`meta.source`), e.g. `s3://bucket/run-123`. */
  uriPrefix: string;
  /** An item's URI when it is not the prefix plus the key (Drive's `gdrive://file/<id>`). */
  uri?(key: string): string;
  /** Stores an object under `url` (key relative to it). */
  put(key: string, body: string | Uint8Array): Promise<void>;
  /** Removes the location and everything in it. */
  cleanup(): Promise<void>;
}

/** How a connector plugs into the source suites. */
export interface SourceHarness {
  /** Connector name, used in test titles. */
  connector: string;
  /** Makes an empty location; called before every test. */
  setup(): Promise<SourceFixture>;
  /** Builds the connector's source for a URL. */
  source(url: string, options?: SourceOptions): Source;
}

/** Capabilities a connector lacks are declared, so a suite it cannot pass is skipped by name. */
export interface SourceSuiteOptions {
  skip?: Array<'list' | 'convert' | 'select' | 'state' | 'media' | 'watch' | 'changes'>;
  /** The order a store lists in: by key (default; S3, GCS, Drive by name) or as items were added (Confluence attachments). */
  listingOrder?: 'key' | 'added';
}

/** Collects a source's tasks. */
export async function collect(source: AsyncIterable<Task>): Promise<Task[]> {
  const tasks: Task[] = [];
  for await (const task of source) tasks.push(task);
  return tasks;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// A 1x1 PNG, enough to check bytes, types and ranges.
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==',
  'base64',
);

/** The status of a GET that names `host` in its Host header, as a DNS-rebinding page's would. */
function getWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { headers: { host } }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.once('error', reject);
  });
}

const uriOf = (fixture: SourceFixture, key: string) =>
  fixture.uri ? fixture.uri(key) : `${fixture.uriPrefix}/${key}`;

const texts = (tasks: Task[]) => tasks.map((task) => task.text).sort();

/** Listing: nested keys, lineage in meta, laziness, empty locations. */
export function testSourceList(
  harness: SourceHarness,
  { listingOrder = 'key' }: Pick<SourceSuiteOptions, 'listingOrder'> = {},
): void {
  describe(`${harness.connector} source: list`, () => {
    const ctx = useFixture(() => harness.setup());

    it('reads every item under the location, nested keys included, with lineage recorded', async () => {
      const { fixture } = ctx;
      await fixture.put('a.txt', 'alpha\n');
      await fixture.put('sub/b.txt', 'beta\n');
      await fixture.put('sub/deeper/c.txt', 'gamma\n');
      const tasks = await collect(harness.source(fixture.url));
      expect(texts(tasks)).toEqual(['alpha', 'beta', 'gamma']);
      const beta = tasks.find((task) => task.text === 'beta') as Task;
      expect(beta.meta?.source).toBe(uriOf(fixture, 'sub/b.txt'));
      expect(typeof beta.sluice?.source?.version).toBe('string');
      expect(beta.sluice?.source?.line).toBe(1);
    });

    it('yields nothing for an empty location', async () => {
      const tasks = await collect(harness.source(ctx.fixture.url));
      expect(tasks).toEqual([]);
    });

    // A driver that lists in pages (S3, GCS, Drive) should be given a page size well below 120
    // by its harness, so that this shows the listing stops early.
    it('lists lazily: a limit of one does not walk the whole store', async () => {
      const { fixture } = ctx;
      for (let i = 0; i < 120; i++)
        await fixture.put(`many/${String(i).padStart(4, '0')}.txt`, `line ${i}\n`);
      const source = harness.source(fixture.url, { limit: 1, concurrency: 2 });
      const tasks = await collect(source);
      expect(tasks).toHaveLength(1);
      expect(source.stats.listed).toBeLessThan(120);
    });

    it('keeps the listing order with order=listing', async () => {
      const { fixture } = ctx;
      for (const name of ['d', 'b', 'a', 'c']) await fixture.put(`${name}.txt`, `${name}\n`);
      const tasks = await collect(
        harness.source(fixture.url, { order: 'listing', concurrency: 4 }),
      );
      expect(tasks.map((task) => task.text)).toEqual(
        listingOrder === 'added' ? ['d', 'b', 'a', 'c'] : ['a', 'b', 'c', 'd'],
      );
    });
  });
}

/** Conversion of every text format, hashes, and bad items. */
export function testSourceConvert(harness: SourceHarness): void {
  describe(`${harness.connector} source: read and convert`, () => {
    const ctx = useFixture(() => harness.setup());

    it('turns jsonl, json, csv, txt and html into tasks with line and row numbers', async () => {
      const { fixture } = ctx;
      await fixture.put('in/tasks.jsonl', '{"text":"one","meta":{"k":1}}\n\n{"text":"two"}\n');
      await fixture.put('in/list.json', '[{"text":"three"},{"text":"four"}]');
      await fixture.put(
        'in/table.csv',
        'Text,Label,Meta,author\n"five, with comma",POS,0.5,ann\nsix,,,\n',
      );
      await fixture.put('in/lines.txt', 'seven\r\n\r\neight');
      await fixture.put('in/page.html', '<p>nine</p>');
      const tasks = await collect(harness.source(fixture.url, { order: 'listing' }));
      const byText = new Map(tasks.map((task) => [task.text ?? task.html, task]));
      const at = (text: string) => byText.get(text)?.sluice?.source;
      expect(byText.get('one')?.meta).toMatchObject({ k: 1 });
      expect(at('one')?.line).toBe(1);
      expect(at('two')?.line).toBe(3);
      expect(at('four')?.row).toBe(2);
      expect(byText.get('five, with comma')).toMatchObject({
        label: 'POS',
        meta: { meta: '0.5', author: 'ann' },
        sluice: { source: { row: 1 } },
      });
      expect(byText.get('six')?.label).toBeUndefined();
      expect(at('seven')?.line).toBe(1);
      expect(at('eight')?.line).toBe(3);
      expect(byText.get('<p>nine</p>')?.meta?.source).toBe(uriOf(fixture, 'in/page.html'));
      expect(tasks).toHaveLength(9);
    });

    it('reads gzip-compressed jsonl and whole-file text', async () => {
      const { fixture } = ctx;
      await fixture.put('z/tasks.jsonl.gz', gzipSync('{"text":"zipped"}\n'));
      await fixture.put('z/doc.txt', 'line one\nline two\n');
      const zipped = await collect(harness.source(fixture.url, { include: ['*.gz'] }));
      expect(texts(zipped)).toEqual(['zipped']);
      const whole = await collect(
        harness.source(fixture.url, { include: ['*.txt'], textMode: 'file' }),
      );
      expect(texts(whole)).toEqual(['line one\nline two\n']);
    });

    it("sets Prodigy's hashes and keeps hashes already present", async () => {
      const { fixture } = ctx;
      await fixture.put(
        'h.jsonl',
        '{"text":"fresh"}\n{"text":"kept","_input_hash":7,"_task_hash":8}\n',
      );
      const tasks = await collect(harness.source(fixture.url));
      const fresh = tasks.find((task) => task.text === 'fresh') as Task;
      expect(fresh._input_hash).toBe(inputHash({ text: 'fresh' }));
      expect(tasks.find((task) => task.text === 'kept')).toMatchObject({
        _input_hash: 7,
        _task_hash: 8,
      });
    });

    // Prodigy excludes what a dataset holds by task hash: a hash that moved with the item's
    // version (a touch, a same-bytes upload, a new revision) would queue answered texts again.
    it('keeps hashes when the same bytes are written again or lines move, and not when text changes', async () => {
      const { fixture } = ctx;
      const hashes = async () => {
        const tasks = await collect(harness.source(fixture.url));
        return new Map(tasks.map((t) => [t.text, [t._input_hash, t._task_hash, t.sluice?.source]]));
      };
      await fixture.put('notes/a.txt', 'alpha\nbeta\n');
      const first = await hashes();
      await fixture.put('notes/a.txt', 'alpha\nbeta\n');
      const rewritten = await hashes();
      expect(rewritten.get('alpha')?.slice(0, 2)).toEqual(first.get('alpha')?.slice(0, 2));
      expect(rewritten.get('beta')?.slice(0, 2)).toEqual(first.get('beta')?.slice(0, 2));
      await fixture.put('notes/a.txt', 'new first line\nalpha\nbeta, edited\n');
      const edited = await hashes();
      expect(edited.get('alpha')?.slice(0, 2)).toEqual(first.get('alpha')?.slice(0, 2));
      expect(edited.get('alpha')?.[2]).toMatchObject({ line: 2 });
      const [input, task] = edited.get('beta, edited') ?? [];
      expect([input, task]).not.toContain(first.get('beta')?.[0]);
      expect(task).not.toBe(first.get('beta')?.[1]);
    });

    it('skips items it cannot convert, with a warning', async () => {
      const { fixture } = ctx;
      await fixture.put('ok.txt', 'fine\n');
      await fixture.put('blob.bin', Buffer.from([0, 1, 2]));
      const warnings: string[] = [];
      const source = harness.source(fixture.url, {
        onWarning: (message) => warnings.push(message),
      });
      expect(texts(await collect(source))).toEqual(['fine']);
      expect(source.stats.unsupported).toBe(1);
      expect(warnings.join('\n')).toContain('blob.bin');
    });

    it('fails on a bad record naming the item and line, or skips the item with skipErrors', async () => {
      const { fixture } = ctx;
      await fixture.put('a-good.jsonl', '{"text":"good"}\n');
      await fixture.put('b-bad.jsonl', '{"text":"fine"}\n{"text": oops}\n');
      await expect(collect(harness.source(fixture.url, { order: 'listing' }))).rejects.toThrow(
        /b-bad\.jsonl\)? line 2/,
      );
      const warnings: string[] = [];
      const source = harness.source(fixture.url, {
        skipErrors: true,
        order: 'listing',
        onWarning: (message) => warnings.push(message),
      });
      const tasks = await collect(source);
      // The tasks before the bad line go out, as they would from an item too large to read ahead.
      expect(texts(tasks)).toEqual(['fine', 'good']);
      expect(source.stats.failed).toBe(1);
      expect(warnings.join('\n')).toMatch(/skipping the rest of .*b-bad\.jsonl.* after 1 task: /);
    });

    it('refuses text that is not UTF-8, naming the item and line, as the sinks do', async () => {
      const { fixture } = ctx;
      // "café" in Latin-1: the byte 0xE9 alone is no UTF-8.
      const latin1 = (text: string) => Buffer.from(text, 'latin1');
      const cases: Array<[string, Buffer, number, string[]]> = [
        ['a.jsonl', latin1('{"text":"one"}\n{"text":"café"}\n{"text":"three"}\n'), 2, ['one']],
        ['b.txt', latin1('one\ntwo\ncafé\n'), 3, ['one', 'two']],
        ['c.csv', latin1('text,label\none,A\ncafé,B\n'), 3, ['one']],
        ['d.json', latin1('[\n{"text":"one"},\n{"text":"café"}\n]'), 3, []],
        ['e.html', latin1('<p>\ncafé</p>'), 2, []],
      ];
      for (const [key, body, line, before] of cases) {
        await fixture.put(`utf8/${key}`, body);
        const pattern = new RegExp(
          `${key.replace('.', '\\.')}\\)? line ${line}: the line is not valid UTF-8 text`,
        );
        const include = [`utf8/${key}`];
        await expect(collect(harness.source(fixture.url, { include })), key).rejects.toThrow(
          pattern,
        );
        const source = harness.source(fixture.url, { include, skipErrors: true });
        expect(texts(await collect(source)), key).toEqual(before);
        expect(source.stats.failed).toBe(1);
      }
    });
  });
}

/** Selection flags. */
export function testSourceSelect(harness: SourceHarness): void {
  describe(`${harness.connector} source: select`, () => {
    const ctx = useFixture(() => harness.setup());
    const put20 = async (fixture: SourceFixture) => {
      for (let i = 0; i < 20; i++)
        await fixture.put(`s/${String(i).padStart(2, '0')}.txt`, `item ${i}\n`);
    };

    it('includes and excludes by glob, at any depth for bare patterns', async () => {
      const { fixture } = ctx;
      await fixture.put('keep.jsonl', '{"text":"a"}\n');
      await fixture.put('deep/keep.jsonl', '{"text":"b"}\n');
      await fixture.put('deep/skip.txt', 'c\n');
      await fixture.put('deep/drafts/x.jsonl', '{"text":"d"}\n');
      const tasks = await collect(
        harness.source(fixture.url, { include: ['*.jsonl'], exclude: ['**/drafts/**'] }),
      );
      expect(texts(tasks)).toEqual(['a', 'b']);
    });

    it('bounds by size and modification time', async () => {
      const { fixture } = ctx;
      await fixture.put('small.txt', 'tiny\n');
      await fixture.put('large.txt', `${'x'.repeat(2000)}\n`);
      expect(texts(await collect(harness.source(fixture.url, { maxSize: 100 })))).toEqual(['tiny']);
      expect(await collect(harness.source(fixture.url, { minSize: 100 }))).toHaveLength(1);
      const hour = 3600_000;
      expect(
        await collect(harness.source(fixture.url, { modifiedSince: new Date(Date.now() + hour) })),
      ).toHaveLength(0);
      expect(
        await collect(harness.source(fixture.url, { modifiedSince: new Date(Date.now() - hour) })),
      ).toHaveLength(2);
      expect(
        await collect(harness.source(fixture.url, { modifiedBefore: new Date(Date.now() - hour) })),
      ).toHaveLength(0);
    });

    it('limits the number of items', async () => {
      await put20(ctx.fixture);
      expect(await collect(harness.source(ctx.fixture.url, { limit: 5 }))).toHaveLength(5);
    });

    it('samples deterministically: same seed, same items; another seed, another sample', async () => {
      await put20(ctx.fixture);
      const run = (seed: string) => collect(harness.source(ctx.fixture.url, { sample: 0.5, seed }));
      const first = texts(await run('a'));
      expect(texts(await run('a'))).toEqual(first);
      expect(first.length).toBeGreaterThan(2);
      expect(first.length).toBeLessThan(18);
      const other = texts(await run('b'));
      expect(other).not.toEqual(first);
    });

    it('splits a store into disjoint shards that cover it', async () => {
      await put20(ctx.fixture);
      const shards = await Promise.all(
        [1, 2, 3].map(async (index) =>
          texts(await collect(harness.source(ctx.fixture.url, { shard: { index, count: 3 } }))),
        ),
      );
      const all = shards.flat().sort();
      expect(all).toHaveLength(20);
      expect(new Set(all).size).toBe(20);
      for (const shard of shards) expect(shard.length).toBeGreaterThan(0);
    });
  });
}

/** Checkpoints: reruns emit only new or changed items; nothing is recorded before it is delivered. */
export function testSourceState(harness: SourceHarness): void {
  describe(`${harness.connector} source: state`, () => {
    const ctx = useFixture(() => harness.setup());
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sluice-state-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('emits only new or changed items on a rerun', async () => {
      const { fixture } = ctx;
      const state = join(dir, 'state.json');
      await fixture.put('a.txt', 'a\n');
      await fixture.put('b.txt', 'b\n');
      expect(texts(await collect(harness.source(fixture.url, { state })))).toEqual(['a', 'b']);
      expect(await collect(harness.source(fixture.url, { state }))).toEqual([]);
      await fixture.put('b.txt', 'b changed and longer\n');
      await fixture.put('c.txt', 'c\n');
      const source = harness.source(fixture.url, { state });
      expect(texts(await collect(source))).toEqual(['b changed and longer', 'c']);
      // a.txt is not read again: skipped as unchanged, or not even listed by a change feed.
      expect(source.stats.items).toBe(2);
    });

    it('leaves failed items out of the checkpoint, so the next run tries them again', async () => {
      const { fixture } = ctx;
      const state = join(dir, 'state.json');
      await fixture.put('good.txt', 'good\n');
      await fixture.put('bad.jsonl', '{"text": oops}\n');
      const first = harness.source(fixture.url, { state, skipErrors: true });
      expect(texts(await collect(first))).toEqual(['good']);
      expect(first.stats.failed).toBe(1);
      const second = harness.source(fixture.url, { state, skipErrors: true });
      expect(await collect(second)).toEqual([]);
      expect(second.stats).toMatchObject({ failed: 1, unchanged: 1 });
    });

    it('records an item only once all its tasks were delivered', async () => {
      const { fixture } = ctx;
      const state = join(dir, 'state.json');
      await fixture.put('1.txt', 'one\n');
      await fixture.put('2.txt', 'two\nthree\n');
      const source = harness.source(fixture.url, {
        state,
        autoCheckpoint: false,
        order: 'listing',
      });
      const tasks = await collect(source);
      expect(tasks).toHaveLength(3);
      await source.checkpoint(2); // the second item's last task did not make it downstream
      await source.close(); // a caller that commits itself holds the checkpoint until then
      const saved = JSON.parse(await readFile(state, 'utf8'));
      expect(Object.keys(saved.items)).toEqual([uriOf(fixture, '1.txt')]);
      expect(texts(await collect(harness.source(fixture.url, { state })))).toEqual([
        'three',
        'two',
      ]);
    });

    it('treats a failing item the same whatever its size, and a rerun neither repeats nor loses its tasks', async () => {
      const { fixture } = ctx;
      const state = join(dir, 'state.json');
      // 5,000 lines of about 300 bytes: read as a stream (over 1 MiB); 10 lines: read ahead.
      const body = (count: number, bad: number) =>
        Array.from({ length: count }, (_, i) =>
          i + 1 === bad
            ? '{"text": oops}'
            : JSON.stringify({ text: `${count}-${i + 1} ${'.'.repeat(280)}` }),
        ).join('\n');
      await fixture.put('big.jsonl', body(5000, 4000));
      await fixture.put('small.jsonl', body(10, 5));
      const first = harness.source(fixture.url, { state, skipErrors: true });
      const tasks = await collect(first);
      expect(tasks).toHaveLength(3999 + 4);
      expect(first.stats).toMatchObject({ failed: 2, items: 0 });
      const rerun = harness.source(fixture.url, { state, skipErrors: true });
      expect(await collect(rerun)).toEqual([]);
      expect(rerun.stats.failed).toBe(2);
      // Fixed: a new version, read whole.
      await fixture.put('small.jsonl', body(10, 0));
      const fixed = await collect(harness.source(fixture.url, { state, skipErrors: true }));
      expect(fixed).toHaveLength(10);
    });

    it('refuses a second run on the same checkpoint while the first goes on', async () => {
      const { fixture } = ctx;
      const state = join(dir, 'state.json');
      await fixture.put('a.txt', 'a\n');
      const first = harness.source(fixture.url, { state });
      const iterator = first[Symbol.asyncIterator]();
      expect((await iterator.next()).value?.text).toBe('a');
      await expect(collect(harness.source(fixture.url, { state }))).rejects.toThrow(
        /the checkpoint is in use by another run/,
      );
      expect((await iterator.next()).done).toBe(true);
      expect(await collect(harness.source(fixture.url, { state }))).toEqual([]);
    });
  });
}

/** Media: proxy URLs that serve the bytes with ranges and stay stable; inline data URIs. */
export function testSourceMedia(harness: SourceHarness): void {
  describe(`${harness.connector} source: media`, () => {
    const ctx = useFixture(() => harness.setup());
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sluice-media-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('serves images through the local proxy, with ranges, at URLs stable across runs', async () => {
      const { fixture } = ctx;
      await fixture.put('img/pixel.png', TINY_PNG);
      const port = await freePort();
      const mediaKeyFile = join(dir, 'media.key');
      const first = harness.source(fixture.url, { mediaPort: port, mediaKeyFile });
      try {
        const [task] = await collect(first);
        // Nothing of the store's path but the file name: the token stands for the item.
        expect(task?.image).toMatch(
          new RegExp(`^http://127\\.0\\.0\\.1:${port}/[A-Za-z0-9_-]{22}/pixel\\.png$`),
        );
        // Prodigy's base64 removal puts `path` back where image.manual inlined the bytes.
        expect(task?.path).toBe(uriOf(fixture, 'img/pixel.png'));
        const response = await fetch(task?.image as string);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe('image/png');
        expect(Buffer.from(await response.arrayBuffer())).toEqual(TINY_PNG);
        const ranged = await fetch(task?.image as string, { headers: { Range: 'bytes=1-3' } });
        expect(ranged.status).toBe(206);
        expect(Buffer.from(await ranged.arrayBuffer())).toEqual(TINY_PNG.subarray(1, 4));
        const missing = await fetch(`${first.mediaUrl}/nothing/here.png`);
        expect(missing.status).toBe(404);
        await first.close();
        const second = harness.source(fixture.url, {
          mediaPort: port,
          mediaKeyFile,
          include: ['img/**'],
        });
        const [again] = await collect(second);
        expect(again?.image).toBe(task?.image);
        expect(again?._input_hash).toBe(task?._input_hash);
        await second.close();
      } finally {
        await first.close();
      }
    });

    it('serves only the media this run selected, and only to Prodigy', async () => {
      const { fixture } = ctx;
      await fixture.put('img/a.png', TINY_PNG);
      await fixture.put('img/b.png', TINY_PNG);
      await fixture.put('img/notes.txt', 'not media\n');
      await fixture.put('other/c.png', TINY_PNG);
      const mediaKeyFile = join(dir, 'media.key');
      const source = harness.source(fixture.url, {
        mediaPort: await freePort(),
        mediaKeyFile,
        include: ['img/**'],
        limit: 1,
        order: 'listing',
      });
      try {
        const tasks = await collect(source);
        const url = tasks.find((task) => task.image)?.image as string;
        expect(url).toMatch(/\/a\.png$/);
        // Whoever knows the key can tell any item's URL, yet nothing outside this run's
        // selection is served: not the item beyond --limit, not a text file, not an item
        // the globs leave out, not a path in the old predictable form.
        const key = Buffer.from((await readFile(mediaKeyFile, 'utf8')).trim(), 'hex');
        const status = async (path: string) => (await fetch(`${source.mediaUrl}${path}`)).status;
        for (const name of ['img/b.png', 'img/notes.txt', 'other/c.png']) {
          expect(await status(mediaPath(uriOf(fixture, name), key, name)), name).toBe(404);
        }
        expect(await status(mediaPath(uriOf(fixture, 'img/a.png'), key, 'img/a.png'))).toBe(200);
        expect(await status(`/file${new URL(uriOf(fixture, 'img/a.png')).pathname}`)).toBe(404);
        // Prodigy's web app may read media across origins; another page may not.
        const prodigy = await fetch(url, { headers: { Origin: 'http://localhost:8080' } });
        expect(prodigy.status).toBe(200);
        expect(prodigy.headers.get('access-control-allow-origin')).toBe('http://localhost:8080');
        const foreign = await fetch(url, { headers: { Origin: 'https://evil.example' } });
        expect(foreign.status).toBe(403);
        expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
        const preflight = (origin: string) =>
          fetch(url, {
            method: 'OPTIONS',
            headers: { Origin: origin, 'Access-Control-Request-Method': 'GET' },
          });
        expect((await preflight('http://127.0.0.1:8080')).status).toBe(204);
        expect((await preflight('https://evil.example')).status).toBe(403);
        // A page that rebinds its own name to 127.0.0.1 sends its name as the Host.
        expect(await getWithHost(url, 'evil.example')).toBe(403);
        expect(await getWithHost(url, `localhost:${new URL(url).port}`)).toBe(200);
      } finally {
        await source.close();
      }
    });

    it('inlines small media as data URIs and refuses large ones', async () => {
      const { fixture } = ctx;
      await fixture.put('pixel.png', TINY_PNG);
      const [task] = await collect(harness.source(fixture.url, { media: 'inline' }));
      expect(task?.image).toBe(`data:image/png;base64,${TINY_PNG.toString('base64')}`);
      expect(task?.path).toBe(uriOf(fixture, 'pixel.png'));
      await expect(
        collect(harness.source(fixture.url, { media: 'inline', inlineMaxBytes: 10 })),
      ).rejects.toThrow(/too large to inline/);
    });
  });
}

/** Changes: an item that changed after it was listed is never stamped with a version other than the one read. */
export function testSourceChanges(harness: SourceHarness): void {
  describe(`${harness.connector} source: changes`, () => {
    const ctx = useFixture(() => harness.setup());

    it('never stamps an item replaced after it was listed with a version it did not read', async () => {
      const { fixture } = ctx;
      await fixture.put('a.txt', 'first\n');
      await fixture.put('b.txt', 'before\n');
      const versionOfB = async () =>
        (await collect(harness.source(fixture.url))).find(
          (task) => task.meta?.source === uriOf(fixture, 'b.txt'),
        )?.sluice?.source?.version;
      const listed = await versionOfB();
      const source = harness.source(fixture.url, { concurrency: 1, order: 'listing' });
      const seen: Task[] = [];
      for await (const task of source) {
        seen.push(task);
        // b.txt is listed (in the same page or folder read) but not read yet.
        if (task.text === 'first') await fixture.put('b.txt', 'after, and longer\n');
      }
      const now = await versionOfB();
      expect(now).not.toBe(listed);
      // Either the version listed, read as it was (a store that keeps versions), or the new
      // one, read again: never the new bytes under the old version.
      const b = seen[1];
      expect([b?.text, b?.sluice?.source?.version]).toEqual(
        b?.text === 'before' ? ['before', listed] : ['after, and longer', now],
      );
    });
  });
}

/** Watch: new items appear on the stream while it runs. */
export function testSourceWatch(harness: SourceHarness): void {
  describe(`${harness.connector} source: watch`, () => {
    const ctx = useFixture(() => harness.setup());

    it('emits items added while watching, once each, until aborted', async () => {
      const { fixture } = ctx;
      await fixture.put('first.txt', 'first\n');
      const abort = new AbortController();
      const source = harness.source(fixture.url, { watch: 0.2, signal: abort.signal });
      const seen: string[] = [];
      for await (const task of source) {
        seen.push(task.text as string);
        if (seen.length === 1) await fixture.put('second.txt', 'second\n');
        if (seen.length === 2) setTimeout(() => abort.abort(), 600); // a few more polls: no repeats
      }
      await source.close();
      expect(seen).toEqual(['first', 'second']);
    });
  });
}

/** Runs every source suite the connector supports. */
export function testSource(harness: SourceHarness, options: SourceSuiteOptions = {}): void {
  const skip = new Set(options.skip ?? []);
  if (!skip.has('list')) testSourceList(harness, options);
  if (!skip.has('convert')) testSourceConvert(harness);
  if (!skip.has('select')) testSourceSelect(harness);
  if (!skip.has('state')) testSourceState(harness);
  if (!skip.has('media')) testSourceMedia(harness);
  if (!skip.has('watch')) testSourceWatch(harness);
  if (!skip.has('changes')) testSourceChanges(harness);
  for (const name of skip)
    it.skip(`${harness.connector} source: ${name} (declared unsupported)`, () => {});
}
