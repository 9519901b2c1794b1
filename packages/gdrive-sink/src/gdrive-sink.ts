import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import {
  createSink,
  folderPaths,
  retrying,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  type StagedPart,
} from '@sluice/core';
import {
  createDrive,
  type Drive,
  type DriveConnectionOptions,
  driveCall,
  driveError,
  FOLDER_TYPE,
  GDRIVE_CONNECTOR,
  isNotFound,
  ONE_TRY,
  parseDriveUrl,
  WRITE_SCOPE,
} from '@sluice/gdrive-source';

/** Options of the Drive sink: core sink options, the connection, and where to write. */
export interface GdriveSinkOptions extends SinkOptions, DriveConnectionOptions {
  /** Export root: `gdrive://folder/<id>/path`, with {dataset} {date} {timestamp} in the path. */
  url: string;
  /** Bytes per request of a resumable upload (default 8 MiB; a multiple of 256 KiB). */
  chunkSize?: number;
}

const DEFAULT_CHUNK = 8 * 1024 * 1024;
const CHUNK_MULTIPLE = 256 * 1024;
const CHUNK_RETRIES = 5;
/**
 * The property that marks a file Sluice wrote, with the file's name under its folder. A
 * public property, not an appProperty: appProperties are private to the OAuth client that
 * wrote them, and a rerun with other credentials (a service account, a user's token, ADC)
 * would not find the files. https://developers.google.com/drive/api/guides/properties
 */
const KEY_PROPERTY = 'sluice_key';
/** Drive limits a property's key plus value to 124 bytes. */
const PROPERTY_BYTES = 124;

type Auth = {
  request<T>(options: Record<string, unknown>): Promise<{
    status: number;
    data: T;
    headers: Headers | Record<string, string>;
  }>;
};

const quote = (value: string) => value.replaceAll('\\', '\\\\').replaceAll("'", "\\'");

/** A value that fits Drive's property limit; a long one becomes its sha256 prefix. */
function propertyValue(key: string, value: string): string {
  if (Buffer.byteLength(key) + Buffer.byteLength(value) <= PROPERTY_BYTES) return value;
  return `sha256:${createHash('sha256').update(value).digest('hex').slice(0, 32)}`;
}

function header(headers: Headers | Record<string, string>, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  return (headers as Record<string, string>)[name.toLowerCase()];
}

/**
 * Builds the driver over an export root. Folders of the path are found by name, or created
 * when a write needs them (the oldest wins if a name is doubled); files are found by the
 * `sluice_key` property, so the sink never touches a file a person put there under the same
 * name. Drive has no conditional write: the manifest is replaced only if its `version` is
 * still the one read (checked just before the upload, so two runs committing in the same
 * instant may both succeed); a new manifest is created, then the oldest of its name wins and
 * a younger one is trashed.
 *
 * Every request is retried with backoff on Drive's throttling (403 rate limits, 429), 5xx
 * and dropped connections, and made safe to repeat: a folder created twice after a lost
 * answer resolves to the oldest of the name, an upload session started twice leaves an
 * unused session, trashing is idempotent, and a chunk asks where the server stopped.
 */
export async function createGdriveSinkDriver(
  rootUrl: string,
  options: GdriveSinkOptions,
): Promise<SinkDriver> {
  const target = parseDriveUrl(rootUrl);
  if (target.kind !== 'folder') {
    throw new SluiceError(`${rootUrl}: a sink writes into a folder`, {
      code: 'USAGE',
      hint: 'use gdrive://folder/<id>/exports/{dataset}',
    });
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  if (chunkSize < CHUNK_MULTIPLE || chunkSize % CHUNK_MULTIPLE !== 0) {
    throw new Error(`chunkSize must be a multiple of ${CHUNK_MULTIPLE} bytes, got ${chunkSize}`);
  }
  const drive: Drive = createDrive(options, WRITE_SCOPE);
  const auth = drive.context._options.auth as unknown as Auth;
  const apiRoot = (drive.context._options.rootUrl ?? 'https://www.googleapis.com/').replace(
    /\/?$/,
    '/',
  );
  const root = `gdrive://folder/${target.id}${target.path.map((s) => `/${s}`).join('')}`;
  // The Drive folder must exist and be one: a wrong id fails before stdin is read.
  const { data: folder } = await driveCall(`gdrive://folder/${target.id}`, () =>
    drive.files.get(
      { fileId: target.id, fields: 'id,mimeType,driveId', supportsAllDrives: true },
      ONE_TRY,
    ),
  );
  if (folder.mimeType !== FOLDER_TYPE) {
    throw new SluiceError(`gdrive://folder/${target.id} is a file, not a folder`, {
      code: 'USAGE',
      connector: GDRIVE_CONNECTOR,
      hint: 'export into a folder: gdrive://folder/<folderId>/{dataset}',
    });
  }
  // Searches stay in the folder's own drive: one across all drives may skip some, and says
  // so only in `incompleteSearch`.
  const corpus = folder.driveId ? { corpora: 'drive', driveId: folder.driveId } : {};
  const uriOf = (key: string) => `${root}/${key}`;
  /** The oldest file in `parent` that `match` (a files.list query) picks, if any. */
  const oldest = (parent: string, match: string, what: string): Promise<string | undefined> =>
    driveCall(what, async () => {
      const { data } = await drive.files.list(
        {
          q: `'${parent}' in parents and trashed = false and ${match}`,
          fields: 'incompleteSearch,files(id)',
          orderBy: 'createdTime',
          pageSize: 1,
          supportsAllDrives: true,
          includeItemsFromAllDrives: true,
          ...corpus,
        },
        ONE_TRY,
      );
      const id = data.files?.[0]?.id ?? undefined;
      if (!id && data.incompleteSearch) {
        throw new SluiceError(`${what}: Drive's search was incomplete`, {
          code: 'IO',
          connector: GDRIVE_CONNECTOR,
          hint: 'run again later',
          retryable: true,
        });
      }
      return id;
    });

  /** Moves a file to the bin (idempotent). */
  const trash = async (id: string, what: string) => {
    try {
      await driveCall(what, () =>
        drive.files.update(
          { fileId: id, requestBody: { trashed: true }, supportsAllDrives: true },
          ONE_TRY,
        ),
      );
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  };

  /** The id of the folder at a path below the Drive folder, created when `create` is set. */
  const folderAt = folderPaths(target.id, async (parent, name, create) => {
    const what = `gdrive://folder/${parent}/${name}`;
    const match = `name = '${quote(name)}' and mimeType = '${FOLDER_TYPE}'`;
    const id = await oldest(parent, match, what);
    if (id || !create) return id;
    const { data } = await driveCall(what, () =>
      drive.files.create(
        {
          requestBody: { name, mimeType: FOLDER_TYPE, parents: [parent] },
          fields: 'id',
          supportsAllDrives: true,
        },
        ONE_TRY,
      ),
    );
    // A retried create whose first answer was lost, or another run, made two: everyone takes
    // the oldest, and a younger one of this run's (still empty) goes to the bin.
    const first = await oldest(parent, match, what);
    if (data.id && first && first !== data.id) await trash(data.id, what);
    return first ?? data.id ?? undefined;
  });

  /** Splits a key under the root into folder segments and a file name. */
  const locate = (key: string) => {
    const segments = [...target.path, ...key.split('/')];
    return { segments: segments.slice(0, -1), name: segments.at(-1) as string };
  };

  const ownedBy = (name: string) =>
    `properties has { key='${KEY_PROPERTY}' and value='${quote(propertyValue(KEY_PROPERTY, name))}' }`;

  /** The file Sluice wrote at `key`, if any. */
  const find = async (key: string, create: boolean) => {
    const { segments, name } = locate(key);
    const folder = await folderAt(segments, create);
    if (!folder) return { folder, name, id: undefined };
    const id = await oldest(folder, ownedBy(name), uriOf(key));
    return { folder, name, id };
  };

  /** A file's `version`: Drive raises it with every change. */
  const versionOf = async (id: string, what: string) => {
    const { data } = await driveCall(what, () =>
      drive.files.get({ fileId: id, fields: 'version', supportsAllDrives: true }, ONE_TRY),
    );
    return String(data.version);
  };

  const changed = (key: string) =>
    new SluiceError(`${uriOf(key)} changed since this run read it`, {
      code: 'CONFLICT',
      connector: GDRIVE_CONNECTOR,
    });

  /** Sluice's files under a folder, at any depth, as keys below `at`, pruned to `prefix`. */
  async function* walk(folder: string, at: string, prefix: string): AsyncGenerator<string> {
    let pageToken: string | undefined;
    do {
      const { data } = await driveCall(root, () =>
        drive.files.list(
          {
            q: `'${folder}' in parents and trashed = false`,
            fields: 'nextPageToken, files(id, name, mimeType, properties)',
            pageSize: 1000,
            pageToken,
            supportsAllDrives: true,
            includeItemsFromAllDrives: true,
            ...corpus,
          },
          ONE_TRY,
        ),
      );
      for (const file of data.files ?? []) {
        const key = `${at}${file.name}`;
        if (file.mimeType === FOLDER_TYPE) {
          const inner = `${key}/`;
          if (inner.startsWith(prefix) || prefix.startsWith(inner)) {
            yield* walk(file.id as string, inner, prefix);
          }
        } else if (file.properties?.[KEY_PROPERTY] !== undefined && key.startsWith(prefix)) {
          yield key;
        }
      }
      pageToken = data.nextPageToken ?? undefined;
    } while (pageToken);
  }

  /**
   * A resumable upload: a session, then the staged file in chunks. A chunk that fails with an
   * answer a retry can mend is asked about (`bytes *\/total`) and sent again from where the
   * server stopped.
   */
  const upload = async (
    session: { method: 'POST' | 'PATCH'; url: string; metadata: Record<string, unknown> },
    part: StagedPart,
    what: string,
  ) => {
    // Starting a session creates nothing yet: one started twice is simply never used.
    const started = await driveCall(what, () =>
      auth.request<unknown>({
        url: session.url,
        method: session.method,
        headers: {
          'X-Upload-Content-Type': part.contentType,
          'X-Upload-Content-Length': String(part.bytes),
        },
        data: session.metadata,
        retry: false,
      }),
    );
    const location = header(started.headers, 'location');
    if (!location) throw new Error('the upload session has no Location');
    /** Where the server stands: the next byte it wants, or undefined once the file is whole. */
    const ask = async (range: string, chunk?: Buffer): Promise<number | undefined> => {
      const response = await auth.request<unknown>({
        url: location,
        method: 'PUT',
        headers: { 'Content-Range': range },
        ...(chunk ? { data: chunk } : {}),
        validateStatus: (status: number) => status < 300 || status === 308,
        maxRedirects: 0,
        retry: false,
      });
      return response.status === 308 ? nextOffset(header(response.headers, 'range')) : undefined;
    };
    const file = await open(part.path, 'r');
    try {
      let offset: number | undefined = 0;
      while (offset !== undefined) {
        const from: number = offset;
        const length = Math.min(chunkSize, part.bytes - from);
        const chunk = Buffer.alloc(length);
        await file.read(chunk, 0, length, from);
        const range =
          part.bytes === 0 ? 'bytes */0' : `bytes ${from}-${from + length - 1}/${part.bytes}`;
        offset = await retrying(
          async (retry) => {
            try {
              // After a failure, the server may hold more or less of the chunk than was sent.
              if (retry === 0) return await ask(range, chunk);
              const at = await ask(`bytes */${part.bytes}`);
              return at === from ? await ask(range, chunk) : at;
            } catch (error) {
              throw driveError(error, what);
            }
          },
          { retries: CHUNK_RETRIES },
        );
      }
    } finally {
      await file.close();
    }
  };

  /** Uploads a new file, or new content for `id`, marked as Sluice's with the key's name. */
  const put = (key: string, folder: string, name: string, part: StagedPart, id?: string) => {
    const properties: Record<string, string> = {
      [KEY_PROPERTY]: propertyValue(KEY_PROPERTY, name),
    };
    for (const [k, v] of Object.entries(part.metadata ?? {})) {
      properties[k] = propertyValue(k, v);
    }
    const query = 'uploadType=resumable&supportsAllDrives=true&fields=id';
    return upload(
      id
        ? {
            method: 'PATCH',
            url: `${apiRoot}upload/drive/v3/files/${id}?${query}`,
            metadata: { mimeType: part.contentType, properties },
          }
        : {
            method: 'POST',
            url: `${apiRoot}upload/drive/v3/files?${query}`,
            metadata: { name, parents: [folder], mimeType: part.contentType, properties },
          },
      part,
      uriOf(key),
    );
  };

  return {
    connector: GDRIVE_CONNECTOR,
    root,
    commits: 'checked',
    async read(key) {
      const { id } = await find(key, false);
      if (!id) return undefined;
      const version = await versionOf(id, uriOf(key));
      const { data } = await driveCall(uriOf(key), () =>
        drive.files.get(
          { fileId: id, alt: 'media', supportsAllDrives: true },
          { ...ONE_TRY, responseType: 'arraybuffer' },
        ),
      );
      return { body: Buffer.from(data as unknown as ArrayBuffer), version };
    },
    async write(key, part) {
      try {
        const { folder, name, id } = await find(key, true);
        if (id) throw changed(key);
        await put(key, folder as string, name, part);
      } catch (error) {
        throw driveError(error, uriOf(key));
      }
    },
    async commit(key, part, expected) {
      try {
        const { folder, name, id } = await find(key, true);
        if (expected !== undefined) {
          if (!id || (await versionOf(id, uriOf(key))) !== expected) throw changed(key);
          await put(key, folder as string, name, part, id);
          return;
        }
        if (id) throw changed(key);
        await put(key, folder as string, name, part);
        // Drive lets two files share a name: the oldest is the one readers find. Which one is
        // this run's, Drive's md5Checksum of the bytes tells.
        const md5 = createHash('md5')
          .update(await readFile(part.path))
          .digest('hex');
        const { data } = await driveCall(uriOf(key), () =>
          drive.files.list(
            {
              q: `'${folder}' in parents and trashed = false and ${ownedBy(name)}`,
              fields: 'files(id,md5Checksum)',
              orderBy: 'createdTime',
              pageSize: 100,
              supportsAllDrives: true,
              includeItemsFromAllDrives: true,
              ...corpus,
            },
            ONE_TRY,
          ),
        );
        const [first, ...younger] = data.files ?? [];
        if (first?.md5Checksum === md5) return;
        for (const file of younger) {
          if (file.md5Checksum === md5) await trash(file.id as string, uriOf(key));
        }
        throw changed(key);
      } catch (error) {
        throw driveError(error, uriOf(key));
      }
    },
    async delete(key) {
      // To the bin, not gone: Drive keeps trashed files 30 days, and people can restore them.
      const { id } = await find(key, false);
      if (id) await trash(id, uriOf(key));
    },
    async *list(prefix) {
      const folder = await folderAt(target.path, false);
      if (folder) yield* walk(folder, '', prefix);
    },
  };
}

/** Where to go on after a 308: the byte after the last one the server holds. */
function nextOffset(range: string | undefined): number {
  const match = /bytes=0-(\d+)/.exec(range ?? '');
  return match ? Number(match[1]) + 1 : 0;
}

/** Exports Prodigy tasks to a Drive folder: parts, then a manifest. */
export function gdriveSink(options: GdriveSinkOptions): Sink {
  return createSink((root) => createGdriveSinkDriver(root, options), options.url, options);
}
