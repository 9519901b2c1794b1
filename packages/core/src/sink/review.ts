// review.csv: the kept examples as a table a reviewer opens in Google Sheets or Excel.
import type { Task } from '../task.js';
import { scoreOf } from './filters.js';

export const REVIEW_COLUMNS = [
  'text',
  'label',
  'answer',
  'score',
  'flagged',
  'spans',
  'accept',
  '_input_hash',
  '_task_hash',
  'source',
  'annotator',
] as const;

/**
 * A CSV cell a spreadsheet shows as written: quoted as RFC 4180 needs, and text that a
 * spreadsheet would run as a formula (a leading =, +, - or @) behind a `'`, which
 * spreadsheets hide and the source's CSV reader takes off again.
 */
export function sheetCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@]/.test(text) && !/^-?\d+(\.\d+)?(e-?\d+)?$/i.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A review.csv row: what a reviewer reads and corrects, plus the hashes that tie it to the example. */
export function reviewRow(task: Task): string {
  const text = typeof task.text === 'string' ? task.text : '';
  const spans = (task.spans ?? [])
    .map((span) =>
      typeof span.start === 'number' && typeof span.end === 'number'
        ? `${span.label ?? ''}: ${text.slice(span.start, span.end)}`
        : String(span.label ?? ''),
    )
    .join('; ');
  const values: Record<(typeof REVIEW_COLUMNS)[number], unknown> = {
    text,
    label: task.label,
    answer: task.answer,
    score: scoreOf(task),
    flagged: task.flagged === true ? 'true' : '',
    spans,
    accept: Array.isArray(task.accept) ? task.accept.join(', ') : '',
    _input_hash: task._input_hash,
    _task_hash: task._task_hash,
    source: task.meta?.source,
    annotator: task._annotator_id ?? task._session_id,
  };
  return REVIEW_COLUMNS.map((column) => sheetCell(values[column])).join(',');
}
