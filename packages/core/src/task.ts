import { numberOf } from './python-json.js';

/** A token as Prodigy's tokenizers produce it. */
export interface Token {
  text: string;
  start: number;
  end: number;
  id: number;
  ws?: boolean;
}

/** A highlighted span; character offsets into `text`, token offsets inclusive. */
export interface Span {
  start: number;
  end: number;
  label?: string;
  token_start?: number;
  token_end?: number;
  text?: string;
  [key: string]: unknown;
}

/** A choice option; `accept` holds the ids of the chosen ones. */
export interface TaskOption {
  id: string | number;
  text?: string;
  image?: string;
  [key: string]: unknown;
}

export type Answer = 'accept' | 'reject' | 'ignore';

/** Where a task came from, as every source stamps it into `meta` (keys Prodigy's hash ignores). */
export interface TaskMeta {
  /** Canonical URI of the item, e.g. `s3://bucket/key` or `file:///abs/path`. */
  source?: string;
  /** The path the item was seen at, where its URI does not show it (Drive, Confluence, File 360). */
  path?: string;
  /** Where a task re-read from an export or review location first came from. */
  origin?: string;
  [key: string]: unknown;
}

/**
 * Lineage that changes without the content changing, under `task.sluice.source`. Prodigy's
 * hash drops every key named `source` at any depth, so `sluice` hashes as `{}` and a touched
 * file, a same-bytes rewrite or a new revision with the same text keeps its hashes.
 */
export interface SourceLineage {
  /** Store version of the item: mtime and size, ETag, generation, revision id, version number. */
  version?: string;
  /** 1-based line number within the item, for line-based formats. */
  line?: number;
  /** 1-based data row within the item: CSV rows, or array index + 1 for json. */
  row?: number;
}

/** A Prodigy task, as streamed into recipes and as `prodigy db-out` writes it. */
export interface Task {
  text?: string;
  tokens?: Token[];
  spans?: Span[];
  image?: string;
  audio?: string;
  video?: string;
  html?: string;
  label?: string;
  options?: TaskOption[];
  accept?: Array<string | number>;
  meta?: TaskMeta;
  /** Stamped by Sluice sources; see {@link SourceLineage}. */
  sluice?: { source?: SourceLineage };
  /** Canonical URI of a media item: Prodigy's base64 removal restores the media field from it. */
  path?: string;
  answer?: Answer;
  flagged?: boolean;
  _input_hash?: number;
  _task_hash?: number;
  _view_id?: string;
  _session_id?: string;
  _annotator_id?: string;
  _timestamp?: number;
  [key: string]: unknown;
}

const ANSWERS = new Set(['accept', 'reject', 'ignore']);
const STRING_FIELDS = ['text', 'image', 'audio', 'video', 'html', 'label'] as const;
const HASH_FIELDS = ['_input_hash', '_task_hash'] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

// Text spans hold character offsets; audio spans hold seconds and image spans hold
// coordinates (`points`, `x`, `y`, ...) and no offsets at all.
function checkSpan(span: unknown, path: string, text: string | undefined): string | undefined {
  if (!isObject(span)) return `${path} is not an object`;
  // Numbers read as Python reads them (`1.0` kept a float) are numbers all the same.
  const start = numberOf(span.start);
  const end = numberOf(span.end);
  if (text !== undefined) {
    if (!isInt(start) || start < 0) return `${path}.start must be a non-negative integer`;
    if (!isInt(end)) return `${path}.end must be an integer`;
    if (end > text.length) {
      return `${path}.end (${end}) is past the end of text (length ${text.length})`;
    }
  } else if (start !== undefined || end !== undefined) {
    if (typeof start !== 'number' || typeof end !== 'number') {
      return `${path}.start and end must be numbers`;
    }
  }
  if (typeof start === 'number' && typeof end === 'number' && end < start) {
    return `${path}.end < start`;
  }
  if (span.label !== undefined && typeof span.label !== 'string') {
    return `${path}.label must be a string`;
  }
  const token_start = numberOf(span.token_start);
  const token_end = numberOf(span.token_end);
  if (token_start !== undefined && !isInt(token_start)) {
    return `${path}.token_start must be an integer`;
  }
  if (token_end !== undefined && !isInt(token_end)) return `${path}.token_end must be an integer`;
  if (isInt(token_start) && isInt(token_end) && token_end < token_start) {
    return `${path}.token_end < token_start`;
  }
  return undefined;
}

/**
 * Checks a value against the Prodigy task shape and returns the first problem as
 * `path: reason` (for example `spans[0].end < start`), or undefined when the task is valid.
 * Unknown fields are allowed: Prodigy keeps them. With `tokens: false` the tokens are not
 * checked: sinks store them as Prodigy wrote them and read nothing from them.
 */
export function validateTask(
  value: unknown,
  options: { tokens?: boolean } = {},
): string | undefined {
  if (!isObject(value)) {
    return `a task must be a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`;
  }
  for (const field of STRING_FIELDS) {
    if (value[field] !== undefined && typeof value[field] !== 'string') {
      return `${field} must be a string`;
    }
  }
  for (const field of HASH_FIELDS) {
    if (value[field] !== undefined && !isInt(numberOf(value[field]))) {
      return `${field} must be an integer`;
    }
  }
  if (value.answer !== undefined && !ANSWERS.has(value.answer as string)) {
    return `answer must be accept, reject or ignore, got ${JSON.stringify(value.answer)}`;
  }
  if (value.flagged !== undefined && typeof value.flagged !== 'boolean') {
    return 'flagged must be true or false';
  }
  if (value.meta !== undefined && !isObject(value.meta)) return 'meta must be an object';
  const text = typeof value.text === 'string' ? value.text : undefined;
  if (value.spans !== undefined) {
    if (!Array.isArray(value.spans)) return 'spans must be an array';
    for (let i = 0; i < value.spans.length; i++) {
      const problem = checkSpan(value.spans[i], `spans[${i}]`, text);
      if (problem) return problem;
    }
  }
  if (value.tokens !== undefined && options.tokens !== false) {
    if (!Array.isArray(value.tokens)) return 'tokens must be an array';
    for (let i = 0; i < value.tokens.length; i++) {
      const token = value.tokens[i];
      if (!isObject(token)) return `tokens[${i}] is not an object`;
      if (typeof token.text !== 'string') return `tokens[${i}].text must be a string`;
      const start = numberOf(token.start);
      const end = numberOf(token.end);
      if (!isInt(start) || !isInt(end)) return `tokens[${i}].start and end must be integers`;
      if (end < start) return `tokens[${i}].end < start`;
    }
  }
  if (value.options !== undefined) {
    if (!Array.isArray(value.options)) return 'options must be an array';
    for (let i = 0; i < value.options.length; i++) {
      const option = value.options[i];
      if (!isObject(option)) return `options[${i}] is not an object`;
      if (typeof option.id !== 'string' && typeof numberOf(option.id) !== 'number') {
        return `options[${i}].id must be a string or a number`;
      }
    }
  }
  if (value.accept !== undefined && !Array.isArray(value.accept)) return 'accept must be an array';
  return undefined;
}
