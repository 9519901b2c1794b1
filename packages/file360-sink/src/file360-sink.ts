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
 * when a write needs them. Every file of a run is a new document (its name carries the run's
 * tag); the manifest is created only if its name is free (Content Server refuses a taken
 * name), and replaced by adding a version only if its version number is still the one read,
 * checked just before: two runs committing in the same instant may both add a version.
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

  const changed = (key: string) =>
    new SluiceError(`${uriOf(key)} changed since this run read it`, {
      code: 'CONFLICT',
      connector: FILE360_CONNECTOR,
    });

  /** The document at `key` (never a folder there), with its folder, made when `create` is set. */
  const document = async (key: string, create: boolean) => {
    const found = await find(key, create);
    if (found.node?.container) {
      throw new SluiceError(`${uriOf(key)} is a folder`, {
        code: 'CONFLICT',
        connector: FILE360_CONNECTOR,
        hint: 'rename that folder, or export elsewhere',
      });
    }
    return found;
  };

  /** A new document; a name taken meanwhile is a CONFLICT. */
  const create = async (key: string, part: StagedPart) => {
    const { folder, name, node } = await document(key, true);
    if (node) throw changed(key);
    try {
      await client.createDocument(folder as string, upload(name, part));
    } catch (error) {
      if (isNameTaken(error)) throw changed(key);
      throw error;
    }
  };

  /** Documents under a folder, at any depth, as keys below `at`, pruned to `prefix`. */
  async function* walk(folder: string, at: string, prefix: string): AsyncGenerator<string> {
    for await (const node of client.children(folder)) {
      const key = `${at}${node.name}`;
      if (node.container) {
        const inner = `${key}/`;
        if (inner.startsWith(prefix) || prefix.startsWith(inner)) {
          yield* walk(node.id, inner, prefix);
        }
      } else if (key.startsWith(prefix)) yield key;
    }
  }

  return {
    connector: FILE360_CONNECTOR,
    root,
    commits: 'checked',
    async read(key) {
      try {
        const { node } = await find(key, false);
        if (!node || node.container) return undefined;
        // The bytes of the version listed, so that they and the version a commit compares agree.
        const chunks: Uint8Array[] = [];
        const bytes = await client.download(node.id, { version: node.version });
        for await (const chunk of bytes) chunks.push(chunk);
        return { body: Buffer.concat(chunks), version: String(node.version ?? '') };
      } catch (error) {
        throw file360Error(error, uriOf(key));
      }
    },
    async write(key, part) {
      try {
        await create(key, part);
      } catch (error) {
        throw file360Error(error, uriOf(key));
      }
    },
    async commit(key, part, expected) {
      try {
        if (expected === undefined) {
          await create(key, part);
          return;
        }
        const { name, node } = await document(key, false);
        if (!node || String(node.version ?? '') !== expected) throw changed(key);
        await client.addVersion(node.id, upload(name, part));
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
    async *list(prefix) {
      let folder: string | undefined;
      try {
        folder = await folderAt(target.path, false);
      } catch (error) {
        throw file360Error(error, root);
      }
      if (folder === undefined) return;
      try {
        yield* walk(folder, '', prefix);
      } catch (error) {
        throw file360Error(error, root);
      }
    },
  };
}

/** Exports Prodigy tasks to a File 360 folder: documents (new versions on reruns), then a manifest. */
export function file360Sink(options: File360SinkOptions): Sink {
  return createSink((root) => createFile360SinkDriver(root, options), options.url, options);
}
