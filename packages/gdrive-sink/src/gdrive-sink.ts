import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createSink,
  folderPaths,
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
  driveError,
  FOLDER_TYPE,
  GDRIVE_CONNECTOR,
  isNotFound,
  parseDriveUrl,
  statusOf,
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
/** The appProperty that marks a file Sluice wrote, with the file's name under its folder. */
const KEY_PROPERTY = 'sluice_key';
/** Drive limits an appProperty's key plus value to 124 bytes. */
const PROPERTY_BYTES = 124;

type Auth = {
  request<T>(options: Record<string, unknown>): Promise<{
    status: number;
    data: T;
    headers: Headers | Record<string, string>;
  }>;
};

const quote = (value: string) => value.replaceAll('\\', '\\\\').replaceAll("'", "\\'");

/** A value that fits Drive's appProperty limit; a long one becomes its sha256 prefix. */
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
 * `sluice_key` appProperty, so the sink never touches a file a person put there under the
 * same name. Drive has no conditional write: the manifest is replaced only if its `version`
 * is still the one read (checked just before the upload, so two runs committing in the same
 * instant may both succeed); a new manifest is created, then the oldest of its name wins and
 * a younger one is trashed.
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
  try {
    const { data } = await drive.files.get({
      fileId: target.id,
      fields: 'id,mimeType',
      supportsAllDrives: true,
    });
    if (data.mimeType !== FOLDER_TYPE) {
      throw new SluiceError(`gdrive://folder/${target.id} is a file, not a folder`, {
        code: 'USAGE',
        connector: GDRIVE_CONNECTOR,
        hint: 'export into a folder: gdrive://folder/<folderId>/{dataset}',
      });
    }
  } catch (error) {
    throw driveError(error, `gdrive://folder/${target.id}`);
  }
  const uriOf = (key: string) => `${root}/${key}`;
  /** The oldest file in `parent` that `match` (a files.list query) picks, if any. */
  const oldest = async (parent: string, match: string): Promise<string | undefined> => {
    const { data } = await drive.files.list({
      q: `'${parent}' in parents and trashed = false and ${match}`,
      fields: 'files(id)',
      orderBy: 'createdTime',
      pageSize: 1,
      supportsAllDrives: true,
      includeItemsFromAllDrives: true,
      corpora: 'allDrives',
    });
    return data.files?.[0]?.id ?? undefined;
  };

  /** The id of the folder at a path below the Drive folder, created when `create` is set. */
  const folderAt = folderPaths(target.id, async (parent, name, create) => {
    const named = `name = '${quote(name)}' and mimeType = '${FOLDER_TYPE}'`;
    const id = await oldest(parent, named);
    if (id || !create) return id;
    const { data } = await drive.files.create({
      requestBody: { name, mimeType: FOLDER_TYPE, parents: [parent] },
      fields: 'id',
      supportsAllDrives: true,
    });
    // Another run may have made the same folder meanwhile: all use the oldest, and the
    // younger (still empty) goes to the bin.
    const first = await oldest(parent, named);
    if (data.id && first && first !== data.id) {
      await drive.files.update({
        fileId: data.id,
        requestBody: { trashed: true },
        supportsAllDrives: true,
      });
      return first;
    }
    return data.id ?? undefined;
  });

  /** Splits a key under the root into folder segments and a file name. */
  const locate = (key: string) => {
    const segments = [...target.path, ...key.split('/')];
    return { segments: segments.slice(0, -1), name: segments.at(-1) as string };
  };

  const ownedBy = (name: string) =>
    `appProperties has { key='${KEY_PROPERTY}' and value='${quote(propertyValue(KEY_PROPERTY, name))}' }`;

  /** The file Sluice wrote at `key`, if any. */
  const find = async (key: string, create: boolean) => {
    const { segments, name } = locate(key);
    const folder = await folderAt(segments, create);
    if (!folder) return { folder, name, id: undefined };
    const id = await oldest(folder, ownedBy(name));
    return { folder, name, id };
  };

  /** A file's `version`: Drive raises it with every change. */
  const versionOf = async (id: string) => {
    const { data } = await drive.files.get({
      fileId: id,
      fields: 'version',
      supportsAllDrives: true,
    });
    return String(data.version);
  };

  const changed = (key: string) =>
    new SluiceError(`${uriOf(key)} changed since this run read it`, {
      code: 'CONFLICT',
      connector: GDRIVE_CONNECTOR,
    });

  /** Uploads a new file, or new content for `id`, tagged as Sluice's with the key's name. */
  const put = async (folder: string, name: string, part: StagedPart, id?: string) => {
    const appProperties: Record<string, string> = {
      [KEY_PROPERTY]: propertyValue(KEY_PROPERTY, name),
    };
    for (const [k, v] of Object.entries(part.metadata ?? {})) {
      appProperties[k] = propertyValue(k, v);
    }
    const query = 'uploadType=resumable&supportsAllDrives=true&fields=id';
    return upload(
      id
        ? {
            method: 'PATCH',
            url: `${apiRoot}upload/drive/v3/files/${id}?${query}`,
            metadata: { mimeType: part.contentType, appProperties },
          }
        : {
            method: 'POST',
            url: `${apiRoot}upload/drive/v3/files?${query}`,
            metadata: { name, parents: [folder], mimeType: part.contentType, appProperties },
          },
      part,
    );
  };

  /** Sluice's files under a folder, at any depth, as keys below `at`, pruned to `prefix`. */
  async function* walk(folder: string, at: string, prefix: string): AsyncGenerator<string> {
    let pageToken: string | undefined;
    do {
      const { data } = await drive.files.list({
        q: `'${folder}' in parents and trashed = false`,
        fields: 'nextPageToken, files(id, name, mimeType, appProperties)',
        pageSize: 1000,
        pageToken,
        supportsAllDrives: true,
        includeItemsFromAllDrives: true,
        corpora: 'allDrives',
      });
      for (const file of data.files ?? []) {
        const key = `${at}${file.name}`;
        if (file.mimeType === FOLDER_TYPE) {
          const inner = `${key}/`;
          if (inner.startsWith(prefix) || prefix.startsWith(inner)) {
            yield* walk(file.id as string, inner, prefix);
          }
        } else if (file.appProperties?.[KEY_PROPERTY] !== undefined && key.startsWith(prefix)) {
          yield key;
        }
      }
      pageToken = data.nextPageToken ?? undefined;
    } while (pageToken);
  }

  /**
   * A resumable upload: a session, then the staged file in chunks. A chunk that fails is
   * asked about (`bytes *\/total`) and sent again from where the server stopped. Resolves to
   * the file's id.
   */
  const upload = async (
    session: { method: 'POST' | 'PATCH'; url: string; metadata: Record<string, unknown> },
    part: StagedPart,
  ): Promise<string | undefined> => {
    const started = await auth.request<unknown>({
      url: session.url,
      method: session.method,
      headers: {
        'X-Upload-Content-Type': part.contentType,
        'X-Upload-Content-Length': String(part.bytes),
      },
      data: session.metadata,
    });
    const location = header(started.headers, 'location');
    if (!location) throw new Error('the upload session has no Location');
    const file = await open(part.path, 'r');
    try {
      let offset = 0;
      let failures = 0;
      for (;;) {
        const length = Math.min(chunkSize, part.bytes - offset);
        const chunk = Buffer.alloc(length);
        await file.read(chunk, 0, length, offset);
        const range =
          part.bytes === 0 ? 'bytes */0' : `bytes ${offset}-${offset + length - 1}/${part.bytes}`;
        try {
          const response = await auth.request<unknown>({
            url: location,
            method: 'PUT',
            headers: { 'Content-Range': range },
            data: chunk,
            validateStatus: (status: number) => status < 300 || status === 308,
            maxRedirects: 0,
            retry: false,
          });
          if (response.status !== 308) return (response.data as { id?: string })?.id;
          offset = nextOffset(header(response.headers, 'range'));
          failures = 0;
        } catch (error) {
          const { status } = statusOf(error);
          if ((status !== undefined && status < 500) || ++failures > CHUNK_RETRIES) throw error;
          await sleep(200 * 2 ** failures);
          const asked = await auth.request<unknown>({
            url: location,
            method: 'PUT',
            headers: { 'Content-Range': `bytes */${part.bytes}` },
            validateStatus: (s: number) => s < 300 || s === 308,
            maxRedirects: 0,
          });
          if (asked.status !== 308) return (asked.data as { id?: string })?.id;
          offset = nextOffset(header(asked.headers, 'range'));
        }
      }
    } finally {
      await file.close();
    }
  };

  return {
    connector: GDRIVE_CONNECTOR,
    root,
    commits: 'checked',
    async read(key) {
      try {
        const { id } = await find(key, false);
        if (!id) return undefined;
        const version = await versionOf(id);
        const { data } = await drive.files.get(
          { fileId: id, alt: 'media', supportsAllDrives: true },
          { responseType: 'arraybuffer' },
        );
        return { body: Buffer.from(data as unknown as ArrayBuffer), version };
      } catch (error) {
        throw driveError(error, uriOf(key));
      }
    },
    async write(key, part) {
      try {
        const { folder, name, id } = await find(key, true);
        if (id) throw changed(key);
        await put(folder as string, name, part);
      } catch (error) {
        throw driveError(error, uriOf(key));
      }
    },
    async commit(key, part, expected) {
      try {
        const { folder, name, id } = await find(key, true);
        if (expected !== undefined) {
          if (!id || (await versionOf(id)) !== expected) throw changed(key);
          await put(folder as string, name, part, id);
          return;
        }
        if (id) throw changed(key);
        const mine = await put(folder as string, name, part);
        // Drive lets two files share a name: the oldest is the one readers find.
        const first = await oldest(folder as string, ownedBy(name));
        if (mine && first !== mine) {
          await drive.files.update({
            fileId: mine,
            requestBody: { trashed: true },
            supportsAllDrives: true,
          });
          throw changed(key);
        }
      } catch (error) {
        throw driveError(error, uriOf(key));
      }
    },
    async delete(key) {
      // To the bin, not gone: Drive keeps trashed files 30 days, and people can restore them.
      try {
        const { id } = await find(key, false);
        if (!id) return;
        await drive.files.update({
          fileId: id,
          requestBody: { trashed: true },
          supportsAllDrives: true,
        });
      } catch (error) {
        if (isNotFound(error)) return;
        throw driveError(error, uriOf(key));
      }
    },
    async *list(prefix) {
      let folder: string | undefined;
      try {
        folder = await folderAt(target.path, false);
      } catch (error) {
        throw driveError(error, root);
      }
      if (!folder) return;
      try {
        yield* walk(folder, '', prefix);
      } catch (error) {
        throw driveError(error, root);
      }
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
