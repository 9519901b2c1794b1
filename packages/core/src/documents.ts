// Guidelines and label taxonomies kept as documents (Drive Docs and Sheets, Confluence pages)
// become the two files Prodigy takes: an `instructions` HTML file and a `--label` file.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { SluiceError, usageError } from './errors.js';

/** An image fetched for inlining. */
export interface FetchedImage {
  bytes: Buffer;
  contentType: string;
}

export interface SelfContainedOptions {
  /** Name of the document in messages. */
  name: string;
  /** Fetches an image by absolute URL (default: a plain GET, no credentials sent). */
  fetchImage?: (url: string) => Promise<FetchedImage>;
  /** Largest image inlined (default 10 MiB). */
  maxImageBytes?: number;
}

const DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024;

/** Shown instead of a URL: its query may carry a signature or key. */
function withoutQuery(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return url.slice(0, 80);
  }
}

async function plainFetch(url: string, limit: number): Promise<FetchedImage> {
  const response = await fetch(url, { redirect: 'follow' });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`HTTP ${response.status}`);
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > limit) throw new Error(`larger than ${limit} bytes`);
  return { bytes, contentType: response.headers.get('content-type') ?? 'application/octet-stream' };
}

const decodeEntities = (value: string) =>
  value
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'");

/**
 * Turns an exported HTML document into a self-contained file for Prodigy's `instructions`
 * setting: its styles and body, scripts dropped, every image inlined as a data URI (Prodigy
 * shows instructions in the browser, which may not reach the store's image links, and those
 * links expire). A missing image fails the whole file rather than leaving a hole in it.
 */
export async function selfContainedHtml(
  html: string,
  options: SelfContainedOptions,
): Promise<string> {
  const limit = options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const fetchImage = options.fetchImage ?? ((url: string) => plainFetch(url, limit));
  const styles = [...html.matchAll(/<style\b[^>]*>[\s\S]*?<\/style>/gi)].map((m) => m[0]);
  const body = /<body\b([^>]*)>([\s\S]*?)<\/body>/i.exec(html);
  let content = (body ? body[2] : html) as string;
  content = content
    .replace(/<script\b[\s\S]*?<\/script>/gi, '')
    .replace(/<style\b[^>]*>[\s\S]*?<\/style>/gi, '');
  const bodyClass = body ? /\bclass="([^"]*)"/i.exec(body[1] as string)?.[1] : undefined;
  const sources = new Map<string, string>();
  for (const match of content.matchAll(/<img\b[^>]*?\bsrc\s*=\s*(["'])(.*?)\1/gi)) {
    sources.set(match[2] as string, '');
  }
  for (const src of sources.keys()) {
    if (src.startsWith('data:')) continue;
    const url = decodeEntities(src);
    if (!/^https?:\/\//i.test(url)) {
      throw new SluiceError(`${options.name}: image ${url.slice(0, 80)} is not an http(s) link`, {
        code: 'CONVERT',
        hint: 'images must be embedded in the document or linked by absolute URL',
      });
    }
    let image: FetchedImage;
    try {
      image = await fetchImage(url);
    } catch (error) {
      throw new SluiceError(
        `${options.name}: cannot inline image ${withoutQuery(url)} (${(error as Error).message})`,
        {
          code: 'IO',
          hint: 'check the network, or remove the image from the document; image links in exports expire, so export again',
          cause: error,
        },
      );
    }
    if (image.bytes.length > limit) {
      throw new SluiceError(
        `${options.name}: image ${withoutQuery(url)} is larger than ${limit} bytes`,
        { code: 'CONVERT', hint: 'make the image smaller in the document' },
      );
    }
    const type = image.contentType.split(';')[0]?.trim() || 'application/octet-stream';
    sources.set(src, `data:${type};base64,${image.bytes.toString('base64')}`);
  }
  content = content.replace(
    /(<img\b[^>]*?\bsrc\s*=\s*)(["'])(.*?)\2/gi,
    (whole, head: string, quote: string, src: string) => {
      const inlined = sources.get(src);
      return inlined ? `${head}${quote}${inlined}${quote}` : whole;
    },
  );
  const open = bodyClass ? `<div class="${bodyClass}">` : '<div>';
  return `${styles.join('\n')}${styles.length ? '\n' : ''}${open}${content.trim()}</div>\n`;
}

/** One label of a taxonomy. */
export interface LabelEntry {
  label: string;
  description?: string;
  examples?: string;
}

const BULLET = /^\s*(?:[-*•●○◦■▪–]|\d{1,3}[.)]|[a-z][.)])\s+(.*)$/i;
const DESCRIBED = /^(.+?)\s*(?::|\s[-–—]\s)\s*(.+)$/;

/**
 * Labels from a document's text: the items of its lists when it has any (so an introduction
 * does not become labels), else every non-empty line; `LABEL: description` or
 * `LABEL - description` keeps the description.
 */
export function labelsFromText(text: string): LabelEntry[] {
  const lines = text.split(/\r?\n/).map((line) => line.replace(/\s+$/, ''));
  const bullets = lines.flatMap((line) => {
    const match = BULLET.exec(line);
    return match ? [match[1] as string] : [];
  });
  const items = bullets.length > 0 ? bullets : lines.filter((line) => line.trim() !== '');
  return items.map((item) => {
    const described = DESCRIBED.exec(item.trim());
    return described
      ? { label: (described[1] as string).trim(), description: (described[2] as string).trim() }
      : { label: item.trim() };
  });
}

const LABEL_COLUMNS = ['label', 'labels', 'name', 'tag', 'category', 'class'];
const DESCRIPTION_COLUMNS = ['description', 'definition', 'meaning', 'notes', 'guideline'];
const EXAMPLE_COLUMNS = ['examples', 'example'];

export interface TableLabelOptions {
  /** Name of the label column (default: label, labels, name, tag, category or class; else the first). */
  column?: string;
  /** Name of the description column (default: description, definition, meaning, notes or guideline). */
  descriptionColumn?: string;
  /** Name of the document in messages. */
  name: string;
}

/** Labels from a table whose first row is its header: one label per row. */
export function labelsFromTable(rows: string[][], options: TableLabelOptions): LabelEntry[] {
  const [header = [], ...data] = rows;
  const names = header.map((cell) => cell.trim().toLowerCase());
  const find = (wanted: string | undefined, defaults: string[], flag: string) => {
    if (wanted !== undefined) {
      const index = names.indexOf(wanted.trim().toLowerCase());
      if (index < 0) {
        throw usageError(
          `${options.name}: no column "${wanted}" (columns: ${header.join(', ')})`,
          `name one of the columns with ${flag}`,
        );
      }
      return index;
    }
    return names.findIndex((name) => defaults.includes(name));
  };
  let labelColumn = find(options.column, LABEL_COLUMNS, '--column');
  if (labelColumn < 0) labelColumn = 0;
  const descriptionColumn = find(options.descriptionColumn, DESCRIPTION_COLUMNS, '--description');
  const examplesColumn = names.findIndex((name) => EXAMPLE_COLUMNS.includes(name));
  return data.flatMap((row) => {
    const label = (row[labelColumn] ?? '').trim();
    if (label === '') return [];
    const entry: LabelEntry = { label };
    const description = descriptionColumn >= 0 ? row[descriptionColumn]?.trim() : undefined;
    const examples = examplesColumn >= 0 ? row[examplesColumn]?.trim() : undefined;
    if (description) entry.description = description;
    if (examples) entry.examples = examples;
    return [entry];
  });
}

/** Labels from CSV text (a Sheet's export). */
export function labelsFromCsv(csv: string, options: TableLabelOptions): LabelEntry[] {
  let rows: string[][];
  try {
    rows = parseCsv(csv, { bom: true, relax_column_count: true, skip_empty_lines: true });
  } catch (error) {
    throw new SluiceError(`${options.name}: invalid CSV (${(error as Error).message})`, {
      code: 'CONVERT',
      cause: error,
    });
  }
  return labelsFromTable(rows, options);
}

/** Writes a file whole or not at all. */
async function writeWhole(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, path);
}

/** The side file's default path: `labels.txt` -> `labels.json`. */
export function descriptionsPath(labelsPath: string): string {
  return `${labelsPath.replace(/\.[^./\\]*$/, '')}.json`;
}

/**
 * Writes Prodigy's label file (one label per line) and, when any label has a description or
 * examples, a JSON side file with them. Duplicates keep their first entry; an empty taxonomy
 * or a label Prodigy cannot take is an error naming it.
 */
export async function writeLabelFiles(
  entries: LabelEntry[],
  out: string,
  options: { name: string; descriptions?: string; onWarning?: (message: string) => void },
): Promise<{ labels: number; descriptions?: string }> {
  const unique = new Map<string, LabelEntry>();
  for (const entry of entries) {
    if (entry.label.includes(',')) {
      throw new SluiceError(`${options.name}: label "${entry.label}" contains a comma`, {
        code: 'CONVERT',
        hint: "Prodigy's --label splits on commas: rename the label in the document",
      });
    }
    if (unique.has(entry.label)) {
      options.onWarning?.(`${options.name}: label "${entry.label}" is listed twice; kept once`);
      continue;
    }
    unique.set(entry.label, entry);
  }
  if (unique.size === 0) {
    throw new SluiceError(`${options.name}: no labels found`, {
      code: 'CONVERT',
      hint: 'labels come from a list in a document, or a column of a sheet (--column NAME)',
    });
  }
  await writeWhole(out, `${[...unique.keys()].join('\n')}\n`);
  const described = [...unique.values()].filter((e) => e.description || e.examples);
  if (described.length === 0) return { labels: unique.size };
  const side = options.descriptions ?? descriptionsPath(out);
  await writeWhole(side, `${JSON.stringify([...unique.values()], null, 2)}\n`);
  return { labels: unique.size, descriptions: side };
}

/** Writes the guidelines file whole or not at all. */
export function writeGuidelines(html: string, out: string): Promise<void> {
  return writeWhole(out, html);
}
