import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Confluence, confluenceSource } from '@sluice/confluence-source';
import type { Task } from '@sluice/core';
import { collect } from '@sluice/core/testing';
import { useConfluence } from '@sluice/testkit';
import { beforeEach, describe, expect, it } from 'vitest';
import { publishReport } from '../src/report.js';
import { publishReview, REVIEW_ATTACHMENT } from '../src/review.js';

const kit = useConfluence();
const client = (fetchImpl?: typeof fetch) =>
  new Confluence({
    site: kit.cloudBase,
    deployment: 'cloud',
    email: kit.email,
    apiToken: kit.apiToken,
    fetch: fetchImpl,
  });

const lines = (tasks: Task[]) => tasks.map((task) => `${JSON.stringify(task)}\n`);

// Two annotators on the same questions, as a multi-user Prodigy session exports them.
const annotated: Task[] = [
  {
    text: 'Ada Lovelace joined Acme',
    spans: [{ start: 0, end: 12, label: 'PERSON' }],
    answer: 'accept',
    _task_hash: 11,
    _input_hash: 1,
    _annotator_id: 'ner-alice',
    _session_id: 'ner-alice',
    _timestamp: 1_767_225_600,
  },
  {
    text: 'Ada Lovelace joined Acme',
    spans: [{ start: 0, end: 12, label: 'PERSON' }],
    answer: 'accept',
    _task_hash: 11,
    _input_hash: 1,
    _annotator_id: 'ner-bob',
    _session_id: 'ner-bob',
    _timestamp: 1_767_229_200,
  },
  {
    text: 'Acme & Co. <b>bold</b>',
    spans: [{ start: 0, end: 4, label: 'ORG' }],
    answer: 'ignore',
    flagged: true,
    _task_hash: 12,
    _input_hash: 2,
    _annotator_id: 'ner-alice',
    _session_id: 'ner-alice',
    meta: { source: 's3://bucket/news.jsonl', score: 0.9 },
  },
  {
    text: 'Acme & Co. <b>bold</b>',
    spans: [],
    answer: 'reject',
    _task_hash: 12,
    _input_hash: 2,
    _annotator_id: 'ner-bob',
    _session_id: 'ner-bob',
    meta: { score: 0.3 },
  },
  {
    text: 'Quiet day',
    answer: 'accept',
    _task_hash: 13,
    _input_hash: 3,
    _annotator_id: 'ner-alice',
    meta: { score: 0.95 },
  },
];

let spaces = 0;
function newParent(): { space: string; parent: string } {
  const space = kit.server.addSpace(`R${++spaces}`).key;
  const parent = kit.server.addPage({ space, title: 'NER project' });
  return { space, parent };
}

const byTitle = (space: string, title: string) =>
  kit.server.pages(space).filter((page) => page.title === title);

describe('confluence-sink report', () => {
  let ctx: { space: string; parent: string };
  beforeEach(() => {
    ctx = newParent();
  });

  it('publishes the figures under the parent; a rerun adds a version to the same page', async () => {
    const options = {
      url: `confluence://page/${ctx.parent}`,
      dataset: 'news_ner',
      title: 'NER run {dataset}',
      client: client(),
    };
    const first = await publishReport(lines(annotated), options);
    expect(first.page?.created).toBe(true);
    const [page] = byTitle(ctx.space, 'NER run news_ner');
    expect(page?.parentId).toBe(ctx.parent);
    expect(page?.body).toContain('<strong>5</strong> examples, 1 flagged');
    expect(page?.body).toContain('<tr><td>accept</td><td>3</td><td>60.0%</td></tr>');
    expect(page?.body).toContain(
      '<tr><td>PERSON</td><td>2</td><td>2</td><td>0</td><td>0</td></tr>',
    );
    expect(page?.body).toContain(
      '<tr><td>ner-alice</td><td>3</td><td>2</td><td>0</td><td>1</td></tr>',
    );
    // Question 11 agreed, question 12 did not.
    expect(page?.body).toContain('<strong>50.0%</strong> (1 of 2 pairs)');
    expect(page?.body).toContain('From 2026-01-01T00:00:00.000Z to 2026-01-01T01:00:00.000Z');

    const more = [...annotated, { text: 'Late', answer: 'accept' as const, _task_hash: 14 }];
    const second = await publishReport(lines(more), options);
    expect(second.page?.id).toBe(first.page?.id);
    expect(second.page?.created).toBe(false);
    const pages = byTitle(ctx.space, 'NER run news_ner');
    expect(pages).toHaveLength(1);
    expect(pages[0]?.versions.map((v) => v.number)).toEqual([1, 2]);
    expect(pages[0]?.versions[0]?.body).toContain('<strong>5</strong> examples');
    expect(pages[0]?.body).toContain('<strong>6</strong> examples');
  });

  it("names the export manifest's location and checksums", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-report-'));
    try {
      // As releases before run tags wrote it (manifest/1): still read.
      const manifest = {
        sluice: 'manifest/1',
        dataset: 'news_ner',
        root: 's3://exports/news_ner/2026-11-23',
        created: '2026-11-23T10:00:00.000Z',
        tool: { name: '@sluice/s3-sink', version: '0.1.0' },
        format: 'jsonl',
        filters: {},
        input: { lines: 5, valid: 5, rejected: 0, filtered: 0 },
        counts: { records: 5, answers: {}, labels: {}, flagged: 1, annotators: {} },
        parts: [{ key: 'part-00001.jsonl', records: 5, bytes: 1234, sha256: 'ab'.repeat(32) }],
        rejects: null,
        review: null,
        lineage: { sources: {}, truncated: false },
      };
      const path = join(dir, 'manifest.json');
      await writeFile(path, JSON.stringify(manifest));
      const result = await publishReport(lines(annotated), {
        url: `confluence://page/${ctx.parent}`,
        client: client(),
        manifest: path,
      });
      expect(result.body).toContain('s3://exports/news_ner/2026-11-23/manifest.json');
      expect(result.body).toContain(
        `<td>part-00001.jsonl</td><td>5</td><td>1234</td><td><code>${'ab'.repeat(32)}</code></td>`,
      );
      await writeFile(path, '{"not":"a manifest"}');
      await expect(
        publishReport(lines(annotated), {
          url: `confluence://page/${ctx.parent}`,
          client: client(),
          manifest: path,
        }),
      ).rejects.toMatchObject({ code: 'BAD_INPUT' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never overwrites a page it did not publish, and builds on a version saved meanwhile', async () => {
    kit.server.addPage({ space: ctx.space, title: 'Annotation report', body: '<p>mine</p>' });
    await expect(
      publishReport(lines(annotated), { url: `confluence://page/${ctx.parent}`, client: client() }),
    ).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining('not published by Sluice'),
    });

    const options = { url: `confluence://page/${ctx.parent}`, title: 'Run', client: client() };
    const first = await publishReport(lines(annotated), options);
    // Someone edits the page between Sluice's read and its save: the save gets a 409.
    let edited = false;
    const racing: typeof fetch = async (input, init) => {
      if (init?.method === 'PUT' && !edited) {
        edited = true;
        kit.server.updatePage(first.page?.id as string, {
          body: `${kit.server.page(first.page?.id as string)?.body}`,
        });
      }
      return fetch(input, init);
    };
    const second = await publishReport(lines(annotated), { ...options, client: client(racing) });
    expect(edited).toBe(true);
    expect(second.page?.version).toBe(3);
  });

  it('publishes through throttling: a 429 on page create is sent again once allowed', async () => {
    kit.server.throttle(1, { method: 'POST', retryAfter: 1 });
    kit.server.throttle(1, { method: 'POST' });
    const started = Date.now();
    const result = await publishReport(lines(annotated), {
      url: `confluence://page/${ctx.parent}`,
      title: 'Throttled',
      client: client(),
    });
    expect(result.page?.created).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(byTitle(ctx.space, 'Throttled')).toHaveLength(1);
  });

  it('leaves an archived report alone and publishes a current page of that title', async () => {
    const options = { url: `confluence://page/${ctx.parent}`, title: 'Weekly', client: client() };
    const first = await publishReport(lines(annotated), options);
    kit.server.archive(first.page?.id as string);
    const second = await publishReport(lines(annotated), options);
    expect(second.page?.created).toBe(true);
    expect(second.page?.id).not.toBe(first.page?.id);
    expect(kit.server.page(first.page?.id as string)).toMatchObject({
      status: 'archived',
      version: 1,
    });
    expect(byTitle(ctx.space, 'Weekly').map((p) => p.status)).toEqual(['archived', 'current']);
  });

  it('stops at a bad line, naming it, and publishes nothing', async () => {
    const input = [...lines(annotated.slice(0, 2)), '{"text": broken\n'];
    await expect(
      publishReport(input, { url: `confluence://page/${ctx.parent}`, client: client() }),
    ).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/^stdin line 3: /),
    });
    expect(kit.server.pages(ctx.space)).toHaveLength(1);
  });

  it('publishes nothing when interrupted while reading', async () => {
    const abort = new AbortController();
    async function* input() {
      yield lines(annotated)[0] as string;
      abort.abort(); // Ctrl-C: stdin ends early
    }
    await expect(
      publishReport(input(), {
        url: `confluence://page/${ctx.parent}`,
        client: client(),
        signal: abort.signal,
      }),
    ).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(kit.server.pages(ctx.space)).toHaveLength(1);
  });

  it('prints the storage body with --dry-run, without credentials or requests', async () => {
    const before = kit.server.requests.length;
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (chunk: Buffer) => chunks.push(chunk));
    const result = await publishReport(lines(annotated), {
      url: 'confluence://page/1',
      dryRun: true,
      out,
    });
    expect(result.page).toBeUndefined();
    expect(Buffer.concat(chunks).toString()).toContain('<h2>Agreement</h2>');
    expect(kit.server.requests.length).toBe(before);
  });
});

describe('confluence-sink review', () => {
  let ctx: { space: string; parent: string };
  beforeEach(() => {
    ctx = newParent();
  });
  const reviewFilters = {
    answer: ['ignore' as const],
    flagged: true,
    maxScore: 0.5,
    match: 'any' as const,
  };

  it('lists the selected examples in a table, with the JSONL attached', async () => {
    const result = await publishReview(lines(annotated), {
      url: `confluence://page/${ctx.parent}`,
      dataset: 'news_ner',
      client: client(),
      ...reviewFilters,
    });
    expect([result.read, result.selected]).toEqual([5, 2]);
    const [page] = byTitle(ctx.space, 'Review: news_ner');
    expect(page?.parentId).toBe(ctx.parent);
    // Text escaped, spans with their text, answer, score, flag and hash.
    expect(page?.body).toContain(
      '<td>Acme &amp; Co. &lt;b&gt;bold&lt;/b&gt;</td><td><strong>ORG</strong> “Acme”</td><td>ignore</td><td>0.9</td><td>yes</td><td><code>12</code></td><td>s3://bucket/news.jsonl</td>',
    );
    expect(page?.body).toContain('<td>reject</td><td>0.3</td>');
    const [attachment] = kit.server.attachments(page?.id as string);
    expect(attachment?.filename).toBe(REVIEW_ATTACHMENT);
    expect(attachment?.bytes.toString()).toBe(
      lines([annotated[2] as Task, annotated[3] as Task]).join(''),
    );
  });

  it('makes child pages in batches; a rerun updates the same pages', async () => {
    const many: Task[] = Array.from({ length: 5 }, (_, i) => ({
      text: `Doubtful ${i}`,
      answer: 'ignore',
      _task_hash: 100 + i,
    }));
    const options = {
      url: `confluence://page/${ctx.parent}`,
      title: 'Sign-off',
      batch: 2,
      client: client(),
      ...reviewFilters,
    };
    const first = await publishReview(lines(many), options);
    expect(first.pages.map((p) => p.title)).toEqual([
      'Sign-off',
      'Sign-off (1/3)',
      'Sign-off (2/3)',
      'Sign-off (3/3)',
    ]);
    const main = first.pages[0]?.id as string;
    const batch = byTitle(ctx.space, 'Sign-off (3/3)')[0];
    expect(batch?.parentId).toBe(main);
    expect(batch?.body).toContain('<td>5</td><td>Doubtful 4</td>');
    expect(kit.server.page(main)?.body).toContain('<ri:page ri:content-title="Sign-off (2/3)" />');

    await publishReview(lines(many), options);
    expect(kit.server.pages(ctx.space)).toHaveLength(5); // parent, review page, three batches
    expect(kit.server.page(main)?.versions.length).toBeGreaterThan(1);
    expect(byTitle(ctx.space, 'Sign-off (1/3)')[0]?.version).toBe(2);
    expect(kit.server.attachments(main)[0]?.version).toBe(2);
  });

  it('round trip: corrections attached to the page come back through the source with their hashes', async () => {
    const result = await publishReview(lines(annotated), {
      url: `confluence://page/${ctx.parent}`,
      client: client(),
      ...reviewFilters,
    });
    const pageId = result.pages[0]?.id as string;
    const [attachment] = kit.server.attachments(pageId);
    const corrected = (attachment?.bytes.toString() ?? '')
      .trim()
      .split('\n')
      .map((line) => ({ ...(JSON.parse(line) as Task), answer: 'accept' as const }));
    kit.server.addAttachment(pageId, 'corrections.jsonl', lines(corrected).join(''));
    const back = await collect(
      confluenceSource({
        url: `confluence://page/${pageId}`,
        client: client(),
        attachments: true,
        pages: false,
        include: ['corrections.jsonl'],
      }),
    );
    expect(back.map((t) => [t._task_hash, t._input_hash, t.answer])).toEqual([
      [12, 2, 'accept'],
      [12, 2, 'accept'],
    ]);
    expect(back[0]?.meta?.origin).toBe('s3://bucket/news.jsonl');
  });
});
