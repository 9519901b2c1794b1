import {
  createSource,
  type ListOptions,
  mapReadErrors,
  modifiedCursor,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  usageError,
} from '@sluice/core';
import { connect } from './connect.js';
import {
  FILE360_CONNECTOR,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  file360Error,
  parseFile360Url,
} from './file360.js';

/** Options of the File 360 source: core source options, the connection, and where to read. */
export interface File360SourceOptions extends SourceOptions, File360ConnectionOptions {
  /** `file360://node/<id>`: the documents in a folder (or one document). */
  url: string;
  /** Go through subfolders (and other containers, such as workspaces) too. */
  recursive?: boolean;
}

/** A File 360 document as the source lists it. */
export interface File360Item extends SourceItem {
  id: string;
}

/**
 * A rerun with a checkpoint lists documents newest first and stops this long before the newest
 * modification the last run saw: uploads that finish late, and clocks, have that much slack.
 */
const CURSOR_SLACK_MS = 60 * 60 * 1000;

/** A name as one path segment: names may hold `/`. */
const segment = (name: string) => name.replaceAll('/', '%2F');

/**
 * Builds the driver. A folder is listed lazily, page by page; with `recursive`, breadth first
 * through the containers below it. With a checkpoint, a rerun reads each folder's documents
 * newest first and stops at those older than the last run saw.
 */
export async function createFile360SourceDriver(
  options: File360SourceOptions,
): Promise<SourceDriver<File360Item>> {
  const target = parseFile360Url(options.url);
  if (target.path.length > 0) {
    throw usageError(
      `${options.url}: a source reads a node by its id`,
      'use file360://node/<id> (add --recursive for subfolders)',
    );
  }
  const client = connect(options);
  const root = `file360://node/${target.id}`;
  let start: File360Node | undefined;
  try {
    start = await client.node(target.id);
  } catch (error) {
    throw file360Error(error, root);
  }
  if (!start) throw file360Error(new File360HttpError(404, ''), root);
  if (!start.container && start.kind !== 'document') {
    throw usageError(
      `${root} is neither a folder nor a document (${start.type})`,
      'point at a folder (or a workspace) holding documents, or at one document',
    );
  }
  const top = start;
  const recursive = options.recursive === true;
  /** Media documents listed, by id: the media proxy serves only these. */
  const media = new Map<string, File360Item>();

  const itemOf = (node: File360Node, path: string): File360Item => {
    const item: File360Item = {
      id: node.id,
      key: path,
      path,
      uri: `file360://node/${node.id}`,
      size: node.size,
      modified: node.modified,
      version: node.version !== undefined ? String(node.version) : node.modified?.toISOString(),
      contentType: node.mimeType,
    };
    if (/^(image|audio|video)\//.test(node.mimeType ?? '')) media.set(node.id, item);
    return item;
  };

  /**
   * The documents below the queued folders, breadth first. With a saved position, only
   * documents modified since (each folder newest first, stopping at the first older one).
   */
  async function* walk(
    queue: Array<{ id: string; path: string }>,
    signal: AbortSignal,
    position: ReturnType<typeof modifiedCursor>,
  ): AsyncGenerator<File360Item> {
    const { since } = position;
    while (queue.length > 0 && !signal.aborted) {
      const folder = queue.shift() as { id: string; path: string };
      const inside = (node: File360Node) => `${folder.path}${segment(node.name)}`;
      const listing = client.children(folder.id, { signal, newest: since !== undefined });
      try {
        for await (const node of listing) {
          if (node.container) {
            if (recursive) queue.push({ id: node.id, path: `${inside(node)}/` });
            continue;
          }
          if (node.kind !== 'document') continue; // shortcuts, URLs, emails: not files
          position.see(node.modified);
          if (since && node.modified && node.modified < since) break;
          yield itemOf(node, inside(node));
        }
        if (since && recursive) {
          for await (const node of client.children(folder.id, { signal, containers: true })) {
            queue.push({ id: node.id, path: `${inside(node)}/` });
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        throw file360Error(error, `file360://node/${folder.id}`);
      }
    }
  }

  return {
    connector: FILE360_CONNECTOR,
    root,
    async *list({ signal, cursor, setCursor }: ListOptions) {
      if (!top.container) {
        yield itemOf(top, segment(top.name));
        return;
      }
      const position = modifiedCursor(cursor, CURSOR_SLACK_MS);
      yield* walk([{ id: top.id, path: '' }], signal, position);
      if (position.value && !signal.aborted) setCursor?.(position.value);
    },
    async open(item, { start: from, end, signal }) {
      try {
        // The version listed, which the tasks are stamped with, even when one was added since.
        const version = item.version ? Number(item.version) : undefined;
        const body = await client.download(item.id, { start: from, end, version, signal });
        return mapReadErrors(body, (error) => file360Error(error, item.uri));
      } catch (error) {
        throw file360Error(error, item.uri);
      }
    },
    async stat() {
      // Items are found by URI (a node id), not by path: see resolve.
      return undefined;
    },
    async resolve(uri) {
      const listed = media.get(uri.slice('file360://node/'.length));
      if (!listed) return undefined;
      try {
        const node = await client.node(listed.id);
        return node ? itemOf(node, listed.key) : undefined;
      } catch (error) {
        throw file360Error(error, uri);
      }
    },
  };
}

/** Streams Prodigy tasks from File 360. */
export function file360Source(options: File360SourceOptions): Source {
  return createSource(createFile360SourceDriver(options), options);
}
