import { describe, expect, it } from 'vitest';
import { datasetReport } from '../src/report.js';
import { taskFilter } from '../src/sink/index.js';
import type { Task } from '../src/task.js';

const span = (start: number, end: number, label: string) => ({ start, end, label });

describe('datasetReport', () => {
  // Two annotators on the same three questions (same _task_hash), one more question for alice.
  const tasks: Task[] = [
    {
      text: 'Ada met Bob',
      _task_hash: 1,
      _annotator_id: 'ds-alice',
      _session_id: 'ds-alice',
      _timestamp: 1_767_225_600,
      answer: 'accept',
      spans: [span(0, 3, 'PERSON'), span(8, 11, 'PERSON')],
    },
    {
      text: 'Ada met Bob',
      _task_hash: 1,
      _annotator_id: 'ds-bob',
      _session_id: 'ds-bob',
      _timestamp: 1_767_229_200,
      answer: 'accept',
      // Same spans in another order: the same decision.
      spans: [span(8, 11, 'PERSON'), span(0, 3, 'PERSON')],
    },
    {
      text: 'Acme hires',
      _task_hash: 2,
      _annotator_id: 'ds-alice',
      _session_id: 'ds-alice',
      _timestamp: 1_767_232_800,
      answer: 'accept',
      spans: [span(0, 4, 'ORG')],
    },
    {
      text: 'Acme hires',
      _task_hash: 2,
      _annotator_id: 'ds-bob',
      _session_id: 'ds-bob',
      answer: 'accept',
      spans: [span(0, 4, 'PERSON')],
    },
    {
      text: 'Nothing here',
      _task_hash: 3,
      _annotator_id: 'ds-alice',
      _session_id: 'ds-alice',
      answer: 'ignore',
      flagged: true,
    },
    {
      text: 'Nothing here',
      _task_hash: 3,
      _annotator_id: 'ds-bob',
      _session_id: 'ds-bob',
      answer: 'reject',
    },
    { text: 'Solo', _task_hash: 4, _annotator_id: 'ds-alice', answer: 'accept' },
  ];

  it('counts by answer, label, annotator and session, with the time span', () => {
    const report = datasetReport(tasks);
    expect(report.examples).toBe(7);
    expect({ ...report.answers }).toEqual({ accept: 5, ignore: 1, reject: 1 });
    expect({ ...report.labels }).toEqual({ PERSON: 3, ORG: 1 });
    expect({ ...report.labelAnswers.PERSON }).toEqual({ accept: 3 });
    expect({ ...report.annotators['ds-alice'] }).toEqual({ accept: 3, ignore: 1 });
    expect({ ...report.annotators['ds-bob'] }).toEqual({ accept: 2, reject: 1 });
    expect({ ...report.sessions }).toEqual({ 'ds-alice': 3, 'ds-bob': 3 });
    expect(report.flagged).toBe(1);
    expect(report.first?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(report.last?.toISOString()).toBe('2026-01-01T02:00:00.000Z');
  });

  it('measures agreement on questions answered by more than one annotator', () => {
    const { agreement } = datasetReport(tasks);
    // Question 1 agrees (spans in another order), 2 differs by a label, 3 by the answer.
    expect(agreement.items).toBe(3);
    expect(agreement.unanimous).toBe(1);
    expect(agreement.pairs).toBe(3);
    expect(agreement.agreeing).toBe(1);
    expect(agreement.rate).toBeCloseTo(1 / 3);
    expect(agreement.byPair).toEqual({ 'ds-alice + ds-bob': { shared: 3, agreeing: 1 } });
  });

  it('counts an annotator once per question: a later answer replaces an earlier one', () => {
    const again: Task[] = [
      { text: 'x', _task_hash: 9, _annotator_id: 'a', answer: 'reject' },
      { text: 'x', _task_hash: 9, _annotator_id: 'a', answer: 'accept' },
      { text: 'x', _task_hash: 9, _annotator_id: 'b', answer: 'accept' },
    ];
    const { agreement } = datasetReport(again);
    expect(agreement).toMatchObject({ items: 1, unanimous: 1, pairs: 1, agreeing: 1, rate: 1 });
  });

  it('has no agreement rate without shared questions, and keeps data keys off the prototype', () => {
    const report = datasetReport([{ text: 'x', label: 'constructor', answer: 'accept' }]);
    expect(report.agreement.rate).toBeNull();
    expect(report.labels.constructor).toBe(1);
    expect(report.first).toBeNull();
  });
});

describe('taskFilter', () => {
  const tasks: Task[] = [
    { text: 'a', answer: 'accept', score: 0.9 },
    { text: 'b', answer: 'ignore', meta: { score: 0.8 } },
    { text: 'c', answer: 'accept', flagged: true, score: 0.95 },
    { text: 'd', answer: 'reject', meta: { score: 0.2 } },
  ];
  const kept = (filters: Parameters<typeof taskFilter>[0]) =>
    tasks.filter(taskFilter(filters)).map((task) => task.text);

  it('keeps what passes every filter, or one of them with match any', () => {
    expect(kept({})).toEqual(['a', 'b', 'c', 'd']);
    expect(kept({ answer: ['accept'], maxScore: 0.92 })).toEqual(['a']);
    expect(kept({ answer: ['ignore'], flagged: true, maxScore: 0.5, match: 'any' })).toEqual([
      'b',
      'c',
      'd',
    ]);
  });
});
