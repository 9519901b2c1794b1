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

/**
 * A value made safe as one path segment: labels come from data, so `/`, `\`, `..`,
 * control characters and empty values must never shape the path.
 */
export function safeSegment(value: string): string {
  const cleaned = value
    .normalize('NFC')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
    .replace(/[\u0000-\u001f\u007f/\\]/g, '_')
    .trim()
    .replace(/^\.+$/, '_');
  return cleaned === '' ? '_' : cleaned.slice(0, 200);
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
