// Checking a sink's input a block of whole lines at a time, in worker threads (check-worker.ts)
// or, where no worker can start, in this thread: the same function either way.
import { isUtf8 } from 'node:buffer';
import { scanTaskLine } from '../scan.js';
import type { Task } from '../task.js';
import { labelsOf, scoreProblem, type TaskFilters, taskFilter } from './filters.js';

/** What a block is checked against: the sink's filters, and whether a clean summary will do. */
export interface CheckOptions {
  filters: TaskFilters;
  /** With a score filter, a score that is not a number is a bad line. */
  scoreFiltered: boolean;
  /** Whether the caller stores the bytes of a clean block as they are (else: every record). */
  summaries: boolean;
  maxLineBytes: number;
}

/** One line of a block as the sink's stage loop takes it; `start`/`end` index the block. */
export interface CheckedLine {
  line: number;
  start: number;
  end: number;
  task?: Record<string, unknown>;
  problem?: string;
}

/** Tallies of a clean block, in the order their keys first appear (the manifest keeps it). */
export interface BlockTally {
  records: number;
  answers: [string, number][];
  labels: [string, number][];
  flagged: number;
  annotators: [string, number][];
  sources: [string, number][];
}

/**
 * A block checked: `clean` when its bytes are exactly the part's bytes for its lines (every
 * line a valid task the filters keep, LF endings, no blank line, no byte order mark), with
 * their tallies; otherwise each line (blank lines left out). `tooLong` when a line is over
 * the limit: the caller reads on another way.
 */
export type BlockResult =
  | { lines: number; clean: BlockTally; ends: number[] }
  | { lines: number; records: CheckedLine[] }
  | { lines: number; tooLong: true };

const NEWLINE = 0x0a;
const CR = 0x0d;

function isBlank(bytes: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = bytes[i];
    if (c !== 0x20 && c !== 0x09 && c !== CR) return false;
  }
  return true;
}

/** Counts keys in insertion order, as a list of pairs. */
class Tally {
  private readonly counts = new Map<string, number>();
  add(key: string, by = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + by);
  }
  get pairs(): [string, number][] {
    return [...this.counts];
  }
}

/** A checker for one run's options: takes blocks of whole lines (the last one may lack its LF). */
export function blockChecker(
  options: CheckOptions,
): (bytes: Buffer, firstLine: number) => BlockResult {
  const keeps = taskFilter(options.filters);
  return (buffer, firstLine) => {
    const records: CheckedLine[] = [];
    const ends: number[] = [];
    // The bytes of a block that is wholly UTF-8 need no check line by line.
    const utf8 = isUtf8(buffer);
    let clean = options.summaries;
    let line = firstLine;
    for (let from = 0; from < buffer.length; line++) {
      let next = buffer.indexOf(NEWLINE, from);
      if (next === -1) {
        next = buffer.length;
        clean = false; // the part gets the LF the input lacks
      }
      let start = from;
      let end = next;
      from = next + 1;
      if (end > start && buffer[end - 1] === CR) {
        end--;
        clean = false;
      }
      if (line === 1 && buffer[start] === 0xef && buffer[start + 1] === 0xbb) {
        if (buffer[start + 2] === 0xbf) {
          start += 3;
          clean = false;
        }
      }
      if (end - start > options.maxLineBytes) return { lines: line - firstLine, tooLong: true };
      if (!utf8 && !isUtf8(buffer.subarray(start, end))) {
        records.push({ line, start, end, problem: 'the line is not valid UTF-8 text' });
        clean = false;
        continue;
      }
      if (buffer[start] !== 0x7b && isBlank(buffer, start, end)) {
        clean = false;
        continue;
      }
      const scanned = scanTaskLine(buffer, start, end);
      const task = scanned.task as Task | undefined;
      const problem =
        scanned.problem ?? (options.scoreFiltered && task ? scoreProblem(task) : undefined);
      if (problem !== undefined || !keeps(task as Task)) clean = false;
      records.push(
        problem === undefined
          ? { line, start, end, task: scanned.task }
          : { line, start, end, problem },
      );
      ends.push(next + 1);
    }
    const lines = line - firstLine;
    if (!clean) return { lines, records };
    return { lines, clean: tally(records), ends };
  };
}

function tally(records: CheckedLine[]): BlockTally {
  const answers = new Tally();
  const labels = new Tally();
  const annotators = new Tally();
  const sources = new Tally();
  let flagged = 0;
  for (const record of records) {
    const task = record.task as Task;
    answers.add(task.answer ?? 'none');
    for (const label of labelsOf(task)) labels.add(label);
    if (task.flagged === true) flagged++;
    const annotator = task._annotator_id ?? task._session_id;
    if (typeof annotator === 'string') annotators.add(annotator);
    const source = task.meta?.source;
    if (typeof source === 'string') sources.add(source);
  }
  return {
    records: records.length,
    answers: answers.pairs,
    labels: labels.pairs,
    flagged,
    annotators: annotators.pairs,
    sources: sources.pairs,
  };
}
