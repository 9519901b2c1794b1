import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { type drive_v3, drive as driveClient } from '@googleapis/drive';
import { OAuth2Client } from 'google-auth-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DriveServer, driveThrottle, startDriveServer } from '../src/gdrive-server.js';

const FOLDER = 'application/vnd.google-apps.folder';
const DOC = 'application/vnd.google-apps.document';
const SHEET = 'application/vnd.google-apps.spreadsheet';
const SHORTCUT = 'application/vnd.google-apps.shortcut';

/** What a client reads off a refused call: gaxios' error with the status and parsed body. */
interface Failure {
  status?: number;
  response?: { data: unknown };
}

async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (error) {
    return error as Failure;
  }
  throw new Error('the call succeeded');
}

const text = (data: unknown) => Buffer.from(data as ArrayBuffer).toString('utf8');
/** googleapis types response headers as a record, but hands over gaxios' Headers. */
const header = (response: { headers: unknown }, name: string) =>
  new Headers(response.headers as ConstructorParameters<typeof Headers>[0]).get(name);
const driveError = (
  code: number,
  message: string,
  reason: string,
  where: { location?: string; locationType?: string } = {},
) => ({ error: { code, message, errors: [{ message, domain: 'global', reason, ...where }] } });

describe('the Google Drive test server', () => {
  let server: DriveServer;
  let url: string;
  let stop: () => Promise<void>;
  let drive: drive_v3.Drive;
  /**
   * googleapis sends uploads to a media URL built from the call's own rootUrl, never the
   * client's, so upload calls pass it again.
   */
  let upload: { rootUrl: string };
  const client = (auth?: OAuth2Client) => driveClient({ version: 'v3', rootUrl: `${url}/`, auth });
  const tokenFor = (accessToken: string) => {
    const auth = new OAuth2Client();
    auth.setCredentials({ access_token: accessToken });
    return auth;
  };

  beforeAll(async () => {
    ({ server, url, stop } = await startDriveServer());
    server.addToken('test-token');
    drive = client(tokenFor('test-token'));
    upload = { rootUrl: `${url}/` };
  });
  afterAll(() => stop());

  it('refuses calls without a token, with an unknown one and with an expired one', async () => {
    const missing = await failure(client().files.list());
    expect(missing.status).toBe(401);
    expect(missing.response?.data).toEqual({
      error: {
        code: 401,
        message:
          'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
        errors: [
          {
            message: 'Login Required.',
            domain: 'global',
            reason: 'required',
            location: 'Authorization',
            locationType: 'header',
          },
        ],
        status: 'UNAUTHENTICATED',
      },
    });
    server.addToken('ya29.expired', 0);
    for (const token of ['ya29.unknown', 'ya29.expired']) {
      const refused = await failure(client(tokenFor(token)).files.list());
      expect(refused.status).toBe(401);
      expect(refused.response?.data).toEqual({
        error: {
          code: 401,
          message: expect.stringMatching(/^Request had invalid authentication credentials\. /),
          errors: [
            {
              message: 'Invalid Credentials',
              domain: 'global',
              reason: 'authError',
              location: 'Authorization',
              locationType: 'header',
            },
          ],
          status: 'UNAUTHENTICATED',
        },
      });
    }
  });

  it('grants access tokens for a refresh token, which the client renews when refused', async () => {
    server.addRefreshToken('1//refresh', 'sluice.apps.googleusercontent.com', 'client-secret');
    const oauth = (clientSecret: string, refreshToken: string) => {
      const auth = new OAuth2Client({
        clientId: 'sluice.apps.googleusercontent.com',
        clientSecret,
        endpoints: { oauth2TokenUrl: `${url}/token` },
      });
      auth.setCredentials({ refresh_token: refreshToken });
      return auth;
    };
    const grants = () => server.requests.filter((r) => r.path === '/token').length;
    const before = grants();
    const auth = oauth('client-secret', '1//refresh');
    const user = client(auth);
    await user.files.list();
    expect(grants()).toBe(before + 1);
    expect(auth.credentials.access_token).toMatch(/^ya29\./);
    expect(auth.credentials.expiry_date).toBeGreaterThan(Date.now() + 3_500_000);

    // A stored token that has expired since: refused, renewed, and the call made again.
    server.addToken('ya29.stale', 0);
    auth.setCredentials({ access_token: 'ya29.stale', refresh_token: '1//refresh' });
    const { data } = await user.files.list({ fields: 'kind' });
    expect(data).toEqual({ kind: 'drive#fileList' });
    expect(grants()).toBe(before + 2);
    expect(auth.credentials.access_token).not.toBe('ya29.stale');

    const wrongSecret = await failure(oauth('wrong', '1//refresh').getAccessToken());
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.response?.data).toEqual({
      error: 'invalid_client',
      error_description: 'Unauthorized',
    });
    const revoked = await failure(oauth('client-secret', '1//revoked').getAccessToken());
    expect(revoked.status).toBe(400);
    expect(revoked.response?.data).toEqual({
      error: 'invalid_grant',
      error_description: 'Bad Request',
    });
  });

  it('lists with q, pages, fields and orderBy', async () => {
    const folder = server.createFolder('listing');
    server.createFile({ name: 'b.txt', parentId: folder, content: 'b' });
    server.createFile({
      name: 'a.jsonl',
      parentId: folder,
      content: '{}\n',
      modifiedTime: '2020-01-01T00:00:00.000Z',
    });
    server.createFile({ name: 'c.csv', parentId: folder, content: 'x,y\n' });
    server.createFolder('sub', folder);
    server.createDoc('notes', folder, { text: 'Some notes' });
    server.createFile({ name: "it's.txt", parentId: folder, content: 'quoted' });
    server.trash(server.createFile({ name: 'old.txt', parentId: folder, content: 'old' }));

    const q = `'${folder}' in parents and trashed = false and not name contains 'it'`;
    const pages: string[][] = [];
    let pageToken: string | undefined;
    do {
      const { data } = await drive.files.list({
        q,
        pageSize: 2,
        orderBy: 'folder,name desc',
        fields: 'nextPageToken,files(id,name,mimeType,size)',
        pageToken,
      });
      expect(data.kind).toBeUndefined();
      pages.push((data.files ?? []).map((f) => f.name as string));
      pageToken = data.nextPageToken ?? undefined;
    } while (pageToken);
    expect(pages).toEqual([['sub', 'notes'], ['c.csv', 'b.txt'], ['a.jsonl']]);
    expect(
      server.requests.filter((r) => r.path === '/drive/v3/files' && r.query.get('q') === q),
    ).toHaveLength(3);

    // Without fields: kind, incompleteSearch and files cut to kind, id, name and mimeType;
    // trashed files are listed unless q leaves them out.
    const { data: plain } = await drive.files.list({ q: `'${folder}' in parents` });
    expect(Object.keys(plain).sort()).toEqual(['files', 'incompleteSearch', 'kind']);
    expect(plain).toMatchObject({ kind: 'drive#fileList', incompleteSearch: false });
    expect(plain.files?.[0]).toEqual({
      kind: 'drive#file',
      id: expect.any(String),
      name: 'b.txt',
      mimeType: 'text/plain',
    });
    expect(plain.files?.map((f) => f.name)).toContain('old.txt');

    const names = async (query: string) =>
      ((await drive.files.list({ q: query, orderBy: 'name' })).data.files ?? []).map((f) => f.name);
    const inFolder = `'${folder}' in parents and trashed = false`;
    expect(await names(`${inFolder} and mimeType = '${FOLDER}'`)).toEqual(['sub']);
    expect(
      await names(
        `${inFolder} and not (mimeType = '${FOLDER}' or mimeType contains 'google-apps')`,
      ),
    ).toEqual(['a.jsonl', 'b.txt', 'c.csv', "it's.txt"]);
    expect(await names(`${inFolder} and name = 'it\\'s.txt'`)).toEqual(["it's.txt"]);
    expect(await names(`${inFolder} and (name contains 'B' or name contains 'no')`)).toEqual([
      'b.txt',
      'notes',
    ]);
    expect(await names(`${inFolder} AND modifiedTime < '2021-01-01T00:00:00'`)).toEqual([
      'a.jsonl',
    ]);

    const small = await startDriveServer({ maxPageSize: 1 });
    try {
      small.server.addToken('t');
      small.server.createFolder('one');
      small.server.createFolder('two');
      const capped = await driveClient({
        version: 'v3',
        rootUrl: `${small.url}/`,
        auth: tokenFor('t'),
      }).files.list({ pageSize: 50 });
      expect(capped.data.files).toHaveLength(1);
      expect(capped.data.nextPageToken).toEqual(expect.any(String));
    } finally {
      await small.stop();
    }

    const badQuery = await failure(drive.files.list({ q: "name = 'x' and" }));
    expect(badQuery.status).toBe(400);
    expect(badQuery.response?.data).toEqual(
      driveError(400, 'Invalid Value', 'invalid', { location: 'q', locationType: 'parameter' }),
    );
    const badToken = await failure(drive.files.list({ q, pageToken: 'not-a-token' }));
    expect(badToken.response?.data).toEqual(
      driveError(400, 'Invalid Value', 'invalid', {
        location: 'pageToken',
        locationType: 'parameter',
      }),
    );
    const badField = await failure(drive.files.list({ fields: 'files(id,nmae)' }));
    expect(badField.response?.data).toEqual(
      driveError(400, 'Invalid field selection nmae', 'invalidParameter', {
        location: 'fields',
        locationType: 'parameter',
      }),
    );
  });

  it('shows shared-drive items only to callers that support all drives', async () => {
    const driveId = server.createSharedDrive('Team');
    const folder = server.createFolder('shared-folder', driveId);
    const fileId = server.createFile({ name: 'team.txt', parentId: folder, content: 'team' });
    const q = `'${folder}' in parents`;
    expect((await drive.files.list({ q })).data.files).toEqual([]);
    expect((await drive.files.list({ q, supportsAllDrives: true })).data.files).toEqual([]);
    const both = await drive.files.list({
      q,
      supportsAllDrives: true,
      includeItemsFromAllDrives: true,
      fields: 'files(id,driveId)',
    });
    expect(both.data.files).toEqual([{ id: fileId, driveId }]);
    const inDrive = await drive.files.list({
      corpora: 'drive',
      driveId,
      supportsAllDrives: true,
      includeItemsFromAllDrives: true,
      fields: 'files(name)',
    });
    expect(inDrive.data.files).toEqual([{ name: 'shared-folder' }, { name: 'team.txt' }]);

    const noInclude = await failure(
      drive.files.list({ corpora: 'drive', driveId, supportsAllDrives: true }),
    );
    expect(noInclude.status).toBe(403);
    expect(noInclude.response?.data).toMatchObject({
      error: { errors: [{ reason: 'teamDriveIncludeItemsRequired' }] },
    });
    const noDriveId = await failure(
      drive.files.list({
        corpora: 'drive',
        supportsAllDrives: true,
        includeItemsFromAllDrives: true,
      }),
    );
    expect(noDriveId.status).toBe(400);
    expect(noDriveId.response?.data).toMatchObject({
      error: {
        message: 'The driveId parameter must be specified if and only if corpora is set to drive.',
        errors: [{ reason: 'teamDriveIdRequiresTeamDriveCorpora' }],
      },
    });

    const hidden = await failure(drive.files.get({ fileId }));
    expect(hidden.response?.data).toEqual(
      driveError(404, `File not found: ${fileId}.`, 'notFound', {
        location: 'fileId',
        locationType: 'parameter',
      }),
    );
    const seen = await drive.files.get({
      fileId,
      supportsAllDrives: true,
      fields: 'id,driveId,parents',
    });
    expect(seen.data).toEqual({ id: fileId, driveId, parents: [folder] });
    const root = await drive.files.get({ fileId: driveId, supportsAllDrives: true });
    expect(root.data).toMatchObject({ id: driveId, name: 'Team', mimeType: FOLDER });
  });

  it('serves metadata, media and byte ranges, and 404s unknown files', async () => {
    const id = server.createFile({ name: 'hello.txt', content: 'hello world' });
    const { data } = await drive.files.get({ fileId: id, fields: '*' });
    expect(data).toMatchObject({
      kind: 'drive#file',
      id,
      name: 'hello.txt',
      mimeType: 'text/plain',
      parents: [server.rootId],
      trashed: false,
      size: '11',
      md5Checksum: createHash('md5').update('hello world').digest('hex'),
      version: '1',
      headRevisionId: expect.any(String),
    });
    expect((await drive.files.get({ fileId: id })).data).toEqual({
      kind: 'drive#file',
      id,
      name: 'hello.txt',
      mimeType: 'text/plain',
    });
    expect((await drive.files.get({ fileId: 'root', fields: 'id,name' })).data).toEqual({
      id: server.rootId,
      name: 'My Drive',
    });

    const media = await drive.files.get(
      { fileId: id, alt: 'media' },
      { responseType: 'arraybuffer' },
    );
    expect(text(media.data)).toBe('hello world');
    expect(header(media, 'content-type')).toBe('text/plain');
    const part = await drive.files.get(
      { fileId: id, alt: 'media' },
      { responseType: 'arraybuffer', headers: { Range: 'bytes=6-' } },
    );
    expect(part.status).toBe(206);
    expect(header(part, 'content-range')).toBe('bytes 6-10/11');
    expect(text(part.data)).toBe('world');
    const beyond = await failure(
      drive.files.get(
        { fileId: id, alt: 'media' },
        { responseType: 'arraybuffer', headers: { Range: 'bytes=20-' } },
      ),
    );
    expect(beyond.status).toBe(416);

    const missing = await failure(drive.files.get({ fileId: 'no-such-file' }));
    expect(missing.status).toBe(404);
    expect(missing.response?.data).toEqual(
      driveError(404, 'File not found: no-such-file.', 'notFound', {
        location: 'fileId',
        locationType: 'parameter',
      }),
    );
  });

  it('exports Docs and Sheets, and refuses what Drive refuses', async () => {
    const doc = server.createDoc('Guidelines', 'root', { text: 'Tag <b>people</b>\nand places' });
    const exported = async (fileId: string, mimeType: string) =>
      text((await drive.files.export({ fileId, mimeType }, { responseType: 'arraybuffer' })).data);
    expect(await exported(doc, 'text/plain')).toBe('\ufeffTag <b>people</b>\r\nand places');
    expect(await exported(doc, 'text/html')).toContain(
      '<body><p><span>Tag &lt;b&gt;people&lt;/b&gt;</span></p><p><span>and places</span></p></body>',
    );
    expect(await exported(doc, 'text/markdown')).toBe('Tag <b>people</b>\nand places');
    const sheet = server.createSheet('Labels', 'root', 'label,color\nPERSON,red\n');
    expect(await exported(sheet, 'text/csv')).toBe('label,color\nPERSON,red\n');
    const slides = server.createSlides('Deck', 'root', 'Slide one');
    expect(await exported(slides, 'text/plain')).toBe('Slide one');

    const binary = server.createFile({ name: 'paper.pdf', content: '%PDF-1.7' });
    const notExportable = await failure(
      drive.files.export({ fileId: binary, mimeType: 'text/plain' }),
    );
    expect(notExportable.status).toBe(403);
    expect(notExportable.response?.data).toEqual(
      driveError(403, 'Export only supports Docs Editors files.', 'fileNotExportable'),
    );
    const noConversion = await failure(
      drive.files.export({ fileId: doc, mimeType: 'application/x-sluice' }),
    );
    expect(noConversion.response?.data).toEqual(
      driveError(400, 'The requested conversion is not supported.', 'badRequest', {
        location: 'convertTo',
        locationType: 'parameter',
      }),
    );
    const notDownloadable = await failure(
      drive.files.get({ fileId: doc, alt: 'media' }, { responseType: 'arraybuffer' }),
    );
    expect(notDownloadable.status).toBe(403);
    expect(notDownloadable.response?.data).toEqual(
      driveError(
        403,
        'Only files with binary content can be downloaded. Use Export with Docs Editors files.',
        'fileNotDownloadable',
        { location: 'alt', locationType: 'parameter' },
      ),
    );
    const huge = server.createFile({
      name: 'Huge',
      mimeType: DOC,
      exports: { 'text/plain': Buffer.alloc(10 * 1024 * 1024 + 1, 97) },
    });
    const tooLarge = await failure(drive.files.export({ fileId: huge, mimeType: 'text/plain' }));
    expect(tooLarge.status).toBe(403);
    expect(tooLarge.response?.data).toMatchObject({
      error: { errors: [{ reason: 'exportSizeLimitExceeded' }] },
    });
    // An HTML conversion that large fails inside Drive instead: a 500 a retry cannot mend.
    const hugeHtml = server.createFile({
      name: 'Huge HTML',
      mimeType: DOC,
      exports: { 'text/html': Buffer.alloc(10 * 1024 * 1024 + 1, 97) },
    });
    const failed = await failure(
      drive.files.export({ fileId: hugeHtml, mimeType: 'text/html' }, { retry: false }),
    );
    expect(failed.status).toBe(500);
    expect(failed.response?.data).toEqual(driveError(500, 'Internal Error', 'internalError'));
  });

  it('creates folders, shortcuts and files, converting text to Docs and CSV to Sheets', async () => {
    const { data: folder } = await drive.files.create({
      requestBody: { name: 'made', mimeType: FOLDER, parents: ['root'] },
      fields: 'id,name,mimeType,parents',
    });
    expect(folder).toEqual({
      id: expect.any(String),
      name: 'made',
      mimeType: FOLDER,
      parents: [server.rootId],
    });
    const parents = [folder.id as string];
    const { data: file } = await drive.files.create(
      {
        requestBody: { name: 'tasks.jsonl', parents, appProperties: { sluice: 'part' } },
        media: { mimeType: 'application/jsonl', body: Readable.from(['{"text":"a"}\n']) },
        fields: 'id,size,mimeType,appProperties',
      },
      upload,
    );
    expect(file).toMatchObject({
      size: '13',
      mimeType: 'application/jsonl',
      appProperties: { sluice: 'part' },
    });
    expect(server.file(file.id as string)?.content?.toString()).toBe('{"text":"a"}\n');
    const twin = await drive.files.create(
      { requestBody: { name: 'tasks.jsonl', parents }, media: { body: 'again' } },
      upload,
    );
    expect(twin.data.id).not.toBe(file.id);
    expect(server.children(parents[0] as string).map((f) => f.name)).toEqual([
      'tasks.jsonl',
      'tasks.jsonl',
    ]);

    const { data: shortcut } = await drive.files.create({
      requestBody: {
        name: 'link',
        mimeType: SHORTCUT,
        parents,
        shortcutDetails: { targetId: file.id as string },
      },
      fields: 'mimeType,shortcutDetails',
    });
    expect(shortcut).toEqual({
      mimeType: SHORTCUT,
      shortcutDetails: { targetId: file.id, targetMimeType: 'application/jsonl' },
    });

    const { data: doc } = await drive.files.create(
      {
        requestBody: { name: 'Guide', mimeType: DOC, parents },
        media: { mimeType: 'text/html', body: '<html><body><p>Be kind</p></body></html>' },
        fields: 'id,mimeType,size',
      },
      upload,
    );
    // A Doc reports the storage it takes as its size: not what any export of it weighs.
    expect(doc).toEqual({ id: expect.any(String), mimeType: DOC, size: expect.any(String) });
    const plain = await drive.files.export(
      { fileId: doc.id as string, mimeType: 'text/plain' },
      { responseType: 'arraybuffer' },
    );
    expect(text(plain.data)).toBe('\ufeffBe kind');
    expect(Number(doc.size)).not.toBe(Buffer.byteLength(text(plain.data)));
    const { data: sheet } = await drive.files.create(
      {
        requestBody: { name: 'Labels', mimeType: SHEET, parents },
        media: { mimeType: 'text/csv', body: 'a,b\n1,2\n' },
        fields: 'id,mimeType',
      },
      upload,
    );
    expect(server.file(sheet.id as string)?.exports?.['text/csv']?.toString()).toBe('a,b\n1,2\n');
    // Media Drive does not convert keeps its own type.
    const { data: image } = await drive.files.create(
      {
        requestBody: { name: 'scan', mimeType: DOC, parents },
        media: { mimeType: 'image/png', body: Readable.from([Buffer.from([137, 80, 78, 71])]) },
        fields: 'mimeType,size',
      },
      upload,
    );
    expect(image).toEqual({ mimeType: 'image/png', size: '4' });
    const { data: bare } = await drive.files.create(
      { media: { mimeType: 'text/plain', body: 'no metadata' }, fields: 'name,parents' },
      upload,
    );
    expect(bare).toEqual({ name: 'Untitled', parents: [server.rootId] });
  });

  it('takes resumable uploads in 256 KiB chunks, with 308, Range and a status query', async () => {
    const auth = tokenFor('test-token');
    const data = Buffer.alloc(3 * 262_144 + 1000);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    const start = await auth.request({
      url: `${url}/upload/drive/v3/files?uploadType=resumable&fields=id,name,size,md5Checksum`,
      method: 'POST',
      headers: {
        'X-Upload-Content-Type': 'application/octet-stream',
        'X-Upload-Content-Length': String(data.length),
      },
      data: { name: 'big.bin', parents: ['root'] },
    });
    expect(start.status).toBe(200);
    const session = start.headers.get('location') as string;
    expect(session).toMatch(/\/upload\/drive\/v3\/files\?.*upload_id=/);
    const put = (range: string, body?: Buffer) =>
      auth.request<unknown>({
        url: session,
        method: 'PUT',
        headers: { 'Content-Range': range },
        data: body,
        validateStatus: (status) => status === 200 || status === 308,
      });
    const total = data.length;
    const chunk = (from: number, to: number) =>
      put(`bytes ${from}-${to - 1}/${to === total ? total : '*'}`, data.subarray(from, to));

    const odd = await failure(put('bytes 0-999/*', data.subarray(0, 1000)));
    expect(odd.status).toBe(400);
    expect(JSON.stringify(odd.response?.data)).toMatch(/equal or greater than 262144/);
    let answer = await chunk(0, 262_144);
    expect([answer.status, answer.headers.get('range')]).toEqual([308, 'bytes=0-262143']);
    answer = await chunk(262_144, 524_288);
    expect([answer.status, answer.headers.get('range')]).toEqual([308, 'bytes=0-524287']);
    answer = await put(`bytes */${total}`);
    expect([answer.status, answer.headers.get('range')]).toEqual([308, 'bytes=0-524287']);
    answer = await chunk(524_288, 786_432);
    expect([answer.status, answer.headers.get('range')]).toEqual([308, 'bytes=0-786431']);
    answer = await chunk(786_432, total);
    expect(answer.status).toBe(200);
    expect(answer.data).toEqual({
      id: expect.any(String),
      name: 'big.bin',
      size: String(total),
      md5Checksum: createHash('md5').update(data).digest('hex'),
    });
    const id = (answer.data as { id: string }).id;
    expect(server.file(id)?.content?.equals(data)).toBe(true);

    // New content for the same file, in one resumable request.
    const update = await auth.request({
      url: `${url}/upload/drive/v3/files/${id}?uploadType=resumable&fields=size`,
      method: 'PATCH',
      headers: { 'X-Upload-Content-Type': 'application/octet-stream' },
    });
    const replaced = await auth.request({
      url: update.headers.get('location') as string,
      method: 'PUT',
      headers: { 'Content-Range': 'bytes 0-2/3' },
      data: Buffer.from('new'),
    });
    expect(replaced.data).toEqual({ size: '3' });
    expect(server.file(id)?.content?.toString()).toBe('new');
  });

  it('updates content, appProperties and parents, and finds files by appProperties', async () => {
    const id = server.createFile({
      name: 'state.json',
      content: '{}',
      appProperties: { sluice: 'state', run: '1' },
    });
    const before = { ...server.file(id) };
    const { data: props } = await drive.files.update({
      fileId: id,
      // null deletes a key, as on Drive; the typings leave that out.
      requestBody: { appProperties: { run: null, dataset: 'news' } as never },
      fields: 'appProperties,version,modifiedTime',
    });
    expect(props).toEqual({
      appProperties: { sluice: 'state', dataset: 'news' },
      version: '2',
      modifiedTime: before.modifiedTime,
    });
    const found = await drive.files.list({
      q: "appProperties has { key='dataset' and value='news' } and trashed = false",
      fields: 'files(id)',
    });
    expect(found.data.files).toEqual([{ id }]);

    const { data: content } = await drive.files.update(
      {
        fileId: id,
        media: { mimeType: 'application/json', body: '{"a":1}' },
        fields: 'size,md5Checksum,headRevisionId,version',
      },
      upload,
    );
    expect(content).toMatchObject({ size: '7', version: '3' });
    expect(content.headRevisionId).not.toBe(before.headRevisionId);
    expect(server.file(id)?.content?.toString()).toBe('{"a":1}');
    const doc = server.createDoc('Notes', 'root', { text: 'old' });
    await drive.files.update(
      { fileId: doc, media: { mimeType: 'text/plain', body: 'new' } },
      upload,
    );
    expect(server.file(doc)?.exports?.['text/markdown']?.toString()).toBe('new');

    const dest = server.createFolder('dest');
    await drive.files.update({ fileId: id, addParents: dest, removeParents: 'root' });
    expect(server.file(id)?.parents).toEqual([dest]);
    const second = await failure(drive.files.update({ fileId: id, addParents: 'root' }));
    expect(second.status).toBe(403);
    expect(second.response?.data).toMatchObject({
      error: { errors: [{ reason: 'cannotAddParent' }] },
    });
    const direct = await failure(
      drive.files.update({ fileId: id, requestBody: { parents: ['root'] } }),
    );
    expect(direct.response?.data).toMatchObject({
      error: { errors: [{ reason: 'fieldNotWritable' }] },
    });

    // A trashed folder takes its contents with it; deleting it deletes them.
    await drive.files.update({ fileId: dest, requestBody: { trashed: true } });
    expect(server.file(id)?.trashed).toBe(true);
    expect(server.children('root').map((f) => f.id)).not.toContain(dest);
    await drive.files.delete({ fileId: dest });
    expect(server.file(id)).toBeUndefined();
  });

  it('feeds changes from a start token, each file once at its latest change', async () => {
    const {
      data: { kind, startPageToken },
    } = await drive.changes.getStartPageToken({});
    expect(kind).toBe('drive#startPageToken');
    const folder = server.createFolder('watched');
    const a = server.createFile({ name: 'a.txt', parentId: folder, content: 'a' });
    const b = server.createFile({ name: 'b.txt', parentId: folder, content: 'b' });
    server.rename(a, 'a2.txt');
    server.trash(b);

    const pages: unknown[][] = [];
    let pageToken = startPageToken as string | undefined;
    let newStartPageToken: string | undefined;
    while (pageToken) {
      const { data } = await drive.changes.list({
        pageToken,
        pageSize: 2,
        fields: 'nextPageToken,newStartPageToken,changes(fileId,removed,file(name,trashed))',
      });
      pages.push(data.changes ?? []);
      pageToken = data.nextPageToken ?? undefined;
      newStartPageToken = data.newStartPageToken ?? undefined;
    }
    expect(pages).toEqual([
      [
        { fileId: folder, removed: false, file: { name: 'watched', trashed: false } },
        { fileId: a, removed: false, file: { name: 'a2.txt', trashed: false } },
      ],
      [{ fileId: b, removed: false, file: { name: 'b.txt', trashed: true } }],
    ]);
    const idle = await drive.changes.list({ pageToken: newStartPageToken });
    expect(idle.data).toEqual({
      kind: 'drive#changeList',
      newStartPageToken,
      changes: [],
    });

    await drive.files.delete({ fileId: a });
    server.updateContent(b, 'b, edited');
    const { data } = await drive.changes.list({ pageToken: newStartPageToken });
    expect(data.changes).toEqual([
      {
        kind: 'drive#change',
        changeType: 'file',
        type: 'file',
        time: expect.any(String),
        removed: true,
        fileId: a,
      },
      {
        kind: 'drive#change',
        changeType: 'file',
        type: 'file',
        time: expect.any(String),
        removed: false,
        fileId: b,
        file: { kind: 'drive#file', id: b, name: 'b.txt', mimeType: 'text/plain' },
      },
    ]);
    const withoutRemoved = await drive.changes.list({
      pageToken: newStartPageToken,
      includeRemoved: false,
      fields: 'changes(fileId)',
    });
    expect(withoutRemoved.data.changes).toEqual([{ fileId: b }]);

    const badToken = await failure(drive.changes.list({ pageToken: 'latest' }));
    expect(badToken.status).toBe(400);
    // googleapis will not send changes.list without pageToken; the auth client's request will.
    const noToken = await failure(
      tokenFor('test-token').request({ url: `${url}/drive/v3/changes` }),
    );
    expect(noToken.response?.data).toEqual(
      driveError(400, 'Required parameter: pageToken', 'required', {
        location: 'pageToken',
        locationType: 'parameter',
      }),
    );
  });

  it('serves images for Doc HTML without auth', async () => {
    const png = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
    const link = server.addImage('figure-1.png', png, 'image/png');
    expect(link).toBe(`${url}/images/figure-1.png`);
    // Doc HTML links to public image URLs: a plain GET, as a browser would fetch them.
    const response = await fetch(link);
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await response.arrayBuffer()).equals(png)).toBe(true);
  });

  describe('as Google treats callers', () => {
    it('keeps appProperties private to the OAuth client that wrote them; properties are public', async () => {
      server.addToken('client-a', undefined, { clientId: 'a.apps.googleusercontent.com' });
      server.addToken('client-b', undefined, { clientId: 'b.apps.googleusercontent.com' });
      const [a, b] = [client(tokenFor('client-a')), client(tokenFor('client-b'))];
      const folder = server.createFolder('per-client');
      const { data } = await a.files.create({
        requestBody: {
          name: 'marked',
          parents: [folder],
          appProperties: { run: 'a' },
          properties: { run: 'public' },
        },
        fields: 'id',
      });
      const fields = 'appProperties,properties';
      expect((await a.files.get({ fileId: data.id as string, fields })).data).toEqual({
        appProperties: { run: 'a' },
        properties: { run: 'public' },
      });
      expect((await b.files.get({ fileId: data.id as string, fields })).data).toEqual({
        properties: { run: 'public' },
      });
      const find = async (drive: drive_v3.Drive, q: string) =>
        (await drive.files.list({ q: `'${folder}' in parents and ${q}` })).data.files ?? [];
      expect(await find(a, "appProperties has { key='run' and value='a' }")).toHaveLength(1);
      expect(await find(b, "appProperties has { key='run' and value='a' }")).toHaveLength(0);
      expect(await find(b, "properties has { key='run' and value='public' }")).toHaveLength(1);
    });

    it('refuses a token without a Drive scope, and writes with a read-only one', async () => {
      // What `gcloud auth print-access-token` gives by default: no Drive scope.
      server.addToken('cloud-only', undefined, {
        scopes: ['https://www.googleapis.com/auth/cloud-platform'],
      });
      server.addToken('read-only', undefined, {
        scopes: ['https://www.googleapis.com/auth/drive.readonly'],
      });
      const refused = await failure(client(tokenFor('cloud-only')).files.list());
      expect(refused.status).toBe(403);
      expect(refused.response?.data).toMatchObject({
        error: {
          code: 403,
          message: 'Request had insufficient authentication scopes.',
          errors: [
            {
              message: 'Insufficient Permission',
              domain: 'global',
              reason: 'insufficientPermissions',
            },
          ],
          status: 'PERMISSION_DENIED',
          details: [{ reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT' }],
        },
      });
      const reader = client(tokenFor('read-only'));
      expect((await reader.files.list()).status).toBe(200);
      const write = await failure(reader.files.create({ requestBody: { name: 'x' } }));
      expect(write.status).toBe(403);
    });

    it('lets a service account create folders anywhere, but files only in shared drives', async () => {
      server.addToken('robot', undefined, { serviceAccount: true });
      const robot = client(tokenFor('robot'));
      const mine = server.createFolder('shared with the robot');
      const { data: folder } = await robot.files.create({
        requestBody: { name: 'sub', mimeType: FOLDER, parents: [mine] },
        fields: 'id',
      });
      const refused = await failure(
        robot.files.create({ requestBody: { name: 'a.txt', parents: [folder.id as string] } }),
      );
      expect(refused.status).toBe(403);
      expect(refused.response?.data).toEqual({
        error: {
          code: 403,
          message:
            'Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.',
          errors: [
            {
              message:
                'Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation (http://support.google.com/a/answer/7281227) instead.',
              domain: 'usageLimits',
              reason: 'storageQuotaExceeded',
            },
          ],
        },
      });
      const team = server.createSharedDrive('Team');
      const { data: file } = await robot.files.create({
        requestBody: { name: 'a.txt', parents: [team] },
        supportsAllDrives: true,
        fields: 'id,driveId',
      });
      expect(file.driveId).toBe(team);
    });

    it("throttles a user over the quota with Drive's own answer", async () => {
      const {
        server: busy,
        url: busyUrl,
        stop: stopBusy,
      } = await startDriveServer({
        userRateLimit: { requests: 2, perSeconds: 60 },
      });
      try {
        busy.addToken('t');
        const limited = driveClient({ version: 'v3', rootUrl: `${busyUrl}/`, auth: tokenFor('t') });
        await limited.files.list();
        await limited.files.list();
        const throttled = await failure(limited.files.list({}, { retry: false }));
        expect(throttled.status).toBe(403);
        expect(throttled.response?.data).toEqual(
          JSON.parse(driveThrottle('userRateLimitExceeded').body),
        );
        expect(throttled.response?.data).toMatchObject({
          error: { errors: [{ domain: 'usageLimits', reason: 'userRateLimitExceeded' }] },
        });
      } finally {
        await stopBusy();
      }
    });

    it('versions a shared or commented file without touching its modifiedTime', async () => {
      const doc = server.createDoc('Shared', 'root', { text: 'same text' });
      const before = server.file(doc);
      const [version, modified] = [before?.version, before?.modifiedTime];
      server.share(doc);
      expect(server.file(doc)?.version).not.toBe(version);
      expect(server.file(doc)?.modifiedTime).toBe(modified);
    });

    it('says when an allDrives search did not cover every shared drive', async () => {
      const {
        server: wide,
        url: wideUrl,
        stop: stopWide,
      } = await startDriveServer({
        searchableSharedDrives: 1,
      });
      try {
        wide.addToken('t');
        const first = wide.createSharedDrive('First');
        const second = wide.createSharedDrive('Second');
        wide.createFile({ name: 'one.txt', parentId: first, content: '1' });
        wide.createFile({ name: 'two.txt', parentId: second, content: '2' });
        const search = driveClient({ version: 'v3', rootUrl: `${wideUrl}/`, auth: tokenFor('t') });
        const common = { supportsAllDrives: true, includeItemsFromAllDrives: true };
        const all = await search.files.list({
          ...common,
          corpora: 'allDrives',
          q: "name contains 't'",
          fields: 'incompleteSearch,files(name)',
        });
        expect(all.data).toEqual({ incompleteSearch: true, files: [{ name: 'one.txt' }] });
        const one = await search.files.list({
          ...common,
          corpora: 'drive',
          driveId: second,
          fields: 'incompleteSearch,files(name)',
        });
        expect(one.data).toEqual({ incompleteSearch: false, files: [{ name: 'two.txt' }] });
      } finally {
        await stopWide();
      }
    });
  });
});
