import picomatch from 'picomatch';
import { usageError } from './errors.js';
import { murmurhash3_32 } from './hash.js';

/** Which items of a store a source reads. Every field is optional. */
export interface Selection {
  /** Globs an item key (relative to the source root) must match; `*.jpg` matches at any depth. */
  include?: string[];
  /** Globs that drop an item. */
  exclude?: string[];
  /** Only items modified at or after this time. */
  modifiedSince?: Date;
  /** Only items modified before this time. */
  modifiedBefore?: Date;
  /** Only items of at least this many bytes. */
  minSize?: number;
  /** Only items of at most this many bytes. */
  maxSize?: number;
  /** Only items of these content types; `image/*` matches a whole family. */
  types?: string[];
  /** Stop after this many items. */
  limit?: number;
  /** Keep this fraction (0-1] of items, chosen by a stable hash of key and seed. */
  sample?: number;
  /** Seed of `sample`; another seed draws another sample. */
  seed?: string;
  /** Keep only shard `index` (1-based) of `count`, split by a stable hash of the key. */
  shard?: { index: number; count: number };
}

/** What selection looks at. */
export interface SelectableItem {
  key: string;
  size?: number;
  modified?: Date;
  contentType?: string;
}

function unitHash(text: string): number {
  return (murmurhash3_32(text) >>> 0) / 0x1_0000_0000;
}

/** Matches keys against globs; a pattern without `/` matches the file name at any depth, like `find -name`. */
function globs(patterns: string[] | undefined): ((key: string) => boolean) | undefined {
  if (!patterns?.length) return undefined;
  const matchers = patterns.map((pattern) =>
    picomatch(pattern, { dot: true, basename: !pattern.includes('/') }),
  );
  return (key) => matchers.some((match) => match(key));
}

/** Matches content types (parameters ignored, case-insensitive); `image/*` matches the family. */
function contentTypes(
  patterns: string[] | undefined,
): ((type: string | undefined) => boolean) | undefined {
  if (!patterns?.length) return undefined;
  const wanted = patterns.map((pattern) => pattern.trim().toLowerCase());
  return (type) => {
    const bare = (type ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    return wanted.some((w) => (w.endsWith('/*') ? bare.startsWith(w.slice(0, -1)) : bare === w));
  };
}

/** Builds the predicate of a selection (everything but `limit`, which the source loop counts). */
export function createSelector(selection: Selection): (item: SelectableItem) => boolean {
  const include = globs(selection.include);
  const exclude = globs(selection.exclude);
  const { modifiedSince, modifiedBefore, minSize, maxSize, sample, seed = '', shard } = selection;
  const types = contentTypes(selection.types);
  if (sample !== undefined && !(sample > 0 && sample <= 1)) {
    throw usageError(
      `--sample must be a fraction in (0, 1], got ${sample}`,
      'for 10% pass --sample 0.1',
    );
  }
  if (shard && !(Number.isInteger(shard.index) && shard.index >= 1 && shard.index <= shard.count)) {
    throw usageError(
      `--shard must be k/n with 1 <= k <= n, got ${shard.index}/${shard.count}`,
      'for the second of four shards pass --shard 2/4',
    );
  }
  return (item) => {
    if (include && !include(item.key)) return false;
    if (exclude?.(item.key)) return false;
    if (modifiedSince && !(item.modified && item.modified >= modifiedSince)) return false;
    if (modifiedBefore && !(item.modified && item.modified < modifiedBefore)) return false;
    if (minSize !== undefined && !(item.size !== undefined && item.size >= minSize)) return false;
    if (maxSize !== undefined && !(item.size !== undefined && item.size <= maxSize)) return false;
    if (types && !types(item.contentType)) return false;
    if (sample !== undefined && sample < 1 && unitHash(`${seed}\u0000${item.key}`) >= sample)
      return false;
    if (shard && Math.floor(unitHash(item.key) * shard.count) !== shard.index - 1) return false;
    return true;
  };
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/;
const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 } as const;

/** Parses an ISO date/time or a duration back from now (`90m`, `24h`, `7d`). */
export function parseTime(value: string, flag: string, now = Date.now()): Date {
  const duration = DURATION.exec(value.trim());
  if (duration) {
    return new Date(now - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]);
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw usageError(
      `${flag}: not a date or duration: ${value}`,
      'use an ISO date (2026-11-01, 2026-11-01T12:00Z) or a duration (24h, 7d)',
    );
  }
  return date;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const SIZE_UNITS: Record<string, number> = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Parses a byte size: `1024`, `64k`, `5MB`, `1.5GiB` (binary units). */
export function parseSize(value: string, flag: string): number {
  const match = SIZE.exec(value.trim());
  if (!match)
    throw usageError(`${flag}: not a size: ${value}`, 'use bytes or a unit: 512k, 5MB, 1GiB');
  const unit = (match[2] ?? 'b').toLowerCase()[0] as string;
  return Math.round(Number(match[1]) * (SIZE_UNITS[unit] ?? 1));
}

/** Parses `k/n`. */
export function parseShard(value: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(value.trim());
  if (!match)
    throw usageError(
      `--shard: expected k/n, got ${value}`,
      'for the second of four shards pass --shard 2/4',
    );
  return { index: Number(match[1]), count: Number(match[2]) };
}
