import {
  createSink,
  folderPaths,
  type Sink,
  type SinkDriver,
  type SinkOptions,
  SluiceError,
  type StagedPart,
  usageError,
} from '@sluice/core';
import {
  connect,
  FILE360_CONNECTOR,
  type File360ConnectionOptions,
  type File360Node,
  file360Error,
  isNameTaken,
  parseFile360Url,
} from '@sluice/file360-source';

/** Options of the File 360 sink: core sink options, the connection, and where to write. */
export interface File360SinkOptions extends SinkOptions, File360ConnectionOptions {
  /** Export root: `file360://node/<folderId>/path`, with {dataset} {date} {timestamp} in the path. */
  url: string;
}

/** Content Server keeps at most this much of a version's description. */
const DESCRIPTION_CHARS = 255;

/**
 * Builds the driver over an export root. Folders of the path are found by name, or created
 * when a write needs them; a document whose name is taken gets a new version (File 360 keeps
 * the earlier ones), so reruns add versions rather than duplicates.
 */
export async function createFile360SinkDriver(
  rootUrl: string,
  options: File360SinkOptions,
): Promise<SinkDriver> {
  const target = parseFile360Url(rootUrl);
  const client = connect(options);
  const root = `file360://node/${target.id}${target.path.map((s) => `/${s}`).join('')}`;
  // The folder must exist and be one: a wrong id fails before stdin is read.
  let top: File360Node | undefined;
  try {
    top = await client.node(target.id);
  } catch (error) {
    throw file360Error(error, `file360://node/${target.id}`);
  }
  if (!top) {
    throw new SluiceError(`file360://node/${target.id}: not found`, {
      code: 'NOT_FOUND',
      connector: FILE360_CONNECTOR,
      hint: 'check the folder id, and that the account may see it (Content Server answers alike for items it hides)',
    });
  }
  if (!top.container) {
    throw usageError(
      `file360://node/${target.id} is a document, not a folder`,
      'export into a folder: file360://node/<folderId>/{dataset}',
    );
  }
  const uriOf = (key: string) => `${root}/${key}`;
  /** The child of `parent` named exactly `name`, if any. */
  const child = async (parent: string, name: string) => {
    for await (const node of client.children(parent, { name })) return node;
    return undefined;
  };
  /** The id of the folder at a path below the root folder, created when `create` is set. */
  const folderAt = folderPaths(target.id, async (parent, name, create) => {
    let found = await child(parent, name);
    if (!found && create) {
      try {
        found = await client.createFolder(parent, name);
      } catch (error) {
        // Another run made it meanwhile; or the name is taken in another case.
        if (!isNameTaken(error)) throw error;
        found = await child(parent, name);
        if (!found) throw error;
      }
    }
    if (found && !found.container) {
      throw new SluiceError(`${root}: ${name} is a document, not a folder`, {
        code: 'CONFLICT',
        connector: FILE360_CONNECTOR,
        hint: 'rename that document, or export elsewhere',
      });
    }
    return found?.id;
  });

  /** The document at `key`, with the folder it is (or goes) in. */
  const find = async (key: string, create: boolean) => {
    const segments = [...target.path, ...key.split('/')];
    const name = segments.pop() as string;
    const folder = await folderAt(segments, create);
    const node = folder === undefined ? undefined : await child(folder, name);
    return { folder, name, node };
  };

  const upload = (name: string, part: StagedPart) => ({
    name,
    path: part.path,
    contentType: part.contentType,
    description: [
      'Sluice export',
      part.metadata?.dataset ? `of ${part.metadata.dataset}` : '',
      `sha256 ${part.sha256}`,
    ]
      .filter(Boolean)
      .join(' ')
      .slice(0, DESCRIPTION_CHARS),
  });

  return {
    connector: FILE360_CONNECTOR,
    root,
    async read(key) {
      try {
        const { node } = await find(key, false);
        if (!node || node.container) return undefined;
        const chunks: Uint8Array[] = [];
        for await (const chunk of await client.download(node.id)) chunks.push(chunk);
        return Buffer.concat(chunks);
      } catch (error) {
        throw file360Error(error, uriOf(key));
      }
    },
    async write(key, part) {
      const taken = () =>
        new SluiceError(`${uriOf(key)}: already exists`, {
          code: 'CONFLICT',
          connector: FILE360_CONNECTOR,
        });
      try {
        const { folder, name, node } = await find(key, true);
        if (node?.container) {
          throw new SluiceError(`${uriOf(key)} is a folder`, {
            code: 'CONFLICT',
            connector: FILE360_CONNECTOR,
            hint: 'rename that folder, or export elsewhere',
          });
        }
        if (node && part.ifAbsent) throw taken();
        if (node) {
          await client.addVersion(node.id, upload(name, part));
          return;
        }
        try {
          await client.createDocument(folder as string, upload(name, part));
        } catch (error) {
          // Someone added the name meanwhile: a new version on top of theirs, unless told not to.
          if (!isNameTaken(error)) throw error;
          const raced = await child(folder as string, name);
          if (part.ifAbsent || !raced) throw taken();
          await client.addVersion(raced.id, upload(name, part));
        }
      } catch (error) {
        throw file360Error(error, uriOf(key));
      }
    },
    async delete(key) {
      try {
        const { node } = await find(key, false);
        if (node && !node.container) await client.delete(node.id);
      } catch (error) {
        throw file360Error(error, uriOf(key));
      }
    },
  };
}

/** Exports Prodigy tasks to a File 360 folder: documents (new versions on reruns), then a manifest. */
export function file360Sink(options: File360SinkOptions): Sink {
  return createSink((root) => createFile360SinkDriver(root, options), options.url, options);
}
