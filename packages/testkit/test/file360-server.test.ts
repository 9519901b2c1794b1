import { describe, expect, it } from 'vitest';
import { ENTERPRISE_WORKSPACE, startFile360Server } from '../src/file360-server.js';
import { useFile360 } from '../src/fixtures.js';

const NOT_ACCESSIBLE =
  'Sorry, the item you requested could not be accessed. Either it does not exist or you do not have permission to access it. If you were sent a link to this item, please contact the sender for assistance.';

describe('the OpenText Content Server test server', () => {
  const kit = useFile360({ maxLimit: 50 });
  let ticket = '';

  /** A call relative to the base (`/api/...`), with the current ticket unless told otherwise. */
  const call = async (
    path: string,
    init: RequestInit & { ticket?: string | null; bearer?: string } = {},
  ) => {
    const headers = new Headers(init.headers);
    if (init.bearer) headers.set('Authorization', `Bearer ${init.bearer}`);
    else if (init.ticket !== null) headers.set('otcsticket', init.ticket ?? ticket);
    const response = await fetch(`${kit.base}${path}`, { ...init, headers });
    const bytes = Buffer.from(await response.arrayBuffer());
    const text = bytes.toString('utf8');
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked by value below
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const fresh = response.headers.get('otcsticket');
    if (fresh && init.ticket === undefined && !init.bearer) ticket = fresh;
    return { status: response.status, headers: response.headers, text, bytes, body };
  };
  const login = async (password = kit.password) => {
    const response = await fetch(`${kit.base}/api/v1/auth`, {
      method: 'POST',
      body: new URLSearchParams({ username: kit.username, password }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked by value below
    const body: any = await response.json();
    return { status: response.status, body };
  };
  const form = (fields: Record<string, string | Blob>, file?: { name: string; blob: Blob }) => {
    const data = new FormData();
    for (const [key, value] of Object.entries(fields)) data.append(key, value);
    if (file) data.append('file', file.blob, file.name);
    return data;
  };
  let folderCounter = 0;
  /** A fresh folder for one test, so tests stay independent. */
  const folder = () => kit.server.addFolder(ENTERPRISE_WORKSPACE, `Test ${++folderCounter}`);

  it('issues tickets, refuses bad credentials and rotates tickets on each answer', async () => {
    const wrong = await login('not-the-password');
    expect(wrong).toEqual({ status: 401, body: { error: 'Invalid username/password specified.' } });
    const before = kit.server.authCount;
    const ok = await login();
    expect(ok.status).toBe(200);
    expect(ok.body.ticket).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(kit.server.authCount).toBe(before + 1);
    ticket = ok.body.ticket;

    const missing = await fetch(`${kit.base}/api/v1/auth`, {
      method: 'POST',
      body: new URLSearchParams({ username: kit.username }),
    });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ error: 'Argument password is required' });

    const first = ticket;
    const me = await call('/api/v1/auth');
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ data: { id: 1000, name: 'annotator' } });
    expect(me.headers.get('otcsticket')).toBeTruthy();
    expect(me.headers.get('otcsticket')).not.toBe(first);
    expect(Date.parse(me.headers.get('otcsticketexpires') as string)).toBeGreaterThan(Date.now());
    // The old ticket stays valid until its own expiry.
    expect((await call('/api/v2/nodes/2000', { ticket: first })).status).toBe(200);

    const none = await call('/api/v2/nodes/2000', { ticket: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: 'Authentication required' });
    const guessed = await call('/api/v2/nodes/2000', { ticket: 'c2VjcmV0LWd1ZXNz' });
    expect(guessed.status).toBe(401);
    expect(guessed.text).not.toContain('c2VjcmV0LWd1ZXNz');
    const last = kit.server.requests.at(-1);
    expect(last).toMatchObject({ method: 'GET', path: '/api/v2/nodes/2000', auth: 'ticket' });
    expect(last?.status).toBe(401);
  });

  it('expires tickets on command and after n requests', async () => {
    ticket = (await login()).body.ticket;
    expect((await call('/api/v2/nodes/2000')).status).toBe(200);
    kit.server.expireTickets();
    expect(await call('/api/v2/nodes/2000')).toMatchObject({
      status: 401,
      body: { error: 'Authentication required' },
    });

    ticket = (await login()).body.ticket;
    kit.server.expireTicketsAfter(2);
    expect((await call('/api/v2/nodes/2000')).status).toBe(200);
    expect((await call('/api/v2/nodes/2000')).status).toBe(200);
    // Both the rotated ticket and the one from login are gone now.
    expect((await call('/api/v2/nodes/2000')).status).toBe(401);
    ticket = (await login()).body.ticket;
    expect((await call('/api/v2/nodes/2000')).status).toBe(200);
  });

  it('accepts bearer tokens and turns one into a ticket at GET /api/v1/auth', async () => {
    const node = await call('/api/v2/nodes/2000', { bearer: kit.token });
    expect(node.status).toBe(200);
    expect(node.body.results.data.properties).toMatchObject({
      id: 2000,
      type: 141,
      type_name: 'Enterprise Workspace',
      container: true,
      volume_id: -2000,
    });
    expect(kit.server.requests.at(-1)?.auth).toBe('bearer');
    const me = await call('/api/v1/auth', { bearer: kit.token });
    expect(me.body).toEqual({ data: { id: 1000, name: 'bearer' } });
    const issued = me.headers.get('otcsticket') as string;
    expect((await call('/api/v2/nodes/2000', { ticket: issued })).status).toBe(200);
    expect((await call('/api/v2/nodes/2000', { bearer: 'guess' })).status).toBe(401);
  });

  it('pages children with limit and page, capping limit at maxLimit', async () => {
    ticket = (await login()).body.ticket;
    const parent = folder();
    for (let i = 0; i < 60; i++) {
      kit.server.addDocument(parent, `doc-${String(i).padStart(2, '0')}.txt`, `body ${i}`);
    }
    const page2 = await call(`/api/v2/nodes/${parent}/nodes?limit=25&page=2`);
    expect(page2.status).toBe(200);
    expect(page2.body.collection.paging).toEqual({
      limit: 25,
      page: 2,
      page_total: 3,
      range_max: 50,
      range_min: 26,
      total_count: 60,
    });
    expect(page2.body.collection.sorting).toEqual({ sort: [{ key: 'sort', value: 'asc_name' }] });
    expect(page2.body.links.data.self.href).toBe(`/api/v2/nodes/${parent}/nodes?limit=25&page=2`);
    expect(page2.body.results).toHaveLength(25);
    expect(page2.body.results[0].data.properties.name).toBe('doc-25.txt');

    const page3 = await call(`/api/v2/nodes/${parent}/nodes?limit=25&page=3`);
    expect(page3.body.results).toHaveLength(10);
    expect(page3.body.collection.paging).toMatchObject({ range_min: 51, range_max: 60 });
    const past = await call(`/api/v2/nodes/${parent}/nodes?limit=25&page=4`);
    expect(past.body.results).toEqual([]);
    const capped = await call(`/api/v2/nodes/${parent}/nodes?limit=1000`);
    expect(capped.body.collection.paging).toMatchObject({ limit: 50, page_total: 2 });
    expect(capped.body.results).toHaveLength(50);
    const bad = await call(`/api/v2/nodes/${parent}/nodes?limit=0`);
    expect(bad).toMatchObject({
      status: 400,
      body: { error: 'One or more parameters are invalid' },
    });
    const empty = await call(`/api/v2/nodes/${folder()}/nodes`);
    expect(empty.body.collection.paging).toMatchObject({ total_count: 0, range_min: 0 });
    const doc = kit.server.find(parent, 'doc-00.txt')?.id;
    expect((await call(`/api/v2/nodes/${doc}/nodes`)).status).toBe(500);
  });

  it('filters children by where_type and where_name and sorts them', async () => {
    const parent = folder();
    const old = new Date('2024-01-01T00:00:00Z');
    kit.server.addFolder(parent, 'beta', { modified: old });
    kit.server.addDocument(parent, 'Alpha.txt', 'a', {
      modified: new Date('2024-03-01T00:00:00Z'),
    });
    kit.server.addDocument(parent, 'gamma report.pdf', 'ccc', { modified: old });
    const names = (body: { results: Array<{ data: { properties: { name: string } } }> }) =>
      body.results.map((r) => r.data.properties.name);

    expect(names((await call(`/api/v2/nodes/${parent}/nodes`)).body)).toEqual([
      'Alpha.txt',
      'beta',
      'gamma report.pdf',
    ]);
    const folders = await call(`/api/v2/nodes/${parent}/nodes?where_type=-1`);
    expect(names(folders.body)).toEqual(['beta']);
    const docs = await call(`/api/v2/nodes/${parent}/nodes?where_type=144&where_type=0`);
    expect(names(docs.body)).toHaveLength(3);
    expect(names((await call(`/api/v2/nodes/${parent}/nodes?where_type=-3`)).body)).toEqual([
      'Alpha.txt',
      'gamma report.pdf',
    ]);
    const byName = await call(`/api/v2/nodes/${parent}/nodes?where_name=REPORT`);
    expect(names(byName.body)).toEqual(['gamma report.pdf']);
    expect(names((await call(`/api/v2/nodes/${parent}/nodes?sort=desc_name`)).body)).toEqual([
      'gamma report.pdf',
      'beta',
      'Alpha.txt',
    ]);
    const byDate = await call(`/api/v2/nodes/${parent}/nodes?sort=desc_modify_date`);
    expect(names(byDate.body)[0]).toBe('Alpha.txt');
    expect(byDate.body.collection.sorting.sort[0].value).toBe('desc_modify_date');
    const bySize = await call(`/api/v2/nodes/${parent}/nodes?sort=asc_size&where_type=144`);
    expect(names(bySize.body)).toEqual(['Alpha.txt', 'gamma report.pdf']);
  });

  it('shapes nodes with fields: a properties subset and the latest version', async () => {
    const parent = folder();
    const id = kit.server.addDocument(parent, 'report.csv', 'a,b\n', {
      modified: new Date('2025-01-19T06:57:04.123Z'),
    });
    kit.server.addVersion(id, 'a,b\n1,2\n', { description: 'second' });
    const plain = await call(`/api/v2/nodes/${id}`);
    expect(plain.body.links.data.self).toEqual({
      body: '',
      content_type: '',
      href: `/api/v2/nodes/${id}`,
      method: 'GET',
      name: '',
    });
    expect(plain.body.results.data.versions).toBeUndefined();
    expect(plain.body.results.data.properties).toMatchObject({
      id,
      parent_id: parent,
      name: 'report.csv',
      type: 144,
      type_name: 'Document',
      container: false,
      mime_type: 'text/csv',
      size: 8,
      versionable: true,
      create_date: '2025-01-19T06:57:04Z',
    });
    const picked = await call(
      `/api/v2/nodes/${id}?fields=properties{id,name}&fields=versions{version_number,file_size}.element(0)`,
    );
    expect(picked.body.results.data).toEqual({
      properties: { id, name: 'report.csv' },
      versions: { version_number: 2, file_size: 8 },
    });
    const all = await call(`/api/v2/nodes/${id}?fields=versions`);
    expect(
      all.body.results.data.versions.map((v: { description: string }) => v.description),
    ).toEqual(['', 'second']);
    const listed = await call(`/api/v2/nodes/${parent}/nodes?fields=versions.element(0)`);
    expect(listed.body.results[0].data.versions).toMatchObject({
      id,
      version_number: 2,
      version_number_name: '2',
      file_name: 'report.csv',
      file_type: 'csv',
      mime_type: 'text/csv',
    });
  });

  it('downloads content with its type, length and file name', async () => {
    const id = kit.server.addDocument(folder(), 'Übersicht "Q1".txt', 'hello, world');
    const v2 = await call(`/api/v2/nodes/${id}/content`, { headers: { Range: 'bytes=0-3' } });
    expect(v2.status).toBe(200);
    expect(v2.text).toBe('hello, world');
    expect(v2.headers.get('content-type')).toBe('text/plain');
    expect(v2.headers.get('content-length')).toBe('12');
    expect(v2.headers.get('content-disposition')).toBe(
      `attachment; filename="_bersicht _Q1_.txt"; filename*=UTF-8''%C3%9Cbersicht%20%22Q1%22.txt`,
    );
    const v1 = await call(`/api/v1/nodes/${id}/content?action=download`);
    expect(v1.headers.get('content-type')).toBe('application/octet-stream');
    expect(v1.text).toBe('hello, world');
  });

  it('creates folders from a body field or from separate fields', async () => {
    const parent = folder();
    const viaBody = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({
        body: JSON.stringify({ type: 0, parent_id: parent, name: 'From Body' }),
      }),
    });
    expect(viaBody.status).toBe(200);
    expect(viaBody.body.results.data.properties).toMatchObject({
      parent_id: parent,
      name: 'From Body',
      type: 0,
      type_name: 'Folder',
      container: true,
      mime_type: null,
    });
    expect(viaBody.body.results.data.properties.id).toBeGreaterThanOrEqual(100000);
    const viaFields = await call('/api/v2/nodes', {
      method: 'POST',
      body: form({ type: '0', parent_id: String(parent), name: 'From Fields' }),
    });
    expect(viaFields.status).toBe(200);
    expect(kit.server.find(parent, 'From Fields')?.type).toBe(0);
    const noName = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({ type: '0', parent_id: String(parent) }),
    });
    expect(noName.body).toEqual({ error: "Missing required parameter 'name'" });
    const odd = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({ type: '751', parent_id: String(parent), name: 'x' }),
    });
    expect(odd).toMatchObject({ status: 400, body: { error: 'Subtype 751 not registered' } });
    const nowhere = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({ type: '0', parent_id: '99', name: 'x' }),
    });
    expect(nowhere).toMatchObject({ status: 404, body: { error: NOT_ACCESSIBLE } });
  });

  it('creates documents from multipart and refuses a name in use', async () => {
    const parent = folder();
    const created = await call('/api/v2/nodes', {
      method: 'POST',
      body: form(
        { body: JSON.stringify({ type: '144', parent_id: String(parent), name: 'notes.md' }) },
        { name: 'notes.md', blob: new Blob(['# notes'], { type: 'text/markdown' }) },
      ),
    });
    expect(created.status).toBe(200);
    expect(created.body.results.data.properties).toMatchObject({
      name: 'notes.md',
      type: 144,
      mime_type: 'text/markdown',
      size: 7,
    });
    expect(created.body.results.data.versions).toMatchObject({ version_number: 1, file_size: 7 });
    const id = created.body.results.data.properties.id;
    expect(kit.server.node(id)?.versions[0]?.content.toString()).toBe('# notes');

    const guessed = await call('/api/v2/nodes', {
      method: 'POST',
      body: form(
        { type: '144', parent_id: String(parent), name: 'scan.pdf' },
        { name: 'scan.pdf', blob: new Blob(['%PDF']) },
      ),
    });
    expect(guessed.body.results.data.properties.mime_type).toBe('application/pdf');
    const noFile = await call('/api/v2/nodes', {
      method: 'POST',
      body: form({ type: '144', parent_id: String(parent), name: 'empty.txt' }),
    });
    expect(noFile).toMatchObject({
      status: 400,
      body: { error: "Missing required parameter 'file'" },
    });
    const taken = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({ type: '0', parent_id: String(parent), name: 'NOTES.MD' }),
    });
    expect(taken).toMatchObject({
      status: 500,
      body: { error: "An item with the name 'NOTES.MD' already exists." },
    });
  });

  it('adds versions, lists them and serves each one', async () => {
    const id = kit.server.addDocument(folder(), 'data.json', '{"v":1}');
    const added = await call(`/api/v2/nodes/${id}/versions`, {
      method: 'POST',
      body: form(
        { description: 'v2', add_major_version: 'false' },
        { name: 'data.json', blob: new Blob(['{"v":2,"x":0}'], { type: 'application/json' }) },
      ),
    });
    expect(added.status).toBe(200);
    expect(added.body.results.data.properties).toMatchObject({ id, size: 13 });
    expect(added.body.results.data.versions).toMatchObject({
      version_number: 2,
      description: 'v2',
      file_size: 13,
      version_number_major: 0,
      version_number_minor: 2,
    });
    const major = await call(`/api/v2/nodes/${id}/versions`, {
      method: 'POST',
      body: form(
        { add_major_version: 'true' },
        { name: 'data.json', blob: new Blob(['{}'], { type: 'application/json' }) },
      ),
    });
    expect(major.body.results.data.versions).toMatchObject({
      version_number: 3,
      version_number_major: 1,
      version_number_minor: 0,
      version_number_name: '1.0',
    });
    const list = await call(`/api/v2/nodes/${id}/versions`);
    expect(list.body.collection.paging).toMatchObject({ limit: 25, page: 1, page_total: 1 });
    expect(
      list.body.results.map((r: { data: { versions: { version_number: number } } }) => [
        r.data.versions.version_number,
      ]),
    ).toEqual([[1], [2], [3]]);
    const desc = await call(`/api/v2/nodes/${id}/versions?order=desc&limit=1`);
    expect(desc.body.results[0].data.versions.version_number).toBe(3);
    expect((await call(`/api/v2/nodes/${id}/versions/2/content`)).text).toBe('{"v":2,"x":0}');
    expect((await call(`/api/v1/nodes/${id}/versions/1/content`)).text).toBe('{"v":1}');
    expect(await call(`/api/v2/nodes/${id}/versions/9/content`)).toMatchObject({
      status: 500,
      body: { error: 'The version is not found' },
    });
    const noFile = await call(`/api/v2/nodes/${id}/versions`, { method: 'POST', body: form({}) });
    expect(noFile).toMatchObject({
      status: 400,
      body: { error: "Missing required parameter 'File'" },
    });
  });

  it('deletes nodes into the recycle bin', async () => {
    const parent = folder();
    const sub = kit.server.addFolder(parent, 'sub');
    const doc = kit.server.addDocument(sub, 'a.txt', 'a');
    const removed = await call(`/api/v2/nodes/${sub}`, { method: 'DELETE' });
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({
      links: {
        data: {
          self: {
            body: '',
            content_type: '',
            href: `/api/v2/nodes/${sub}`,
            method: 'DELETE',
            name: '',
          },
        },
      },
      results: {},
    });
    expect(kit.server.deleted(sub) && kit.server.deleted(doc)).toBe(true);
    expect(await call(`/api/v2/nodes/${doc}`)).toMatchObject({
      status: 404,
      body: { error: NOT_ACCESSIBLE },
    });
    expect((await call(`/api/v2/nodes/${parent}/nodes`)).body.results).toEqual([]);
    const other = kit.server.addDocument(parent, 'b.txt', 'b');
    expect(await call(`/api/v1/nodes/${other}`, { method: 'DELETE' })).toMatchObject({
      status: 200,
      body: {},
    });
    expect(kit.server.children(parent)).toEqual([]);
  });

  it('hides nodes and refuses additions where denied', async () => {
    const parent = folder();
    const secret = kit.server.addDocument(parent, 'secret.txt', 's');
    kit.server.addDocument(parent, 'open.txt', 'o');
    kit.server.hide(secret);
    expect(await call(`/api/v2/nodes/${secret}`)).toMatchObject({ status: 404 });
    expect((await call(`/api/v2/nodes/${secret}/content`)).status).toBe(404);
    const listed = await call(`/api/v2/nodes/${parent}/nodes`);
    expect(
      listed.body.results.map(
        (r: { data: { properties: { id: number } } }) => r.data.properties.id,
      ),
    ).not.toContain(secret);
    expect(listed.body.collection.paging.total_count).toBe(1);

    const locked = folder();
    const inside = kit.server.addDocument(locked, 'inside.txt', 'i');
    kit.server.denyAdd(locked);
    expect((await call(`/api/v2/nodes/${locked}/nodes`)).status).toBe(200);
    const denied = {
      status: 403,
      body: { error: 'You do not have permission to perform this action.' },
    };
    expect(
      await call('/api/v2/nodes', {
        method: 'POST',
        body: new URLSearchParams({ type: '0', parent_id: String(locked), name: 'x' }),
      }),
    ).toMatchObject(denied);
    expect(
      await call(`/api/v2/nodes/${inside}/versions`, {
        method: 'POST',
        body: form({}, { name: 'inside.txt', blob: new Blob(['j']) }),
      }),
    ).toMatchObject(denied);
    expect(await call(`/api/v2/nodes/${inside}`, { method: 'DELETE' })).toMatchObject(denied);
  });

  it("keeps items with Content Server's Hidden property out of listings unless asked", async () => {
    const parent = folder();
    const shown = kit.server.addDocument(parent, 'shown.txt', 'a');
    const hidden = kit.server.addDocument(parent, 'hidden.txt', 'b');
    kit.server.setHidden(hidden);
    await login().then((r) => {
      ticket = r.body.ticket;
    });
    const ids = async (query = '') =>
      (await call(`/api/v2/nodes/${parent}/nodes${query}`)).body.results.map(
        (r: { data: { properties: { id: number } } }) => r.data.properties.id,
      );
    expect(await ids()).toEqual([shown]);
    expect(await ids('?show_hidden=true')).toEqual([hidden, shown]);
    const got = await call(`/api/v2/nodes/${hidden}`);
    expect(got.body.results.data.properties).toMatchObject({ id: hidden, hidden: true });
    const taken = await call('/api/v2/nodes', {
      method: 'POST',
      body: new URLSearchParams({ type: '0', parent_id: String(parent), name: 'HIDDEN.txt' }),
    });
    expect(taken.status).toBe(500);
  });

  it('hands out OTDS tokens that expire, and trades a live one for a ticket', async () => {
    kit.server.otds.addClient('cs-client', 'cs-secret');
    const token = async (fields: Record<string, string>) => {
      const response = await fetch(`${kit.url}/otdsws/oauth2/token`, {
        method: 'POST',
        body: new URLSearchParams(fields),
      });
      // biome-ignore lint/suspicious/noExplicitAny: checked by value
      return { status: response.status, body: (await response.json()) as any };
    };
    const refused = await token({
      grant_type: 'client_credentials',
      client_id: 'cs-client',
      client_secret: 'wrong',
    });
    expect(refused).toEqual({
      status: 401,
      body: { error: 'invalid_client', error_description: 'Client authentication failed' },
    });
    const granted = await token({
      grant_type: 'client_credentials',
      client_id: 'cs-client',
      client_secret: 'cs-secret',
    });
    expect(granted.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    const bearer = granted.body.access_token as string;
    const traded = await call('/api/v1/auth', { bearer });
    expect(traded.headers.get('otcsticket')).toBeTruthy();
    kit.server.otds.expireAll();
    expect((await call('/api/v1/auth', { bearer })).status).toBe(401);
  });

  it('writes dates on an older server without a zone, and tells its own time', async () => {
    const older = await startFile360Server({ timeZone: 'America/New_York' });
    try {
      older.server.addUser('u', 'p');
      const parent = older.server.addFolder(ENTERPRISE_WORKSPACE, 'Dated');
      const doc = older.server.addDocument(parent, 'a.txt', 'x', {
        modified: new Date('2025-01-19T11:57:04Z'),
      });
      const auth = await fetch(`${older.base}/api/v1/auth`, {
        method: 'POST',
        body: new URLSearchParams({ username: 'u', password: 'p' }),
      });
      const { ticket: t } = (await auth.json()) as { ticket: string };
      const node = await fetch(`${older.base}/api/v2/nodes/${doc}`, { headers: { otcsticket: t } });
      // biome-ignore lint/suspicious/noExplicitAny: checked by value
      const body: any = await node.json();
      expect(body.results.data.properties.modify_date).toBe('2025-01-19T06:57:04');
      const info = await fetch(`${older.base}/api/v1/serverinfo`, {
        headers: { otcsticket: node.headers.get('otcsticket') as string },
      });
      // biome-ignore lint/suspicious/noExplicitAny: checked by value
      const server: any = await info.json();
      expect(server.server.current_date).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
      const local = Date.parse(`${server.server.current_date}Z`);
      const utc = Date.parse(info.headers.get('date') as string);
      expect(Math.round((local - utc) / 3600_000)).toBeLessThanOrEqual(-4);
    } finally {
      await older.server.close();
    }
  });

  it('answers unknown routes with 404 and other methods with 405', async () => {
    expect((await call('/api/v2/unknown')).status).toBe(404);
    expect((await call('/api/v2/nodes/2000', { method: 'PATCH' })).status).toBe(405);
    expect((await call('/api/v2/nodes/abc')).body).toEqual({
      error: "Invalid datatype specified for argument 'id'",
    });
    expect(kit.server.requests.at(-1)).toMatchObject({ path: '/api/v2/nodes/abc', status: 400 });
  });
});
