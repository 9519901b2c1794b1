// The commit protocol every sink uses, modelled on table formats with atomic commits (Delta
// Lake, Apache Iceberg): files are immutable and carry their run's tag, and one conditional
// replace of the manifest publishes an export.
//
// 1. A run reads the live manifest (its version and identity) before it reads stdin.
// 2. Before its first file it writes a marker, `.sluice-run.<tag>.json`, created only if
//    absent: its tag, the identity of the manifest it started from (its base), its host and
//    pid, and the keys of the base export (the files that go once it is replaced).
// 3. It writes its new files under tagged keys no manifest lists, then replaces the manifest
//    only if it is still the base (`commit`). Until then the previous export is untouched.
// 4. A run that loses (another commit came first), fails or is interrupted removes the files
//    it wrote and its marker; nothing of it was ever visible.
// 5. After a commit, and after a run that found its export already there, leftovers go: the
//    previous export's files, and the files of runs that can never commit (their base is no
//    longer live), that did commit, or whose process is gone. A marker tells which keys a run
//    owns; only those, never a key the live manifest lists, are removed.
import { SluiceError } from '../errors.js';
import { isSafeKey } from '../template.js';
import type { SinkDriver, StagedPart, StoredObject } from './driver.js';
import {
  type Manifest,
  manifestBytes,
  manifestFiles,
  manifestIdentity,
  parseManifest,
} from './manifest.js';
import { MANIFEST_KEY, MARKER_KEY_PREFIX, markerKey, markerTag, ownedBy } from './naming.js';
import { hostIdentity, ownerGone } from './owner.js';

/** What a run records at the root before it writes a file. */
export interface RunMarker {
  sluice: 'run/1';
  run: string;
  /** Identity of the manifest the run started from (see `manifestIdentity`), or null. */
  base: string | null;
  started: string;
  /** The machine and process of the run, to tell a crashed run from one still working. */
  host: string;
  pid: number;
  /** Keys of the base export: those the run's export does not list go once it is committed. */
  supersedes: string[];
}

/** The export at the root when a run looked: the stored manifest, if any, and what it says. */
export interface LiveExport {
  stored?: StoredObject;
  /** The manifest when it is Sluice's. */
  manifest?: Manifest;
  /** Identity of the stored manifest, null when there is none. */
  identity: string | null;
}

/** Commits refused because conditional writes raced (and none won) are tried this often. */
const COMMIT_ATTEMPTS = 3;
/** A marker whose run is gone for good is removed after this long even when its host is another. */
const MARKER_EXPIRY_MS = 24 * 60 * 60 * 1000;

/** Reads the manifest at the root. */
export async function readLive(driver: SinkDriver): Promise<LiveExport> {
  const stored = await driver.read(MANIFEST_KEY);
  if (!stored) return { identity: null };
  return { stored, manifest: parseManifest(stored.body), identity: manifestIdentity(stored.body) };
}

function parseMarker(body: Buffer): RunMarker | undefined {
  try {
    const marker = JSON.parse(body.toString('utf8')) as RunMarker;
    return marker?.sluice === 'run/1' &&
      typeof marker.run === 'string' &&
      Array.isArray(marker.supersedes)
      ? marker
      : undefined;
  } catch {
    return undefined;
  }
}

/** Keys the live export needs: its files and the manifest. */
function liveKeys(live: LiveExport): Set<string> {
  const keys = new Set(live.manifest ? manifestFiles(live.manifest).map((file) => file.key) : []);
  keys.add(MANIFEST_KEY);
  return keys;
}

const isConflict = (error: unknown) => error instanceof SluiceError && error.code === 'CONFLICT';

/** The CONFLICT a run that lost reports: it names the export that won. */
function lostError(driver: SinkDriver, winner: Manifest | undefined, cause?: unknown) {
  const other = winner
    ? ` (${winner.counts.records} records in ${winner.parts.length} parts, written ${winner.created} by ${winner.tool.name}${winner.run ? `, run ${winner.run}` : ''})`
    : '';
  return new SluiceError(
    `${driver.root}: another run committed an export here while this one was writing${other}; nothing of this run was published`,
    {
      code: 'CONFLICT',
      connector: driver.connector,
      hint: 'run again to replace that export, give each run its own root with {timestamp}, or pass --if-exists skip to keep the first',
      cause,
    },
  );
}

/**
 * One run's way from its first file to a committed manifest, with what it must undo when it
 * does not get there.
 */
export class Publication {
  /** Whether `commit` is known to be atomic here (the store refused a second create). */
  atomic = false;
  committed = false;
  private marker: RunMarker | undefined;
  private readonly written: string[] = [];
  /** A write was cut short by an interrupt: its object may still land after this run ends. */
  private cut = false;
  /** The manifest write failed without an answer: it may or may not have taken effect. */
  uncertain = false;
  private small = 0;

  constructor(
    private readonly driver: SinkDriver,
    readonly tag: string,
    private readonly live: LiveExport,
    /** Writes small bytes (markers, the manifest) into a local file to upload. */
    private readonly stage: (name: string, body: Buffer) => Promise<string>,
    private readonly warn: (message: string) => void,
  ) {}

  get begun(): boolean {
    return this.marker !== undefined;
  }

  private async staged(body: Buffer, contentType: string): Promise<StagedPart> {
    const path = await this.stage(`small-${this.small++}`, body);
    const sha256 = manifestIdentity(body);
    return { path, bytes: body.length, sha256, contentType, metadata: { sha256 } };
  }

  /** Writes the run's marker (once), and finds out whether the store honours create-only writes. */
  async begin(): Promise<void> {
    if (this.marker) return;
    const marker: RunMarker = {
      sluice: 'run/1',
      run: this.tag,
      base: this.live.identity,
      started: new Date().toISOString(),
      host: hostIdentity(),
      pid: process.pid,
      supersedes: this.live.manifest ? manifestFiles(this.live.manifest).map((f) => f.key) : [],
    };
    const part = await this.staged(Buffer.from(`${JSON.stringify(marker)}\n`), 'application/json');
    const key = markerKey(this.tag);
    await this.driver.commit(key, part, undefined);
    this.marker = marker;
    if (this.driver.commits !== 'atomic') return;
    // The same create again must be refused; a store that accepts it ignores preconditions
    // (s3rver does), so this run shares no file with another export and checks its commit.
    try {
      await this.driver.commit(key, part, undefined);
    } catch (error) {
      if (!isConflict(error)) throw error;
      this.atomic = true;
      return;
    }
    this.warn(
      `${this.driver.root}: the store ignores conditional writes, so two runs writing here at the same moment may both report success (each export still matches its own files)`,
    );
  }

  /** Writes a new file of this run. */
  async write(key: string, part: StagedPart, signal?: AbortSignal): Promise<void> {
    await this.begin();
    this.written.push(key);
    try {
      await this.driver.write(key, part, signal);
    } catch (error) {
      if (signal?.aborted) this.cut = true;
      throw await this.explain(error);
    }
  }

  /**
   * A write that failed because another run committed meanwhile (and removed this doomed
   * run's files) is that run's CONFLICT, not the write's error; anything else stays as it is.
   */
  async explain(error: unknown): Promise<unknown> {
    if (this.committed || isConflict(error)) return error;
    if (error instanceof SluiceError && error.code === 'INTERRUPTED') return error;
    const now = await readLive(this.driver).catch(() => undefined);
    if (!now || now.identity === this.live.identity) return error;
    await this.abandon(now);
    return lostError(this.driver, now.manifest, error);
  }

  /** Notes a file written by other means (a part streamed while staged). */
  wrote(key: string): void {
    this.written.push(key);
  }

  /** Replaces the manifest if it is still the one this run started from; a run that lost cleans up and throws CONFLICT. */
  async commit(manifest: Manifest): Promise<void> {
    await this.begin();
    const part = await this.staged(manifestBytes(manifest), 'application/json');
    for (let attempt = 1; ; attempt++) {
      try {
        await this.driver.commit(MANIFEST_KEY, part, this.live.stored?.version);
        break;
      } catch (error) {
        // The store's answer may have been lost after it took the write: look before undoing.
        const now = await readLive(this.driver).catch(() => undefined);
        if (now?.manifest?.run === this.tag) break;
        if (!isConflict(error)) {
          // Whether the write will still land is unknown: what this run wrote stays, for the
          // next run to keep (if this manifest is live) or remove.
          this.uncertain = true;
          this.marker = undefined;
          throw error;
        }
        // S3 answers 409 when conditional writes race; if none of them won, try again.
        if (now && now.identity === this.live.identity && attempt < COMMIT_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
          continue;
        }
        if (now) await this.abandon(now);
        throw lostError(this.driver, now?.manifest, error);
      }
    }
    this.committed = true;
    if (this.atomic) return;
    // Where preconditions are checked rather than enforced, a commit at the same instant may
    // have replaced this one; the export that stays is whole either way.
    const now = await readLive(this.driver).catch(() => undefined);
    if (now && now.manifest?.run !== this.tag) {
      this.committed = false;
      await this.abandon(now);
      throw lostError(this.driver, now.manifest);
    }
  }

  /**
   * Removes what this run wrote (never a key `live` lists) and its marker; failures are left to
   * a later run. After a write cut short the marker stays, so that the next run also removes
   * that object should it land after this one ended.
   */
  async abandon(live?: LiveExport): Promise<void> {
    if (!this.marker || this.committed) return;
    const keep = live ? liveKeys(live) : new Set([MANIFEST_KEY]);
    for (const key of this.written.splice(0)) {
      if (!keep.has(key)) await this.driver.delete(key).catch(() => {});
    }
    if (!this.cut) await this.driver.delete(markerKey(this.tag)).catch(() => {});
    this.marker = undefined;
  }

  /**
   * After a commit (or with none, for a run that found its export there): removes the files
   * of the export this one replaced, then what other runs left (see `sweepLeftovers`), then
   * this run's marker. Resolves to the replaced export's files and the leftovers removed.
   */
  async finish(): Promise<{ removed: string[]; swept: string[] }> {
    const swept = await sweepLeftovers(this.driver, this.tag, this.atomic);
    const removed: string[] = [];
    if (this.marker && this.committed) {
      const keep = liveKeys(swept.live);
      for (const key of this.marker.supersedes) {
        if (keep.has(key) || !isSafeKey(key)) continue;
        await this.driver.delete(key);
        removed.push(key);
      }
      await this.driver.delete(markerKey(this.tag));
      this.marker = undefined;
    }
    return { removed, swept: swept.keys };
  }
}

/**
 * Removes the files of runs that will never commit, or committed and were cut off before
 * they cleaned up: a run whose manifest is live, whose process on this machine is gone, or,
 * with `atomic` (commits are known to be enforced here), whose base is no longer the live
 * manifest, so that its commit can only fail. Markers are listed before the live manifest is
 * read, so a run that starts from a manifest committed meanwhile is either not listed or seen
 * with that manifest as its base. Keys the live manifest lists are never removed. `self` is
 * the calling run, left alone.
 */
export async function sweepLeftovers(
  driver: SinkDriver,
  self: string | undefined,
  atomic: boolean,
): Promise<{ keys: string[]; live: LiveExport }> {
  const markers: RunMarker[] = [];
  for await (const key of driver.list(MARKER_KEY_PREFIX)) {
    const tag = markerTag(key);
    if (!tag || tag === self) continue;
    const stored = await driver.read(key);
    const marker = stored && parseMarker(stored.body);
    if (marker) markers.push(marker);
  }
  const live = await readLive(driver);
  const keep = liveKeys(live);
  const dead: RunMarker[] = [];
  const expired: RunMarker[] = [];
  for (const marker of markers) {
    const gone = live.manifest?.run === marker.run || ownerGone(marker);
    const stale = marker.base !== live.identity;
    const old = Date.now() - Date.parse(marker.started) > MARKER_EXPIRY_MS;
    if (gone || (stale && (atomic || old))) dead.push(marker);
    if (gone || (stale && old)) expired.push(marker);
  }
  const keys: string[] = [];
  const owned = (key: string) => dead.some((marker) => ownedBy(key, marker.run));
  // The store's own leftovers (S3 multipart uploads, local temporary files and locks) are
  // looked for on every run: a run killed before its marker existed leaves some too.
  if (driver.sweep) keys.push(...(await driver.sweep((key) => owned(key) && !keep.has(key))));
  if (dead.length === 0) return { keys, live };
  const all: string[] = [];
  for await (const key of driver.list('')) all.push(key);
  const doomed = new Set([
    ...dead.flatMap((marker) => marker.supersedes.filter(isSafeKey)),
    ...all.filter((key) => owned(key) && markerTag(key) === undefined),
  ]);
  for (const key of doomed) {
    if (keep.has(key)) continue;
    await driver.delete(key);
    keys.push(key);
  }
  // A run still working (on another machine) keeps its marker until it gives up or a day
  // passes, so files it writes after this sweep are still known as its own.
  for (const marker of expired) await driver.delete(markerKey(marker.run));
  return { keys, live };
}
