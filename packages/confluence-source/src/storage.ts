// Confluence storage format (XHTML with `ac:` and `ri:` elements) to plain text, plain HTML,
// tables and labels. Written from Atlassian's storage format reference.
//
// Decisions:
// - Parsed by htmlparser2 in HTML mode (so `&nbsp;`, `&rsquo;`… decode) with CDATA and
//   self-closing tags recognised; tag and attribute names are lower-cased (all storage names
//   are lower case already).
// - Text: paragraphs, headings, lists, tables, code blocks, blockquotes and macro panels are
//   separated by one blank line; div, tr, li, layout cells and <br> end a line. Inside a list
//   item or a table cell, blocks only end lines. Whitespace runs (nbsp included) collapse to
//   one space; lines are trimmed; code/noformat/<pre> keep their text verbatim (trailing
//   spaces and leading/trailing empty lines removed).
// - Lists: `- item` / `1. item` (numbered from `start`), task lists `[ ] item` / `[x] item`;
//   an item's further lines and nested lists are indented by two spaces; empty items dropped.
// - Tables: one line per row, cells (th and td alike) joined by ` | `, an empty cell leaves
//   `| |`; rows with no text are dropped; colspan/rowspan ignored.
// - Macros: code/noformat give their plain-text body verbatim; any macro with a rich-text body
//   (info, note, warning, tip, panel, expand, details, section, column, …) gives that body
//   (parameters such as an expand's title are dropped); status gives its title; every other
//   macro (toc, children, anchor, jira, html, include, …) gives nothing.
// - Links give their body, else the target's title (page, blog post), filename (attachment),
//   space key or anchor; a link to a user with no body gives nothing. `<time>` gives its
//   datetime. Images, emoticons, placeholders and parameters give no text.
// - Sections: layouts are flattened first; only headings at that top level (not inside
//   macros, tables or lists) start sections. A heading with empty text is ignored. A piece's
//   text and html do not contain its own heading (that is in `headings`); in 'page' the
//   headings are lines of the text. In 'paragraph', top-level text outside any block (bare
//   inline content) is one piece per run.
// - HTML: a whitelist of plain HTML tags with a few attributes (href, src, alt, width,
//   height, colspan, rowspan, start, datetime); styles, classes and unknown elements are
//   unwrapped or dropped. An image attached to another page (ri:attachment with ri:page)
//   cannot be resolved by `attachmentUrl` and becomes its alt text.
// - Labels: a table is label-ish when its header has the `column` asked for, or (without
//   `column`) one of label/labels/name/tag/category/class. When `column` is given and no
//   table has it, that is an error rather than a fall-back to lists. The text fall-back
//   leaves out headings.
import { type LabelEntry, labelsFromTable, labelsFromText, SluiceError } from '@sluice/core';
import { DomUtils, ElementType, parseDocument } from 'htmlparser2';

export type Split = 'page' | 'section' | 'paragraph';

export interface StorageSection {
  /** Clean plain text of this piece. */
  text: string;
  /** The same piece as plain HTML (no ac:/ri: elements), for html tasks. */
  html: string;
  /** Heading path above the piece: ['Guidelines', 'Persons'] (empty at the top of the page). */
  headings: string[];
}

export interface StorageOptions {
  /**
   * Turns an attachment filename on this page into an image URL (for html output /
   * guidelines); when absent, images become their alt text in html and nothing in text.
   */
  attachmentUrl?: (filename: string) => string;
}

type Doc = ReturnType<typeof parseDocument>;
type AnyNode = Doc['children'][number];
type Element = Extract<AnyNode, { attribs: Record<string, string> }>;

function parse(storage: string): AnyNode[] {
  return parseDocument(storage, {
    recognizeSelfClosing: true,
    recognizeCDATA: true,
    decodeEntities: true,
  }).children;
}

// domutils' own type guards are not exported at run time by this version.
const isElement = (node: AnyNode): node is Element => ElementType.isTag(node);
const textData = (node: AnyNode): string | undefined =>
  node.type === ElementType.Text ? (node as { data: string }).data : undefined;
const isCdata = (node: AnyNode): boolean => node.type === ElementType.CDATA;
const elements = (nodes: AnyNode[]): Element[] => nodes.filter(isElement);
const childNamed = (element: Element, name: string): Element | undefined =>
  elements(element.children).find((child) => child.name === name);
const textOf = (node: AnyNode | AnyNode[]): string => DomUtils.textContent(node);
const macroName = (element: Element): string => (element.attribs['ac:name'] ?? '').toLowerCase();
const isMacro = (element: Element): boolean =>
  element.name === 'ac:structured-macro' || element.name === 'ac:macro';

const HEADING = /^h([1-6])$/;
const HEADINGS = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
const VERBATIM_MACROS = new Set(['code', 'noformat']);
/** Elements that give nothing, in text and in html. */
const DROPPED = new Set([
  'ac:parameter',
  'ac:placeholder',
  'ac:emoticon',
  'ac:task-id',
  'ac:task-status',
  'ac:adf-attribute',
  'ac:plain-text-body',
  'colgroup',
  'col',
  'script',
  'style',
  'template',
  'head',
  'title',
]);
const LAYOUT = new Set(['ac:layout', 'ac:layout-section', 'ac:layout-cell']);
/** Blocks separated from their neighbours by a blank line in text. */
const PARAGRAPHS = new Set(['p', 'pre', 'blockquote', 'table', 'ul', 'ol', 'ac:task-list', 'hr']);
/** Blocks that end a line. */
const LINES = new Set([
  'div',
  'section',
  'article',
  'header',
  'footer',
  'aside',
  'figure',
  'figcaption',
  'dl',
  'dt',
  'dd',
  'li',
  'tr',
  'caption',
  'ac:layout',
  'ac:layout-section',
  'ac:layout-cell',
  'ac:rich-text-body',
  'ac:adf-extension',
]);

// ---------------------------------------------------------------------------------------------
// Plain text

const NL = 0;
const PARA = 1;
/** A piece of text, a line end, a paragraph end, or lines already laid out. */
type Token = string | typeof NL | typeof PARA | { lines: string[] };

function verbatimLines(text: string): string[] {
  const lines = text.split(/\r?\n/).map((line) => line.replace(/\s+$/, ''));
  while (lines.length > 0 && lines[0] === '') lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function tokensToLines(tokens: Token[]): string[] {
  const lines: string[] = [];
  let current = '';
  let blank = false;
  const push = (line: string) => {
    if (blank && lines.length > 0) lines.push('');
    blank = false;
    lines.push(line);
  };
  const flush = () => {
    const line = current.replace(/\s+/g, ' ').trim();
    current = '';
    if (line !== '') push(line);
  };
  for (const token of tokens) {
    if (typeof token === 'string') current += token;
    else if (token === NL) flush();
    else if (token === PARA) {
      flush();
      blank = true;
    } else {
      flush();
      const [first, ...rest] = token.lines;
      if (first === undefined) continue;
      push(first);
      lines.push(...rest);
    }
  }
  flush();
  return lines;
}

/** Lines of some nodes; `tight` (inside a list item or a cell) makes blocks end lines only. */
function textLines(nodes: AnyNode[], tight: boolean): string[] {
  const tokens: Token[] = [];
  for (const node of nodes) nodeText(node, tokens, tight);
  return tokensToLines(tokens);
}

function cellText(cell: Element): string {
  return textLines(cell.children, true).join(' ').replace(/\s+/g, ' ').trim();
}

function tableRows(table: Element): Element[] {
  return elements(table.children).flatMap((child) => {
    if (child.name === 'tr') return [child];
    if (child.name === 'thead' || child.name === 'tbody' || child.name === 'tfoot') {
      return elements(child.children).filter((row) => row.name === 'tr');
    }
    return [];
  });
}

function rowCells(table: Element): string[][] {
  return tableRows(table)
    .map((row) =>
      elements(row.children)
        .filter((cell) => cell.name === 'td' || cell.name === 'th')
        .map(cellText),
    )
    .filter((cells) => cells.some((cell) => cell !== ''));
}

const indent = (lines: string[]) => lines.map((line) => (line === '' ? '' : `  ${line}`));

function item(marker: string, body: string[]): string[] {
  const [first, ...rest] = body;
  return first === undefined ? [] : [`${marker}${first}`, ...indent(rest)];
}

function listLines(list: Element): string[] {
  const ordered = list.name === 'ol';
  let number = Number.parseInt(list.attribs.start ?? '', 10);
  if (!Number.isFinite(number)) number = 1;
  const lines: string[] = [];
  for (const child of elements(list.children)) {
    if (child.name === 'li') {
      lines.push(...item(ordered ? `${number}. ` : '- ', textLines(child.children, true)));
      number += 1;
    } else if (child.name === 'ul' || child.name === 'ol') {
      lines.push(...indent(listLines(child)));
    }
  }
  return lines;
}

function taskLines(list: Element): string[] {
  const lines: string[] = [];
  for (const child of elements(list.children)) {
    if (child.name === 'ac:task') {
      const done = textOf(childNamed(child, 'ac:task-status') ?? []).trim() === 'complete';
      const body = childNamed(child, 'ac:task-body');
      lines.push(...item(done ? '[x] ' : '[ ] ', body ? textLines(body.children, true) : []));
    } else if (child.name === 'ac:task-list') {
      lines.push(...indent(taskLines(child)));
    }
  }
  return lines;
}

/** The text a link shows: its body, else what it points at. */
function linkText(link: Element): string {
  const plain = childNamed(link, 'ac:plain-text-link-body');
  if (plain && textOf(plain).trim() !== '') return textOf(plain);
  const body = childNamed(link, 'ac:link-body');
  if (body && textOf(body).trim() !== '') return textOf(body);
  for (const target of elements(link.children)) {
    const name =
      target.attribs['ri:content-title'] ??
      target.attribs['ri:filename'] ??
      target.attribs['ri:space-key'] ??
      (target.name === 'ri:url' ? target.attribs['ri:value'] : undefined);
    if (name) return name;
  }
  return link.attribs['ac:anchor'] ?? '';
}

function parameter(macro: Element, name: string): string | undefined {
  const found = elements(macro.children).find(
    (child) => child.name === 'ac:parameter' && child.attribs['ac:name'] === name,
  );
  return found ? textOf(found) : undefined;
}

/** Content of an ADF extension: its content, else its fallback. */
function adfContent(extension: Element): AnyNode[] {
  const node = childNamed(extension, 'ac:adf-node');
  const content = node && childNamed(node, 'ac:adf-content');
  if (content) return content.children;
  return childNamed(extension, 'ac:adf-fallback')?.children ?? [];
}

function nodeText(node: AnyNode, out: Token[], tight: boolean): void {
  const data = textData(node);
  if (data !== undefined) {
    out.push(data);
    return;
  }
  if (isCdata(node)) {
    out.push(textOf(node));
    return;
  }
  if (!isElement(node)) return;
  const name = node.name;
  const para = tight ? NL : PARA;
  const children = () => {
    for (const child of node.children) nodeText(child, out, tight);
  };
  if (DROPPED.has(name) || name.startsWith('ri:') || name === 'ac:image') return;
  if (name === 'br') {
    out.push(NL);
  } else if (HEADING.test(name)) {
    out.push(para);
    children();
    out.push(para);
  } else if (name === 'pre') {
    out.push(para, { lines: verbatimLines(textOf(node)) }, para);
  } else if (name === 'ul' || name === 'ol') {
    out.push(para, { lines: listLines(node) }, para);
  } else if (name === 'ac:task-list') {
    out.push(para, { lines: taskLines(node) }, para);
  } else if (name === 'table') {
    out.push(para, { lines: rowCells(node).map((cells) => cells.join(' | ').trim()) }, para);
  } else if (isMacro(node)) {
    const macro = macroName(node);
    const plain = childNamed(node, 'ac:plain-text-body');
    const rich = childNamed(node, 'ac:rich-text-body');
    if (VERBATIM_MACROS.has(macro)) {
      out.push(para, { lines: verbatimLines(plain ? textOf(plain) : '') }, para);
    } else if (rich) {
      out.push(para);
      for (const child of rich.children) nodeText(child, out, tight);
      out.push(para);
    } else if (macro === 'status') {
      out.push(parameter(node, 'title') ?? '');
    }
  } else if (name === 'ac:link') {
    const body = childNamed(node, 'ac:link-body');
    if (body && textOf(body).trim() !== '') {
      for (const child of body.children) nodeText(child, out, tight);
    } else out.push(linkText(node));
  } else if (name === 'time') {
    out.push(node.attribs.datetime ?? textOf(node));
  } else if (name === 'ac:adf-extension') {
    out.push(para);
    for (const child of adfContent(node)) nodeText(child, out, tight);
    out.push(para);
  } else if (PARAGRAPHS.has(name)) {
    out.push(para);
    children();
    out.push(para);
  } else if (LINES.has(name)) {
    out.push(NL);
    children();
    out.push(NL);
  } else {
    children();
  }
}

// ---------------------------------------------------------------------------------------------
// Plain HTML

const escapeText = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escapeAttribute = (text: string) => escapeText(text).replace(/"/g, '&quot;');

const KEPT_TAGS = new Set([
  'p',
  'div',
  'span',
  ...HEADINGS,
  'ul',
  'ol',
  'li',
  'dl',
  'dt',
  'dd',
  'table',
  'caption',
  'thead',
  'tbody',
  'tfoot',
  'tr',
  'th',
  'td',
  'br',
  'hr',
  'strong',
  'b',
  'em',
  'i',
  'u',
  's',
  'del',
  'ins',
  'sub',
  'sup',
  'small',
  'code',
  'pre',
  'kbd',
  'mark',
  'abbr',
  'cite',
  'q',
  'blockquote',
  'figure',
  'figcaption',
  'a',
  'img',
]);
const VOID_TAGS = new Set(['br', 'hr', 'img']);
const KEPT_ATTRIBUTES: Record<string, string[]> = {
  a: ['href', 'title'],
  img: ['src', 'alt', 'width', 'height'],
  td: ['colspan', 'rowspan'],
  th: ['colspan', 'rowspan'],
  ol: ['start'],
};
const SAFE_URL = /^(?:https?:|mailto:|#|\/)/i;

function attributes(pairs: [string, string | undefined][]): string {
  return pairs
    .filter((pair): pair is [string, string] => pair[1] !== undefined)
    .map(([key, value]) => ` ${key}="${escapeAttribute(value)}"`)
    .join('');
}

function imageHtml(image: Element, options: StorageOptions): string {
  const alt = image.attribs['ac:alt'] ?? image.attribs['ac:title'] ?? '';
  const attachment = childNamed(image, 'ri:attachment');
  const url = childNamed(image, 'ri:url')?.attribs['ri:value'];
  const filename = attachment?.attribs['ri:filename'];
  const elsewhere = attachment !== undefined && elements(attachment.children).length > 0;
  let src: string | undefined;
  if (url !== undefined && SAFE_URL.test(url.trim())) src = url.trim();
  else if (filename && !elsewhere && options.attachmentUrl) src = options.attachmentUrl(filename);
  if (src === undefined) return escapeText(alt);
  const size = (value: string | undefined) =>
    value !== undefined && /^\d+$/.test(value) ? value : undefined;
  return `<img${attributes([
    ['src', src],
    ['alt', alt],
    ['width', size(image.attribs['ac:width'])],
    ['height', size(image.attribs['ac:height'])],
  ])}>`;
}

function tasksHtml(list: Element, options: StorageOptions): string {
  const items = elements(list.children).map((child) => {
    if (child.name === 'ac:task-list') return `<li>${tasksHtml(child, options)}</li>`;
    if (child.name !== 'ac:task') return '';
    const done = textOf(childNamed(child, 'ac:task-status') ?? []).trim() === 'complete';
    const body = childNamed(child, 'ac:task-body');
    return `<li>${done ? '☑' : '☐'} ${body ? nodesHtml(body.children, options) : ''}</li>`;
  });
  return `<ul>${items.join('')}</ul>`;
}

function nodesHtml(nodes: AnyNode[], options: StorageOptions): string {
  return nodes.map((node) => nodeHtml(node, options)).join('');
}

function nodeHtml(node: AnyNode, options: StorageOptions): string {
  const data = textData(node);
  if (data !== undefined) return escapeText(data);
  if (isCdata(node)) return escapeText(textOf(node));
  if (!isElement(node)) return '';
  const name = node.name;
  const children = () => nodesHtml(node.children, options);
  if (DROPPED.has(name) || name.startsWith('ri:')) return '';
  if (isMacro(node)) {
    const macro = macroName(node);
    const plain = childNamed(node, 'ac:plain-text-body');
    const rich = childNamed(node, 'ac:rich-text-body');
    if (VERBATIM_MACROS.has(macro)) {
      return `<pre><code>${escapeText(verbatimLines(plain ? textOf(plain) : '').join('\n'))}</code></pre>`;
    }
    if (rich) {
      const kind = macro.replace(/[^a-z0-9-]/g, '') || 'macro';
      return `<div class="confluence-${kind}">${nodesHtml(rich.children, options)}</div>`;
    }
    if (macro === 'status') return `<span>${escapeText(parameter(node, 'title') ?? '')}</span>`;
    return '';
  }
  if (name === 'ac:image') return imageHtml(node, options);
  if (name === 'ac:link') {
    const body = childNamed(node, 'ac:link-body');
    if (body && textOf(body).trim() !== '') return nodesHtml(body.children, options);
    return escapeText(linkText(node));
  }
  if (name === 'ac:task-list') return tasksHtml(node, options);
  if (name === 'ac:adf-extension') return nodesHtml(adfContent(node), options);
  if (name === 'time') {
    const datetime = node.attribs.datetime ?? textOf(node);
    return `<time${attributes([['datetime', node.attribs.datetime]])}>${escapeText(datetime)}</time>`;
  }
  if (!KEPT_TAGS.has(name)) return children();
  const kept = (KEPT_ATTRIBUTES[name] ?? []).map((key): [string, string | undefined] => {
    const value = node.attribs[key];
    if (value !== undefined && (key === 'href' || key === 'src') && !SAFE_URL.test(value.trim())) {
      return [key, undefined];
    }
    return [key, value];
  });
  const open = `<${name}${attributes(kept)}>`;
  return VOID_TAGS.has(name) ? open : `${open}${children()}</${name}>`;
}

// ---------------------------------------------------------------------------------------------
// Pieces

interface Block {
  /** Set when the block is a heading. */
  heading?: { level: number; text: string };
  nodes: AnyNode[];
}

const TOP_BLOCKS = new Set([
  ...PARAGRAPHS,
  ...LINES,
  ...HEADINGS,
  'ac:structured-macro',
  'ac:macro',
]);

/** The page's top-level blocks, layouts flattened, runs of inline content grouped. */
function topBlocks(nodes: AnyNode[]): Block[] {
  const blocks: Block[] = [];
  let run: AnyNode[] | undefined;
  const visit = (node: AnyNode) => {
    if (isElement(node) && LAYOUT.has(node.name)) {
      for (const child of node.children) visit(child);
      return;
    }
    if (!isElement(node) || !TOP_BLOCKS.has(node.name)) {
      if (run) run.push(node);
      else if (textData(node)?.trim() !== '') {
        run = [node];
        blocks.push({ nodes: run });
      }
      return;
    }
    run = undefined;
    const level = HEADING.exec(node.name)?.[1];
    if (level === undefined) {
      blocks.push({ nodes: [node] });
      return;
    }
    const text = textLines(node.children, true).join(' ');
    if (text !== '') blocks.push({ heading: { level: Number(level), text }, nodes: [node] });
  };
  for (const node of nodes) visit(node);
  return blocks;
}

function piece(nodes: AnyNode[], headings: string[], options: StorageOptions) {
  return {
    text: textLines(nodes, false).join('\n'),
    html: nodesHtml(nodes, options).trim(),
    headings: [...headings],
  };
}

/**
 * Splits a page body: 'page' gives one piece (headings as lines of its text), 'section' one
 * piece per top-level heading with the content under it (text before the first heading is a
 * piece with headings []), 'paragraph' one piece per top-level block (paragraph, whole list,
 * table, code block, macro panel) with its heading path. Pieces with empty text are dropped.
 */
export function storageSections(
  storage: string,
  split: Split,
  options: StorageOptions = {},
): StorageSection[] {
  const nodes = parse(storage);
  if (split === 'page') {
    return [piece(nodes, [], options)].filter((section) => section.text !== '');
  }
  const pieces: StorageSection[] = [];
  const path: { level: number; text: string }[] = [];
  let pending: AnyNode[] = [];
  const flush = () => {
    if (pending.length > 0) {
      pieces.push(
        piece(
          pending,
          path.map((heading) => heading.text),
          options,
        ),
      );
    }
    pending = [];
  };
  for (const block of topBlocks(nodes)) {
    if (block.heading) {
      flush();
      const { level } = block.heading;
      while (path.length > 0 && (path[path.length - 1] as { level: number }).level >= level) {
        path.pop();
      }
      path.push(block.heading);
    } else if (split === 'section') {
      pending.push(...block.nodes);
    } else {
      pending = block.nodes;
      flush();
    }
  }
  flush();
  return pieces.filter((section) => section.text !== '');
}

/**
 * The whole page as plain HTML: macros unwrapped (panels become `<div class="confluence-NAME">`,
 * code and noformat `<pre><code>`, other macros dropped), images `<img>` (or their alt text),
 * links their text, task lists `<ul>` with ☐/☑, layouts flattened, emoticons dropped.
 */
export function storageToHtml(storage: string, options: StorageOptions = {}): string {
  return nodesHtml(parse(storage), options).trim();
}

/** Tables of a page (nested ones too, in document order) as rows of cell text, th and td alike. */
export function storageTables(storage: string): string[][][] {
  return DomUtils.findAll((element) => element.name === 'table', parse(storage))
    .map((table) => rowCells(table as Element))
    .filter((rows) => rows.length > 0);
}

// ---------------------------------------------------------------------------------------------
// Labels

/** Header names labelsFromTable takes as the label column by default. */
const LABEL_COLUMNS = ['label', 'labels', 'name', 'tag', 'category', 'class'];

/**
 * Labels from a page: the first table with a label-ish column (see labelsFromTable), else the
 * items of the page's lists, else its lines (headings left out). Throws a `CONVERT` error when
 * nothing is found; `name` names the page in messages.
 */
export function storageLabels(
  storage: string,
  options: { name: string; column?: string; descriptionColumn?: string },
): LabelEntry[] {
  const { name, column, descriptionColumn } = options;
  const tables = storageTables(storage);
  const wanted = column?.trim().toLowerCase();
  const headers: string[] = [];
  for (const rows of tables) {
    const header = (rows[0] ?? []).map((cell) => cell.trim().toLowerCase());
    headers.push((rows[0] ?? []).join(', '));
    const usable =
      wanted !== undefined
        ? header.includes(wanted)
        : header.some((cell) => LABEL_COLUMNS.includes(cell));
    if (!usable) continue;
    const labels = labelsFromTable(rows, { name, column, descriptionColumn });
    if (labels.length > 0) return labels;
  }
  if (column !== undefined) {
    throw new SluiceError(`${name}: no table with a "${column}" column`, {
      code: 'CONVERT',
      connector: 'confluence',
      hint:
        headers.length > 0
          ? `the page's tables have the columns: ${headers.map((h) => `[${h}]`).join(' ')}`
          : 'the page has no tables; drop --column to take the labels from a list',
    });
  }
  const nodes = topBlocks(parse(storage))
    .filter((block) => !block.heading)
    .flatMap((block) => block.nodes);
  const labels = labelsFromText(textLines(nodes, false).join('\n'));
  if (labels.length > 0) return labels;
  throw new SluiceError(`${name}: no labels found on the page`, {
    code: 'CONVERT',
    connector: 'confluence',
    hint: 'put the labels in a table with a "Label" column, or in a bulleted list',
  });
}
