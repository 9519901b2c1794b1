import {
  createSource,
  type Format,
  type ListOptions,
  mapReadErrors,
  SluiceError,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  skipBytes,
  type TextMode,
  usageError,
} from '@sluice/core';
import {
  createDrive,
  type Drive,
  type DriveConnectionOptions,
  debug,
  driveCall,
  driveError,
  FOLDER_TYPE,
  GDRIVE_CONNECTOR,
  isNotFound,
  ONE_TRY,
  parseDriveUrl,
  READ_SCOPE,
  SHORTCUT_TYPE,
  statusOf,
} from './drive.js';

/** How Google Docs are read. */
export type DocsMode = 'text' | 'html' | 'markdown';
export const DOCS_MODES: readonly DocsMode[] = ['text', 'html', 'markdown'];

/** Options of the Drive source: core source options, the connection, and where to read. */
export interface GdriveSourceOptions extends SourceOptions, DriveConnectionOptions {
  /** `gdrive://folder/<id>` (the files in a folder) or `gdrive://file/<id>` (one file). */
  url: string;
  /** Go through subfolders (and shortcuts to folders) too. */
  recursive?: boolean;
  /** Google Docs as plain text (default, a task per Doc), HTML, or Markdown text. */
  docs?: DocsMode;
  /** Files per listing page (default 1000, the most Drive returns). */
  pageSize?: number;
}

/** A Drive file as the source lists it. */
export interface DriveItem extends SourceItem {
  id: string;
  /** Google Workspace files are exported as this type; others are downloaded. */
  exportType?: string;
}

type DriveFile = {
  id?: string | null;
  name?: string | null;
  mimeType?: string | null;
  size?: string | null;
  modifiedTime?: string | null;
  version?: string | null;
  headRevisionId?: string | null;
  driveId?: string | null;
  parents?: string[] | null;
  trashed?: boolean | null;
  shortcutDetails?: { targetId?: string | null; targetMimeType?: string | null } | null;
};

const FILE_FIELDS =
  'id,name,mimeType,size,modifiedTime,version,headRevisionId,driveId,parents,trashed,shortcutDetails';
/** Files asked for in the first page of a listing, so the first task comes quickly. */
const FIRST_PAGE = 100;
const GOOGLE = 'application/vnd.google-apps.';
/**
 * Retries of an export: Drive answers 500 for HTML or PDF conversions of large documents,
 * which no retry mends (google-api-ruby-client#664), so a failing export is given up soon.
 */
const EXPORT_RETRIES = 2;

/** A folder to list, with the shared drive it is in (null: My Drive; undefined: not known yet). */
interface FolderRef {
  id: string;
  path: string;
  driveId?: string | null;
}

/** How each Google Workspace type is exported, and what the export converts as. */
function exportOf(
  mimeType: string,
  docs: DocsMode,
): { type: string; format: Format; textMode?: TextMode } | undefined {
  switch (mimeType) {
    case `${GOOGLE}document`:
      if (docs === 'html') return { type: 'text/html', format: 'html' };
      return {
        type: docs === 'markdown' ? 'text/markdown' : 'text/plain',
        format: 'txt',
        textMode: 'file',
      };
    case `${GOOGLE}spreadsheet`:
      // Drive exports the first sheet of a spreadsheet as CSV.
      return { type: 'text/csv', format: 'csv' };
    case `${GOOGLE}presentation`:
      return { type: 'text/plain', format: 'txt', textMode: 'file' };
    default:
      return undefined;
  }
}

/** A name as one path segment: Drive names may hold `/`. */
const segment = (name: string) => name.replaceAll('/', '%2F');

/** Paged files.list of a folder's children, lazily, in the folder's own drive. */
async function* children(
  drive: Drive,
  folderId: string,
  options: { driveId: string | null; pageSize: number; signal: AbortSignal; foldersOnly?: boolean },
): AsyncGenerator<DriveFile> {
  let pageToken: string | undefined;
  let pageSize = Math.min(options.pageSize, FIRST_PAGE);
  do {
    const kinds = `(mimeType = '${FOLDER_TYPE}' or mimeType = '${SHORTCUT_TYPE}')`;
    const q = `'${folderId}' in parents and trashed = false${options.foldersOnly ? ` and ${kinds}` : ''}`;
    let data: { files?: DriveFile[]; nextPageToken?: string | null };
    try {
      ({ data } = await driveCall(
        `gdrive://folder/${folderId}`,
        () =>
          drive.files.list(
            {
              q,
              pageSize,
              pageToken,
              fields: `nextPageToken,files(${FILE_FIELDS})`,
              orderBy: 'folder,name',
              supportsAllDrives: true,
              includeItemsFromAllDrives: true,
              // A shared drive's folder is listed in that drive; My Drive's in the user's files.
              ...(options.driveId ? { corpora: 'drive', driveId: options.driveId } : {}),
            },
            { ...ONE_TRY, signal: options.signal },
          ),
        { signal: options.signal },
      ));
    } catch (error) {
      if (options.signal.aborted) return;
      throw error;
    }
    debug('listed %d files in %s', data.files?.length ?? 0, folderId);
    yield* data.files ?? [];
    pageToken = data.nextPageToken ?? undefined;
    pageSize = options.pageSize;
  } while (pageToken && !options.signal.aborted);
}

/**
 * Builds the driver. A folder is listed lazily, page by page; with `recursive`, breadth
 * first through subfolders. Shortcuts are followed once: every folder is listed at most
 * once and every file emitted at most once, so shortcut cycles end.
 */
export async function createGdriveSourceDriver(
  options: GdriveSourceOptions,
): Promise<SourceDriver<DriveItem>> {
  const target = parseDriveUrl(options.url);
  if (target.path.length > 0) {
    throw usageError(
      `${options.url}: a source reads a folder by its id`,
      'use gdrive://folder/<id> (add --recursive for subfolders)',
    );
  }
  const docs = options.docs ?? 'text';
  if (!DOCS_MODES.includes(docs)) {
    throw usageError(`--docs must be one of ${DOCS_MODES.join(', ')}, got ${docs}`);
  }
  const drive = createDrive(options, READ_SCOPE);
  const pageSize = options.pageSize ?? 1000;
  const recursive = options.recursive === true;
  const get = async (fileId: string, what = `gdrive://file/${fileId}`): Promise<DriveFile> => {
    const { data } = await driveCall(what, () =>
      drive.files.get({ fileId, fields: FILE_FIELDS, supportsAllDrives: true }, ONE_TRY),
    );
    return data as DriveFile;
  };

  let start = await get(target.id, options.url);
  if (start.mimeType === SHORTCUT_TYPE && start.shortcutDetails?.targetId) {
    start = await get(start.shortcutDetails.targetId, options.url);
  }
  const isFolder = start.mimeType === FOLDER_TYPE;
  if (target.kind === 'folder' && !isFolder) {
    throw usageError(`${options.url} is a file, not a folder`, `use gdrive://file/${target.id}`);
  }
  if (target.kind === 'file' && isFolder) {
    throw usageError(`${options.url} is a folder`, `use gdrive://folder/${target.id}`);
  }
  const rootId = start.id as string;
  const root = `gdrive://${target.kind}/${rootId}`;
  /** Media items listed, by id, with the paths they were listed at (the media proxy names them so). */
  const media = new Map<string, DriveItem>();

  const itemOf = (file: DriveFile, path: string): DriveItem => {
    const mimeType = file.mimeType ?? '';
    const exported = exportOf(mimeType, docs);
    // Google files have no revision id, and their `version` moves when they are shared or
    // commented on; their modifiedTime moves only when they are edited. Their `size` is the
    // storage they take, not the size of their export, which is unknown until it is made.
    const version = exported
      ? (file.modifiedTime ?? file.version ?? undefined)
      : (file.headRevisionId ?? file.version ?? undefined);
    const item: DriveItem = {
      id: file.id as string,
      key: path,
      path,
      uri: `gdrive://file/${file.id}`,
      size: file.size && !exported ? Number(file.size) : undefined,
      modified: file.modifiedTime ? new Date(file.modifiedTime) : undefined,
      version,
      contentType: exported?.type ?? mimeType,
      ...(exported
        ? { exportType: exported.type, format: exported.format, textMode: exported.textMode }
        : {}),
    };
    if (/^(image|audio|video)\//.test(mimeType)) media.set(item.id, item);
    return item;
  };

  /** Folders known to be inside the root, with their paths (`''` for the root). */
  const folders = new Map<string, string>([[rootId, '']]);
  /** Files emitted through a shortcut from outside the walked folders. */
  const viaShortcut = new Set<string>();

  /** Lists folders breadth first from `queue`, yielding files; new folders join the walk. */
  async function* walk(
    queue: FolderRef[],
    signal: AbortSignal,
    foldersOnly = false,
  ): AsyncGenerator<DriveItem> {
    while (queue.length > 0 && !signal.aborted) {
      const folder = queue.shift() as FolderRef;
      // A folder reached through a shortcut may be in another shared drive, or in My Drive.
      const driveId =
        folder.driveId !== undefined ? folder.driveId : ((await get(folder.id)).driveId ?? null);
      for await (const file of children(drive, folder.id, {
        driveId,
        pageSize,
        signal,
        foldersOnly,
      })) {
        const path = `${folder.path}${segment(file.name ?? '')}`;
        if (file.mimeType === FOLDER_TYPE || file.mimeType === SHORTCUT_TYPE) {
          const next = follow(file, path);
          if (next) queue.push(next);
          else if (file.mimeType === SHORTCUT_TYPE && !foldersOnly) {
            const item = await shortcutTarget(file, path);
            if (item) yield item;
          }
        } else if (!viaShortcut.has(file.id as string)) {
          yield itemOf(file, path);
        }
      }
    }
  }

  /** A folder (or shortcut to one) to walk next, once only; undefined for anything else. */
  function follow(file: DriveFile, path: string): FolderRef | undefined {
    const folder = file.mimeType === FOLDER_TYPE;
    const id = folder
      ? file.id
      : file.shortcutDetails?.targetMimeType === FOLDER_TYPE
        ? file.shortcutDetails.targetId
        : undefined;
    if (!id || !recursive || folders.has(id)) return undefined;
    folders.set(id, `${path}/`);
    // A subfolder is in its parent's drive; a shortcut's target may be anywhere.
    return { id, path: `${path}/`, driveId: folder ? (file.driveId ?? null) : undefined };
  }

  /** The file a shortcut points to, unless the walk lists it anyway or already did. */
  async function shortcutTarget(file: DriveFile, path: string): Promise<DriveItem | undefined> {
    const targetId = file.shortcutDetails?.targetId;
    if (!targetId || file.shortcutDetails?.targetMimeType === FOLDER_TYPE) return undefined;
    if (viaShortcut.has(targetId)) return undefined;
    let target: DriveFile;
    try {
      target = await get(targetId, `gdrive://file/${targetId} (shortcut ${path})`);
    } catch (error) {
      // A shortcut whose target is gone or not shared is a dangling link, not a failure.
      if (isNotFound(error)) return undefined;
      throw error;
    }
    if (target.trashed || target.parents?.some((parent) => folders.has(parent))) return undefined;
    viaShortcut.add(targetId);
    return itemOf(target, path);
  }

  // The user's whole feed (shared drives included), not the root's drive's: shortcuts may
  // lead the walk into other drives, whose changes a drive's own feed would miss.
  const startToken = async (): Promise<string> => {
    const { data } = await driveCall(root, () =>
      drive.changes.getStartPageToken({ supportsAllDrives: true }, ONE_TRY),
    );
    return data.startPageToken as string;
  };

  /** Files changed since `cursor` inside the walked folders; ends with the feed's new position. */
  async function* changed(
    cursor: string,
    signal: AbortSignal,
    setCursor: ((cursor: string) => void) | undefined,
  ): AsyncGenerator<DriveItem> {
    let pageToken: string | undefined = cursor;
    while (pageToken && !signal.aborted) {
      let data: {
        changes?: Array<{ fileId?: string | null; removed?: boolean | null; file?: DriveFile }>;
        nextPageToken?: string | null;
        newStartPageToken?: string | null;
      };
      try {
        const page = pageToken;
        ({ data } = await driveCall(
          root,
          () =>
            drive.changes.list(
              {
                pageToken: page,
                pageSize,
                fields: `nextPageToken,newStartPageToken,changes(fileId,removed,file(${FILE_FIELDS}))`,
                supportsAllDrives: true,
                includeItemsFromAllDrives: true,
              },
              { ...ONE_TRY, signal },
            ),
          { signal },
        ));
      } catch (error) {
        if (signal.aborted) return;
        if (statusOf(error).status === 400 || isNotFound(error)) {
          throw new SluiceError(`${root}: the saved change position is no longer valid`, {
            code: 'STATE',
            connector: GDRIVE_CONNECTOR,
            hint: 'delete the --state file to list the folder again (items already emitted are emitted again)',
            cause: error,
          });
        }
        throw driveError(error, root);
      }
      // Folders first: a file may arrive in the same page as the folder it was created in.
      const files = (data.changes ?? []).flatMap((change) =>
        change.removed || !change.file || change.file.trashed ? [] : [change.file],
      );
      const fresh: FolderRef[] = [];
      for (const file of files) {
        if (file.mimeType !== FOLDER_TYPE && file.mimeType !== SHORTCUT_TYPE) continue;
        const parent = file.parents?.find((id) => folders.has(id));
        if (parent === undefined) continue;
        const next = follow(file, `${folders.get(parent)}${segment(file.name ?? '')}`);
        if (next) fresh.push(next);
      }
      for (const file of files) {
        if (file.mimeType === FOLDER_TYPE) continue;
        let path: string;
        if (target.kind === 'file') {
          if (file.id !== rootId) continue;
          path = segment(file.name ?? '');
        } else {
          const parent = file.parents?.find((id) => folders.has(id));
          if (parent === undefined) continue;
          path = `${folders.get(parent)}${segment(file.name ?? '')}`;
        }
        if (file.mimeType === SHORTCUT_TYPE) {
          const item = await shortcutTarget(file, path);
          if (item) yield item;
        } else {
          yield itemOf(file, path);
        }
      }
      // A folder moved in brings what it holds, which the feed does not list again.
      yield* walk(fresh, signal);
      if (data.newStartPageToken) {
        setCursor?.(data.newStartPageToken);
        return;
      }
      pageToken = data.nextPageToken ?? undefined;
    }
  }

  let walked = false;
  return {
    connector: GDRIVE_CONNECTOR,
    root,
    async *list({ signal, cursor, setCursor }: ListOptions) {
      if (cursor) {
        // A position saved by another run: learn the folder tree before reading the feed.
        if (!walked && recursive) {
          for await (const _ of walk(
            [{ id: rootId, path: '', driveId: start.driveId ?? null }],
            signal,
            true,
          ));
        }
        walked = true;
        yield* changed(cursor, signal, setCursor);
        return;
      }
      // The position is taken before listing, so nothing changed during the listing is missed.
      const token = setCursor ? await startToken() : undefined;
      if (target.kind === 'file') yield itemOf(start, segment(start.name ?? ''));
      else {
        yield* walk([{ id: rootId, path: '', driveId: start.driveId ?? null }], signal);
        walked = true;
      }
      if (token && !signal.aborted) setCursor?.(token);
    },
    async open(item, { start: from, end, signal }) {
      const range =
        from !== undefined || end !== undefined ? `bytes=${from ?? 0}-${end ?? ''}` : undefined;
      try {
        // Drive has no conditional download: the revision is checked first, so a file
        // replaced since it was listed is read in its new revision, never under the old one.
        if (item.version !== undefined && from === undefined && end === undefined) {
          const now = itemOf(await get(item.id), item.key).version;
          if (now !== item.version) {
            throw new SluiceError(`${item.uri}: changed since it was listed`, {
              code: 'CHANGED',
              connector: GDRIVE_CONNECTOR,
              hint: 'run again: the file was replaced during the run',
            });
          }
        }
        const { data } = item.exportType
          ? await driveCall(
              item.uri,
              () =>
                drive.files.export(
                  { fileId: item.id, mimeType: item.exportType },
                  { ...ONE_TRY, responseType: 'stream', signal },
                ),
              { signal, retries: EXPORT_RETRIES },
            )
          : await driveCall(
              item.uri,
              () =>
                drive.files.get(
                  { fileId: item.id, alt: 'media', supportsAllDrives: true },
                  {
                    ...ONE_TRY,
                    responseType: 'stream',
                    signal,
                    ...(range ? { headers: { Range: range } } : {}),
                  },
                ),
              { signal },
            );
        const body = data as unknown as AsyncIterable<Uint8Array>;
        // Exports have no ranges: a resumed export skips what was read.
        return mapReadErrors(item.exportType && from ? skipBytes(body, from) : body, (error) =>
          driveError(error, item.uri),
        );
      } catch (error) {
        const { status } = statusOf(error);
        if (item.exportType && status !== undefined && status >= 500) {
          throw new SluiceError(`${item.uri}: Drive failed to export it (${status})`, {
            code: 'CONVERT',
            connector: GDRIVE_CONNECTOR,
            hint: `Drive fails to convert large documents (to HTML or PDF above 10 MB) and answers ${status}; try --docs text, split the document, or run again later`,
            cause: error,
          });
        }
        throw error;
      }
    },
    async stat() {
      // Items are found by URI (an id), not by path: see resolve.
      return undefined;
    },
    // Core asks only for items this source listed: media the proxy serves (only those this
    // run selected), and items that changed since they were listed.
    async resolve(uri) {
      const id = uri.slice('gdrive://file/'.length);
      try {
        return itemOf(await get(id, uri), media.get(id)?.key ?? '');
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
  };
}

/** Streams Prodigy tasks from Google Drive. */
export function gdriveSource(options: GdriveSourceOptions): Source {
  return createSource(createGdriveSourceDriver(options), options);
}
