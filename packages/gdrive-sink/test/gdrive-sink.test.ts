import { Readable } from 'node:stream';
import { collect, sampleExport, testSink } from '@sluice/core/testing';
import { gdriveSource } from '@sluice/gdrive-source';
import { type DriveServer, useDrive } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { gdriveSink } from '../src/gdrive-sink.js';

const FOLDER = 'application/vnd.google-apps.folder';

/** Every file under a folder by path, and the folders by path, as a person browsing sees them. */
function tree(server: DriveServer, folderId: string, prefix = '') {
  const files = new Map<string, string>();
  const folders = new Map<string, string[]>();
  for (const child of server.children(folderId)) {
    const path = `${prefix}${child.name}`;
    if (child.mimeType === FOLDER) {
      folders.set(path, [...(folders.get(path) ?? []), child.id]);
      const inner = tree(server, child.id, `${path}/`);
      for (const [k, v] of inner.files) files.set(k, v);
      for (const [k, v] of inner.folders) folders.set(k, [...(folders.get(k) ?? []), ...v]);
    } else {
      files.set(path, child.id);
    }
  }
  return { files, folders };
}

const kit = useDrive();

describe('on the test kit server', () => {
  let runs = 0;
  testSink({
    connector: 'gdrive',
    async setup() {
      const root = kit.server.createFolder(`sink-run-${++runs}`);
      return {
        url: `gdrive://folder/${root}`,
        list: async () => [...tree(kit.server, root).files.keys()].sort(),
        get: async (key) => {
          const id = tree(kit.server, root).files.get(key);
          return id ? kit.server.file(id)?.content : undefined;
        },
        cleanup: async () => {},
      };
    },
    sink: (url, options) => gdriveSink({ ...options, url, drive: kit.drive }),
    exclusive: 'new-root',
  });
});

describe('gdrive sink', () => {
  const lines = () => Readable.from(sampleExport().map((task) => `${JSON.stringify(task)}\n`));

  it('creates the folder path once, reuses it, and records dataset and sha256 in properties', async () => {
    const { server } = kit;
    const root = server.createFolder('exports');
    const url = `gdrive://folder/${root}/{dataset}/2026`;
    const sink = () =>
      gdriveSink({ url, drive: kit.drive, dataset: 'news', name: '{answer}/part-{part}' });
    const first = await sink().writeJsonl(lines());
    expect(first.status).toBe('written');
    const { files, folders } = tree(server, root);
    // One folder per path segment, never two of the same name.
    for (const ids of folders.values()) expect(ids).toHaveLength(1);
    expect([...folders.keys()].sort()).toEqual([
      'news',
      'news/2026',
      'news/2026/accept',
      'news/2026/ignore',
      'news/2026/reject',
    ]);
    const entry = first.manifest.parts.find((p) => p.name === 'accept/part-00000.jsonl');
    const part = server.file(files.get(`news/2026/${entry?.key}`) as string);
    // Public properties: any credentials find them again (appProperties are per OAuth client).
    expect(part?.properties).toMatchObject({ dataset: 'news', sha256: entry?.sha256 });
    expect(part?.appProperties).toBeUndefined();
    const manifest = server.file(files.get('news/2026/manifest.json') as string);
    expect(JSON.parse(manifest?.content?.toString() ?? '{}').root).toBe(
      `gdrive://folder/${root}/news/2026`,
    );
    // Same export again: unchanged, nothing new in Drive.
    const again = await sink().writeJsonl(lines());
    expect(again.status).toBe('unchanged');
    expect(tree(server, root).files).toEqual(files);
  });

  it('replaces a changed export: new files, the manifest updated in place, the old files trashed', async () => {
    const { server } = kit;
    const root = server.createFolder('rerun');
    const url = `gdrive://folder/${root}/out`;
    const first = await gdriveSink({ url, drive: kit.drive, maxPartRecords: 2 }).writeJsonl(
      lines(),
    );
    const before = tree(server, root).files;
    expect([...before.keys()].sort()).toEqual(
      ['out/manifest.json', ...first.manifest.parts.map((part) => `out/${part.key}`)].sort(),
    );
    expect(first.manifest.parts.map((part) => part.name)).toEqual([
      'part-00000.jsonl',
      'part-00001.jsonl',
      'part-00002.jsonl',
    ]);
    // A person's file named like a part is not Sluice's: left alone.
    const outId = tree(server, root).folders.get('out')?.[0] as string;
    const theirs = server.createFile({
      name: first.manifest.parts[0]?.key as string,
      parentId: outId,
      content: 'mine',
    });
    const result = await gdriveSink({ url, drive: kit.drive, maxPartRecords: 3 }).writeJsonl(
      lines(),
    );
    expect(result.status).toBe('written');
    expect(result.removed.sort()).toEqual(first.manifest.parts.map((part) => part.key).sort());
    for (const part of first.manifest.parts) {
      expect(server.file(before.get(`out/${part.key}`) as string)?.trashed).toBe(true);
    }
    // The manifest is the same file, with new content: Drive keeps its earlier revision.
    const manifestId = before.get('out/manifest.json') as string;
    expect(tree(server, root).files.get('out/manifest.json')).toBe(manifestId);
    expect(JSON.parse(server.file(manifestId)?.content?.toString() ?? '{}').run).toBe(
      result.manifest.run,
    );
    expect(server.file(theirs)?.content?.toString()).toBe('mine');
    const [part] = result.manifest.parts;
    const fresh = server.file(tree(server, root).files.get(`out/${part?.key}`) as string);
    expect(fresh?.content?.toString().trim().split('\n')).toHaveLength(3);
  });

  it('uploads a large part in resumable chunks that arrive byte for byte', async () => {
    const { server } = kit;
    const root = server.createFolder('big');
    const text = 'x'.repeat(2000);
    const big = Array.from({ length: 400 }, (_, i) => JSON.stringify({ text: `${i} ${text}` }));
    const before = server.requests.length;
    const result = await gdriveSink({
      url: `gdrive://folder/${root}`,
      drive: kit.drive,
      chunkSize: 256 * 1024,
    }).writeJsonl(Readable.from(big.map((line) => `${line}\n`)));
    const puts = server.requests.slice(before).filter((r) => r.method === 'PUT');
    expect(puts.length).toBeGreaterThanOrEqual(4);
    const id = tree(server, root).files.get(result.manifest.parts[0]?.key as string) as string;
    expect(server.file(id)?.content?.toString()).toBe(`${big.join('\n')}\n`);
    expect(result.manifest.parts[0]?.bytes).toBe(server.file(id)?.content?.length);
  });

  it('writes nothing on --dry-run and fails with --if-exists fail on a different export', async () => {
    const { server } = kit;
    const root = server.createFolder('guarded');
    const url = `gdrive://folder/${root}/out`;
    const dry = await gdriveSink({ url, drive: kit.drive, dryRun: true }).writeJsonl(lines());
    expect(dry.status).toBe('dry-run');
    expect(server.children(root)).toEqual([]);
    await gdriveSink({ url, drive: kit.drive }).writeJsonl(lines());
    await expect(
      gdriveSink({ url, drive: kit.drive, ifExists: 'fail', answer: ['accept'] }).writeJsonl(
        lines(),
      ),
    ).rejects.toThrow(/already holds a different export/);
  });

  it('writes a review package (JSONL and review.csv) whose corrected rows come back with their hashes', async () => {
    const { server } = kit;
    const root = server.createFolder('review');
    const url = `gdrive://folder/${root}/news`;
    const tasks = sampleExport();
    const result = await gdriveSink({
      url,
      drive: kit.drive,
      dataset: 'news',
      csv: true,
      flagged: true,
      answer: ['ignore'],
      maxScore: 0.5,
      match: 'any',
    }).write(tasks);
    const files = tree(server, root).files;
    const { run } = result.manifest;
    expect([...files.keys()].sort()).toEqual([
      'news/manifest.json',
      `news/part-00000.${run}.jsonl`,
      `news/review.${run}.csv`,
    ]);
    expect(result.manifest.review?.records).toBe(result.manifest.counts.records);
    const csvId = files.get(`news/review.${run}.csv`) as string;
    const csv = server.file(csvId)?.content?.toString() ?? '';
    expect(csv.split('\n')[0]).toBe(
      'text,label,answer,score,flagged,spans,accept,_input_hash,_task_hash,source,annotator',
    );
    // A reviewer corrects a label in the sheet; the source reads the rows back.
    const corrected = csv.replace(/^([^\n]*\n[^,\n]*,)[^,\n]*/, '$1CORRECTED');
    server.updateContent(csvId, corrected);
    const newsId = tree(server, root).folders.get('news')?.[0] as string;
    const back = await collect(
      gdriveSource({
        url: `gdrive://folder/${newsId}`,
        drive: kit.drive,
        include: ['review.*.csv'],
      }),
    );
    const kept = tasks.filter(
      (t) => t.flagged === true || t.answer === 'ignore' || ((t.meta?.score as number) ?? 1) <= 0.5,
    );
    expect(kept.length).toBeGreaterThan(1);
    expect(result.manifest.counts.records).toBe(kept.length);
    expect(back.map((t) => [t._input_hash, t._task_hash])).toEqual(
      kept.map((t) => [t._input_hash, t._task_hash]),
    );
    expect(back[0]?.label).toBe('CORRECTED');
    expect(back[0]?.text).toBe(kept[0]?.text);
  });
});
