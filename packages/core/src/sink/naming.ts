// Names of what a sink writes under an export root. Every file of an export carries the run's
// tag, so no run ever writes a key that another run's manifest lists: the live export is
// immutable, and two runs on one root never touch each other's files.
import { createHash, randomBytes } from 'node:crypto';
import { usageError } from '../errors.js';

/** The commit point of an export: a reader that sees it sees a complete export. */
export const MANIFEST_KEY = 'manifest.json';
/** Bad lines set aside (`skipInvalid`); the stored key carries the run's tag. */
export const REJECTS_KEY = 'rejects.jsonl';
/** The review table (`csv`); the stored key carries the run's tag. */
export const REVIEW_KEY = 'review.csv';
/** Guidelines go in as `guidelines` plus the file's extension (and the run's tag). */
export const GUIDELINES_KEY = 'guidelines';
/** A run's marker at the root: `.sluice-run.<tag>.json`, written before its first file. */
const MARKER_PREFIX = '.sluice-run.';
const TAG_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const TAG_LENGTH = 8;
const TAG = new RegExp(`^[0-9a-z]{${TAG_LENGTH}}$`);

/** Names data may not produce at the top of an export root: they are (or stem) Sluice's own files. */
const RESERVED = new Set([
  'manifest.json',
  'manifest',
  'rejects',
  'rejects.jsonl',
  'review',
  'review.csv',
  'guidelines',
]);

/** A fresh run tag: 8 random characters of [0-9a-z] (41 bits). */
export function newRunTag(): string {
  const bytes = randomBytes(TAG_LENGTH);
  return [...bytes].map((byte) => TAG_ALPHABET[byte % TAG_ALPHABET.length]).join('');
}

/** The stored key of a file named `name` (ending in `ext`) written by the run `tag`. */
export function taggedKey(name: string, ext: string, tag: string): string {
  const stem = ext && name.endsWith(ext) ? name.slice(0, -ext.length) : name;
  return `${stem}.${tag}${ext && name.endsWith(ext) ? ext : ''}`;
}

/** Whether a key (a file, or a temporary file of a store) was written by the run `tag`. */
export function ownedBy(key: string, tag: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return name.includes(`.${tag}.`) || name.endsWith(`.${tag}`);
}

/** Key of the marker of run `tag`. */
export function markerKey(tag: string): string {
  return `${MARKER_PREFIX}${tag}.json`;
}

/** The run tag of a marker key, or undefined for any other key. */
export function markerTag(key: string): string | undefined {
  if (!key.startsWith(MARKER_PREFIX) || !key.endsWith('.json')) return undefined;
  const tag = key.slice(MARKER_PREFIX.length, -'.json'.length);
  return TAG.test(tag) ? tag : undefined;
}

/** The folder-free prefix every marker key starts with, for listing them. */
export const MARKER_KEY_PREFIX = MARKER_PREFIX;

/**
 * Whether a key read back from an export location is Sluice's own bookkeeping rather than
 * tasks: the manifest, rejects, run markers and other `.sluice` names.
 */
export function isExportFile(key: string): boolean {
  const name = key.slice(key.lastIndexOf('/') + 1);
  return (
    name === MANIFEST_KEY ||
    name === REJECTS_KEY ||
    name.startsWith('.sluice') ||
    /^rejects\.[0-9a-z]{8}\.jsonl$/.test(name)
  );
}

/**
 * A rendered name whose first segment is one of Sluice's reserved names gets that segment's
 * first character escaped (`manifest.json/` becomes `%6Danifest.json/`): letters are never
 * escaped otherwise, so the result meets no other value's name.
 */
export function escapeReserved(name: string): string {
  const cut = name.indexOf('/');
  const first = cut < 0 ? name : name.slice(0, cut);
  if (!RESERVED.has(first.toLowerCase())) return name;
  const code = first.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0');
  return `%${code}${name.slice(1)}`;
}

/**
 * Names that differ only in letter case name one file on case-insensitive stores (File 360,
 * macOS, Windows): each such segment after the first gets `~` and 6 hex digits of its sha256,
 * before `ext` when it is the file name. `~` is never produced by escaping a value.
 */
export function caseDistinct(names: string[], ext: string): string[] {
  const seen = new Map<string, string>();
  return names.map((name) => {
    const segments = name.split('/');
    for (let i = 0; i < segments.length; i++) {
      const path = segments.slice(0, i + 1).join('/');
      const folded = path.normalize('NFC').toLowerCase();
      const taken = seen.get(folded);
      if (taken === undefined) {
        seen.set(folded, path);
        continue;
      }
      if (taken === path) continue;
      const segment = segments[i] as string;
      const mark = `~${createHash('sha256').update(segment).digest('hex').slice(0, 6)}`;
      const last = i === segments.length - 1;
      segments[i] =
        last && ext && segment.endsWith(ext)
          ? `${segment.slice(0, -ext.length)}${mark}${ext}`
          : `${segment}${mark}`;
      seen.set(
        segments
          .slice(0, i + 1)
          .join('/')
          .normalize('NFC')
          .toLowerCase(),
        path,
      );
    }
    return segments.join('/');
  });
}

/** Splits `url` + `name` into the export root and the part key template under it. */
export function splitTemplate(url: string, name: string): { root: string; key: string } {
  const full = `${url.replace(/\/+$/, '')}/${name}`;
  const first = full.search(/\{(answer|label|part|hash)\}/);
  const cut = full.lastIndexOf('/', first < 0 ? full.length : first);
  if (cut <= 0) {
    throw usageError(
      `${url}: the export root must come before {answer}, {label}, {part} or {hash}`,
      'start with a folder, e.g. ./exports/{answer}',
    );
  }
  const root = full.slice(0, cut);
  const key = full.slice(cut + 1);
  // Run placeholders shape the root, which the manifest describes; inside a part key they
  // would let two datasets share one root and replace each other's parts.
  const misplaced = key.match(/\{(dataset|date|timestamp)\}/);
  if (misplaced) {
    throw usageError(
      `${misplaced[0]} must be in a folder of its own, before {answer}, {label}, {part} or {hash}`,
      `e.g. ./exports/{dataset}/{answer} rather than ./exports/{answer}-{dataset}`,
    );
  }
  return { root, key };
}
