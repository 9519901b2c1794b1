import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type FaultRule,
  hasStackTrace,
  jsonLines,
  runCli,
  startCli,
  startFaultProxy,
} from '@sluice/core/testing';
import { type DriveServer, driveThrottle, startDriveServer } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const source = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const sink = fileURLToPath(new URL('../../gdrive-sink/dist/cli.js', import.meta.url));
const dbOut = fileURLToPath(
  new URL('../../../examples/data/db-out/ner-news.jsonl', import.meta.url),
);
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==',
  'base64',
);

/** A sink's file name without the run tag it is stored under (`part-00000.k3v9x2qa.jsonl`). */
const untagged = (path: string) => path.replace(/\.[0-9a-z]{8}(?=\.[^./]+$)/, '');

describe('gdrive CLIs against the test kit Drive server', () => {
  let server: DriveServer;
  let env: NodeJS.ProcessEnv;
  let dir: string;
  /** The tree the source reads: nested folders, Google files, images, a shortcut cycle, 130 files. */
  const ids = {} as Record<'root' | 'doc' | 'sheet' | 'slides' | 'photo', string>;
  beforeAll(async () => {
    let url: string;
    ({ server, url } = await startDriveServer());
    const token = 'ya29.cli-test-token';
    server.addToken(token);
    env = { GOOGLE_OAUTH_ACCESS_TOKEN: token, SLUICE_GDRIVE_ENDPOINT: url };
    dir = await mkdtemp(join(tmpdir(), 'sluice-gdrive-cli-'));
    const root = server.createFolder('Support inbox');
    ids.root = root;
    const tickets = server.createFolder('tickets', root);
    const archive = server.createFolder('2025', tickets);
    for (let i = 0; i < 130; i++) {
      server.createFile({
        name: `ticket-${String(i).padStart(3, '0')}.txt`,
        parentId: i % 2 ? archive : tickets,
        content: `Ticket ${i}: cannot log in\n`,
      });
    }
    ids.doc = server.createDoc('Escalation policy', root, { text: 'Escalate after 2 days.' });
    ids.sheet = server.createSheet(
      'Backlog',
      root,
      'text,label\nRefund please,BILLING\nApp crashes,BUG\n',
    );
    ids.slides = server.createSlides('Kickoff', root, 'Welcome to labelling');
    const photos = server.createFolder('photos', root);
    ids.photo = server.createFile({
      name: 'dent.png',
      parentId: photos,
      content: PNG,
      mimeType: 'image/png',
    });
    server.createShortcut('back to inbox', archive, root);
    server.createShortcut('photos again', tickets, photos);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams the whole tree once (pages, nested folders, Google files, a shortcut cycle)', async () => {
    const run = await runCli(
      source,
      [`gdrive://folder/${ids.root}`, '--recursive', '--media', 'inline'],
      { env },
    );
    expect(run.stderr).not.toMatch(/error/);
    expect(run.code).toBe(0);
    const tasks = jsonLines(run.stdout);
    const texts = tasks.map((t) => t.text).filter(Boolean);
    expect(texts.filter((t: string) => t.startsWith('Ticket '))).toHaveLength(130);
    expect(new Set(texts).size).toBe(texts.length);
    expect(texts).toEqual(
      expect.arrayContaining([
        'Escalate after 2 days.',
        'Refund please',
        'App crashes',
        'Welcome to labelling',
      ]),
    );
    const images = tasks.filter((t) => t.image);
    expect(images).toHaveLength(1);
    expect(images[0].image).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(images[0].meta).toMatchObject({
      source: `gdrive://file/${ids.photo}`,
      path: 'photos/dent.png',
    });
    const row = tasks.find((t) => t.text === 'App crashes');
    expect(row).toMatchObject({
      label: 'BUG',
      meta: { source: `gdrive://file/${ids.sheet}` },
      sluice: { source: { row: 2 } },
    });
    const ticket = tasks.find((t) => t.text === 'Ticket 1: cannot log in');
    expect(ticket.meta.path).toBe('tickets/2025/ticket-001.txt');
  });

  it('emits only new or changed files on a rerun with --state', async () => {
    const state = join(dir, 'state.json');
    const out = join(dir, 'tasks.jsonl');
    // Into a file, as `> tasks.jsonl`: on a pipe the last MiB counts as delivered only once
    // more output follows, so the checkpoint would (rightly) hold back.
    const command = `node '${source}' 'gdrive://folder/${ids.root}' --recursive --state '${state}' --include '*.txt' --quiet > '${out}'`;
    const run = async () => {
      const child = spawn('bash', ['-c', command], {
        env: { ...process.env, ...env },
        stdio: 'inherit',
      });
      expect(await new Promise((resolve) => child.on('close', resolve))).toBe(0);
      return jsonLines(await readFile(out, 'utf8'));
    };
    expect(await run()).toHaveLength(130);
    expect(await run()).toEqual([]);
    server.createFile({ name: 'ticket-new.txt', parentId: ids.root, content: 'A new ticket\n' });
    const tickets = server.children(ids.root as string).find((f) => f.name === 'tickets');
    const edited = server.children(tickets?.id as string).find((f) => f.name === 'ticket-000.txt');
    server.updateContent(edited?.id as string, 'Ticket 0: fixed\n');
    expect((await run()).map((t) => t.text).sort()).toEqual(['A new ticket', 'Ticket 0: fixed']);
    const saved = JSON.parse(await readFile(state, 'utf8'));
    expect(Object.keys(saved.items)).toHaveLength(131);
  });

  it('--watch picks up a file added after it started, once', async () => {
    const watched = server.createFolder('watched');
    server.createFile({ name: 'a.txt', parentId: watched, content: 'before start\n' });
    const running = startCli(source, [`gdrive://folder/${watched}`, '--watch', '0.3'], { env });
    try {
      await running.waitFor(({ stdout }) => stdout.includes('before start'));
      server.createFile({ name: 'b.txt', parentId: watched, content: 'after start\n' });
      await running.waitFor(({ stdout }) => stdout.includes('after start'));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(jsonLines(running.stdout()).map((t) => t.text)).toEqual([
        'before start',
        'after start',
      ]);
    } finally {
      running.child.kill('SIGINT');
      await running.closed;
    }
  });

  it('writes guidelines with images inlined, and labels with descriptions', async () => {
    const image = server.addImage('logo.png', PNG, 'image/png');
    const doc = server.createDoc('Guidelines', ids.root, {
      text: 'Mark every product.',
      html: `<html><head><style>.c0{font-weight:700}</style></head><body class="doc-content"><p class="c0">Mark every product.</p><img src="${image}"></body></html>`,
    });
    const out = join(dir, 'instructions.html');
    const guidelines = await runCli(source, ['guidelines', `gdrive://file/${doc}`, '--out', out], {
      env,
    });
    expect(guidelines.stderr).toMatch(/wrote .*instructions\.html/);
    expect(guidelines.code).toBe(0);
    const html = await readFile(out, 'utf8');
    expect(html).toContain('.c0{font-weight:700}');
    expect(html).toContain('<p class="c0">Mark every product.</p>');
    expect(html).toContain(`src="data:image/png;base64,${PNG.toString('base64')}"`);
    expect(html).not.toContain('http://');

    const sheet = server.createSheet(
      'Labels',
      ids.root,
      'label,description\nBUG,Something broke\nBILLING,Money\n',
    );
    const labels = join(dir, 'labels.txt');
    const run = await runCli(source, ['labels', `gdrive://file/${sheet}`, '--out', labels], {
      env,
    });
    expect(run.code).toBe(0);
    expect(await readFile(labels, 'utf8')).toBe('BUG\nBILLING\n');
    expect(JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8'))).toEqual([
      { label: 'BUG', description: 'Something broke' },
      { label: 'BILLING', description: 'Money' },
    ]);
  });

  it('fails with one clear line and a hint: bad URL, missing folder, no credentials', async () => {
    const bad = await runCli(source, ['gdrive://folders/x'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/gdrive-source: error: not a Drive URL/);
    const missing = await runCli(source, ['gdrive://folder/nope123'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/gdrive:\/\/folder\/nope123: not found/);
    expect(missing.stderr).toMatch(/hint: /);
    const refused = await runCli(source, [`gdrive://folder/${ids.root}`], {
      env: { ...env, GOOGLE_OAUTH_ACCESS_TOKEN: 'ya29.revoked-token' },
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/access refused \(401/);
    expect(refused.stderr).not.toContain('revoked-token');
    for (const run of [bad, missing, refused]) expect(hasStackTrace(run.stderr)).toBe(false);
  });

  it('exports db-out into a folder path it creates, and reruns without duplicating anything', async () => {
    const exports = server.createFolder('Exports');
    const input = await readFile(dbOut);
    const args = [`gdrive://folder/${exports}/{dataset}/final`, '--dataset', 'news', '--review'];
    const run = await runCli(sink, args, { env, input });
    expect(run.stderr).toMatch(/gdrive-sink: wrote 1 part/);
    expect(run.code).toBe(0);
    const [news] = server.children(exports);
    const [final] = server.children(news?.id as string);
    const names = server
      .children(final?.id as string)
      .map((f) => f.name)
      .sort();
    // Each file carries the run's tag before its extension (the manifest lists the keys).
    expect(names.map(untagged)).toEqual(['manifest.json', 'part-00000.jsonl', 'review.csv']);
    const again = await runCli(sink, args, { env, input });
    expect(again.stderr).toMatch(/unchanged/);
    expect(server.children(exports)).toHaveLength(1);
    expect(server.children(final?.id as string)).toHaveLength(3);
    // The review folder read back by the source: the JSONL keeps its hashes.
    const back = await runCli(source, [`gdrive://folder/${final?.id}`, '--include', '*.jsonl'], {
      env,
    });
    const manifest = JSON.parse(
      server
        .children(final?.id as string)
        .find((f) => f.name === 'manifest.json')
        ?.content?.toString() ?? '{}',
    );
    expect(jsonLines(back.stdout)).toHaveLength(manifest.counts.records);
  });

  /** Every file under a folder, by path, as a person browsing Drive sees them. */
  const browse = (folderId: string, prefix = ''): Array<[string, string]> =>
    server.children(folderId).flatMap((child): Array<[string, string]> => {
      const path = `${prefix}${child.name}`;
      return child.mimeType === 'application/vnd.google-apps.folder'
        ? [[`${path}/`, ''], ...browse(child.id, `${path}/`)]
        : [[path, child.content?.toString() ?? '']];
    });

  it("streams the same tasks through Drive's throttling answers on listing and download", async () => {
    const args = [`gdrive://folder/${ids.root}`, '--recursive', '--media', 'inline', '--quiet'];
    // Not the Sheet an earlier case added, which has no text column.
    args.push('--exclude', 'Labels');
    const clean = await runCli(source, args, { env });
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    const list = ({ method, url }: { method: string; url: string }) =>
      method === 'GET' && url.startsWith('/drive/v3/files?');
    const download = ({ url }: { url: string }) => url.includes('alt=media');
    const exported = ({ url }: { url: string }) => url.includes('/export?');
    const proxy = await startFaultProxy(env.SLUICE_GDRIVE_ENDPOINT as string, [
      { ...driveThrottle('userRateLimitExceeded'), every: 2, times: 3, match: list },
      { ...driveThrottle('rateLimitExceeded'), every: 3, times: 6, match: download },
      { ...driveThrottle('429'), times: 2, match: exported },
    ]);
    try {
      const faulty = await runCli(source, args, {
        env: { ...env, SLUICE_GDRIVE_ENDPOINT: proxy.url },
        timeout: 50_000,
      });
      expect(faulty.stderr).toBe('');
      expect(faulty.code).toBe(0);
      expect(proxy.injected).toBe(11);
      expect(faulty.stdout.split('\n').sort()).toEqual(clean.stdout.split('\n').sort());
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it("writes a byte-identical export through Drive's throttling answers on every kind of write", async () => {
    const input = await readFile(dbOut);
    const exports = server.createFolder('Throttled exports');
    const clean = server.createFolder('clean', exports);
    const faulty = server.createFolder('faulty', exports);
    const run = (folder: string, extra: string[], runEnv = env) =>
      runCli(sink, [`gdrive://folder/${folder}/out/{answer}`, '--dataset', 'news', ...extra], {
        env: runEnv,
        input,
        // Each retry waits a second or so, as Drive asks: more than runCli's default in all.
        timeout: 100_000,
      });
    expect((await run(clean, ['--max-part-records', '5'])).code).toBe(0);
    // An earlier export at the faulty root: its files are updated, a stale part and its
    // manifest go to the bin, and the reject and ignore folders are new.
    const earlier = await run(faulty, ['--max-part-records', '4', '--answer', 'accept']);
    expect(earlier.code).toBe(0);
    const at = (method: string, path: RegExp) => (r: { method: string; url: string }) =>
      r.method === method && path.test(r.url);
    const backendError = JSON.stringify({
      error: {
        code: 503,
        message: 'Backend Error',
        errors: [{ message: 'Backend Error', domain: 'global', reason: 'backendError' }],
      },
    });
    const rules: FaultRule[] = [
      // Folder lookups and file lookups
      {
        ...driveThrottle('userRateLimitExceeded'),
        every: 3,
        times: 3,
        match: at('GET', /^\/drive\/v3\/files\?/),
      },
      // Folder creation
      {
        ...driveThrottle('rateLimitExceeded'),
        times: 1,
        match: at('POST', /^\/drive\/v3\/files\?/),
      },
      { status: 503, body: backendError, times: 1, match: at('POST', /^\/drive\/v3\/files\?/) },
      // Upload sessions, for new files (POST) and new content of earlier ones (PATCH)
      { ...driveThrottle('429'), times: 1, match: at('POST', /^\/upload\/drive\/v3\/files\?/) },
      {
        status: 500,
        body: backendError,
        every: 2,
        times: 1,
        match: at('POST', /^\/upload\/drive\/v3\/files\?/),
      },
      {
        ...driveThrottle('userRateLimitExceeded'),
        times: 1,
        match: at('PATCH', /^\/upload\/drive\/v3\/files\//),
      },
      // Chunks
      { ...driveThrottle('rateLimitExceeded'), every: 2, times: 2, match: at('PUT', /upload_id=/) },
      { ...driveThrottle('429'), times: 1, match: at('PUT', /upload_id=/) },
      // Trashing the old manifest and the stale part
      { status: 503, body: backendError, times: 2, match: at('PATCH', /^\/drive\/v3\/files\//) },
    ];
    const proxy = await startFaultProxy(env.SLUICE_GDRIVE_ENDPOINT as string, rules);
    try {
      const rerun = await run(faulty, ['--max-part-records', '5'], {
        ...env,
        SLUICE_GDRIVE_ENDPOINT: proxy.url,
      });
      expect(rerun.stderr).toMatch(/gdrive-sink: wrote/);
      expect(rerun.code).toBe(0);
      expect(proxy.injected).toBe(13);
    } finally {
      await proxy.close();
    }
    // The same files, by name (each run stores them under its own tag), with the same bytes.
    const files = (folder: string) =>
      new Map(browse(folder).map(([path, content]) => [untagged(path), content]));
    const wanted = files(clean);
    const got = files(faulty);
    expect([...got.keys()].sort()).toEqual([...wanted.keys()].sort());
    for (const [path, content] of wanted) {
      if (!path.endsWith('manifest.json')) expect(got.get(path)).toBe(content);
    }
    const manifest = (map: Map<string, string>) =>
      JSON.parse(map.get('out/manifest.json') ?? '{}').parts.map(
        ({ key: _, ...part }: { key: string }) => part,
      );
    expect(manifest(got)).toEqual(manifest(wanted));
  }, 120_000);

  it('tells a service account writing into My Drive to use a shared drive', async () => {
    server.addToken('ya29.robot', undefined, { serviceAccount: true });
    const mine = server.createFolder('Robot exports');
    const run = await runCli(sink, [`gdrive://folder/${mine}/news`], {
      env: { ...env, GOOGLE_OAUTH_ACCESS_TOKEN: 'ya29.robot' },
      input: await readFile(dbOut),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/service accounts have no Drive storage of their own/);
    expect(run.stderr).toMatch(/hint: export into a folder in a shared drive/);
    expect(run.stderr).not.toMatch(/share the folder/);
    expect(hasStackTrace(run.stderr)).toBe(false);
    expect(browse(mine).filter(([path]) => !path.endsWith('/'))).toEqual([]);
  });

  it('tells credentials without the Drive scope how to get it', async () => {
    server.addToken('ya29.cloud-only', undefined, {
      scopes: ['https://www.googleapis.com/auth/cloud-platform'],
    });
    const run = await runCli(source, [`gdrive://folder/${ids.root}`], {
      env: { ...env, GOOGLE_OAUTH_ACCESS_TOKEN: 'ya29.cloud-only' },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/the credentials lack the Drive scope/);
    expect(run.stderr).toMatch(/gcloud auth login --enable-gdrive-access/);
    expect(run.stderr).not.toMatch(/share the folder/);
    expect(hasStackTrace(run.stderr)).toBe(false);
  });

  it("finds an earlier export written with another OAuth client's credentials", async () => {
    server.addToken('ya29.laptop', undefined, { clientId: 'laptop.apps.googleusercontent.com' });
    server.addToken('ya29.ci', undefined, { clientId: 'ci.apps.googleusercontent.com' });
    const root = server.createFolder('Shared exports');
    const input = await readFile(dbOut);
    const as = (token: string, extra: string[] = [], data = input) =>
      runCli(sink, [`gdrive://folder/${root}/news`, ...extra], {
        env: { ...env, GOOGLE_OAUTH_ACCESS_TOKEN: token },
        input: data,
      });
    expect((await as('ya29.laptop')).code).toBe(0);
    const again = await as('ya29.ci');
    expect(again.stderr).toMatch(/unchanged/);
    expect(
      browse(root)
        .map(([path]) => untagged(path))
        .sort(),
    ).toEqual(['news/', 'news/manifest.json', 'news/part-00000.jsonl']);
    const first = input.toString().split('\n').slice(0, 5).join('\n');
    const refused = await as('ya29.ci', ['--if-exists', 'fail'], Buffer.from(first));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds a different export/);
  });

  it('finds its files in a shared drive where a search of all drives is incomplete', async () => {
    const wide = await startDriveServer({ searchableSharedDrives: 0 });
    try {
      wide.server.addToken('ya29.t');
      const team = wide.server.createSharedDrive('Team');
      const wideEnv = { GOOGLE_OAUTH_ACCESS_TOKEN: 'ya29.t', SLUICE_GDRIVE_ENDPOINT: wide.url };
      const args = [`gdrive://folder/${team}/news`];
      const input = await readFile(dbOut);
      expect((await runCli(sink, args, { env: wideEnv, input })).code).toBe(0);
      const again = await runCli(sink, args, { env: wideEnv, input });
      expect(again.stderr).toMatch(/unchanged/);
      const [news] = wide.server.children(team);
      expect(
        wide.server
          .children(news?.id as string)
          .map((f) => untagged(f.name))
          .sort(),
      ).toEqual(['manifest.json', 'part-00000.jsonl']);
    } finally {
      await wide.stop();
    }
  });
});
