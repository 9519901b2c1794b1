// Which examples an export or a review selection keeps, and the values they are grouped by.
import type { Answer, Task } from '../task.js';

/** The filters of an export or a review selection. */
export interface TaskFilters {
  /** Keep only these answers. */
  answer?: Answer[];
  /** Keep only flagged examples. */
  flagged?: boolean;
  /** Keep only examples whose score (`score` or `meta.score`) is at least this. */
  minScore?: number;
  /** Keep only examples whose score is at most this. */
  maxScore?: number;
  /** Keep only examples with one of these labels (task label, span labels or accepted options). */
  label?: string[];
  /** `all` (default): an example must pass every filter given; `any`: one is enough (review routing). */
  match?: 'all' | 'any';
}

/** The score a task gives (`score`, else `meta.score`): a number, or a string holding one. */
function rawScore(task: Task): unknown {
  return task.score ?? task.meta?.score;
}

/**
 * A task's score: `score`, else `meta.score`, as a number. A numeric string counts (a
 * review.csv read back carries its scores as text); anything else is no score.
 */
export function scoreOf(task: Task): number | undefined {
  const score = rawScore(task);
  if (typeof score === 'number') return Number.isFinite(score) ? score : undefined;
  if (typeof score === 'string' && score.trim() !== '') {
    const value = Number(score);
    return Number.isFinite(value) ? value : undefined;
  }
  return undefined;
}

/** Why a task's score cannot be compared (a score filter would silently drop it), if so. */
export function scoreProblem(task: Task): string | undefined {
  const score = rawScore(task);
  if (score === undefined || score === null || scoreOf(task) !== undefined) return undefined;
  const field = task.score !== undefined && task.score !== null ? 'score' : 'meta.score';
  return `${field} must be a number to filter by score, got ${JSON.stringify(score)}`;
}

/** Every label a task mentions: its `label`, span labels and accepted option ids. */
export function labelsOf(task: Task): Set<string> {
  const labels = new Set<string>();
  if (typeof task.label === 'string') labels.add(task.label);
  for (const span of task.spans ?? []) if (typeof span.label === 'string') labels.add(span.label);
  if (Array.isArray(task.accept)) for (const id of task.accept) labels.add(String(id));
  return labels;
}

/** Whether a task passes the filters: every one given (`match: 'all'`, the default) or one. */
export function taskFilter(filters: TaskFilters): (task: Task) => boolean {
  const answers = filters.answer?.length ? new Set<string>(filters.answer) : undefined;
  const labels = filters.label?.length ? new Set(filters.label) : undefined;
  const { flagged, minScore, maxScore, match } = filters;
  return (task) => {
    const tests: boolean[] = [];
    if (answers) tests.push(answers.has(task.answer ?? ''));
    if (flagged) tests.push(task.flagged === true);
    if (minScore !== undefined || maxScore !== undefined) {
      const score = scoreOf(task);
      tests.push(
        score !== undefined &&
          (minScore === undefined || score >= minScore) &&
          (maxScore === undefined || score <= maxScore),
      );
    }
    if (labels) tests.push([...labelsOf(task)].some((label) => labels.has(label)));
    if (tests.length === 0) return true;
    return match === 'any' ? tests.includes(true) : !tests.includes(false);
  };
}

/** The value of `{label}` for one task: its single label, `mixed` for several, `none` for none. */
export function groupLabel(task: Task): string {
  if (typeof task.label === 'string') return task.label;
  const labels = labelsOf(task);
  const [only] = labels;
  return labels.size === 0 ? 'none' : labels.size === 1 ? (only as string) : 'mixed';
}
