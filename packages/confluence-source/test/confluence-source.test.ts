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

describe('Confluence Cloud as it answers', () => {
  const fast = { baseMs: 20 };

  it('downloads attachments through the REST route, giving the media host no credential', async () => {
    const s = newSpace();
    const page = kit.server.addPage({ space: s, title: 'Files', body: '<p>files</p>' });
    kit.server.addAttachment(page, 'rows.csv', 'text,label\nRefund please,BILLING\n');
    kit.server.addAttachment(page, 'scan.png', TINY_PNG, 'image/png');
    const seen = kit.server.mediaAuthorizations.length;
    const tasks = await collect(
      confluenceSource({
        url: `confluence://${s}`,
        client: cloud(),
        attachments: true,
        pages: false,
        media: 'inline',
        order: 'listing',
      }),
    );
    expect(tasks.map((t) => t.text ?? t.image?.slice(0, 22))).toEqual([
      'Refund please',
      'data:image/png;base64,',
    ]);
    // The URIs stay the links people open; the bytes came through the API.
    expect(tasks[0]?.meta?.source).toBe(`${kit.cloudBase}/download/attachments/${page}/rows.csv`);
    expect(kit.server.mediaAuthorizations.length).toBe(seen);
    // Data Center keeps the old path.
    const dc = new Confluence({ site: kit.dcBase, deployment: 'datacenter', token: kit.bearer });
    const onDc = await collect(
      confluenceSource({ url: `confluence://${s}`, client: dc, attachments: true, pages: false }),
    );
    expect(onDc.filter((t) => t.text).map((t) => t.text)).toEqual(['Refund please']);
  });

  it('goes through the API gateway with an OAuth token: lists past one page, prints site URLs', async () => {
    const s = newSpace();
    kit.server.addOAuthClient('gw-app', 'gw-secret');
    const { accessToken } = kit.server.grantOAuth('gw-app');
    const top = kit.server.addPage({ space: s, title: 'Intake', body: '<p>intake</p>' });
    for (let i = 0; i < 30; i++) {
      kit.server.addAttachment(top, `ticket-${String(i).padStart(2, '0')}.txt`, `ticket ${i}\n`);
    }
    for (let i = 0; i < 27; i++) {
      kit.server.addPage({ space: s, title: `Rule ${i}`, body: `<p>rule ${i}</p>`, parentId: top });
    }
    const client = new Confluence({ site: kit.server.gatewayBase, token: accessToken });
    expect(client.deployment).toBe('gateway');
    const tasks = await collect(
      confluenceSource({
        url: `confluence://page/${top}`,
        client,
        attachments: true,
        pages: false,
        order: 'listing',
      }),
    );
    expect(tasks.map((t) => t.text)).toEqual(Array.from({ length: 30 }, (_, i) => `ticket ${i}`));
    expect(tasks[0]?.meta?.source).toBe(
      `${kit.cloudBase}/download/attachments/${top}/ticket-00.txt`,
    );
    const pages = await collect(confluenceSource({ url: `confluence://page/${top}`, client }));
    expect(pages[0]?.meta?.source).toBe(`${kit.cloudBase}/pages/viewpage.action?pageId=${top}`);
    const guide = await readGuidelines(`confluence://page/${top}`, { client, children: true });
    expect(guide.html.match(/<h2>Rule \d+<\/h2>/g)).toHaveLength(27);
  });

  it('sends an OAuth token named with the site through the gateway, finding the cloud id', async () => {
    expect(new Confluence({ site: 'https://acme.atlassian.net', token: 'x' }).deployment).toBe(
      'gateway',
    );
    expect(
      new Confluence({ site: 'https://acme.atlassian.net', email: 'a@b.c', apiToken: 't' })
        .deployment,
    ).toBe('cloud');
    expect(
      () => new Confluence({ site: 'https://acme.atlassian.net', token: 'x', deployment: 'cloud' }),
    ).toThrow(/works only through the API gateway/);
    const s = newSpace();
    const page = kit.server.addPage({ space: s, title: 'Gateway', body: '<p>through</p>' });
    kit.server.addOAuthClient('site-app', 'site-secret');
    const { accessToken } = kit.server.grantOAuth('site-app');
    const client = new Confluence({
      site: kit.cloudBase,
      token: accessToken,
      deployment: 'gateway',
      gatewayUrl: kit.url,
    });
    const tasks = await collect(confluenceSource({ url: `confluence://page/${page}`, client }));
    expect(tasks.map((t) => [t.text, t.meta?.source])).toEqual([
      ['through', `${kit.cloudBase}/pages/viewpage.action?pageId=${page}`],
    ]);
    expect(kit.server.requests.some((r) => r.path === '/_edge/tenant_info')).toBe(true);
  });

  it('refreshes an expired OAuth token and hands on the rotated refresh token', async () => {
    const s = newSpace();
    const page = kit.server.addPage({ space: s, title: 'Fresh', body: '<p>fresh</p>' });
    kit.server.addOAuthClient('lib-app', 'lib-secret');
    const granted = kit.server.grantOAuth('lib-app');
    const rotated: string[] = [];
    const client = new Confluence({
      site: kit.server.gatewayBase,
      oauth: {
        ...granted,
        clientId: 'lib-app',
        clientSecret: 'lib-secret',
        tokenUrl: `${kit.url}/oauth/token`,
        onRefresh: (tokens) => {
          rotated.push(tokens.refreshToken as string);
        },
      },
    });
    kit.server.expireOAuthTokens();
    expect((await client.page(page))?.title).toBe('Fresh');
    expect(rotated).toHaveLength(1);
    expect(rotated[0]).not.toBe(granted.refreshToken);
    kit.server.expireOAuthTokens();
    expect((await client.page(page))?.body).toBe('<p>fresh</p>');
    expect(rotated).toHaveLength(2);
  });

  it('writes --since on the clocks of an account west of UTC, and loses nothing', async () => {
    const s = newSpace();
    const hour = 3600_000;
    const page = (title: string, hoursAgo: number) =>
      kit.server.addPage({
        space: s,
        title,
        body: `<p>${title}</p>`,
        modified: new Date(Date.now() - hoursAgo * hour),
      });
    page('Old', 30);
    page('Recent', 2);
    const since = new Date(Date.now() - 3 * hour);
    const before = kit.server.requests.length;
    const tasks = await collect(
      confluenceSource({ url: `confluence://${s}`, client: cloud(), modifiedSince: since }),
    );
    expect(tasks.map((t) => t.meta?.title)).toEqual(['Recent']);
    const cql = kit.server.requests
      .slice(before)
      .find((r) => r.path.includes('/content/search'))
      ?.query.get('cql');
    const wall = new Intl.DateTimeFormat('sv-SE', {
      timeZone: 'America/Los_Angeles',
      dateStyle: 'short',
      timeStyle: 'short',
    }).format(new Date(since.getTime() - 60_000));
    expect(cql).toContain(`lastmodified >= "${wall}"`);
    // A searchable ordering the CQL reference documents.
    expect(cql).toMatch(/ order by created, title$/);
    // Data Center does not tell the zone: the bound is widened, and the exact cut still made.
    const dc = new Confluence({ site: kit.dcBase, deployment: 'datacenter', token: kit.bearer });
    const onDc = await collect(
      confluenceSource({ url: `confluence://${s}`, client: dc, modifiedSince: since }),
    );
    expect(onDc.map((t) => t.meta?.title)).toEqual(['Recent']);
  });

  it('waits out throttling as long as Confluence asks, past what a fixed 3 s budget allowed', async () => {
    const s = newSpace();
    kit.server.addPage({ space: s, title: 'Busy', body: '<p>busy</p>' });
    const client = () =>
      new Confluence({
        site: kit.cloudBase,
        email: kit.email,
        apiToken: kit.apiToken,
        retry: fast,
      });
    kit.server.throttle(5);
    expect(
      (await collect(confluenceSource({ url: `confluence://${s}`, client: client() }))).map(
        (t) => t.text,
      ),
    ).toEqual(['busy']);
    kit.server.throttle(1, { retryAfter: 1 });
    const started = Date.now();
    expect(
      await collect(confluenceSource({ url: `confluence://${s}`, client: client() })),
    ).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('finds the pages in a folder below a page for guidelines', async () => {
    const s = newSpace();
    const top = kit.server.addPage({ space: s, title: 'Guide', body: '<p>top</p>' });
    const folder = kit.server.addFolder({ space: s, title: 'Edge cases', parentId: top });
    kit.server.addPage({
      space: s,
      title: 'Titles',
      body: '<p>Dr. is not a name</p>',
      parentId: folder,
    });
    const archived = kit.server.addPage({ space: s, title: 'Old rule', parentId: top });
    kit.server.archive(archived);
    const doc = await readGuidelines(`confluence://page/${top}`, {
      client: cloud(),
      children: true,
    });
    expect(doc.html).toContain('<h2>Edge cases</h2>');
    expect(doc.html).toContain('<h3>Titles</h3>');
    expect(doc.html).toContain('Dr. is not a name');
    expect(doc.html).not.toContain('Old rule');
  });

  it('sends an attachment comment as UTF-8', async () => {
    const s = newSpace();
    const page = kit.server.addPage({ space: s, title: 'Comments' });
    await cloud().putAttachment(page, {
      name: 'review.jsonl',
      bytes: Buffer.from('{}\n'),
      contentType: 'application/x-ndjson',
      comment: 'Prüfung: 3 examples ✓',
    });
    expect(kit.server.attachments(page)[0]?.comment).toBe('Prüfung: 3 examples ✓');
  });
});
