import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SourceOptions, Task } from '@sluice/core';
import { collect, TINY_PNG, testSource } from '@sluice/core/testing';
import { useConfluence } from '@sluice/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { Confluence } from '../src/confluence.js';
import { confluenceSource } from '../src/confluence-source.js';
import { readGuidelines, readLabels } from '../src/documents.js';

const kit = useConfluence();
const cloud = () =>
  new Confluence({
    site: kit.cloudBase,
    deployment: 'cloud',
    email: kit.email,
    apiToken: kit.apiToken,
  });
let spaces = 0;
const newSpace = () => kit.server.addSpace(`S${++spaces}`).key;

// The shared source suites over attachments: a folder is a page, a file an attachment on it.
describe('on the test kit server', () => {
  testSource(
    {
      connector: 'confluence',
      async setup() {
        const space = newSpace();
        const rootId = kit.server.addPage({ space, title: `run ${space}` });
        const pages = new Map<string, string>([['', rootId]]);
        const pageOf = (dirs: string[]): string => {
          const key = dirs.join('/');
          let id = pages.get(key);
          if (!id) {
            const parentId = pageOf(dirs.slice(0, -1));
            id = kit.server.addPage({ space, title: dirs.at(-1) as string, parentId });
            pages.set(key, id);
          }
          return id;
        };
        return {
          url: `confluence://page/${rootId}`,
          uriPrefix: `${kit.cloudBase}/download/attachments`,
          uri: (key) => {
            const parts = key.split('/');
            const page = pageOf(parts.slice(0, -1));
            return `${kit.cloudBase}/download/attachments/${page}/${encodeURIComponent(parts.at(-1) as string)}`;
          },
          put: async (key, body) => {
            const parts = key.split('/');
            kit.server.addAttachment(
              pageOf(parts.slice(0, -1)),
              parts.at(-1) as string,
              Buffer.from(body),
            );
          },
          cleanup: async () => {},
        };
      },
      source: (url, options) =>
        confluenceSource({
          ...options,
          url,
          client: cloud(),
          recursive: true,
          attachments: true,
          pages: false,
        }),
    },
    { listingOrder: 'added' },
  );
});

// A guidelines space as teams keep them: nested pages, macros, a table, labels.
const GUIDE = `<h1>Persons</h1>
<p>Mark people by name.&nbsp;Titles are not part of the name.</p>
<ac:structured-macro ac:name="info"><ac:rich-text-body><p>Ask in #annotation when unsure.</p></ac:rich-text-body></ac:structured-macro>
<h2>Edge cases</h2>
<table><tbody><tr><th>Case</th><th>Decision</th></tr><tr><td>Dr. Ada</td><td>Ada only</td></tr></tbody></table>
<ac:structured-macro ac:name="toc" />
<h1>Organisations</h1>
<p>Mark companies &amp; agencies.</p>`;

describe('confluence source: pages', () => {
  let space: string;
  let home: string;
  let guide: string;
  let policy: string;
  beforeAll(() => {
    space = newSpace();
    home = kit.server.addPage({ space, title: 'Home', body: '<p>Welcome</p>' });
    guide = kit.server.addPage({ space, title: 'Guide', body: GUIDE, parentId: home });
    policy = kit.server.addPage({
      space,
      title: 'Refund policy',
      body: '<p>Refunds within 30 days.</p>',
      parentId: guide,
      labels: ['policy'],
    });
  });
  const read = (url: string, options: Partial<SourceOptions> & Record<string, unknown> = {}) =>
    collect(confluenceSource({ url, client: cloud(), ...options }));

  it('reads a space as a task per page, clean text, with lineage', async () => {
    const tasks = await read(`confluence://${space}`);
    expect(tasks.map((t) => t.meta?.title)).toEqual(['Home', 'Guide', 'Refund policy']);
    const page = tasks[1] as Task;
    expect(page.text).toBe(
      [
        'Persons',
        'Mark people by name. Titles are not part of the name.',
        'Ask in #annotation when unsure.',
        'Edge cases',
        'Case | Decision\nDr. Ada | Ada only',
        'Organisations',
        'Mark companies & agencies.',
      ].join('\n\n'),
    );
    expect(page.meta).toMatchObject({
      source: `${kit.cloudBase}/pages/viewpage.action?pageId=${guide}`,
      path: `${space}/Home/Guide`,
      space,
    });
    expect(page.sluice?.source?.version).toBe('1');
    expect(typeof page._input_hash).toBe('number');
  });

  it('splits by section with the heading path, and by paragraph', async () => {
    const sections = await read(`confluence://page/${guide}`, { split: 'section' });
    expect(sections.map((t) => [t.meta?.headings, t.text])).toEqual([
      [
        'Persons',
        'Mark people by name. Titles are not part of the name.\n\nAsk in #annotation when unsure.',
      ],
      ['Persons > Edge cases', 'Case | Decision\nDr. Ada | Ada only'],
      ['Organisations', 'Mark companies & agencies.'],
    ]);
    const paragraphs = await read(`confluence://page/${guide}`, { split: 'paragraph' });
    expect(paragraphs).toHaveLength(4);
    const html = await read(`confluence://page/${guide}`, { split: 'section', html: true });
    expect(html[1]?.html).toContain('<td>Dr. Ada</td>');
    expect(html[1]?.text).toBeUndefined();
  });

  it('selects by CQL, label, ancestor and page ids', async () => {
    const titles = (tasks: Task[]) => tasks.map((t) => t.meta?.title);
    expect(titles(await read(`confluence://${space}`, { cql: 'label = "policy"' }))).toEqual([
      'Refund policy',
    ]);
    expect(titles(await read(`confluence://${space}`, { labels: ['policy', 'none'] }))).toEqual([
      'Refund policy',
    ]);
    expect(titles(await read(`confluence://${space}`, { ancestor: home }))).toEqual([
      'Guide',
      'Refund policy',
    ]);
    expect(titles(await read(`confluence://page/${policy},${home}`))).toEqual([
      'Home',
      'Refund policy',
    ]);
    expect(titles(await read(`confluence://page/${guide}`, { recursive: true }))).toEqual([
      'Guide',
      'Refund policy',
    ]);
    expect(
      titles(await read('confluence://search', { cql: `space = ${space} and title ~ "guide"` })),
    ).toEqual(['Guide']);
  });

  it('follows the search results page after page, lazily', async () => {
    const big = newSpace();
    for (let i = 0; i < 60; i++) {
      kit.server.addPage({ space: big, title: `Ticket ${i}`, body: `<p>ticket ${i}</p>` });
    }
    const before = kit.server.requests.length;
    const all = await read(`confluence://${big}`);
    expect(all.map((t) => t.text)).toEqual(Array.from({ length: 60 }, (_, i) => `ticket ${i}`));
    const searches = kit.server.requests
      .slice(before)
      .filter((r) => r.path.includes('/content/search'));
    expect(searches.length).toBe(2); // 25, then the rest in a page of 100
    const one = confluenceSource({ url: `confluence://${big}`, client: cloud(), limit: 1 });
    expect(await collect(one)).toHaveLength(1);
    expect(one.stats.listed).toBeLessThan(60);
  });

  it('reruns with --state ask only for recently modified pages and emit what changed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-confluence-'));
    try {
      const s = newSpace();
      const day = 24 * 3600_000;
      const old = kit.server.addPage({
        space: s,
        title: 'Old',
        body: '<p>old</p>',
        modified: new Date(Date.now() - 10 * day),
      });
      kit.server.addPage({ space: s, title: 'Recent', body: '<p>recent</p>' });
      const state = join(dir, 'state.json');
      expect((await read(`confluence://${s}`, { state })).map((t) => t.text)).toEqual([
        'old',
        'recent',
      ]);
      const before = kit.server.requests.length;
      expect(await read(`confluence://${s}`, { state })).toEqual([]);
      const rerun = kit.server.requests.slice(before).find((r) => r.path.includes('search'));
      expect(rerun?.query.get('cql')).toMatch(/lastmodified >= "\d{4}-\d\d-\d\d \d\d:\d\d"/);
      kit.server.updatePage(old, { body: '<p>old, edited</p>' });
      kit.server.addPage({ space: s, title: 'New', body: '<p>new</p>' });
      const third = await read(`confluence://${s}`, { state });
      expect(third.map((t) => [t.text, t.sluice?.source?.version])).toEqual([
        ['old, edited', '2'],
        ['new', '1'],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads attachments through the converters, next to page bodies', async () => {
    const s = newSpace();
    const page = kit.server.addPage({ space: s, title: 'Data', body: '<p>The data</p>' });
    kit.server.addAttachment(page, 'tickets.csv', 'text,priority\nPrinter broken,high\n');
    const tasks = await read(`confluence://${s}`, { attachments: true });
    expect(tasks.map((t) => t.text)).toEqual(['The data', 'Printer broken']);
    expect(tasks[1]?.meta).toMatchObject({
      source: `${kit.cloudBase}/download/attachments/${page}/tickets.csv`,
      path: `${s}/Data/tickets.csv`,
      priority: 'high',
    });
    expect(tasks[1]?.sluice?.source?.row).toBe(1);
  });

  it('works with Data Center and a personal access token', async () => {
    const dc = new Confluence({ site: kit.dcBase, deployment: 'datacenter', token: kit.bearer });
    const tasks = await collect(
      confluenceSource({ url: `confluence://page/${guide}`, client: dc, split: 'section' }),
    );
    expect(tasks[0]?.meta).toMatchObject({
      source: `${kit.dcBase}/pages/viewpage.action?pageId=${guide}`,
      headings: 'Persons',
      space,
    });
  });

  it('fails clearly: unknown space or page, refused token, bad CQL', async () => {
    await expect(read('confluence://NOPE')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('confluence://NOPE'),
    });
    await expect(read('confluence://page/999999')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const refused = new Confluence({
      site: kit.cloudBase,
      deployment: 'cloud',
      email: kit.email,
      apiToken: 'wrong-token-value',
    });
    const error = await collect(
      confluenceSource({ url: `confluence://${space}`, client: refused }),
    ).catch((e: Error) => e);
    expect(error).toMatchObject({ code: 'AUTH' });
    expect(String((error as Error).message)).not.toContain('wrong-token-value');
    await expect(read(`confluence://${space}`, { cql: 'label = = x' })).rejects.toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringContaining('Could not parse cql'),
    });
    expect(() => new Confluence({ site: kit.cloudBase, email: kit.email })).toThrow(
      /no Confluence credentials/,
    );
  });
});

describe('confluence guidelines and labels', () => {
  it('writes a page and its children as HTML with attached images inlined', async () => {
    const s = newSpace();
    const png = TINY_PNG;
    const top = kit.server.addPage({
      space: s,
      title: 'NER guidelines',
      body: '<p>Read this first.</p><ac:image ac:alt="example"><ri:attachment ri:filename="example.png" /></ac:image>',
    });
    kit.server.addAttachment(top, 'example.png', png, 'image/png');
    kit.server.addPage({ space: s, title: 'Persons', body: '<p>People.</p>', parentId: top });
    const doc = await readGuidelines(`confluence://page/${top}`, {
      client: cloud(),
      children: true,
    });
    expect(doc.html).toContain('<h1>NER guidelines</h1>');
    expect(doc.html).toContain('<h2>Persons</h2>');
    const src = /<img[^>]*src="([^"]+)"/.exec(doc.html)?.[1] as string;
    const image = await doc.fetchImage(src.replace(/&amp;/g, '&'));
    expect(image.bytes.equals(png)).toBe(true);
    expect(image.contentType).toBe('image/png');
  });

  it('reads labels from a table with descriptions', async () => {
    const s = newSpace();
    const page = kit.server.addPage({
      space: s,
      title: 'Taxonomy',
      body: '<table><tbody><tr><th>Label</th><th>Description</th></tr><tr><td>PERSON</td><td>People by name</td></tr><tr><td>ORG</td><td>Companies</td></tr></tbody></table>',
    });
    const { entries, name } = await readLabels(`confluence://page/${page}`, { client: cloud() });
    expect(entries).toEqual([
      { label: 'PERSON', description: 'People by name' },
      { label: 'ORG', description: 'Companies' },
    ]);
    expect(name).toContain('Taxonomy');
    await expect(readLabels(`confluence://${s}`, { client: cloud() })).rejects.toMatchObject({
      code: 'USAGE',
    });
  });
});
