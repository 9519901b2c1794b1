import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SluiceError } from './errors.js';

/** A source checkpoint: the version of every item whose tasks all went downstream, by canonical URI. */
export interface StateData {
  sluice: 'state/1';
  updated: string;
  items: Record<string, string>;
  /**
   * Items that failed after some of their tasks went downstream: the version read and how many
   * of its tasks went out, so that a rerun of the same version emits only what follows them.
   */
  partial?: Record<string, { version: string; tasks: number }>;
  /** Connector-specific cursors (e.g. a change-feed page token). */
  cursors?: Record<string, string>;
}

/** Where a checkpoint lives: a local file by default; a connector may keep it in its store. */
export interface StateStore {
  /** Shown in messages. */
  readonly location: string;
  /**
   * Called before the first task: checks that saves can succeed, and takes the store for this
   * run (a lock), so that a second run on it is refused instead of losing records.
   */
  open?(): Promise<void>;
  load(): Promise<StateData | undefined>;
  save(data: StateData): Promise<void>;
  /** Gives the store up (releases the lock). */
  close?(): Promise<void>;
}

const REFUSED_HINT = 'point --state at a file Sluice wrote, or at a new path';

function isStringMap(value: unknown): value is Record<string, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((entry) => typeof entry === 'string')
  );
}

function isPartialMap(value: unknown): value is StateData['partial'] {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every(
      (entry) =>
        typeof entry?.version === 'string' && Number.isInteger(entry.tasks) && entry.tasks > 0,
    )
  );
}

/** Parses and checks a checkpoint document. */
export function parseState(text: string, location: string): StateData {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new SluiceError(`${location}: checkpoint is not valid JSON`, {
      code: 'STATE',
      hint: 'delete the file to start over (everything will be emitted again)',
      cause: error,
    });
  }
  const state = data as Partial<StateData> | null;
  if (state?.sluice !== 'state/1') {
    throw new SluiceError(`${location}: not a Sluice checkpoint (expected "sluice": "state/1")`, {
      code: 'STATE',
      hint: REFUSED_HINT,
    });
  }
  const problem = !isStringMap(state.items)
    ? '"items" must map item URIs to versions'
    : state.cursors !== undefined && !isStringMap(state.cursors)
      ? '"cursors" must map names to positions'
      : state.partial !== undefined && !isPartialMap(state.partial)
        ? '"partial" must map item URIs to a version and a count of tasks'
        : undefined;
  if (problem) {
    throw new SluiceError(`${location}: malformed checkpoint: ${problem}`, {
      code: 'STATE',
      hint: `${REFUSED_HINT}; delete it to start over (everything will be emitted again)`,
    });
  }
  return state as StateData;
}

/** Lock files this process holds, removed at exit however it ends short of a crash. */
const held = new Set<string>();
let exitHook = false;

function holdLock(path: string): void {
  held.add(path);
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const lock of held) {
      try {
        unlinkSync(lock);
      } catch {}
    }
  });
}

/** Whether the process a lock names has gone: only known for this machine's processes. */
function isStale(holder: { pid?: unknown; host?: unknown }): boolean {
  if (holder.host !== hostname() || !Number.isInteger(holder.pid)) return false;
  try {
    process.kill(holder.pid as number, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function stateError(path: string, problem: string, hint: string, cause?: unknown): SluiceError {
  return new SluiceError(`${path}: ${problem}`, { code: 'STATE', hint, cause });
}

/**
 * A checkpoint in a local JSON file. A run holds `<file>.lock` (another run on the same file
 * is refused); each save writes a temporary file of an unpredictable name, created exclusively
 * (never through a planted link), then renames it over the checkpoint, so a crash never
 * leaves half a file. A checkpoint path that is a symbolic link is refused.
 */
export function fileStateStore(path: string): StateStore {
  const lock = `${path}.lock`;
  let locked = false;
  return {
    location: path,
    async open() {
      if (locked) return;
      const existing = await lstat(path).catch(() => undefined);
      if (existing?.isSymbolicLink()) {
        throw stateError(
          path,
          'the checkpoint is a symbolic link',
          'point --state at the file itself, not at a link',
        );
      }
      if (existing && !existing.isFile()) {
        throw stateError(path, 'not a file', 'point --state at a file, e.g. .sluice/state.json');
      }
      const unwritable = (error: unknown) =>
        stateError(
          path,
          `cannot write a checkpoint here (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
          'check the path and the permissions of its folder, or pass another --state',
          error,
        );
      try {
        await mkdir(dirname(path), { recursive: true });
      } catch (error) {
        throw unwritable(error);
      }
      // Creating the lock proves the folder writable before the first task goes out.
      for (let attempt = 0; ; attempt++) {
        try {
          const handle = await open(lock, 'wx', 0o644);
          await handle
            .writeFile(
              `${JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() })}\n`,
            )
            .finally(() => handle.close());
          locked = true;
          holdLock(lock);
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(error);
        }
        let holder: { pid?: unknown; host?: unknown; since?: unknown } = {};
        try {
          holder = JSON.parse(await readFile(lock, 'utf8'));
        } catch {}
        if (attempt === 0 && isStale(holder)) {
          await rm(lock, { force: true });
          continue;
        }
        throw stateError(
          path,
          `the checkpoint is in use by another run (process ${holder.pid ?? '?'} on ${holder.host ?? '?'}${holder.since ? ` since ${holder.since}` : ''})`,
          `two runs sharing a checkpoint would lose each other's records: give each its own --state; if no such run is going on, delete ${lock}`,
        );
      }
    },
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw stateError(path, 'cannot read checkpoint', 'check its permissions', error);
      }
      return parseState(text, path);
    },
    async save(data) {
      const temp = join(dirname(path), `.${basename(path)}.${randomBytes(12).toString('hex')}.tmp`);
      // `wx` is O_CREAT | O_EXCL: it fails on anything already there, a symbolic link included.
      const handle = await open(temp, 'wx', 0o644);
      try {
        await handle.writeFile(`${JSON.stringify(data, null, 1)}\n`);
        await handle.sync();
      } catch (error) {
        await handle.close();
        await rm(temp, { force: true });
        throw error;
      }
      await handle.close();
      try {
        await rename(temp, path);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    },
    async close() {
      if (!locked) return;
      locked = false;
      held.delete(lock);
      await rm(lock, { force: true });
    },
  };
}

/** Attempts of a checkpoint save before the run fails, and the wait before the first retry (doubling). */
const SAVE_ATTEMPTS = 4;
const SAVE_RETRY_MS = 250;

/**
 * The source loop's view of a checkpoint: what was emitted before, and which items of
 * this run are complete once the first `delivered` tasks are safely downstream.
 */
export class Checkpoint {
  private items = new Map<string, string>();
  private partials = new Map<string, { version: string; tasks: number }>();
  private cursors: Record<string, string> = {};
  /** Items in the order their last task was yielded, with that task's sequence number. */
  private pending: Array<{ uri: string; version: string; seq: number; tasks?: number }> = [];
  /** Items yielded by this run, delivered or not: a watch pass must not emit them again. */
  private readonly emitted = new Map<string, string>();
  /** Items of this run that failed after yielding tasks, delivered or not. */
  private readonly failed = new Map<string, { version: string; tasks: number }>();
  private pendingCursors: Array<{ name: string; value: string; seq: number }> = [];
  private readonly latest: Record<string, string> = {};
  private dirty = false;
  /** Saves run one after another: two overlapping saves must not race on the file. */
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly store: StateStore | undefined) {}

  /** Takes the store for this run (checking that it can be written) and reads what it holds. */
  async load(): Promise<void> {
    await this.store?.open?.();
    const data = await this.store?.load();
    if (!data) return;
    this.items = new Map(Object.entries(data.items));
    this.partials = new Map(Object.entries(data.partial ?? {}));
    this.cursors = { ...data.cursors };
  }

  /** Gives the store up for other runs. */
  async close(): Promise<void> {
    await this.saving;
    await this.store?.close?.();
  }

  /** Whether this exact version of the item was emitted before, by an earlier run or by this one. */
  has(uri: string, version: string): boolean {
    return this.items.get(uri) === version || this.emitted.get(uri) === version;
  }

  /** For an item that failed after some of its tasks went out: the version and how many tasks. */
  partial(uri: string): { version: string; tasks: number } | undefined {
    return this.failed.get(uri) ?? this.partials.get(uri);
  }

  /** Records that the item's tasks are the first `seq` tasks yielded; it counts once they are delivered. */
  complete(uri: string, version: string, seq: number): void {
    this.pending.push({ uri, version, seq });
    this.emitted.set(uri, version);
    this.failed.delete(uri);
  }

  /** Records that the item failed after its first `tasks` tasks, yielded up to `seq`. */
  fail(uri: string, version: string, tasks: number, seq: number): void {
    this.pending.push({ uri, version, seq, tasks });
    this.failed.set(uri, { version, tasks });
  }

  /** The newest position of a feed, delivered or not: a watch pass goes on from it. */
  cursor(name: string): string | undefined {
    return this.latest[name] ?? this.cursors[name];
  }

  /** Records a feed position that counts once the first `seq` tasks are delivered. */
  setCursor(name: string, value: string, seq: number): void {
    this.pendingCursors.push({ name, value, seq });
    this.latest[name] = value;
  }

  /**
   * Commits items whose tasks are all among the first `delivered`, and saves if anything
   * changed. A save that fails is tried again a few times, then fails the run: a run that
   * goes on without saving would emit everything again next time.
   */
  async commit(delivered: number): Promise<void> {
    let n = 0;
    for (const entry of this.pending) {
      if (entry.seq > delivered) break;
      if (entry.tasks === undefined) {
        this.items.set(entry.uri, entry.version);
        this.partials.delete(entry.uri);
        if (this.emitted.get(entry.uri) === entry.version) this.emitted.delete(entry.uri);
      } else {
        this.partials.set(entry.uri, { version: entry.version, tasks: entry.tasks });
      }
      n++;
    }
    if (n > 0) {
      this.pending.splice(0, n);
      this.dirty = true;
    }
    while (this.pendingCursors[0] && this.pendingCursors[0].seq <= delivered) {
      const { name, value } = this.pendingCursors.shift() as { name: string; value: string };
      this.cursors[name] = value;
      this.dirty = true;
    }
    if (!this.dirty || !this.store) return;
    const store = this.store;
    const save = this.saving.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      for (let attempt = 1; ; attempt++) {
        try {
          await store.save(this.snapshot());
          return;
        } catch (error) {
          if (attempt < SAVE_ATTEMPTS) {
            await sleep(SAVE_RETRY_MS * 2 ** (attempt - 1));
            continue;
          }
          this.dirty = true;
          const reason =
            (error as NodeJS.ErrnoException).code ?? (error as Error).message ?? String(error);
          throw new SluiceError(
            `${store.location}: cannot save the checkpoint (${reason}; ${SAVE_ATTEMPTS} attempts)`,
            {
              code: 'STATE',
              hint: 'check the disk and the permissions of the checkpoint folder; the next run emits again what this one emitted since its last save',
              cause: error,
            },
          );
        }
      }
    });
    this.saving = save.catch(() => {});
    await save;
  }

  private snapshot(): StateData {
    return {
      sluice: 'state/1',
      updated: new Date().toISOString(),
      items: Object.fromEntries(this.items),
      ...(this.partials.size > 0 ? { partial: Object.fromEntries(this.partials) } : {}),
      ...(Object.keys(this.cursors).length > 0 ? { cursors: this.cursors } : {}),
    };
  }
}
