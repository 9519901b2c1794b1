import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasStackTrace, jsonLines, TINY_PNG as PNG, runCli } from '@sluice/core/testing';
import { type ConfluenceServer, startConfluenceServer } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const source = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const sink = fileURLToPath(new URL('../../confluence-sink/dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(
  new URL('../../../examples/data/db-out/ner-news.jsonl', import.meta.url),
);

describe('confluence CLIs against the test kit server', () => {
  let server: ConfluenceServer;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  const token = 'ATATT3x-cli-test-token';
  const ids = {} as Record<'home' | 'guide' | 'taxonomy' | 'data' | 'reports', string>;
  /** A space the tests have not seen: nested pages, macros, a table, attachments, 40 tickets. */
  beforeAll(async () => {
    let url: string;
    ({ server, url } = await startConfluenceServer());
    server.addUser('annotator@example.com', token);
    env = {
      CONFLUENCE_URL: `${url}/wiki`,
      CONFLUENCE_EMAIL: 'annotator@example.com',
      CONFLUENCE_API_TOKEN: token,
      CONFLUENCE_DEPLOYMENT: 'cloud',
    };
    dir = await mkdtemp(join(tmpdir(), 'sluice-confluence-cli-'));
    server.addSpace('SUP', 'Support');
    ids.home = server.addPage({ space: 'SUP', title: 'Support home', body: '<p>Welcome.</p>' });
    ids.guide = server.addPage({
      space: 'SUP',
      title: 'Ticket guidelines',
      parentId: ids.home,
      labels: ['guidelines'],
      body: `<h1>Billing</h1><p>Refunds, invoices and charges.</p>
<ac:structured-macro ac:name="note"><ac:rich-text-body><p>Chargebacks go to finance.</p></ac:rich-text-body></ac:structured-macro>
<ac:image ac:alt="flow"><ri:attachment ri:filename="flow.png" /></ac:image>
<h1>Bugs</h1><h2>Crashes</h2><p>The app closes by itself.</p>
<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[Error: <null> & co]]></ac:plain-text-body></ac:structured-macro>`,
    });
    server.addAttachment(ids.guide, 'flow.png', PNG, 'image/png');
    server.addPage({
      space: 'SUP',
      title: 'Escalations',
      parentId: ids.guide,
      body: '<p>Escalate after <strong>two</strong> days.</p>',
    });
    ids.taxonomy = server.addPage({
      space: 'SUP',
      title: 'Ticket labels',
      parentId: ids.home,
      body: '<table><tbody><tr><th>Label</th><th>Description</th><th>Examples</th></tr><tr><td>BILLING</td><td>Money matters</td><td>Refund please; Double charge</td></tr><tr><td>BUG</td><td>Something broke</td><td>App crashes</td></tr></tbody></table>',
    });
    ids.data = server.addPage({ space: 'SUP', title: 'Tickets', parentId: ids.home });
    for (let i = 0; i < 40; i++) {
      server.addPage({
        space: 'SUP',
        title: `Ticket ${i}`,
        parentId: ids.data,
        body: `<p>Ticket ${i}: cannot log in</p>`,
      });
    }
    server.addAttachment(ids.data, 'backlog.csv', 'text,label\nRefund please,BILLING\n');
    ids.reports = server.addPage({ space: 'SUP', title: 'NER reports', parentId: ids.home });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams a space: nested pages over several result pages, sections, attachments', async () => {
    const run = await runCli(source, ['confluence://SUP', '--attachments', '--media', 'inline'], {
      env,
    });
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    const tasks = jsonLines(run.stdout);
    const tickets = tasks.filter((t) => /^Ticket \d+: cannot log in$/.test(t.text ?? ''));
    expect(tickets).toHaveLength(40);
    const guide = tasks.find((t) => t.meta?.title === 'Ticket guidelines');
    expect(guide.text).toBe(
      'Billing\n\nRefunds, invoices and charges.\n\nChargebacks go to finance.\n\nBugs\n\nCrashes\n\nThe app closes by itself.\n\nError: <null> & co',
    );
    expect(guide.meta).toMatchObject({
      source: `${env.CONFLUENCE_URL}/pages/viewpage.action?pageId=${ids.guide}`,
      path: 'SUP/Support home/Ticket guidelines',
    });
    expect(guide.sluice.source.version).toBe('1');
    expect(tasks.find((t) => t.text === 'Refund please')?.label).toBe('BILLING');
    expect(tasks.find((t) => t.image)?.image).toBe(
      `data:image/png;base64,${PNG.toString('base64')}`,
    );
    // Search results came in more than one page.
    const searches = server.requests.filter((r) => r.path.includes('/content/search'));
    expect(searches.length).toBeGreaterThan(1);
  });

  it('selects with --cql and splits by section with the heading path', async () => {
    const run = await runCli(
      source,
      ['confluence://SUP', '--cql', 'label = "guidelines"', '--split', 'section'],
      { env },
    );
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).map((t) => [t.meta.headings, t.text])).toEqual([
      ['Billing', 'Refunds, invoices and charges.\n\nChargebacks go to finance.'],
      ['Bugs > Crashes', 'The app closes by itself.\n\nError: <null> & co'],
    ]);
  });

  it('emits only new or changed pages on a rerun with --state', async () => {
    const state = join(dir, 'state.json');
    const out = join(dir, 'tasks.jsonl');
    const command = `node '${source}' 'confluence://page/${ids.data}' --recursive --state '${state}' --quiet > '${out}'`;
    const run = async () => {
      const child = spawn('bash', ['-c', command], {
        env: { ...process.env, ...env },
        stdio: 'inherit',
      });
      expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
      return jsonLines(await readFile(out, 'utf8'));
    };
    expect(await run()).toHaveLength(40);
    expect(await run()).toEqual([]);
    const edited = server.pages('SUP').find((p) => p.title === 'Ticket 7');
    server.updatePage(edited?.id as string, { body: '<p>Ticket 7: fixed</p>' });
    server.addPage({
      space: 'SUP',
      title: 'Ticket 40',
      parentId: ids.data,
      body: '<p>New one</p>',
    });
    expect((await run()).map((t) => [t.text, t.sluice.source.version])).toEqual([
      ['Ticket 7: fixed', '2'],
      ['New one', '1'],
    ]);
  });

  it('writes guidelines with the images inlined, and labels with descriptions', async () => {
    const html = join(dir, 'instructions.html');
    const guidelines = await runCli(
      source,
      ['guidelines', `confluence://page/${ids.guide}`, '--children', '--out', html],
      { env },
    );
    expect(guidelines.stderr).toContain(`wrote ${html}`);
    expect(guidelines.code).toBe(0);
    const written = await readFile(html, 'utf8');
    expect(written).toContain('<h1>Ticket guidelines</h1>');
    expect(written).toContain('<h2>Escalations</h2>');
    expect(written).toContain(`src="data:image/png;base64,${PNG.toString('base64')}"`);
    expect(written).not.toContain('ac:');

    const labels = join(dir, 'labels.txt');
    const run = await runCli(
      source,
      ['labels', `confluence://page/${ids.taxonomy}`, '--out', labels],
      {
        env,
      },
    );
    expect(run.code).toBe(0);
    expect(await readFile(labels, 'utf8')).toBe('BILLING\nBUG\n');
    expect(JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8'))).toEqual([
      {
        label: 'BILLING',
        description: 'Money matters',
        examples: 'Refund please; Double charge',
      },
      { label: 'BUG', description: 'Something broke', examples: 'App crashes' },
    ]);
  });

  it('fails in one line with a hint: bad URL, unknown space, refused token, no site', async () => {
    const bad = await runCli(source, ['confluence:/SUP'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /error: not a Confluence URL: confluence:\/SUP\n.*hint: use confluence:\/\/SPACEKEY/,
    );
    const missing = await runCli(source, ['confluence://NOPE'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/confluence:\/\/NOPE: not found/);
    const refused = await runCli(source, ['confluence://SUP'], {
      env: { ...env, CONFLUENCE_API_TOKEN: 'revoked-secret-token' },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/credentials refused \(401\)/);
    expect(refused.stderr).not.toContain('revoked-secret-token');
    const nosite = await runCli(source, ['confluence://SUP'], {
      env: { ...env, CONFLUENCE_URL: '' },
    });
    expect(nosite.code).toBe(2);
    expect(nosite.stderr).toMatch(/hint: set CONFLUENCE_URL/);
    for (const run of [bad, missing, refused, nosite])
      expect(hasStackTrace(run.stderr)).toBe(false);
  });

  it('publishes a report page, and a rerun adds a version to the same page', async () => {
    const input = await readFile(dbOut);
    const args = [
      'report',
      `confluence://page/${ids.reports}`,
      '--dataset',
      'news',
      '--title',
      'NER run {dataset}',
    ];
    const first = await runCli(sink, args, { env, input });
    expect(first.stderr).toMatch(
      /published report "NER run news" \(\d+ examples\): .*\(new page\)/,
    );
    expect(first.code).toBe(0);
    const second = await runCli(sink, args, { env, input });
    expect(second.stderr).toMatch(/\(version 2\)/);
    const pages = server.pages('SUP').filter((p) => p.title === 'NER run news');
    expect(pages).toHaveLength(1);
    expect(pages[0]?.parentId).toBe(ids.reports);
    expect(pages[0]?.versions.map((v) => v.number)).toEqual([1, 2]);
    expect(pages[0]?.body).toContain('<h2>Agreement</h2>');

    const dry = await runCli(sink, [...args, '--dry-run'], { env: { CONFLUENCE_URL: '' }, input });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('<h2>Answers</h2>');
    expect(server.pages('SUP').find((p) => p.title === 'NER run news')?.version).toBe(2);
  });

  it('reads through the API gateway with an OAuth token, attachments over several pages', async () => {
    server.addOAuthClient('cli-app', 'cli-secret');
    const { accessToken } = server.grantOAuth('cli-app');
    const intake = server.addPage({ space: 'SUP', title: 'Intake', parentId: ids.home });
    for (let i = 0; i < 60; i++) {
      server.addAttachment(intake, `mail-${String(i).padStart(2, '0')}.txt`, `mail ${i}\n`);
    }
    const gateway = {
      CONFLUENCE_URL: server.gatewayBase,
      CONFLUENCE_TOKEN: accessToken,
      CONFLUENCE_EMAIL: '',
      CONFLUENCE_API_TOKEN: '',
      CONFLUENCE_DEPLOYMENT: '',
    };
    const run = await runCli(
      source,
      [`confluence://page/${intake}`, '--attachments', '--no-pages', '--order', 'listing'],
      { env: { ...env, ...gateway } },
    );
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    const tasks = jsonLines(run.stdout);
    expect(tasks.map((t) => t.text)).toEqual(Array.from({ length: 60 }, (_, i) => `mail ${i}`));
    // The URIs are the site's, which browsers open, not the gateway's.
    expect(tasks[0].meta.source).toBe(
      `${env.CONFLUENCE_URL}/download/attachments/${intake}/mail-00.txt`,
    );
    expect(server.mediaAuthorizations).toEqual([]);
  });

  it('publishes a report through 429 answers', async () => {
    const input = await readFile(dbOut);
    server.throttle(1, { method: 'POST', retryAfter: 1 });
    server.throttle(1, { method: 'POST' });
    server.throttle(1, { method: 'GET' });
    const run = await runCli(
      sink,
      [
        'report',
        `confluence://page/${ids.reports}`,
        '--dataset',
        'news',
        '--title',
        'Throttled run',
      ],
      { env, input },
    );
    expect(run.stderr).toMatch(/published report "Throttled run" \(\d+ examples\): .*\(new page\)/);
    expect(run.code).toBe(0);
    expect(server.pages('SUP').filter((p) => p.title === 'Throttled run')).toHaveLength(1);
  });

  it('loses nothing with --since in an account west of UTC', async () => {
    const hour = 3600_000;
    const folder = server.addPage({ space: 'SUP', title: 'Recent changes', parentId: ids.home });
    for (const [title, ago] of [
      ['Edited an hour ago', 1],
      ['Edited yesterday', 26],
    ] as const) {
      server.addPage({
        space: 'SUP',
        title,
        body: `<p>${title}</p>`,
        parentId: folder,
        modified: new Date(Date.now() - ago * hour),
      });
    }
    const since = new Date(Date.now() - 2 * hour).toISOString();
    const run = await runCli(
      source,
      [`confluence://page/${folder}`, '--recursive', '--since', since],
      {
        env,
      },
    );
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).map((t) => t.text)).toEqual(['Edited an hour ago']);
  });

  it('publishes review pages with the examples attached; a rerun keeps one set of pages', async () => {
    const input = await readFile(dbOut);
    const args = [
      'review',
      `confluence://page/${ids.reports}`,
      '--dataset',
      'news',
      '--answer',
      'reject,ignore',
      '--batch',
      '2',
    ];
    const first = await runCli(sink, args, { env, input });
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/published \d+ of \d+ examples for review in "Review: news"/);
    const second = await runCli(sink, args, { env, input });
    expect(second.code).toBe(0);
    const review = server.pages('SUP').filter((p) => p.title === 'Review: news');
    expect(review).toHaveLength(1);
    expect(review[0]?.version).toBeGreaterThan(1);
    const [attachment] = server.attachments(review[0]?.id as string);
    const selected = input
      .toString()
      .split('\n')
      .filter((line) => /"answer":"(reject|ignore)"/.test(line));
    expect(attachment?.bytes.toString()).toBe(`${selected.join('\n')}\n`);
    const batches = server.pages('SUP').filter((p) => p.title.startsWith('Review: news ('));
    expect(batches).toHaveLength(Math.ceil(selected.length / 2));
    expect(batches.every((p) => p.parentId === review[0]?.id)).toBe(true);

    const unknown = await runCli(sink, ['publish', 'confluence://page/1'], { env, input: '' });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "publish"; expected report or review/);
  });
});
