// `guidelines` and `labels`: a page becomes Prodigy's instructions or label file.
import {
  type FetchedImage,
  type LabelEntry,
  type TableLabelOptions,
  usageError,
} from '@sluice/core';
import {
  type Child,
  Confluence,
  type ConfluenceConnectionOptions,
  ConfluenceHttpError,
  confluenceError,
  type Page,
  parseConfluenceUrl,
} from './confluence.js';
import { storageLabels, storageToHtml } from './storage.js';

const MAX_IMAGE_BYTES = 10 * 1024 * 1024;

/** The page a document command reads. */
async function readPage(
  url: string,
  client: Confluence,
): Promise<{ page: Page; body: string; name: string }> {
  const target = parseConfluenceUrl(url);
  if (target.kind !== 'pages' || target.ids.length !== 1) {
    throw usageError(`${url} is not one page`, 'use confluence://page/<id> of one page');
  }
  const id = target.ids[0] as string;
  try {
    const page = await client.page(id);
    if (!page) throw new ConfluenceHttpError(404, '');
    return { page, body: page.body ?? '', name: `${url} (${page.title})` };
  } catch (error) {
    throw confluenceError(error, url);
  }
}

/**
 * An image attached to a page (`<pageId>/<file>` of its link), read through the API: Cloud
 * refuses the link itself to API callers.
 */
async function attachedImage(client: Confluence, link: string): Promise<FetchedImage> {
  const [pageId = '', name = ''] = link.split('?')[0]?.split('/') ?? [];
  const filename = decodeURIComponent(name);
  for await (const attachment of client.attachments(pageId, undefined, filename)) {
    if (attachment.title !== filename) continue;
    if ((attachment.size ?? 0) > MAX_IMAGE_BYTES) {
      throw new Error(`larger than ${MAX_IMAGE_BYTES} bytes`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of await client.download(attachment)) {
      size += chunk.byteLength;
      if (size > MAX_IMAGE_BYTES) throw new Error(`larger than ${MAX_IMAGE_BYTES} bytes`);
      chunks.push(chunk);
    }
    return { bytes: Buffer.concat(chunks), contentType: attachment.mediaType };
  }
  throw new Error('no such attachment (HTTP 404)');
}

const escapeHtml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * A page (with `children`, the pages below it too, depth first in their order, a Cloud folder
 * as a heading over the pages it holds) as HTML for `guidelines`. Images attached to the
 * pages are read through the API; images elsewhere are fetched without credentials, so that
 * no credential leaves for another host.
 */
export async function readGuidelines(
  url: string,
  options: ConfluenceConnectionOptions & { children?: boolean; client?: Confluence } = {},
): Promise<{ html: string; name: string; fetchImage: (url: string) => Promise<FetchedImage> }> {
  const client = options.client ?? new Confluence(options);
  const { page, body, name } = await readPage(url, client);
  const pages: Array<{ page: Page; body: string; depth: number }> = [{ page, body, depth: 1 }];
  if (options.children) {
    const walk = async (parent: Pick<Child, 'id' | 'type'>, depth: number): Promise<void> => {
      for await (const child of client.children(parent)) {
        if (child.type === 'folder') {
          pages.push({ page: { id: child.id, title: child.title, version: 1 }, body: '', depth });
        } else {
          const full = await client.page(child.id);
          if (!full) continue;
          pages.push({ page: full, body: full.body ?? '', depth });
        }
        await walk(child, depth + 1);
      }
    };
    try {
      await walk({ id: page.id, type: 'page' }, 2);
    } catch (error) {
      throw confluenceError(error, `${url} (children)`);
    }
  }
  const html = pages
    .map(({ page: p, body: b, depth }) => {
      const level = Math.min(depth, 6);
      const content = storageToHtml(b, {
        attachmentUrl: (file) =>
          client.downloadUrl(`/download/attachments/${p.id}/${encodeURIComponent(file)}`),
      });
      return `<section>\n<h${level}>${escapeHtml(p.title)}</h${level}>\n${content}\n</section>`;
    })
    .join('\n');
  const own = `${client.base}/download/attachments/`;
  const fetchImage = async (image: string): Promise<FetchedImage> => {
    if (image.startsWith(own)) return attachedImage(client, image.slice(own.length));
    const response = await fetch(image, { redirect: 'follow' });
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status}`);
    }
    const bytes = Buffer.from(await response.arrayBuffer());
    if (bytes.length > MAX_IMAGE_BYTES) throw new Error(`larger than ${MAX_IMAGE_BYTES} bytes`);
    return {
      bytes,
      contentType: response.headers.get('content-type') ?? 'application/octet-stream',
    };
  };
  return { html: `<html><body>\n${html}\n</body></html>`, name, fetchImage };
}

/** The labels a page's table or list holds, for `labels`. */
export async function readLabels(
  url: string,
  options: ConfluenceConnectionOptions &
    Omit<TableLabelOptions, 'name'> & { client?: Confluence } = {},
): Promise<{ entries: LabelEntry[]; name: string }> {
  const client = options.client ?? new Confluence(options);
  const { body, name } = await readPage(url, client);
  const entries = storageLabels(body, {
    name,
    column: options.column,
    descriptionColumn: options.descriptionColumn,
  });
  return { entries, name };
}
