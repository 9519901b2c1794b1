import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SourceOptions } from '@sluice/core';
import { collect, testSource } from '@sluice/core/testing';
import {
  ENTERPRISE_WORKSPACE,
  type File360Server,
  startFile360Server,
  useCoreShare,
  useFile360,
} from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/connect.js';
import { ContentServer } from '../src/content-server.js';
import { CoreShare } from '../src/core-share.js';
import { file360Source } from '../src/file360-source.js';

/** Puts a document at a `/`-separated key under a folder (a new version if it is there). */
function putter(server: File360Server, rootId: number) {
  const folders = new Map<string, number>([['', rootId]]);
  const documents = new Map<string, number>();
  const folderOf = (path: string[]): number => {
    const key = path.join('/');
    let id = folders.get(key);
    if (id === undefined) {
      id = server.addFolder(folderOf(path.slice(0, -1)), path.at(-1) as string);
      folders.set(key, id);
    }
    return id;
  };
  return {
    put(key: string, body: string | Uint8Array, modified?: Date): number {
      const known = documents.get(key);
      if (known !== undefined) {
        server.addVersion(known, Buffer.from(body), { modified });
        return known;
      }
      const path = key.split('/');
      const id = server.addDocument(
        folderOf(path.slice(0, -1)),
        path.at(-1) as string,
        Buffer.from(body),
        { modified },
      );
      documents.set(key, id);
      return id;
    },
    id: (key: string) => documents.get(key) as number,
  };
}

const kit = useFile360();
const connection = () => ({ baseUrl: kit.base, username: kit.username, password: kit.password });
let folders = 0;
const newFolder = () => kit.server.addFolder(ENTERPRISE_WORKSPACE, `case-${++folders}`);
const read = (url: string, options: Partial<SourceOptions> & Record<string, unknown> = {}) =>
  collect(file360Source({ ...connection(), url, ...options }));

// The shared source suites, against the test kit's Content Server through the REST client.
describe('on the test kit server', () => {
  testSource({
    connector: 'file360',
    async setup() {
      const root = newFolder();
      const documents = putter(kit.server, root);
      return {
        url: `file360://node/${root}`,
        uriPrefix: 'file360://node',
        uri: (key) => `file360://node/${documents.id(key)}`,
        put: async (key, body) => {
          documents.put(key, body);
        },
        cleanup: async () => {},
      };
    },
    source: (url, options) => file360Source({ ...options, ...connection(), url, recursive: true }),
  });
});

describe('file360 source', () => {
  it('stamps the node URI, the path and the version number; recursion is asked for', async () => {
    const { server } = kit;
    const root = newFolder();
    const docs = putter(server, root);
    const memo = docs.put('memo.txt', 'Pay Acme Ltd by Friday.\n');
    docs.put('2026/q1/contract.txt', 'Signed by Globex.\n');
    docs.put('memo.txt', 'Pay Acme Ltd by Monday.\n');
    const top = await read(`file360://node/${root}`, { order: 'listing' });
    expect(top.map((t) => [t.text, t.meta, t.sluice])).toEqual([
      [
        'Pay Acme Ltd by Monday.',
        { source: `file360://node/${memo}`, path: 'memo.txt' },
        { source: { version: '2', line: 1 } },
      ],
    ]);
    const all = await read(`file360://node/${root}`, { recursive: true, order: 'listing' });
    expect(all.map((t) => [t.meta?.path, t.sluice?.source?.version])).toEqual([
      ['memo.txt', '2'],
      ['2026/q1/contract.txt', '1'],
    ]);
    // One document by its own id.
    const one = await read(`file360://node/${docs.id('2026/q1/contract.txt')}`);
    expect(one.map((t) => t.text)).toEqual(['Signed by Globex.']);
  });

  it('pages through a large folder in listing-sized requests, lazily', async () => {
    const { server } = kit;
    const root = newFolder();
    for (let i = 0; i < 450; i++) {
      server.addDocument(root, `ticket-${String(i).padStart(3, '0')}.txt`, `ticket ${i}\n`);
    }
    const before = server.requests.length;
    const tasks = await read(`file360://node/${root}`, { order: 'listing' });
    expect(tasks).toHaveLength(450);
    expect(tasks.at(-1)?.text).toBe('ticket 449');
    const listings = server.requests
      .slice(before)
      .filter((r) => r.path === `/api/v2/nodes/${root}/nodes`);
    expect(listings.map((r) => new URLSearchParams(r.query).get('page'))).toEqual(['1', '2', '3']);
    // The first tasks need the first page only.
    const start = server.requests.length;
    await read(`file360://node/${root}`, { limit: 3 });
    const pages = server.requests.slice(start).filter((r) => r.path.endsWith('/nodes'));
    expect(pages).toHaveLength(1);
  });

  it('logs in again when the ticket expires midway, and reads everything once', async () => {
    const { server } = kit;
    const root = newFolder();
    for (let i = 0; i < 12; i++) server.addDocument(root, `doc-${i}.txt`, `doc ${i}\n`);
    const logins = server.authCount;
    server.expireTicketsAfter(6);
    const tasks = await read(`file360://node/${root}`, { order: 'listing' });
    expect(tasks.map((t) => t.text)).toEqual(
      Array.from({ length: 12 }, (_, i) => `doc ${i}`).sort(),
    );
    expect(server.authCount).toBe(logins + 2);
  });

  it('reads with a bearer token, and refuses one it does not know without showing it', async () => {
    const root = newFolder();
    kit.server.addDocument(root, 'a.txt', 'hello\n');
    const tasks = await read(`file360://node/${root}`, { baseUrl: kit.base, token: kit.token });
    expect(tasks.map((t) => t.text)).toEqual(['hello']);
    const wrong = 'not-the-token-0123456789';
    const error = await read(`file360://node/${root}`, {
      baseUrl: kit.base,
      token: wrong,
      username: undefined,
    }).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'AUTH', message: expect.stringContaining('401') });
    expect(String((error as Error).message)).not.toContain(wrong);
  });

  it('names the node, the cause and a hint for the usual mistakes', async () => {
    const root = newFolder();
    const hidden = kit.server.addFolder(root, 'board');
    kit.server.hide(hidden);
    await expect(read('file360://node/99999999')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringMatching(/^file360:\/\/node\/99999999: not found/),
    });
    await expect(read(`file360://node/${hidden}`)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const refused = await read(`file360://node/${root}`, {
      password: 'wrong-password-42',
    }).catch((e: Error) => e);
    expect(refused).toMatchObject({ code: 'AUTH' });
    expect((refused as Error).message).not.toContain('wrong-password-42');
    await expect(read('file360://folder/1')).rejects.toMatchObject({ code: 'USAGE' });
    expect(() => new ContentServer({ baseUrl: '', username: 'a', password: 'b' })).toThrow(
      /no File 360 server given/,
    );
  });

  it('reruns with --state list each folder newest first and stop at what the last run saw', async () => {
    const { server } = kit;
    const root = newFolder();
    const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
    const docs = putter(server, root);
    // 249 documents from last week, and the newest, which the checkpoint keeps, from 3 days ago.
    const lastWeek = new Date(Date.now() - 7 * 24 * 3600 * 1000);
    for (let i = 0; i < 249; i++) {
      docs.put(`old/${String(i).padStart(3, '0')}.txt`, `old ${i}\n`, lastWeek);
    }
    docs.put('old/249.txt', 'old 249\n', old);
    const state = join(await mkdtemp(join(tmpdir(), 'sluice-file360-')), 'state.json');
    const first = await read(`file360://node/${root}`, { recursive: true, state });
    expect(first).toHaveLength(250);
    const saved = JSON.parse(await readFile(state, 'utf8'));
    expect(Object.values(saved.cursors)).toEqual([old.toISOString().replace(/\.\d+Z$/, '.000Z')]);
    docs.put('old/007.txt', 'old 7, corrected\n');
    docs.put('new/fresh.txt', 'fresh\n');
    const before = server.requests.length;
    const rerun = await read(`file360://node/${root}`, {
      recursive: true,
      state,
      order: 'listing',
    });
    expect(rerun.map((t) => [t.text, t.sluice?.source?.version])).toEqual([
      ['fresh', '1'],
      ['old 7, corrected', '2'],
    ]);
    // The 250 old documents are not paged through again: one page per folder.
    const oldFolder = server.find(root, 'old')?.id;
    const pages = server.requests
      .slice(before)
      .filter((r) => r.path === `/api/v2/nodes/${oldFolder}/nodes` && r.query.includes('144'));
    expect(pages).toHaveLength(1);
    expect(new URLSearchParams(pages[0]?.query).get('sort')).toBe('desc_modify_date');
  });
});

describe('Content Server as it answers', () => {
  const fast = { baseMs: 10 };

  it('renews an expired bearer token through OTDS, having traded it for a ticket', async () => {
    const { server } = kit;
    const root = newFolder();
    for (let i = 0; i < 6; i++) server.addDocument(root, `doc-${i}.txt`, `doc ${i}\n`);
    server.otds.addClient('sluice-cs', 'cs-secret');
    const options = {
      baseUrl: kit.base,
      clientId: 'sluice-cs',
      clientSecret: 'cs-secret',
      otdsUrl: kit.url,
      username: undefined,
      password: undefined,
    };
    const grants = server.otds.issued.length;
    // Midway, both the session's ticket and the OTDS token expire: the client asks OTDS again.
    let calls = 0;
    const expiring: typeof fetch = (input, init) => {
      if (++calls === 5) {
        server.expireTickets();
        server.otds.expireAll();
      }
      return fetch(input, init);
    };
    const tasks = await read(`file360://node/${root}`, {
      ...options,
      fetch: expiring,
      order: 'listing',
    });
    expect(tasks.map((t) => t.text)).toEqual(Array.from({ length: 6 }, (_, i) => `doc ${i}`));
    expect(server.otds.issued.slice(grants)).toEqual(['client_credentials', 'client_credentials']);
    // A pasted token alone lives on as a ticket after the token itself has expired.
    const pasted = `otds-pasted-${newFolder()}`;
    server.addToken(pasted, 60_000);
    const client = new ContentServer({ baseUrl: kit.base, token: pasted });
    expect((await client.node(String(root)))?.kind).toBe('folder');
    server.otds.expireAll();
    expect((await client.node(String(root)))?.name).toMatch(/^case-/);
  });

  it('does not retry a deterministic 500, and retries 503 until it passes', async () => {
    const { server } = kit;
    const root = newFolder();
    const doc = server.addDocument(root, 'a.txt', 'a\n');
    const client = new ContentServer({ ...connection(), retry: fast });
    const before = server.requests.length;
    const browse = async () => {
      for await (const _ of client.children(String(doc))) break;
    };
    await expect(browse()).rejects.toMatchObject({ status: 500 });
    const browsed = server.requests.slice(before).filter((r) => r.path.endsWith('/nodes'));
    expect(browsed).toHaveLength(1);
  });

  it('finds a hidden item by name, and leaves it out of what it reads', async () => {
    const { server } = kit;
    const root = newFolder();
    server.addDocument(root, 'shown.txt', 'shown\n');
    const hidden = server.addDocument(root, 'hidden.txt', 'hidden\n');
    server.setHidden(hidden);
    expect((await read(`file360://node/${root}`)).map((t) => t.text)).toEqual(['shown']);
    const client = new ContentServer(connection());
    const found = [];
    for await (const node of client.children(String(root), { name: 'hidden.txt' })) {
      found.push(node.id);
    }
    expect(found).toEqual([String(hidden)]);
  });

  it("reads an older server's zone-less dates on its own clocks", async () => {
    const older = await startFile360Server({ timeZone: 'America/New_York' });
    try {
      older.server.addUser('u', 'p');
      const root = older.server.addFolder(ENTERPRISE_WORKSPACE, 'Dated');
      const hour = 3600_000;
      older.server.addDocument(root, 'old.txt', 'old\n', {
        modified: new Date(Date.now() - 8 * hour),
      });
      older.server.addDocument(root, 'new.txt', 'new\n', {
        modified: new Date(Date.now() - hour),
      });
      const tasks = await collect(
        file360Source({
          baseUrl: older.base,
          username: 'u',
          password: 'p',
          url: `file360://node/${root}`,
          modifiedSince: new Date(Date.now() - 2 * hour),
        }),
      );
      expect(tasks.map((t) => t.text)).toEqual(['new']);
    } finally {
      await older.server.close();
    }
  });
});

// Core Share: the second backend behind the same interface, through the same suites.
const share = useCoreShare();
const shareConnection = () => ({
  baseUrl: share.url,
  api: 'core-share' as const,
  otdsUrl: share.otdsUrl,
  clientId: share.clientId,
  clientSecret: share.clientSecret,
  username: share.username,
  password: share.password,
});
let shareFolders = 0;
const newShareFolder = () => share.server.addFolder(share.rootId, `share-${++shareFolders}`);

/** Puts a document at a `/`-separated key under a Core Share folder (a new version if it is there). */
function sharePutter(rootId: string) {
  const folders = new Map<string, string>([['', rootId]]);
  const documents = new Map<string, string>();
  const folderOf = (path: string[]): string => {
    const key = path.join('/');
    let id = folders.get(key);
    if (id === undefined) {
      id = share.server.addFolder(folderOf(path.slice(0, -1)), path.at(-1) as string);
      folders.set(key, id);
    }
    return id;
  };
  return {
    put(key: string, body: string | Uint8Array) {
      const known = documents.get(key);
      if (known !== undefined) return share.server.addVersion(known, Buffer.from(body));
      const path = key.split('/');
      const id = share.server.addDocument(
        folderOf(path.slice(0, -1)),
        path.at(-1) as string,
        Buffer.from(body),
      );
      documents.set(key, id);
    },
    id: (key: string) => documents.get(key) as string,
  };
}

describe('on the test kit Core Share server', () => {
  testSource({
    connector: 'file360',
    async setup() {
      const root = newShareFolder();
      const documents = sharePutter(root);
      return {
        url: `file360://node/${root}`,
        uriPrefix: 'file360://node',
        uri: (key) => `file360://node/${documents.id(key)}`,
        put: async (key, body) => {
          documents.put(key, body);
        },
        cleanup: async () => {},
      };
    },
    source: (url, options) =>
      file360Source({ ...options, ...shareConnection(), url, recursive: true }),
  });
});

describe('file360 source on Core Share', () => {
  it('keeps 19-digit ids whole, and pages past a full page to the empty one', async () => {
    const root = newShareFolder();
    const documents = sharePutter(root);
    for (let i = 0; i < 100; i++) documents.put(`t-${String(i).padStart(3, '0')}.txt`, `t ${i}\n`);
    const tasks = await collect(
      file360Source({ ...shareConnection(), url: `file360://node/${root}`, order: 'listing' }),
    );
    expect(tasks).toHaveLength(100);
    const id = documents.id('t-000.txt');
    expect(BigInt(id)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
    expect(tasks[0]?.meta?.source).toBe(`file360://node/${id}`);
    expect(`${Number(id)}`).not.toBe(id);
  });

  it('asks OTDS for a new token when the one held expires', async () => {
    const root = newShareFolder();
    share.server.addDocument(root, 'a.txt', 'a\n');
    const client = new CoreShare({
      ...shareConnection(),
      username: undefined,
      password: undefined,
    });
    expect((await client.node(root))?.kind).toBe('folder');
    const grants = share.server.otds.issued.length;
    share.server.otds.expireAll();
    const chunks: Uint8Array[] = [];
    const [doc] = await (async () => {
      const found = [];
      for await (const node of client.children(root)) found.push(node);
      return found;
    })();
    for await (const chunk of await client.download(doc?.id as string)) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe('a\n');
    expect(share.server.otds.issued.slice(grants)).toEqual(['client_credentials']);
  });

  it('is chosen by URL or flag, and names missing credentials', () => {
    let missing: unknown;
    try {
      connect({ baseUrl: 'https://core.opentext.com', token: undefined, username: undefined });
    } catch (error) {
      missing = error;
    }
    expect(missing).toMatchObject({
      code: 'AUTH',
      hint: expect.stringContaining('FILE360_CLIENT_ID and FILE360_CLIENT_SECRET'),
    });
    expect(connect({ baseUrl: 'https://core.opentext.com', token: 't' })).toBeInstanceOf(CoreShare);
    expect(connect({ baseUrl: 'https://otcs.acme.com/otcs/cs.exe', token: 't' })).toBeInstanceOf(
      ContentServer,
    );
    expect(
      connect({ baseUrl: 'https://files.acme.com', api: 'core-share', token: 't' }),
    ).toBeInstanceOf(CoreShare);
  });
});
