import { fileURLToPath } from 'node:url';
import { startCli } from '@sluice/core/testing';
import { describe, expect, it } from 'vitest';
import { parseCql, parseFormData } from '../src/confluence-server.js';
import { useConfluence } from '../src/fixtures.js';

const serve = fileURLToPath(new URL('../dist/serve.js', import.meta.url));
const repo = (path: string) => fileURLToPath(new URL(`../../../${path}`, import.meta.url));

describe('the Confluence test server', () => {
  const kit = useConfluence();
  const basic = () => `Basic ${Buffer.from(`${kit.email}:${kit.apiToken}`).toString('base64')}`;
  /** A JSON call; `path` is relative to the server's origin. */
  const call = async (
    path: string,
    init: RequestInit & { json?: unknown; auth?: string | null } = {},
  ) => {
    const headers = new Headers(init.headers);
    if (init.auth !== null) headers.set('Authorization', init.auth ?? basic());
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(init.json);
    }
    const response = await fetch(`${kit.url}${path}`, { ...init, headers, body });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked by value below
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, body: json };
  };
  let spaceCounter = 0;
  /** A fresh space for one test, so tests stay independent. */
  const space = (name?: string) => {
    const key = `T${++spaceCounter}`;
    return { ...kit.server.addSpace(key, name ?? key), key };
  };

  it('accepts Basic and Bearer credentials where each works, and refuses others without echoing them', async () => {
    space();
    expect((await call('/wiki/api/v2/spaces')).status).toBe(200);
    // A personal access token is a Data Center credential; Cloud has none.
    expect((await call('/wiki/api/v2/spaces', { auth: `Bearer ${kit.bearer}` })).status).toBe(401);
    expect(
      (await call('/confluence/rest/api/space', { auth: `Bearer ${kit.bearer}` })).status,
    ).toBe(200);
    const wrong = `Basic ${Buffer.from(`${kit.email}:not-the-token`).toString('base64')}`;
    const v2 = await call('/wiki/api/v2/spaces', { auth: wrong });
    expect(v2.status).toBe(401);
    expect(v2.headers.get('www-authenticate')).toBeTruthy();
    expect(v2.body).toEqual({
      errors: [{ status: 401, code: 'UNAUTHORIZED', title: 'Unauthorized', detail: null }],
    });
    expect(v2.text).not.toContain('not-the-token');
    const v1 = await call('/wiki/rest/api/content?limit=1', { auth: 'Bearer secret-guess' });
    expect(v1.status).toBe(401);
    expect(v1.body).toEqual({
      statusCode: 401,
      data: { authorized: false, valid: true, errors: [], successful: false },
      message: 'This request requires authentication',
      reason: 'Unauthorized',
    });
    expect(v1.text).not.toContain('secret-guess');
    expect((await call('/confluence/rest/api/content', { auth: null })).status).toBe(401);
    const download = await call('/wiki/download/attachments/1/x.txt', { auth: null });
    expect(download.status).toBe(401);
  });

  it('pages v2 lists with cursors in _links.next and the Link header, keeping parameters', async () => {
    const { id: spaceId, key } = space();
    const ids = Array.from({ length: 5 }, (_, i) =>
      kit.server.addPage({ space: key, title: `Page ${i}`, body: `<p>body ${i}</p>` }),
    );
    const seen: string[] = [];
    let next: string | undefined =
      `/wiki/api/v2/spaces/${spaceId}/pages?limit=2&body-format=storage`;
    let calls = 0;
    while (next) {
      const page = await call(next);
      calls++;
      expect(page.status).toBe(200);
      expect(page.body._links.base).toBe(`${kit.url}/wiki`);
      for (const p of page.body.results) {
        seen.push(p.id);
        expect(p.body.storage).toEqual({ representation: 'storage', value: expect.any(String) });
      }
      next = page.body._links.next;
      if (next) {
        expect(next).toMatch(
          /^\/wiki\/api\/v2\/spaces\/\d+\/pages\?limit=2&body-format=storage&cursor=/,
        );
        expect(page.headers.get('link')).toContain(`<${next}>; rel="next"`);
      } else expect(page.headers.get('link')).toBeNull();
    }
    expect(calls).toBe(3);
    expect(seen).toEqual(ids);

    const first = await call(`/wiki/api/v2/pages?id=${ids.join(',')}&limit=25`);
    expect(first.body.results.map((p: { id: string }) => p.id)).toEqual(ids);
    const page = first.body.results[0];
    expect(page).toMatchObject({
      id: ids[0],
      status: 'current',
      title: 'Page 0',
      spaceId,
      parentId: null,
      version: { number: 1, minorEdit: false },
      body: {},
      _links: { webui: `/spaces/${key}/pages/${ids[0]}/Page+0` },
    });
    expect(page.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect((await call(`/wiki/api/v2/pages?id=${ids[1]},999999999`)).body.results).toHaveLength(1);
    expect(
      (await call(`/wiki/api/v2/pages?space-id=${spaceId}&title=Page%203`)).body.results[0].id,
    ).toBe(ids[3]);

    const bad = await call(`/wiki/api/v2/spaces/${spaceId}/pages?limit=251`);
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]).toMatchObject({ status: 400, code: 'INVALID_REQUEST_PARAMETER' });
    expect((await call(`/wiki/api/v2/spaces/${spaceId}/pages?limit=0`)).status).toBe(400);
    expect((await call(`/wiki/api/v2/spaces/${spaceId}/pages?cursor=%%%`)).status).toBe(400);
    const missing = await call('/wiki/api/v2/spaces/424242/pages');
    expect(missing.status).toBe(404);
    expect(missing.body.errors[0]).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const spaces = await call(`/wiki/api/v2/spaces?keys=${key}`);
    expect(spaces.body.results).toEqual([
      expect.objectContaining({
        id: spaceId,
        key,
        type: 'global',
        status: 'current',
        homepageId: ids[0],
        _links: { webui: `/spaces/${key}` },
      }),
    ]);
  });

  it('creates and updates pages on v2, refusing stale versions and duplicate titles, keeping history', async () => {
    const { id: spaceId, key } = space();
    const home = kit.server.addPage({ space: key, title: 'Home' });
    const created = await call('/wiki/api/v2/pages', {
      method: 'POST',
      json: {
        spaceId,
        status: 'current',
        title: 'Report',
        body: { representation: 'storage', value: '<p>one</p>' },
      },
    });
    expect(created.status).toBe(200);
    // Without parentId a page goes below the space homepage, as on Cloud.
    expect(created.body).toMatchObject({
      title: 'Report',
      parentId: home,
      parentType: 'page',
      version: { number: 1 },
      body: { storage: { value: '<p>one</p>' } },
    });
    const id = created.body.id as string;
    const dup = await call('/wiki/api/v2/pages', {
      method: 'POST',
      json: { spaceId, title: 'Report', body: { representation: 'storage', value: '' } },
    });
    expect(dup.status).toBe(400);
    expect(dup.body.errors[0]).toEqual({
      status: 400,
      code: 'INVALID_REQUEST_PARAMETER',
      title:
        'A page with this title already exists: A page already exists with the same TITLE in this space',
      detail: null,
    });
    expect((await call('/wiki/api/v2/pages', { method: 'POST', json: { spaceId } })).status).toBe(
      400,
    );
    const text = await call('/wiki/api/v2/pages', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: '{}',
    });
    expect(text.status).toBe(415);

    const update = (number: number, value: string) =>
      call(`/wiki/api/v2/pages/${id}`, {
        method: 'PUT',
        json: {
          id,
          status: 'current',
          title: 'Report',
          body: { representation: 'storage', value },
          version: { number, message: `v${number}` },
        },
      });
    expect((await update(2, '<p>two</p>')).body.version).toMatchObject({
      number: 2,
      message: 'v2',
    });
    const stale = await update(2, '<p>stale</p>');
    expect(stale.status).toBe(409);
    expect(stale.body.errors[0]).toMatchObject({
      status: 409,
      code: 'CONFLICT',
      title: 'Version must be incremented on update. Current version is: 2',
    });
    expect((await update(3, '<p>three</p>')).status).toBe(200);
    const old = await call(`/wiki/api/v2/pages/${id}?body-format=storage&version=1`);
    expect(old.body).toMatchObject({
      version: { number: 1 },
      body: { storage: { value: '<p>one</p>' } },
    });
    const versions = await call(`/wiki/api/v2/pages/${id}/versions?limit=2`);
    expect(versions.body.results.map((v: { number: number }) => v.number)).toEqual([3, 2]);
    const more = await call(versions.body._links.next);
    expect(more.body.results.map((v: { number: number }) => v.number)).toEqual([1]);
    expect(kit.server.page(id)?.versions.map((v) => v.body)).toEqual([
      '<p>one</p>',
      '<p>two</p>',
      '<p>three</p>',
    ]);
    kit.server.addPage({ space: key, title: 'Other' });
    const clash = await call(`/wiki/api/v2/pages/${id}`, {
      method: 'PUT',
      json: {
        id,
        status: 'current',
        title: 'Other',
        body: { representation: 'storage', value: '' },
        version: { number: 4 },
      },
    });
    expect(clash.status).toBe(400);
    expect((await call('/wiki/api/v2/pages/123456789')).status).toBe(404);
  });

  it('lists children by position, labels and attachments, and serves attachment bytes', async () => {
    const { key } = space();
    const root = kit.server.addPage({ space: key, title: 'Root', labels: ['news', 'q1'] });
    const b = kit.server.addPage({ space: key, title: 'B child', parentId: root });
    const a = kit.server.addPage({ space: key, title: 'A child', parentId: root });
    const children = await call(`/wiki/api/v2/pages/${root}/children`);
    expect(children.body.results.map((c: { id: string }) => c.id)).toEqual([b, a]);
    expect(children.body.results[0]).toMatchObject({ status: 'current', title: 'B child' });
    const labels = await call(`/wiki/api/v2/pages/${root}/labels`);
    expect(labels.body.results).toEqual([
      { id: expect.any(String), name: 'news', prefix: 'global' },
      { id: expect.any(String), name: 'q1', prefix: 'global' },
    ]);

    const bytes = Buffer.from([0, 1, 2, 255, 13, 10, 45, 45, 0]);
    const attId = kit.server.addAttachment(
      root,
      'data file.bin',
      bytes,
      'application/octet-stream',
    );
    kit.server.addAttachment(root, 'notes.txt', 'hello');
    const list = await call(`/wiki/api/v2/pages/${root}/attachments?filename=data%20file.bin`);
    expect(list.body.results).toHaveLength(1);
    const att = list.body.results[0];
    expect(att).toMatchObject({
      id: attId,
      status: 'current',
      title: 'data file.bin',
      pageId: root,
      mediaType: 'application/octet-stream',
      fileSize: bytes.length,
      version: { number: 1 },
    });
    expect(att.downloadLink).toMatch(
      new RegExp(
        `^/download/attachments/${root}/data%20file\\.bin\\?version=1&modificationDate=\\d+&api=v2$`,
      ),
    );
    expect(att._links.download).toBe(att.downloadLink);
    // Cloud refuses its old file path to API callers, naming the OAuth realm.
    const old = await fetch(`${kit.cloudBase}${att.downloadLink}`, {
      headers: { Authorization: basic() },
    });
    expect(old.status).toBe(401);
    expect(old.headers.get('www-authenticate')).toBe(`OAuth realm="${kit.url}/wiki"`);
    // The REST route redirects to the media host, which takes the token in its URL only.
    const route = `${kit.cloudBase}/rest/api/content/${root}/child/attachment/${attId}/download`;
    const redirect = await fetch(route, {
      headers: { Authorization: basic() },
      redirect: 'manual',
    });
    expect(redirect.status).toBe(302);
    const location = redirect.headers.get('location') as string;
    expect(new URL(location).origin).not.toBe(kit.url);
    const file = await fetch(location);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.from(await file.arrayBuffer())).toEqual(bytes);
    expect((await fetch(location.replace(/token=[^&]+/, 'token=forged'))).status).toBe(401);
    expect((await fetch(route, { redirect: 'manual' })).status).toBe(401);
    expect(
      (
        await fetch(`${kit.dcBase}/rest/api/content/${root}/child/attachment/${attId}/download`, {
          headers: { Authorization: basic() },
        })
      ).status,
    ).toBe(404);
    const notes = await fetch(`${kit.dcBase}/download/attachments/${root}/notes.txt`, {
      headers: { Authorization: `Bearer ${kit.bearer}` },
    });
    expect(notes.headers.get('content-type')).toBe('text/plain');
    expect(await notes.text()).toBe('hello');
    const gone = await call(`/wiki/api/v2/attachments/${attId}`, { method: 'DELETE' });
    expect(gone.status).toBe(204);
    expect((await call(`/wiki/api/v2/pages/${root}/attachments`)).body.results).toHaveLength(1);
    expect((await call(`/confluence${att.downloadLink}`)).status).toBe(404);
  });

  it('searches with CQL on v1, offset pages keeping the query', async () => {
    const { key } = space();
    const { key: other } = space();
    const day = (d: string) => new Date(d);
    const root = kit.server.addPage({
      space: key,
      title: 'Root',
      modified: day('2024-01-01T10:00:00Z'),
    });
    const mid = kit.server.addPage({
      space: key,
      title: 'Middle',
      parentId: root,
      labels: ['news'],
      body: '<p>The <b>Quarterly</b> numbers</p>',
      modified: day('2024-02-01T10:00:00Z'),
    });
    const leaf = kit.server.addPage({
      space: key,
      title: 'Leaf notes',
      parentId: mid,
      labels: ['draft'],
      modified: day('2024-03-01T10:30:00Z'),
    });
    const elsewhere = kit.server.addPage({
      space: other,
      title: 'Elsewhere',
      labels: ['news'],
      modified: day('2024-03-02T00:00:00Z'),
    });
    const search = async (cql: string, extra = '') => {
      const result = await call(
        `/wiki/rest/api/content/search?cql=${encodeURIComponent(cql)}${extra}`,
      );
      expect(result.status).toBe(200);
      return result.body.results.map((r: { id: string }) => r.id);
    };
    expect(await search(`space = ${key} and type = page`)).toEqual([root, mid, leaf]);
    expect(await search(`space in ("${key}", '${other}') AND label = news`)).toEqual([
      mid,
      elsewhere,
    ]);
    expect(await search(`ancestor = ${root}`)).toEqual([mid, leaf]);
    expect(await search(`parent = ${root}`)).toEqual([mid]);
    expect(await search(`space = ${key} and lastmodified >= "2024-02-01"`)).toEqual([mid, leaf]);
    // Dates are read on the account's clocks (Los Angeles, UTC-8 in March 2024), not in UTC.
    expect(await search(`space = ${key} and lastmodified > "2024/03/01 02:29"`)).toEqual([leaf]);
    expect(await search(`space = ${key} and lastmodified = "2024-03-01 02:30"`)).toEqual([leaf]);
    expect(await search(`space = ${key} and lastmodified >= "2024-03-01 10:30"`)).toEqual([]);
    expect(await search(`space = ${key} and (title ~ "notes" or text ~ quarterly)`)).toEqual([
      mid,
      leaf,
    ]);
    expect(await search(`space = ${key} and not label = news`)).toEqual([root, leaf]);
    expect(await search(`space = ${key} and label != news order by title desc`)).toEqual([
      root,
      leaf,
    ]);
    expect(await search(`id in (${leaf}, ${root}) order by lastmodified desc`)).toEqual([
      leaf,
      root,
    ]);
    expect(await search(`type = attachment and space = ${key}`)).toEqual([]);

    const first = await call(
      `/wiki/rest/api/content/search?cql=${encodeURIComponent(`space = ${key}`)}&limit=2&expand=body.storage,ancestors`,
    );
    expect(first.body).toMatchObject({ start: 0, limit: 2, size: 2 });
    expect(first.body._links).toMatchObject({
      base: `${kit.url}/wiki`,
      context: '/wiki',
    });
    expect(first.body._links.next).toBe(
      `/rest/api/content/search?cql=space+%3D+${key}&limit=2&expand=body.storage%2Cancestors&start=2`,
    );
    const second = await call(`/wiki${first.body._links.next}`);
    expect(second.body).toMatchObject({ start: 2, limit: 2, size: 1 });
    expect(second.body._links.next).toBeUndefined();
    const content = second.body.results[0];
    expect(content).toMatchObject({
      id: leaf,
      type: 'page',
      status: 'current',
      title: 'Leaf notes',
      space: { key, type: 'global' },
      version: { number: 1, when: '2024-03-01T10:30:00.000Z', by: { type: 'known' } },
      ancestors: [
        { id: root, type: 'page', title: 'Root' },
        { id: mid, type: 'page', title: 'Middle' },
      ],
      body: { storage: { value: '', representation: 'storage' } },
    });
    const capped = await call(
      `/wiki/rest/api/content/search?cql=${encodeURIComponent(`space = ${key}`)}&limit=1000`,
    );
    expect(capped.body.limit).toBe(100);

    for (const bad of [
      'space = ',
      'foo = bar',
      'title ~',
      `space = ${key} order by colour`,
      `space = ${key} order by id`,
    ]) {
      const result = await call(`/wiki/rest/api/content/search?cql=${encodeURIComponent(bad)}`);
      expect(result.status).toBe(400);
      expect(result.body).toMatchObject({
        statusCode: 400,
        message: `Could not parse cql : ${bad}`,
        reason: 'Bad Request',
      });
    }
  });

  it('parses the CQL subset', () => {
    const page = {
      id: '7',
      type: 'page' as const,
      spaceKey: 'A',
      title: 'Hello World',
      body: '<p>x</p>',
      parentId: '5',
      ancestors: ['3', '5'],
      labels: ['l1'],
      created: Date.parse('2024-01-01T00:00:00Z'),
      modified: Date.parse('2024-05-05T12:34:56Z'),
    };
    const matches = (cql: string) => parseCql(cql).where(page);
    expect(matches('space = A and title ~ "world"')).toBe(true);
    expect(matches('SPACE = a AND Title = "hello world"')).toBe(true);
    expect(matches('space = A not label in (l1)')).toBe(false);
    expect(matches('label not in (l2, l3) and ancestor in (3)')).toBe(true);
    expect(matches('created < "2024-01-01 00:01" and lastModified <= "2024/05/05 12:34"')).toBe(
      true,
    );
    expect(matches("title = 'it\\'s'")).toBe(false);
    expect(parseCql('type = page order by created desc, title').order).toEqual([
      { field: 'created', desc: true },
      { field: 'title', desc: false },
    ]);
    expect(() => parseCql('lastmodified > "2024-13-01"')).toThrow();
    expect(() => parseCql('lastmodified > now("-1d")')).toThrow();
    expect(() => parseCql('(space = A')).toThrow();
    // Dates are read on the clocks of the zone given: 12:34 UTC is 05:34 in Los Angeles in May.
    expect(parseCql('lastmodified = "2024-05-05 05:34"', 'America/Los_Angeles').where(page)).toBe(
      true,
    );
    expect(parseCql('lastmodified = "2024-05-05 12:34"', 'America/Los_Angeles').where(page)).toBe(
      false,
    );
  });

  it('gets, creates and updates content through the Data Center mount', async () => {
    const { key } = space('Team');
    const parent = kit.server.addPage({ space: key, title: 'Parent', body: '<p>p</p>' });
    const got = await call(`/confluence/rest/api/content/${parent}?expand=body.storage,version`);
    expect(got.body).toMatchObject({
      id: parent,
      title: 'Parent',
      space: { key, name: 'Team' },
      version: { number: 1 },
      body: { storage: { value: '<p>p</p>', representation: 'storage' } },
      _links: { self: `${kit.url}/confluence/rest/api/content/${parent}` },
    });
    expect(got.body.ancestors).toBeUndefined();
    const missing = await call('/confluence/rest/api/content/987654321');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({
      statusCode: 404,
      data: { authorized: true, valid: true, errors: [], successful: false },
      message: 'No content found with id: ContentId{id=987654321}',
      reason: 'Not Found',
    });

    const created = await call('/confluence/rest/api/content', {
      method: 'POST',
      json: {
        type: 'page',
        title: 'Child',
        space: { key },
        ancestors: [{ id: parent }],
        body: { storage: { value: '<p>c</p>', representation: 'storage' } },
      },
    });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ title: 'Child', version: { number: 1 } });
    const id = created.body.id as string;
    expect(kit.server.page(id)?.parentId).toBe(parent);
    const dup = await call('/confluence/rest/api/content', {
      method: 'POST',
      json: { type: 'page', title: 'Child', space: { key }, body: { storage: { value: '' } } },
    });
    expect(dup.status).toBe(400);
    expect(dup.body.message).toBe(
      `A page with this title already exists: A page already exists with the title Child in the space with key ${key}`,
    );
    const put = (number: number) =>
      call(`/confluence/rest/api/content/${id}`, {
        method: 'PUT',
        json: {
          id,
          type: 'page',
          title: 'Child v2',
          version: { number },
          body: { storage: { value: '<p>c2</p>', representation: 'storage' } },
        },
      });
    const stale = await put(1);
    expect(stale.status).toBe(409);
    expect(stale.body).toMatchObject({
      statusCode: 409,
      message: 'Version must be incremented on update. Current version is: 1',
      reason: 'Conflict',
    });
    expect((await put(2)).body).toMatchObject({ title: 'Child v2', version: { number: 2 } });
    const children = await call(`/confluence/rest/api/content/${parent}/child/page`);
    expect(children.body.results.map((c: { id: string }) => c.id)).toEqual([id]);
    const byTitle = await call(
      `/confluence/rest/api/content?spaceKey=${key}&title=Child%20v2&expand=body.storage`,
    );
    expect(byTitle.body.results[0].body.storage.value).toBe('<p>c2</p>');
    expect(byTitle.body._links).toMatchObject({
      base: `${kit.url}/confluence`,
      context: '/confluence',
    });
  });

  it('uploads attachments as multipart on v1, only with the XSRF header, versioning on PUT', async () => {
    const { key } = space();
    const page = kit.server.addPage({ space: key, title: 'Files' });
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 255]);
    const form = (content: Buffer, name = 'image.png') => {
      const data = new FormData();
      data.append('file', new Blob([content], { type: 'image/png' }), name);
      data.append('comment', 'first upload');
      data.append('minorEdit', 'true');
      return data;
    };
    const path = `/wiki/rest/api/content/${page}/child/attachment`;
    const refused = await call(path, { method: 'POST', body: form(bytes) });
    expect(refused.status).toBe(403);
    expect(refused.body.message).toBe('XSRF check failed');
    const headers = { 'X-Atlassian-Token': 'no-check' };
    const added = await call(path, { method: 'POST', body: form(bytes), headers });
    expect(added.status).toBe(200);
    expect(added.body.size).toBe(1);
    expect(added.body.results[0]).toMatchObject({
      id: expect.stringMatching(/^att\d+$/),
      type: 'attachment',
      status: 'current',
      title: 'image.png',
      version: { number: 1 },
      metadata: { mediaType: 'image/png', comment: 'first upload' },
      extensions: { mediaType: 'image/png', fileSize: bytes.length, comment: 'first upload' },
    });
    const again = await call(path, { method: 'POST', body: form(bytes), headers });
    expect(again.status).toBe(400);
    expect(again.body.message).toBe(
      'Cannot add a new attachment with same file name as an existing attachment: image.png',
    );
    const changed = Buffer.concat([bytes, bytes]);
    const versioned = await call(path, {
      method: 'PUT',
      body: form(changed),
      headers: { 'X-Atlassian-Token': 'nocheck' },
    });
    expect(versioned.body.results[0]).toMatchObject({
      id: added.body.results[0].id,
      version: { number: 2 },
    });
    const [stored] = kit.server.attachments(page);
    expect(stored).toMatchObject({ filename: 'image.png', version: 2, mediaType: 'image/png' });
    expect(stored?.bytes).toEqual(changed);
    const listed = await call(
      `/confluence/rest/api/content/${page}/child/attachment?filename=image.png`,
    );
    const link = listed.body.results[0]._links.download as string;
    expect(link).toMatch(
      new RegExp(`^/download/attachments/${page}/image\\.png\\?version=2&modificationDate=\\d+$`),
    );
    const latest = await fetch(`${kit.dcBase}${link}`, { headers: { Authorization: basic() } });
    expect(Buffer.from(await latest.arrayBuffer())).toEqual(changed);
    const first = await fetch(`${kit.dcBase}/download/attachments/${page}/image.png?version=1`, {
      headers: { Authorization: basic() },
    });
    expect(Buffer.from(await first.arrayBuffer())).toEqual(bytes);
    const newFile = await call(path, { method: 'PUT', body: form(bytes, 'new.png'), headers });
    expect(newFile.body.results[0]).toMatchObject({ title: 'new.png', version: { number: 1 } });
  });

  it('hides restricted pages from reads and refuses writes to them', async () => {
    const { key } = space();
    const open = kit.server.addPage({ space: key, title: 'Open' });
    const secret = kit.server.addPage({ space: key, title: 'Secret', parentId: open });
    kit.server.restrict(secret);
    expect((await call(`/wiki/api/v2/pages/${secret}`)).status).toBe(404);
    expect((await call(`/wiki/api/v2/pages/${open}/children`)).body.results).toEqual([]);
    const found = await call(
      `/wiki/rest/api/content/search?cql=${encodeURIComponent(`space = ${key}`)}`,
    );
    expect(found.body.results.map((r: { id: string }) => r.id)).toEqual([open]);
    const write = await call(`/wiki/rest/api/content/${secret}`, {
      method: 'PUT',
      json: { type: 'page', title: 'x', version: { number: 2 } },
    });
    expect(write.status).toBe(403);
    expect(write.body.reason).toBe('Forbidden');
  });

  it('serves the API gateway to OAuth and scoped tokens, with next links as the gateway gives them', async () => {
    const { id: spaceId, key } = space();
    for (let i = 0; i < 3; i++) kit.server.addPage({ space: key, title: `G${i}` });
    const info = await call('/_edge/tenant_info', { auth: null });
    expect(info.body).toEqual({ cloudId: kit.server.cloudId });
    const gateway = `/ex/confluence/${kit.server.cloudId}/wiki`;
    kit.server.addOAuthClient('app-1', 'app-secret');
    const { accessToken, refreshToken } = kit.server.grantOAuth('app-1');
    const bearer = `Bearer ${accessToken}`;
    // 3LO tokens work through the gateway only; classic API tokens on the site only.
    expect((await call('/wiki/api/v2/spaces', { auth: bearer })).status).toBe(401);
    expect((await call(`${gateway}/api/v2/spaces`)).status).toBe(401);
    const first = await call(`${gateway}/api/v2/spaces/${spaceId}/pages?limit=2`, { auth: bearer });
    expect(first.status).toBe(200);
    expect(first.body._links.next).toMatch(/^\/wiki\/api\/v2\/spaces\/\d+\/pages\?limit=2&cursor=/);
    expect(first.body._links.base).toBe(`${kit.url}/wiki`);
    // Joined with the origin, the link leaves the gateway: the site refuses the token.
    expect((await call(first.body._links.next, { auth: bearer })).status).toBe(401);
    const query = first.body._links.next.slice(first.body._links.next.indexOf('?'));
    const second = await call(`${gateway}/api/v2/spaces/${spaceId}/pages${query}`, {
      auth: bearer,
    });
    expect(second.body.results).toHaveLength(1);
    const search = await call(
      `${gateway}/rest/api/content/search?cql=${encodeURIComponent(`space = ${key}`)}&limit=2`,
      { auth: bearer },
    );
    expect(search.body._links).toMatchObject({ base: `${kit.url}/wiki`, context: '/wiki' });
    expect(search.body._links.next).toMatch(/^\/rest\/api\/content\/search\?/);
    expect(
      (await call(`/ex/confluence/not-this-site/wiki/api/v2/spaces`, { auth: bearer })).status,
    ).toBe(404);
    // Scoped API tokens: Basic, and the gateway only.
    kit.server.addUser('bot@example.com', 'scoped-token-1', { scoped: true });
    const scoped = `Basic ${Buffer.from('bot@example.com:scoped-token-1').toString('base64')}`;
    expect((await call(`${gateway}/api/v2/spaces`, { auth: scoped })).status).toBe(200);
    expect((await call('/wiki/api/v2/spaces', { auth: scoped })).status).toBe(401);

    // Refresh tokens rotate; access tokens expire.
    const token = (body: unknown) =>
      fetch(`${kit.url}/oauth/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const grant = {
      grant_type: 'refresh_token',
      client_id: 'app-1',
      client_secret: 'app-secret',
      refresh_token: refreshToken,
    };
    const renewed = await token(grant);
    // biome-ignore lint/suspicious/noExplicitAny: checked by value
    const pair: any = await renewed.json();
    expect(pair).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    expect(pair.refresh_token).not.toBe(refreshToken);
    const spent = await token(grant);
    expect(spent.status).toBe(403);
    expect(await spent.json()).toEqual({
      error: 'unauthorized_client',
      error_description: 'refresh_token is invalid',
    });
    kit.server.expireOAuthTokens();
    expect((await call(`${gateway}/api/v2/spaces`, { auth: bearer })).status).toBe(401);
    const resources = await call('/oauth/token/accessible-resources', { auth: bearer });
    expect(resources.status).toBe(401);
  });

  it('throttles with and without Retry-After, refusing a caller that comes back too soon', async () => {
    kit.server.throttle(1, { retryAfter: 1 });
    const limited = await call('/wiki/api/v2/spaces');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.headers.get('x-ratelimit-reset')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\dZ$/);
    expect(limited.body.errors[0]).toMatchObject({ status: 429, title: 'Rate limit exceeded' });
    const tooSoon = await call('/wiki/rest/api/space');
    expect(tooSoon.status).toBe(429);
    expect(tooSoon.body.message).toBe('Rate limit exceeded');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    kit.server.throttle(1, { method: 'POST' });
    expect((await call('/wiki/api/v2/spaces')).status).toBe(200);
    const bare = await call('/wiki/api/v2/pages', { method: 'POST', json: {} });
    expect(bare.status).toBe(429);
    expect(bare.headers.get('retry-after')).toBeNull();
  });

  it("tells the caller's time zone on Cloud, not on Data Center", async () => {
    const cloud = await call('/wiki/rest/api/user/current');
    expect(cloud.body).toMatchObject({ type: 'known', timeZone: 'America/Los_Angeles' });
    const dc = await call('/confluence/rest/api/user/current', { auth: `Bearer ${kit.bearer}` });
    expect(dc.status).toBe(200);
    expect(dc.body.timeZone).toBeUndefined();
  });

  it('keeps archived pages in v2 lists unless current ones are asked for, and out of search', async () => {
    const { id: spaceId, key } = space();
    const old = kit.server.addPage({ space: key, title: 'Report' });
    kit.server.archive(old);
    const listed = async (query: string) =>
      (await call(`/wiki/api/v2/pages?space-id=${spaceId}&title=Report${query}`)).body.results.map(
        (p: { id: string; status: string }) => `${p.id} ${p.status}`,
      );
    expect(await listed('')).toEqual([`${old} archived`]);
    expect(await listed('&status=current')).toEqual([]);
    const searched = await call(
      `/wiki/rest/api/content/search?cql=${encodeURIComponent(`space = ${key}`)}`,
    );
    expect(searched.body.results).toEqual([]);
    expect((await call(`/wiki/api/v2/pages/${old}`)).body.status).toBe('archived');
    const edit = await call(`/wiki/api/v2/pages/${old}`, {
      method: 'PUT',
      json: { id: old, status: 'current', title: 'Report', version: { number: 2 } },
    });
    expect(edit.status).toBe(400);
    const fresh = await call('/wiki/api/v2/pages?root-level=true', {
      method: 'POST',
      json: { spaceId, title: 'Report', body: { representation: 'storage', value: '' } },
    });
    expect(fresh.status).toBe(200);
    expect(await listed('&status=current')).toEqual([`${fresh.body.id} current`]);
  });

  it('holds folders: children leaves them out, direct-children lists them', async () => {
    const { key } = space();
    const home = kit.server.addPage({ space: key, title: 'Home' });
    const folder = kit.server.addFolder({ space: key, title: 'Policies', parentId: home });
    const inside = kit.server.addPage({ space: key, title: 'Refunds', parentId: folder });
    const page = kit.server.addPage({ space: key, title: 'About', parentId: home });
    const ids = (body: { results: Array<{ id: string }> }) => body.results.map((r) => r.id);
    expect(ids((await call(`/wiki/api/v2/pages/${home}/children`)).body)).toEqual([page]);
    const direct = await call(`/wiki/api/v2/pages/${home}/direct-children`);
    expect(direct.body.results.map((r: { type: string }) => r.type)).toEqual(['folder', 'page']);
    expect(ids((await call(`/wiki/api/v2/folders/${folder}/direct-children`)).body)).toEqual([
      inside,
    ]);
    expect((await call(`/wiki/api/v2/folders/${folder}`)).body).toMatchObject({
      type: 'folder',
      title: 'Policies',
      parentId: home,
    });
    expect((await call(`/wiki/api/v2/pages/${folder}`)).status).toBe(404);
    const found = await call(
      `/wiki/rest/api/content/search?cql=${encodeURIComponent(`ancestor = ${home}`)}&expand=ancestors`,
    );
    expect(ids(found.body)).toEqual([inside, page]);
    expect(found.body.results[0].ancestors.map((a: { type: string }) => a.type)).toEqual([
      'page',
      'folder',
    ]);
  });

  it('reads an attachment comment as ISO-8859-1 unless the part says charset=utf-8', async () => {
    const { key } = space();
    const page = kit.server.addPage({ space: key, title: 'Comments' });
    const upload = (name: string, type?: string) => {
      const comment = `${type ? 'Content-Type: text/plain; charset=utf-8\r\n' : ''}\r\nPrüfung ✓`;
      const body = Buffer.from(
        `--b\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name="comment"\r\n${comment}\r\n--b--\r\n`,
      );
      return call(`/wiki/rest/api/content/${page}/child/attachment`, {
        method: 'PUT',
        body,
        headers: {
          'X-Atlassian-Token': 'no-check',
          'Content-Type': 'multipart/form-data; boundary=b',
        },
      });
    };
    expect((await upload('plain.txt')).body.results[0].metadata.comment).toBe(
      'PrÃ¼fung â\u009c\u0093',
    );
    expect((await upload('utf8.txt', 'utf8')).body.results[0].metadata.comment).toBe('Prüfung ✓');
  });

  it('records requests for tests that count calls', async () => {
    const before = kit.server.requests.length;
    await call('/wiki/api/v2/spaces?limit=1');
    expect(kit.server.requests.slice(before)).toEqual([
      expect.objectContaining({ method: 'GET', path: '/wiki/api/v2/spaces?limit=1' }),
    ]);
  });
});

describe('parseFormData', () => {
  it('splits parts binary-safely, with names, file names and types', () => {
    const payload = Buffer.from([13, 10, 45, 45, 98, 0, 255]);
    const body = Buffer.concat([
      Buffer.from(
        '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a \\"q\\".bin"\r\nContent-Type: application/x-thing\r\n\r\n',
      ),
      payload,
      Buffer.from(
        '\r\n--XyZ\r\nContent-Disposition: form-data; name="comment"\r\n\r\nhi\r\n--XyZ--\r\n',
      ),
    ]);
    const parts = parseFormData(body, 'multipart/form-data; boundary="XyZ"');
    expect(parts).toEqual([
      { name: 'file', filename: 'a "q".bin', contentType: 'application/x-thing', data: payload },
      { name: 'comment', data: Buffer.from('hi') },
    ]);
  });
});

describe('testkit serve confluence', () => {
  it('seeds a space and prints the environment the CLIs use', async () => {
    const server = startCli(serve, [
      'serve',
      'confluence',
      '--port',
      '0',
      '--seed',
      repo('examples/data/text'),
    ]);
    try {
      await server.waitFor(({ stdout }) => stdout.includes('Press Ctrl-C to stop.'), 30_000);
      const out = server.stdout();
      expect(out).toMatch(/space "SLUICE" \(homepage \d+\) holds 1 seeded pages and 0 attachments/);
      const base = /export CONFLUENCE_URL=(\S+)/.exec(out)?.[1] ?? '';
      const email = /export CONFLUENCE_EMAIL=(\S+)/.exec(out)?.[1] ?? '';
      const token = /export CONFLUENCE_API_TOKEN=(\S+)/.exec(out)?.[1] ?? '';
      expect(out).toContain('export CONFLUENCE_DEPLOYMENT=cloud');
      expect(out).toMatch(
        /confluence-sink\/dist\/cli\.js report confluence:\/\/page\/\d+ --dataset news/,
      );
      const auth = `Basic ${Buffer.from(`${email}:${token}`).toString('base64')}`;
      const search = await fetch(
        `${base}/rest/api/content/search?cql=${encodeURIComponent('space = SLUICE and title = tickets')}&expand=body.storage`,
        { headers: { Authorization: auth } },
      );
      // biome-ignore lint/suspicious/noExplicitAny: checked by value
      const body: any = await search.json();
      expect(body.results).toHaveLength(1);
      expect(body.results[0].body.storage.value).toMatch(/^<p>/);
    } finally {
      server.child.kill('SIGINT');
    }
    expect(await server.closed).toBe(0);
  }, 60_000);
});
