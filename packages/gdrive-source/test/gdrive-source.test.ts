import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SourceOptions, Task } from '@sluice/core';
import { collect, testSource } from '@sluice/core/testing';
import { type DriveServer, useDrive } from '@sluice/testkit';
import { OAuth2Client } from 'google-auth-library';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readGuidelines, readLabels } from '../src/documents.js';
import { createGdriveSourceDriver, gdriveSource } from '../src/gdrive-source.js';

/** Puts a file at a `/`-separated key under a folder, making the folders on the way once. */
function putter(server: DriveServer, rootId: string) {
  const folders = new Map<string, string>([['', rootId]]);
  const files = new Map<string, string>();
  const folderOf = (path: string[]): string => {
    const key = path.join('/');
    let id = folders.get(key);
    if (!id) {
      id = server.createFolder(path.at(-1) as string, folderOf(path.slice(0, -1)));
      folders.set(key, id);
    }
    return id;
  };
  return {
    put(key: string, body: string | Uint8Array): string {
      const known = files.get(key);
      if (known) {
        server.updateContent(known, Buffer.from(body));
        return known;
      }
      const path = key.split('/');
      const id = server.createFile({
        name: path.at(-1) as string,
        parentId: folderOf(path.slice(0, -1)),
        content: Buffer.from(body),
      });
      files.set(key, id);
      return id;
    },
    id: (key: string) => files.get(key) as string,
    folder: (path: string) => folderOf(path.split('/')),
  };
}

const kit = useDrive();

// The shared source suites, against the test kit's Drive server through googleapis.
describe('on the test kit server', () => {
  let runs = 0;
  testSource({
    connector: 'gdrive',
    async setup() {
      const rootId = kit.server.createFolder(`run-${++runs}`);
      const files = putter(kit.server, rootId);
      return {
        url: `gdrive://folder/${rootId}`,
        uriPrefix: 'gdrive://file',
        uri: (key) => `gdrive://file/${files.id(key)}`,
        put: async (key, body) => {
          files.put(key, body);
        },
        cleanup: async () => {},
      };
    },
    // A small page size, so the lazy-listing case shows the listing stops early.
    source: (url, options) =>
      gdriveSource({ ...options, url, drive: kit.drive, recursive: true, pageSize: 20 }),
  });
});

const byText = (tasks: Task[]) => new Map(tasks.map((task) => [task.text as string, task]));

describe('gdrive source: Google files, shortcuts, shared drives', () => {
  const read = (url: string, options: Partial<SourceOptions> & Record<string, unknown> = {}) =>
    collect(gdriveSource({ url, drive: kit.drive, ...options }));

  it('exports Docs as one task, Sheets as a task per row, Slides as text, with lineage', async () => {
    const { server } = kit;
    const root = server.createFolder('google-files');
    const doc = server.createDoc('Policy', root, { text: 'Refunds within 30 days.\nNo cash.' });
    const sheet = server.createSheet(
      'Tickets',
      root,
      'text,label,priority\nHello,BUG,high\nBye,,low\n',
    );
    server.createSlides('Deck', root, 'Slide one\nSlide two');
    const tasks = await read(`gdrive://folder/${root}`, { order: 'listing' });
    const texts = byText(tasks);
    expect([...texts.keys()].sort()).toEqual([
      'Bye',
      'Hello',
      'Refunds within 30 days.\nNo cash.',
      'Slide one\nSlide two',
    ]);
    const policy = texts.get('Refunds within 30 days.\nNo cash.');
    expect(policy?.meta).toMatchObject({ source: `gdrive://file/${doc}`, path: 'Policy' });
    // A Google file's version is its modifiedTime: its `version` moves on sharing too.
    expect(policy?.sluice?.source?.version).toBe(server.file(doc)?.modifiedTime);
    expect(texts.get('Hello')).toMatchObject({
      label: 'BUG',
      meta: { source: `gdrive://file/${sheet}`, path: 'Tickets', priority: 'high' },
      sluice: { source: { row: 1 } },
    });
    expect(texts.get('Bye')?.sluice?.source).toMatchObject({ row: 2 });
    expect(typeof policy?._input_hash).toBe('number');
  });

  it('reads Docs as HTML or Markdown on request, and one Doc by file URL', async () => {
    const { server } = kit;
    const root = server.createFolder('docs-modes');
    const doc = server.createDoc('Guide', root, {
      text: 'Title',
      html: '<html><body><h1>Title</h1></body></html>',
      markdown: '# Title\n',
    });
    const [html] = await read(`gdrive://folder/${root}`, { docs: 'html' });
    expect(html?.html).toBe('<html><body><h1>Title</h1></body></html>');
    const [markdown] = await read(`gdrive://file/${doc}`, { docs: 'markdown' });
    expect(markdown?.text).toBe('# Title\n');
    expect(markdown?.meta?.source).toBe(`gdrive://file/${doc}`);
    // The user's own text mode wins: a task per line.
    const lines = await read(`gdrive://file/${doc}`, { docs: 'markdown', textMode: 'line' });
    expect(lines.map((t) => t.text)).toEqual(['# Title']);
  });

  it('follows shortcuts once: a cycle of folder shortcuts ends, and a file is read once', async () => {
    const { server } = kit;
    const root = server.createFolder('cycle');
    const inner = server.createFolder('inner', root);
    server.createFile({ name: 'a.txt', parentId: root, content: 'a\n' });
    server.createFile({ name: 'b.txt', parentId: inner, content: 'b\n' });
    server.createShortcut('back to root', inner, root);
    server.createShortcut('inner again', root, inner);
    const outside = server.createFolder('elsewhere');
    const far = server.createFile({ name: 'far.txt', parentId: outside, content: 'far\n' });
    server.createShortcut('far link', inner, far);
    server.createShortcut('far link twice', root, far);
    const a = server.createShortcut('a link', inner, server.children(root)[1]?.id as string);
    expect(a).toBeTruthy();
    const tasks = await read(`gdrive://folder/${root}`, { recursive: true });
    expect(tasks.map((t) => t.text).sort()).toEqual(['a', 'b', 'far']);
    const farTask = tasks.find((t) => t.text === 'far');
    expect(farTask?.meta?.source).toBe(`gdrive://file/${far}`);
    // Without --recursive: the folder's own files and file shortcuts, no subfolders.
    const flat = await read(`gdrive://folder/${root}`);
    expect(flat.map((t) => t.text).sort()).toEqual(['a', 'far']);
  });

  it('lists lazily page by page: the first task comes before the listing ends', async () => {
    const { server } = kit;
    const root = server.createFolder('many');
    for (let i = 0; i < 250; i++) {
      server.createFile({
        name: `f${String(i).padStart(3, '0')}.txt`,
        parentId: root,
        content: `t${i}\n`,
      });
    }
    const before = server.requests.length;
    const source = gdriveSource({
      url: `gdrive://folder/${root}`,
      drive: kit.drive,
      pageSize: 100,
    });
    for await (const _ of source) break;
    await source.close();
    const lists = server.requests.slice(before).filter((r) => r.path === '/drive/v3/files');
    expect(lists).toHaveLength(1);
    const all = await read(`gdrive://folder/${root}`, { pageSize: 100 });
    expect(all).toHaveLength(250);
  });

  it('reads a shared drive folder (supportsAllDrives, corpora=drive)', async () => {
    const { server } = kit;
    const driveId = server.createSharedDrive('Team');
    const folder = server.createFolder('data', driveId);
    server.createFile({ name: 'x.txt', parentId: folder, content: 'shared\n' });
    const tasks = await read(`gdrive://folder/${folder}`);
    expect(tasks.map((t) => t.text)).toEqual(['shared']);
    const listed = server.requests.filter(
      (r) => r.path === '/drive/v3/files' && r.query.get('q')?.includes(folder),
    );
    expect(listed.at(-1)?.query.get('driveId')).toBe(driveId);
  });

  it('names what is wrong: a missing folder, a file given as a folder', async () => {
    await expect(read('gdrive://folder/doesNotExist123')).rejects.toThrow(
      /gdrive:\/\/folder\/doesNotExist123: not found/,
    );
    const file = kit.server.createFile({ name: 'x.txt', content: 'x' });
    await expect(read(`gdrive://folder/${file}`)).rejects.toThrow(/is a file, not a folder/);
    await expect(read('s3://bucket/x')).rejects.toThrow(/not a Drive URL/);
  });

  it('refuses a request without valid credentials, naming the cause', async () => {
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: 'wrong' });
    const root = kit.server.createFolder('auth');
    await expect(
      collect(gdriveSource({ url: `gdrive://folder/${root}`, auth, endpoint: kit.url })),
    ).rejects.toThrow(/access refused \(401/);
  });

  it('refreshes an expired access token with a refresh token (an auth client of your own)', async () => {
    const { server } = kit;
    server.addRefreshToken('1//refresh-test', 'client-id', 'client-secret');
    const auth = new OAuth2Client({
      clientId: 'client-id',
      clientSecret: 'client-secret',
      endpoints: { oauth2TokenUrl: `${kit.url}/token` },
    });
    auth.setCredentials({ refresh_token: '1//refresh-test' });
    const root = server.createFolder('refresh');
    server.createFile({ name: 'r.txt', parentId: root, content: 'refreshed\n' });
    const tasks = await collect(
      gdriveSource({ url: `gdrive://folder/${root}`, auth, endpoint: kit.url }),
    );
    expect(tasks.map((t) => t.text)).toEqual(['refreshed']);
    expect(server.requests.some((r) => r.path === '/token')).toBe(true);
  });
});

describe('gdrive source: Drive as it answers', () => {
  /** A source over the test server, with a token of the given identity. */
  const as = (token: string, url: string, options: Partial<SourceOptions> = {}) =>
    gdriveSource({ url, accessToken: token, endpoint: kit.url, ...options });

  it('walks shortcuts into another shared drive and into My Drive', async () => {
    const { server } = kit;
    const teamA = server.createSharedDrive('Team A');
    const teamB = server.createSharedDrive('Team B');
    const root = server.createFolder('inbox', teamA);
    server.createFile({ name: 'here.txt', parentId: root, content: 'in team A\n' });
    const other = server.createFolder('elsewhere', teamB);
    server.createFile({ name: 'there.txt', parentId: other, content: 'in team B\n' });
    const mine = server.createFolder('mine');
    server.createFile({ name: 'mine.txt', parentId: mine, content: 'in My Drive\n' });
    server.createShortcut('to team B', root, other);
    server.createShortcut('to my folder', root, mine);
    const tasks = await collect(
      gdriveSource({ url: `gdrive://folder/${root}`, drive: kit.drive, recursive: true }),
    );
    expect(tasks.map((t) => [t.text, t.meta?.path]).sort()).toEqual([
      ['in My Drive', 'to my folder/mine.txt'],
      ['in team A', 'here.txt'],
      ['in team B', 'to team B/there.txt'],
    ]);
  });

  it("names an export over Drive's 10 MB limit, and gives up soon on a failing HTML export", async () => {
    const { server } = kit;
    const root = server.createFolder('too-large');
    server.createFile({
      name: 'Huge',
      parentId: root,
      mimeType: 'application/vnd.google-apps.document',
      exports: { 'text/plain': Buffer.alloc(10 * 1024 * 1024 + 1, 97) },
    });
    await expect(
      collect(gdriveSource({ url: `gdrive://folder/${root}`, drive: kit.drive })),
    ).rejects.toMatchObject({
      code: 'CONVERT',
      message: expect.stringMatching(/too large for Drive to export/),
      hint: expect.stringMatching(/10 MB/),
    });
    const html = server.createFolder('too-large-html');
    const doc = server.createFile({
      name: 'Huge HTML',
      parentId: html,
      mimeType: 'application/vnd.google-apps.document',
      exports: { 'text/html': Buffer.alloc(10 * 1024 * 1024 + 1, 97) },
    });
    const before = server.requests.length;
    await expect(
      collect(gdriveSource({ url: `gdrive://folder/${html}`, drive: kit.drive, docs: 'html' })),
    ).rejects.toMatchObject({ hint: expect.stringMatching(/--docs text/) });
    const exports = server.requests
      .slice(before)
      .filter((r) => r.path === `/drive/v3/files/${doc}/export`);
    expect(exports.length).toBeGreaterThan(1);
    expect(exports.length).toBeLessThanOrEqual(3);
  });

  it('names credentials without the Drive scope, with the gcloud flags that add it', async () => {
    const { server } = kit;
    // What `gcloud auth print-access-token` and default ADC carry.
    server.addToken('ya29.cloud-only', undefined, {
      scopes: ['https://www.googleapis.com/auth/cloud-platform'],
    });
    const root = server.createFolder('scoped');
    const error = await collect(as('ya29.cloud-only', `gdrive://folder/${root}`)).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      code: 'AUTH',
      message: expect.stringMatching(/the credentials lack the Drive scope/),
      hint: expect.stringMatching(/--enable-gdrive-access/),
    });
    expect(String((error as Error).message)).not.toMatch(/share/);
  });

  it('gives Google files no size: Drive reports their storage, not their export', async () => {
    const { server } = kit;
    const root = server.createFolder('sizes');
    server.createDoc('Short', root, { text: 'tiny' });
    server.createFile({ name: 'a.txt', parentId: root, content: 'abc\n' });
    const driver = await createGdriveSourceDriver({
      url: `gdrive://folder/${root}`,
      drive: kit.drive,
    });
    const items = [];
    for await (const item of driver.list({ signal: new AbortController().signal }))
      items.push(item);
    expect(items.map((i) => [i.key, i.size]).sort()).toEqual([
      ['Short', undefined],
      ['a.txt', 4],
    ]);
  });
});

describe('gdrive source: changes feed', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-gdrive-state-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the feed position in --state: a rerun reads only what changed in the folder', async () => {
    const { server } = kit;
    const root = server.createFolder('feed');
    const sub = server.createFolder('sub', root);
    const one = server.createFile({ name: 'one.txt', parentId: root, content: 'one\n' });
    server.createFile({ name: 'two.txt', parentId: sub, content: 'two\n' });
    const state = join(dir, 'state.json');
    const run = () =>
      collect(
        gdriveSource({ url: `gdrive://folder/${root}`, drive: kit.drive, recursive: true, state }),
      );
    expect((await run()).map((t) => t.text).sort()).toEqual(['one', 'two']);
    const saved = JSON.parse(await readFile(state, 'utf8'));
    expect(Object.values(saved.cursors ?? {})).toHaveLength(1);
    // Changes inside the tree, and one outside it that must not show.
    server.updateContent(one, 'one, edited\n');
    const later = server.createFolder('later', sub);
    server.createFile({ name: 'three.txt', parentId: later, content: 'three\n' });
    server.createFile({ name: 'elsewhere.txt', content: 'not in the folder\n' });
    const before = server.requests.length;
    expect((await run()).map((t) => t.text).sort()).toEqual(['one, edited', 'three']);
    const asked = server.requests.slice(before);
    expect(asked.some((r) => r.path === '/drive/v3/changes')).toBe(true);
    // Nothing changed: nothing emitted.
    expect(await run()).toEqual([]);
  });

  it('sees changes in another drive that a shortcut leads into', async () => {
    const { server } = kit;
    const teamA = server.createSharedDrive('Feed A');
    const teamB = server.createSharedDrive('Feed B');
    const root = server.createFolder('inbox', teamA);
    const other = server.createFolder('elsewhere', teamB);
    server.createFile({ name: 'first.txt', parentId: other, content: 'first\n' });
    server.createShortcut('to B', root, other);
    const state = join(dir, 'state.json');
    const run = () =>
      collect(
        gdriveSource({ url: `gdrive://folder/${root}`, drive: kit.drive, recursive: true, state }),
      );
    expect((await run()).map((t) => t.text)).toEqual(['first']);
    server.createFile({ name: 'second.txt', parentId: other, content: 'second\n' });
    expect((await run()).map((t) => [t.text, t.meta?.path])).toEqual([
      ['second', 'to B/second.txt'],
    ]);
  });

  it('does not emit a Google file again when it was only shared or commented on', async () => {
    const { server } = kit;
    const root = server.createFolder('shared-later');
    const doc = server.createDoc('Policy', root, { text: 'Refunds within 30 days.' });
    const state = join(dir, 'state.json');
    const run = () =>
      collect(gdriveSource({ url: `gdrive://folder/${root}`, drive: kit.drive, state }));
    expect((await run()).map((t) => t.text)).toEqual(['Refunds within 30 days.']);
    server.share(doc);
    expect(await run()).toEqual([]);
    server.updateContent(doc, 'Refunds within 14 days.');
    expect((await run()).map((t) => t.text)).toEqual(['Refunds within 14 days.']);
  });

  it('watches through the changes feed: a file added after start is emitted once', async () => {
    const { server } = kit;
    const root = server.createFolder('watched');
    server.createFile({ name: 'first.txt', parentId: root, content: 'first\n' });
    const abort = new AbortController();
    const source = gdriveSource({
      url: `gdrive://folder/${root}`,
      drive: kit.drive,
      watch: 0.2,
      signal: abort.signal,
    });
    const seen: string[] = [];
    const before = server.requests.length;
    for await (const task of source) {
      seen.push(task.text as string);
      if (seen.length === 1)
        server.createFile({ name: 'second.txt', parentId: root, content: 'second\n' });
      if (seen.length === 2) setTimeout(() => abort.abort(), 600);
    }
    await source.close();
    expect(seen).toEqual(['first', 'second']);
    const asked = server.requests.slice(before);
    // One listing of the folder; after that, only the feed.
    expect(asked.filter((r) => r.path === '/drive/v3/files').length).toBe(1);
    expect(asked.filter((r) => r.path === '/drive/v3/changes').length).toBeGreaterThan(1);
  });
});

describe('gdrive guidelines and labels', () => {
  it('reads a Doc as HTML for guidelines', async () => {
    const { server } = kit;
    const doc = server.createDoc('Guidelines', server.rootId, {
      text: 'Tag people',
      html: '<html><head><style>.c1{color:red}</style></head><body class="doc-content"><p class="c1">Tag people</p></body></html>',
    });
    const { html, name } = await readGuidelines(`gdrive://file/${doc}`, { drive: kit.drive });
    expect(html).toContain('<p class="c1">Tag people</p>');
    expect(name).toBe(`gdrive://file/${doc} (Guidelines)`);
  });

  it('reads labels from a Sheet column and from a Doc list', async () => {
    const { server } = kit;
    const sheet = server.createSheet(
      'Taxonomy',
      server.rootId,
      'Name,Definition\nPERSON,A human\nORG,"A company, agency"\n',
    );
    const fromSheet = await readLabels(`gdrive://file/${sheet}`, { drive: kit.drive });
    expect(fromSheet.entries).toEqual([
      { label: 'PERSON', description: 'A human' },
      { label: 'ORG', description: 'A company, agency' },
    ]);
    const doc = server.createDoc('Labels', server.rootId, {
      text: 'Our labels:\n* PERSON: a human\n* PRODUCT\n',
    });
    const fromDoc = await readLabels(`gdrive://file/${doc}`, { drive: kit.drive });
    expect(fromDoc.entries).toEqual([
      { label: 'PERSON', description: 'a human' },
      { label: 'PRODUCT' },
    ]);
    const image = server.createFile({
      name: 'p.png',
      content: Buffer.from('x'),
      mimeType: 'image/png',
    });
    await expect(readLabels(`gdrive://file/${image}`, { drive: kit.drive })).rejects.toThrow(
      /is image\/png/,
    );
  });
});
