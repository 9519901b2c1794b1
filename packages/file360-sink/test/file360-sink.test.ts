import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Task } from '@sluice/core';
import { collect, sampleExport, testSink } from '@sluice/core/testing';
import { file360Source } from '@sluice/file360-source';
import {
  ENTERPRISE_WORKSPACE,
  type File360Server,
  useCoreShare,
  useFile360,
} from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { file360Sink } from '../src/file360-sink.js';

/** Every document below a folder by path, and the folders by path, as a person browsing sees them. */
function tree(server: File360Server, folderId: number, prefix = '') {
  const documents = new Map<string, number>();
  const folders = new Map<string, number>();
  for (const child of server.children(folderId)) {
    const path = `${prefix}${child.name}`;
    if (child.type === 0) {
      folders.set(path, child.id);
      const inner = tree(server, child.id, `${path}/`);
      for (const [k, v] of inner.documents) documents.set(k, v);
      for (const [k, v] of inner.folders) folders.set(k, v);
    } else {
      documents.set(path, child.id);
    }
  }
  return { documents, folders };
}

/** The current bytes of the document at `path` below a folder. */
function current(server: File360Server, folderId: number, path: string): Buffer | undefined {
  const id = tree(server, folderId).documents.get(path);
  return id === undefined ? undefined : server.node(id)?.versions.at(-1)?.content;
}

const kit = useFile360();
const connection = () => ({ baseUrl: kit.base, username: kit.username, password: kit.password });
let runs = 0;
const newFolder = (name = 'sink') =>
  kit.server.addFolder(ENTERPRISE_WORKSPACE, `${name}-${++runs}`);
const lines = (tasks: Task[] = sampleExport()) =>
  Readable.from(tasks.map((task) => `${JSON.stringify(task)}\n`));

describe('on the test kit server', () => {
  testSink({
    connector: 'file360',
    async setup() {
      const root = newFolder();
      return {
        url: `file360://node/${root}`,
        list: async () => [...tree(kit.server, root).documents.keys()].sort(),
        get: async (key) => current(kit.server, root, key),
        cleanup: async () => {},
      };
    },
    sink: (url, options) => file360Sink({ ...options, ...connection(), url }),
    exclusive: 'new-root',
  });
});

describe('file360 sink', () => {
  it('creates the folder path once; a changed rerun adds a version to manifest.json and puts parts in new documents', async () => {
    const { server } = kit;
    const root = newFolder('exports');
    const url = `file360://node/${root}/{dataset}/2026`;
    const sink = (options = {}) =>
      file360Sink({
        ...connection(),
        url,
        dataset: 'news',
        name: '{answer}/part-{part}',
        ...options,
      });
    const first = await sink().writeJsonl(lines());
    expect(first.status).toBe('written');
    const { documents, folders } = tree(server, root);
    expect([...folders.keys()].sort()).toEqual([
      'news',
      'news/2026',
      'news/2026/accept',
      'news/2026/ignore',
      'news/2026/reject',
    ]);
    const entry = first.manifest.parts.find((p) => p.name === 'accept/part-00000.jsonl');
    const acceptId = documents.get(`news/2026/${entry?.key}`) as number;
    expect(server.node(acceptId)?.description).toBe(
      `Sluice export of news sha256 ${entry?.sha256}`,
    );
    const manifestId = documents.get('news/2026/manifest.json') as number;
    expect(
      JSON.parse(current(server, root, 'news/2026/manifest.json')?.toString() ?? '{}').root,
    ).toBe(`file360://node/${root}/news/2026`);
    // The same export again: nothing written, no new versions.
    expect((await sink().writeJsonl(lines())).status).toBe('unchanged');
    expect(tree(server, root).documents).toEqual(documents);
    // A changed export: the manifest gets version 2 of its document; the parts are new
    // documents (the previous export stayed whole until then), and the old ones are gone.
    const tasks = sampleExport();
    const accepted = tasks.find((t) => t.answer === 'accept') as Task;
    accepted.text = `${accepted.text} (edited)`;
    const second = await sink().writeJsonl(lines(tasks));
    expect(second.status).toBe('written');
    const after = tree(server, root).documents;
    expect([...after.keys()].sort()).toEqual(
      [
        'news/2026/manifest.json',
        ...second.manifest.parts.map((part) => `news/2026/${part.key}`),
      ].sort(),
    );
    expect(after.get('news/2026/manifest.json')).toBe(manifestId);
    expect(server.node(manifestId)?.versions.map((v) => v.number)).toEqual([1, 2]);
    expect(second.removed.sort()).toEqual(first.manifest.parts.map((p) => p.key).sort());
    const changed = second.manifest.parts.find((p) => p.name === 'accept/part-00000.jsonl');
    expect(current(server, root, `news/2026/${changed?.key}`)?.toString()).toContain('(edited)');
  });

  it('--if-exists fail and skip leave a different export alone', async () => {
    const root = newFolder();
    const url = `file360://node/${root}/out`;
    await file360Sink({ ...connection(), url }).writeJsonl(lines());
    await expect(
      file360Sink({ ...connection(), url, ifExists: 'fail', answer: ['accept'] }).writeJsonl(
        lines(),
      ),
    ).rejects.toThrow(/already holds a different export/);
    const skipped = await file360Sink({
      ...connection(),
      url,
      ifExists: 'skip',
      answer: ['accept'],
    }).writeJsonl(lines());
    expect(skipped.status).toBe('skipped');
    const id = tree(kit.server, root).documents.get('out/manifest.json') as number;
    expect(kit.server.node(id)?.versions).toHaveLength(1);
  });

  it('renews an expired ticket midway and writes every document once', async () => {
    const { server } = kit;
    const root = newFolder();
    const logins = server.authCount;
    server.expireTicketsAfter(5);
    const result = await file360Sink({
      ...connection(),
      url: `file360://node/${root}`,
      name: '{answer}/part-{part}',
    }).writeJsonl(lines());
    expect(result.status).toBe('written');
    expect(server.authCount).toBeGreaterThanOrEqual(logins + 2);
    const { documents } = tree(server, root);
    expect([...documents.keys()].sort()).toEqual(
      ['manifest.json', ...result.manifest.parts.map((part) => part.key)].sort(),
    );
    expect(result.manifest.parts.map((part) => part.name)).toEqual([
      'accept/part-00000.jsonl',
      'ignore/part-00000.jsonl',
      'reject/part-00000.jsonl',
    ]);
    for (const id of documents.values()) expect(server.node(id)?.versions).toHaveLength(1);
  });

  it('fails before reading stdin when the folder is missing, hidden, or a document', async () => {
    const root = newFolder();
    const doc = kit.server.addDocument(root, 'notes.txt', 'x');
    const hidden = kit.server.addFolder(root, 'legal');
    kit.server.hide(hidden);
    let read = false;
    const input = (async function* () {
      read = true;
      yield '{"text":"a"}\n';
    })();
    for (const [id, code] of [
      [99999999, 'NOT_FOUND'],
      [hidden, 'NOT_FOUND'],
      [doc, 'USAGE'],
    ] as const) {
      await expect(
        file360Sink({ ...connection(), url: `file360://node/${id}/x` }).writeJsonl(input),
      ).rejects.toMatchObject({ code });
    }
    expect(read).toBe(false);
    const denied = kit.server.addFolder(root, 'locked');
    kit.server.denyAdd(denied);
    await expect(
      file360Sink({ ...connection(), url: `file360://node/${denied}/x` }).writeJsonl(lines()),
    ).rejects.toMatchObject({ code: 'AUTH', message: expect.stringContaining('403') });
  });

  it('refuses a path whose name another item holds in other letter case, writing nothing', async () => {
    const root = newFolder();
    kit.server.addFolder(root, 'News');
    const error = await file360Sink({ ...connection(), url: `file360://node/${root}/news` })
      .writeJsonl(lines())
      .catch((e: Error) => e);
    expect(error).toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining("An item with the name 'news' already exists."),
      hint: expect.stringContaining('other letter case'),
    });
    expect(tree(kit.server, root).documents.size).toBe(0);
  });

  it('writes a review package with the guidelines; corrected files come back with their hashes', async () => {
    const { server } = kit;
    const root = newFolder('review');
    const guide = join(await mkdtemp(join(tmpdir(), 'sluice-guide-')), 'guidelines.html');
    await writeFile(guide, '<h1>Flag anything unclear</h1>');
    const tasks = sampleExport();
    const result = await file360Sink({
      ...connection(),
      url: `file360://node/${root}/news`,
      dataset: 'news',
      csv: true,
      guidelines: guide,
      flagged: true,
      answer: ['ignore'],
      maxScore: 0.5,
      match: 'any',
    }).write(tasks);
    const { documents, folders } = tree(server, root);
    const { run } = result.manifest;
    expect([...documents.keys()].sort()).toEqual([
      `news/guidelines.${run}.html`,
      'news/manifest.json',
      `news/part-00000.${run}.jsonl`,
      `news/review.${run}.csv`,
    ]);
    expect(current(server, root, `news/guidelines.${run}.html`)?.toString()).toBe(
      '<h1>Flag anything unclear</h1>',
    );
    expect(result.manifest.guidelines).toMatchObject({
      key: `guidelines.${run}.html`,
      name: 'guidelines.html',
      bytes: 30,
    });
    // An expert corrects a label in the sheet and checks it in as a new version.
    const csvId = documents.get(`news/review.${run}.csv`) as number;
    const csv = current(server, root, `news/review.${run}.csv`)?.toString() ?? '';
    server.addVersion(
      csvId,
      Buffer.from(csv.replace(/^([^\n]*\n(?:"(?:[^"]|"")*"|[^,\n]*),)[^,\n]*/, '$1CORRECTED')),
    );
    const back = await collect(
      file360Source({
        ...connection(),
        url: `file360://node/${folders.get('news')}`,
        include: ['review.*.csv'],
      }),
    );
    const kept = tasks.filter(
      (t) => t.flagged === true || t.answer === 'ignore' || ((t.meta?.score as number) ?? 1) <= 0.5,
    );
    expect(back.map((t) => [t._input_hash, t._task_hash])).toEqual(
      kept.map((t) => [t._input_hash, t._task_hash]),
    );
    expect(back[0]).toMatchObject({
      label: 'CORRECTED',
      text: kept[0]?.text,
      meta: { source: `file360://node/${csvId}`, origin: kept[0]?.meta?.source },
      sluice: { source: { version: '2' } },
    });
  });
});

describe('file360 sink and Content Server hidden items', () => {
  it('replaces a hidden manifest.json with a new version rather than failing on a taken name', async () => {
    const { server } = kit;
    const root = newFolder('hidden');
    const out = server.addFolder(root, 'out');
    const hidden = server.addDocument(out, 'manifest.json', 'old\n');
    server.setHidden(hidden);
    const result = await file360Sink({
      ...connection(),
      url: `file360://node/${root}/out`,
    }).writeJsonl(lines());
    expect(result.status).toBe('written');
    expect(server.node(hidden)?.versions).toHaveLength(2);
    expect(server.node(hidden)?.versions.at(-1)?.content.toString()).toContain(
      '"sluice": "manifest/2"',
    );
  });
});

// Core Share: the same suite and the same review round trip through the second backend.
const share = useCoreShare();
const shareConnection = () => ({
  baseUrl: share.url,
  api: 'core-share' as const,
  otdsUrl: share.otdsUrl,
  clientId: share.clientId,
  clientSecret: share.clientSecret,
});
let shareRuns = 0;
const newShareFolder = (name = 'sink') =>
  share.server.addFolder(share.rootId, `${name}-${++shareRuns}`);

/** Every live document below a Core Share folder by path, and the folders by path. */
function shareTree(folderId: string, prefix = '') {
  const documents = new Map<string, string>();
  const folders = new Map<string, string>();
  for (const child of share.server.children(folderId)) {
    const path = `${prefix}${child.name}`;
    if (child.type === 'folder') {
      folders.set(path, child.id);
      const inner = shareTree(child.id, `${path}/`);
      for (const [k, v] of inner.documents) documents.set(k, v);
      for (const [k, v] of inner.folders) folders.set(k, v);
    } else documents.set(path, child.id);
  }
  return { documents, folders };
}
const shareCurrent = (folderId: string, path: string) => {
  const id = shareTree(folderId).documents.get(path);
  return id === undefined ? undefined : share.server.item(id)?.versions.at(-1)?.content;
};

describe('on the test kit Core Share server', () => {
  testSink({
    connector: 'file360',
    async setup() {
      const root = newShareFolder();
      return {
        url: `file360://node/${root}`,
        list: async () => [...shareTree(root).documents.keys()].sort(),
        get: async (key) => shareCurrent(root, key),
        cleanup: async () => {},
      };
    },
    sink: (url, options) => file360Sink({ ...options, ...shareConnection(), url }),
    // Commits are checked, not enforced, on Core Share too (see the driver's `commits`).
    exclusive: 'new-root',
  });
});

describe('file360 sink on Core Share', () => {
  it('review round trip: the package out, the corrected sheet back with its hashes', async () => {
    const root = newShareFolder('review');
    const tasks = sampleExport();
    const first = await file360Sink({
      ...shareConnection(),
      url: `file360://node/${root}/news`,
      dataset: 'news',
      csv: true,
      flagged: true,
      answer: ['ignore'],
      maxScore: 0.5,
      match: 'any',
    }).write(tasks);
    const { documents, folders } = shareTree(root);
    const { run } = first.manifest;
    expect([...documents.keys()].sort()).toEqual([
      'news/manifest.json',
      `news/part-00000.${run}.jsonl`,
      `news/review.${run}.csv`,
    ]);
    const csvId = documents.get(`news/review.${run}.csv`) as string;
    const csv = shareCurrent(root, `news/review.${run}.csv`)?.toString() ?? '';
    share.server.addVersion(
      csvId,
      Buffer.from(csv.replace(/^([^\n]*\n(?:"(?:[^"]|"")*"|[^,\n]*),)[^,\n]*/, '$1CORRECTED')),
    );
    const back = await collect(
      file360Source({
        ...shareConnection(),
        url: `file360://node/${folders.get('news')}`,
        include: ['review.*.csv'],
      }),
    );
    const kept = tasks.filter(
      (t) => t.flagged === true || t.answer === 'ignore' || ((t.meta?.score as number) ?? 1) <= 0.5,
    );
    expect(back.map((t) => [t._input_hash, t._task_hash])).toEqual(
      kept.map((t) => [t._input_hash, t._task_hash]),
    );
    expect(back[0]).toMatchObject({
      label: 'CORRECTED',
      meta: { source: `file360://node/${csvId}` },
      sluice: { source: { version: '2' } },
    });
    // Another export into the same place: new documents, a new version of manifest.json.
    const again = await file360Sink({
      ...shareConnection(),
      url: `file360://node/${root}/news`,
      dataset: 'news',
    }).write(tasks);
    expect(again.status).toBe('written');
    expect(share.server.item(documents.get('news/manifest.json') as string)?.versions).toHaveLength(
      2,
    );
    expect([...shareTree(root).documents.keys()].sort()).toEqual(
      ['news/manifest.json', `news/${again.manifest.parts[0]?.key}`].sort(),
    );
  });
});
