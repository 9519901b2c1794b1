import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SluiceError } from './errors.js';

/** A source checkpoint: the version of every item whose tasks all went downstream, by canonical URI. */
export interface StateData {
  sluice: 'state/1';
  updated: string;
  items: Record<string, string>;
  /** Connector-specific cursors (e.g. a change-feed page token). */
  cursors?: Record<string, string>;
}

/** Where a checkpoint lives: a local file by default; a connector may keep it in its store. */
export interface StateStore {
  /** Shown in messages. */
  readonly location: string;
  load(): Promise<StateData | undefined>;
  save(data: StateData): Promise<void>;
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
  const state = data as Partial<StateData>;
  if (state?.sluice !== 'state/1' || typeof state.items !== 'object' || state.items === null) {
    throw new SluiceError(`${location}: not a Sluice checkpoint (expected "sluice": "state/1")`, {
      code: 'STATE',
      hint: 'point --state at a file Sluice wrote, or at a new path',
    });
  }
  return state as StateData;
}

let saves = 0;

/** A checkpoint in a local JSON file, replaced atomically so a crash never leaves half a file. */
export function fileStateStore(path: string): StateStore {
  return {
    location: path,
    async load() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new SluiceError(`${path}: cannot read checkpoint`, { code: 'STATE', cause: error });
      }
      return parseState(text, path);
    },
    async save(data) {
      await mkdir(dirname(path), { recursive: true });
      const temp = `${path}.${process.pid}.${++saves}.tmp`;
      await writeFile(temp, `${JSON.stringify(data, null, 1)}\n`);
      await rename(temp, path);
    },
  };
}

/**
 * The source loop's view of a checkpoint: what was emitted before, and which items of
 * this run are complete once the first `delivered` tasks are safely downstream.
 */
export class Checkpoint {
  private items = new Map<string, string>();
  private cursors: Record<string, string> = {};
  /** Items in the order their last task was yielded, with that task's sequence number. */
  private pending: Array<{ uri: string; version: string; seq: number }> = [];
  /** Items yielded by this run, delivered or not: a watch pass must not emit them again. */
  private readonly emitted = new Map<string, string>();
  private pendingCursors: Array<{ name: string; value: string; seq: number }> = [];
  private readonly latest: Record<string, string> = {};
  private dirty = false;
  /** Saves run one after another: two overlapping saves must not race on the file. */
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly store: StateStore | undefined) {}

  async load(): Promise<void> {
    const data = await this.store?.load();
    if (!data) return;
    this.items = new Map(Object.entries(data.items));
    this.cursors = { ...data.cursors };
  }

  /** Whether this exact version of the item was emitted before, by an earlier run or by this one. */
  has(uri: string, version: string): boolean {
    return this.items.get(uri) === version || this.emitted.get(uri) === version;
  }

  /** Records that the item's tasks are the first `seq` tasks yielded; it counts once they are delivered. */
  complete(uri: string, version: string, seq: number): void {
    this.pending.push({ uri, version, seq });
    this.emitted.set(uri, version);
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

  /** Commits items whose tasks are all among the first `delivered`, and saves if anything changed. */
  async commit(delivered: number): Promise<void> {
    let n = 0;
    for (const entry of this.pending) {
      if (entry.seq > delivered) break;
      this.items.set(entry.uri, entry.version);
      if (this.emitted.get(entry.uri) === entry.version) this.emitted.delete(entry.uri);
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
      try {
        await store.save(this.snapshot());
      } catch (error) {
        this.dirty = true;
        throw error;
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
      ...(Object.keys(this.cursors).length > 0 ? { cursors: this.cursors } : {}),
    };
  }
}
