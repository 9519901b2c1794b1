// The figures of an annotated dataset, as a progress and quality report shows them: counts by
// answer, label, annotator and session, the time span, and agreement between annotators.
import { labelsOf } from './sink/index.js';
import type { Task } from './task.js';

/** Agreement between annotators on the questions more than one of them answered. */
export interface Agreement {
  /** Questions (same `_task_hash`) answered by two or more annotators. */
  items: number;
  /** Of those, the ones every annotator answered the same way. */
  unanimous: number;
  /** Pairs of annotators on the same question, and the pairs that agreed. */
  pairs: number;
  agreeing: number;
  /** `agreeing / pairs`, or null without pairs. */
  rate: number | null;
  /** Per pair of annotators (`a + b`, sorted): questions both answered, and agreed on. */
  byPair: Record<string, { shared: number; agreeing: number }>;
}

/** What a report shows. Keys of the count records are data, so they have no prototype. */
export interface DatasetReport {
  examples: number;
  answers: Record<string, number>;
  /** Examples mentioning each label (task label, span labels, accepted options). */
  labels: Record<string, number>;
  /** Per label, examples by answer. */
  labelAnswers: Record<string, Record<string, number>>;
  /** By `_annotator_id` (else `_session_id`), examples by answer. */
  annotators: Record<string, Record<string, number>>;
  /** Examples by `_session_id`. */
  sessions: Record<string, number>;
  flagged: number;
  /** First and last `_timestamp` (seconds since the epoch, as Prodigy stores it). */
  first: Date | null;
  last: Date | null;
  agreement: Agreement;
}

const tally = () => Object.create(null) as Record<string, number>;
const increment = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** What an annotator decided on a question: the answer and what was marked. */
function decision(task: Task): string {
  const spans = (task.spans ?? [])
    .map((span) => [span.start, span.end, span.label ?? ''] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1] || String(a[2]).localeCompare(String(b[2])));
  const accept = Array.isArray(task.accept) ? task.accept.map(String).sort() : [];
  return JSON.stringify([task.answer ?? '', spans, accept]);
}

/** Who annotated an example: `_annotator_id`, else `_session_id`. */
function annotatorOf(task: Task): string | undefined {
  const id = task._annotator_id ?? task._session_id;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

/** Builds a report one example at a time; memory grows with the questions, not their text. */
export class ReportBuilder {
  private readonly report: DatasetReport = {
    examples: 0,
    answers: tally(),
    labels: tally(),
    labelAnswers: Object.create(null),
    annotators: Object.create(null),
    sessions: tally(),
    flagged: 0,
    first: null,
    last: null,
    agreement: { items: 0, unanimous: 0, pairs: 0, agreeing: 0, rate: null, byPair: {} },
  };
  /** Per question, each annotator's latest decision. */
  private readonly decisions = new Map<number | string, Map<string, string>>();

  add(task: Task): void {
    const r = this.report;
    r.examples++;
    const answer = task.answer ?? 'none';
    increment(r.answers, answer);
    for (const label of labelsOf(task)) {
      increment(r.labels, label);
      r.labelAnswers[label] ??= tally();
      increment(r.labelAnswers[label], answer);
    }
    if (task.flagged === true) r.flagged++;
    const session = task._session_id;
    if (typeof session === 'string' && session !== '') increment(r.sessions, session);
    const annotator = annotatorOf(task);
    if (annotator !== undefined) {
      r.annotators[annotator] ??= tally();
      increment(r.annotators[annotator], answer);
    }
    const timestamp = task._timestamp;
    if (typeof timestamp === 'number' && Number.isFinite(timestamp)) {
      const at = new Date(timestamp * 1000);
      if (!r.first || at < r.first) r.first = at;
      if (!r.last || at > r.last) r.last = at;
    }
    const question = task._task_hash;
    if (annotator !== undefined && (typeof question === 'number' || typeof question === 'string')) {
      let byAnnotator = this.decisions.get(question);
      if (!byAnnotator) {
        byAnnotator = new Map();
        this.decisions.set(question, byAnnotator);
      }
      byAnnotator.set(annotator, decision(task));
    }
  }

  result(): DatasetReport {
    const agreement: Agreement = {
      items: 0,
      unanimous: 0,
      pairs: 0,
      agreeing: 0,
      rate: null,
      byPair: Object.create(null),
    };
    for (const byAnnotator of this.decisions.values()) {
      if (byAnnotator.size < 2) continue;
      agreement.items++;
      const entries = [...byAnnotator].sort(([a], [b]) => (a < b ? -1 : 1));
      if (new Set(entries.map(([, d]) => d)).size === 1) agreement.unanimous++;
      for (let i = 0; i < entries.length; i++) {
        for (let j = i + 1; j < entries.length; j++) {
          const [a, da] = entries[i] as [string, string];
          const [b, db] = entries[j] as [string, string];
          const key = `${a} + ${b}`;
          agreement.byPair[key] ??= { shared: 0, agreeing: 0 };
          const pair = agreement.byPair[key];
          pair.shared++;
          agreement.pairs++;
          if (da === db) {
            pair.agreeing++;
            agreement.agreeing++;
          }
        }
      }
    }
    agreement.rate = agreement.pairs > 0 ? agreement.agreeing / agreement.pairs : null;
    return { ...this.report, agreement };
  }
}

/** The report of a set of examples. */
export function datasetReport(tasks: Iterable<Task>): DatasetReport {
  const builder = new ReportBuilder();
  for (const task of tasks) builder.add(task);
  return builder.result();
}
