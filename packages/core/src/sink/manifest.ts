// The manifest: the one object whose replacement commits an export.
import { createHash } from 'node:crypto';
import type { SinkFormat } from './staging.js';

/** The manifest version this release writes; `manifest/1` (before run tags) is still read. */
export const MANIFEST_VERSION = 'manifest/2';

/** A file of an export: where it is stored, and what it holds. */
export interface ManifestFile {
  /** Where the file is, relative to the root: its name with the tag of the run that wrote it. */
  key: string;
  /** The file's name as the template gives it, without the run tag (for the guidelines: the given file's name). */
  name: string;
  bytes: number;
  sha256: string;
}

export interface ManifestPart extends ManifestFile {
  records: number;
  answer?: string;
  label?: string;
}

/** The manifest written last: a reader that sees it sees a complete export. */
export interface Manifest {
  sluice: 'manifest/2' | 'manifest/1';
  /** Tag of the run that committed this manifest; every file it wrote carries it. */
  run: string;
  dataset: string | null;
  root: string;
  created: string;
  tool: { name: string; version: string };
  format: SinkFormat;
  filters: Record<string, unknown>;
  input: { lines: number; valid: number; rejected: number; filtered: number };
  counts: {
    records: number;
    answers: Record<string, number>;
    labels: Record<string, number>;
    flagged: number;
    annotators: Record<string, number>;
  };
  parts: ManifestPart[];
  rejects: ManifestPart | null;
  /** review.csv, with `csv`. */
  review: ManifestPart | null;
  /** The guidelines file, with `guidelines`: its `name` is the file's own name. */
  guidelines?: ManifestFile;
  /** Where the records came from, by `meta.source`. */
  lineage: { sources: Record<string, number>; truncated: boolean };
}

/** Every file a manifest lists. */
export function manifestFiles(manifest: Manifest): ManifestFile[] {
  return [
    ...manifest.parts,
    ...(manifest.rejects ? [manifest.rejects] : []),
    ...(manifest.review ? [manifest.review] : []),
    ...(manifest.guidelines ? [manifest.guidelines] : []),
  ];
}

/** The bytes of a manifest as stored. */
export function manifestBytes(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
}

/** What identifies a stored manifest in run markers: the sha256 of its bytes. */
export function manifestIdentity(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * A stored manifest, or undefined when the bytes are not a Sluice manifest (treated as
 * absent, and replaced). A manifest/1 reads as manifest/2: names are its keys, and its run
 * is empty.
 */
export function parseManifest(body: Buffer): Manifest | undefined {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(body.toString('utf8')) as Manifest;
  } catch {
    return undefined;
  }
  const version = manifest?.sluice;
  if (
    (version !== 'manifest/1' && version !== MANIFEST_VERSION) ||
    !Array.isArray(manifest.parts) ||
    typeof manifest.counts?.records !== 'number'
  ) {
    return undefined;
  }
  if (version === 'manifest/1') {
    for (const file of [
      ...manifest.parts,
      ...(manifest.rejects ? [manifest.rejects] : []),
      ...(manifest.review ? [manifest.review] : []),
    ]) {
      file.name = file.key;
    }
    manifest.run = '';
  }
  return manifest;
}

/** Two exports are the same when their bytes and figures are; keys, time, run and tool version don't count. */
export function sameExport(a: Manifest, b: Manifest): boolean {
  // Field by field: a manifest/1 read back has its fields in another order.
  const file = (f: (ManifestFile & Partial<ManifestPart>) | null | undefined) =>
    f ? [f.name, f.bytes, f.sha256, f.records, f.answer, f.label] : null;
  const essence = (m: Manifest) =>
    JSON.stringify([
      m.dataset,
      m.format,
      m.filters,
      m.input,
      m.counts,
      m.parts.map(file),
      file(m.rejects),
      file(m.review),
      file(m.guidelines),
      m.lineage,
    ]);
  return essence(a) === essence(b);
}
