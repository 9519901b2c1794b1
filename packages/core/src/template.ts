import { createHash } from 'node:crypto';
import { SluiceError, usageError } from './errors.js';

/** Placeholders a sink URL or part name may use. */
export const TEMPLATE_KEYS = [
  'dataset',
  'date',
  'timestamp',
  'answer',
  'label',
  'part',
  'hash',
] as const;
export type TemplateKey = (typeof TEMPLATE_KEYS)[number];
/** Placeholders fixed for a whole run; they may appear in the export root. */
const RUN_KEYS = new Set<TemplateKey>(['dataset', 'date', 'timestamp']);

const PLACEHOLDER = /\{([a-z_]+)\}/g;

/** The placeholders a template uses; unknown ones are a usage error. */
export function templateKeys(template: string): Set<TemplateKey> {
  const keys = new Set<TemplateKey>();
  for (const match of template.matchAll(PLACEHOLDER)) {
    const key = match[1] as TemplateKey;
    if (!TEMPLATE_KEYS.includes(key)) {
      throw usageError(
        `unknown placeholder {${key}} in ${template}`,
        `placeholders are ${TEMPLATE_KEYS.map((k) => `{${k}}`).join(' ')}`,
      );
    }
    keys.add(key);
  }
  return keys;
}

/** Whether a template uses placeholders that differ between parts ({answer} {label} {part} {hash}). */
export function hasPartKeys(template: string): boolean {
  return [...templateKeys(template)].some((key) => !RUN_KEYS.has(key));
}

/** Encoded bytes a value may take in a name before it is shortened with a hash suffix. */
export const MAX_VALUE_BYTES = 96;
/** Characters a value keeps as they are in a name: letters, digits and marks of any script, `-_.() `. */
const KEEP = /^[\p{L}\p{M}\p{N}_\-.() ]$/u;

/** `%XX` for each UTF-8 byte of one code point (lone surrogates as their generalized UTF-8). */
function percent(codePoint: number): string {
  const bytes =
    codePoint >= 0xd800 && codePoint <= 0xdfff
      ? [0xe0 | (codePoint >> 12), 0x80 | ((codePoint >> 6) & 0x3f), 0x80 | (codePoint & 0x3f)]
      : [...Buffer.from(String.fromCodePoint(codePoint), 'utf8')];
  return bytes.map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

/**
 * A value from data (a label, a dataset name) as one path segment, injectively: distinct
 * values never share a name. Letters, digits and `-_.() ` stay; every other character
 * (`/`, `\`, `%`, `~`, control characters...) becomes `%XX` per UTF-8 byte, as do a leading
 * or trailing dot or space, so a value is never `.`, `..` or a hidden name. The empty value is
 * `~`. A value longer than {@link MAX_VALUE_BYTES} encoded bytes is cut and ends in `~` and 12
 * hex digits of its sha256; `~` appears nowhere else, so shortened names never meet others.
 */
export function safeSegment(value: string): string {
  if (value === '') return '~';
  const tokens: string[] = [];
  const points = [...value];
  for (let i = 0; i < points.length; i++) {
    const char = points[i] as string;
    const edge = i === 0 || i === points.length - 1;
    const plain = KEEP.test(char) && !(edge && (char === '.' || char === ' '));
    tokens.push(plain ? char : percent(char.codePointAt(0) as number));
  }
  const encoded = tokens.join('');
  if (Buffer.byteLength(encoded) <= MAX_VALUE_BYTES) return encoded;
  const suffix = `~${createHash('sha256').update(value, 'utf8').digest('hex').slice(0, 12)}`;
  let kept = '';
  let bytes = 0;
  for (const token of tokens) {
    const size = Buffer.byteLength(token);
    if (bytes + size > MAX_VALUE_BYTES - suffix.length) break;
    kept += token;
    bytes += size;
  }
  // A cut can leave a trailing dot or space, which some stores drop.
  return `${kept.replace(/[. ]+$/, '')}${suffix}`;
}

/** Fills placeholders; missing values are a usage error naming the flag that provides them. */
export function renderTemplate(
  template: string,
  values: Partial<Record<TemplateKey, string>>,
): string {
  return template.replace(PLACEHOLDER, (_, key: TemplateKey) => {
    const value = values[key];
    if (value === undefined) {
      throw usageError(
        `{${key}} in ${template} has no value`,
        key === 'dataset' ? 'pass --dataset NAME' : `{${key}} cannot be used here`,
      );
    }
    return safeSegment(value);
  });
}

/** Whether a key is a relative `/`-separated path with no empty, `.` or `..` segment. */
export function isSafeKey(key: string): boolean {
  return !(
    key === '' ||
    key.startsWith('/') ||
    /^[a-zA-Z]:/.test(key) ||
    key.includes('\\') ||
    key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')
  );
}

/**
 * Checks a key relative to a sink root: `/`-separated, no empty, `.` or `..` segments,
 * not absolute. Every sink calls this before writing, so no key escapes its root.
 */
export function assertSafeKey(key: string, connector = 'core'): string {
  if (!isSafeKey(key)) {
    throw new SluiceError(`refusing key "${key}": it would escape the export root`, {
      code: 'UNSAFE_KEY',
      connector,
      hint: 'keys must be relative paths without "..", "." or empty segments; check --name',
    });
  }
  return key;
}
