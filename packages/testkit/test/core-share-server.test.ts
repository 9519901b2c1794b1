import { describe, expect, it } from 'vitest';
import { useCoreShare } from '../src/fixtures.js';

describe('the Core Share test server', () => {
  const kit = useCoreShare();
  let token = '';
  const getToken = async (fields: Record<string, string>) => {
    const response = await fetch(`${kit.otdsUrl}/otdsws/oauth2/token`, {
      method: 'POST',
      body: new URLSearchParams({
        client_id: kit.clientId,
        client_secret: kit.clientSecret,
        ...fields,
      }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: checked by value
    return { status: response.status, body: (await response.json()) as any };
  };
  const call = async (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const headers = new Headers(init.headers);
    headers.set('Authorization', `Bearer ${token}`);
    let body = init.body;
    if (init.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(init.json);
    }
    const response = await fetch(`${kit.url}${path}`, { ...init, headers, body });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: checked by value
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, text, body: json };
  };

  it('hands out tokens by the password grant (with a refresh token) and by client credentials', async () => {
    const password = await getToken({
      grant_type: 'password',
      username: kit.username,
      password: kit.password,
    });
    expect(password.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    expect(password.body.refresh_token).toBeTruthy();
    const refreshed = await getToken({
      grant_type: 'refresh_token',
      refresh_token: password.body.refresh_token,
    });
    expect(refreshed.status).toBe(200);
    const wrong = await getToken({ grant_type: 'password', username: kit.username, password: 'x' });
    expect(wrong).toEqual({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Invalid username or password' },
    });
    const client = await getToken({ grant_type: 'client_credentials' });
    token = client.body.access_token;
    expect(client.body.refresh_token).toBeUndefined();
    expect((await call(`/api/v1/folders/${kit.rootId}`)).status).toBe(200);
    kit.server.otds.expireAll();
    expect((await call(`/api/v1/folders/${kit.rootId}`)).status).toBe(401);
    token = (await getToken({ grant_type: 'client_credentials' })).body.access_token;
  });

  it('lists children with 19-digit string ids, paging through _links.next to an empty page', async () => {
    const parent = kit.server.addFolder(kit.rootId, 'Paging');
    for (let i = 0; i < 4; i++) kit.server.addDocument(parent, `doc-${i}.txt`, `doc ${i}`);
    const raw = await call(`/api/v1/folders/${parent}/children?limit=2&offset=0`);
    expect(raw.text).toMatch(/"id":"\d{19}"/);
    expect(raw.body.results[0]).toMatchObject({
      resourceType: 'document',
      parentId: parent,
      mimeType: 'text/plain',
      currentVersionNumber: 1,
      isDeleted: false,
    });
    expect(raw.body.results[0].lastModified).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(BigInt(raw.body.results[0].id)).toBeGreaterThan(BigInt(Number.MAX_SAFE_INTEGER));
    const second = await call(raw.body._links.next.href);
    expect(second.body.results).toHaveLength(2);
    const third = await call(second.body._links.next.href);
    expect(third.body.results).toEqual([]);
    // Without an offset the next link says NaN, as pyxecm's sample shows.
    const bare = await call(`/api/v1/folders/${parent}/children?limit=2`);
    expect(bare.body._links.next.href).toContain('offset=NaN');
    expect((await call(bare.body._links.next.href)).status).toBe(400);
    const folderJson = await call(`/api/v1/folders/${kit.rootId}`);
    expect(folderJson.body).toMatchObject({ resourceType: 'folder' });
    expect(typeof folderJson.body.childCount).toBe('string');
  });

  it('uploads documents and versions, serves content, refuses a taken name, trashes by state', async () => {
    const parent = kit.server.addFolder(kit.rootId, 'Uploads');
    const upload = (path: string, bytes: string, name = 'notes.txt') => {
      const form = new FormData();
      form.append('file', new Blob([bytes], { type: 'text/plain' }), name);
      form.append('description', 'sha256 abc');
      return call(path, { method: 'POST', body: form });
    };
    const created = await upload(`/api/v3/folders/${parent}/documents`, 'one');
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect((await upload(`/api/v3/folders/${parent}/documents`, 'x', 'NOTES.txt')).status).toBe(
      409,
    );
    const versioned = await upload(`/api/v3/documents/${id}/versions`, 'two');
    expect(versioned.body.currentVersionNumber).toBe(2);
    expect((await call(`/api/v1/documents/${id}/content`)).text).toBe('two');
    expect((await call(`/api/v1/documents/${id}/versions/1/content`)).text).toBe('one');
    const versions = await call(`/api/v1/documents/${id}/versions`);
    expect(versions.body.results.map((v: { versionNumber: number }) => v.versionNumber)).toEqual([
      2, 1,
    ]);
    const folder = await call('/api/v1/folders', {
      method: 'POST',
      json: { name: 'Sub', parentId: parent },
    });
    expect(folder.status).toBe(201);
    const trashed = await call(`/api/v1/documents/${id}`, {
      method: 'PUT',
      json: { state: 'deleted' },
    });
    expect(trashed.body.isDeleted).toBe(true);
    expect((await call(`/api/v1/documents/${id}`)).status).toBe(404);
    expect(kit.server.children(parent).map((c) => c.name)).toEqual(['Sub']);
    expect((await call(`/api/v1/folders/${id}`)).body).toEqual({
      code: 404,
      message: `No resource with id ${id}`,
    });
  });
});
