import { describe, expect, it } from 'vitest';
import { validateTask } from '../src/task.js';

describe('validateTask', () => {
  it('accepts image and audio spans, which hold coordinates or seconds instead of offsets', () => {
    const points = [
      [10.5, 20],
      [50.5, 20],
      [50.5, 70],
    ];
    expect(
      validateTask({
        image: 'http://127.0.0.1:8099/file//data/a.png',
        spans: [{ label: 'DENT', x: 10.5, y: 20, width: 40, height: 50, points, type: 'polygon' }],
        answer: 'accept',
      }),
    ).toBeUndefined();
    expect(
      validateTask({ audio: 'a.wav', spans: [{ start: 0.25, end: 1.5, label: 'SPEECH' }] }),
    ).toBeUndefined();
  });

  it('accepts real Prodigy records, unknown fields included', () => {
    expect(
      validateTask({
        text: 'Acme hires Jane',
        tokens: [{ text: 'Acme', start: 0, end: 4, id: 0, ws: true }],
        spans: [{ start: 0, end: 4, label: 'ORG', token_start: 0, token_end: 0 }],
        options: [{ id: 'A', text: 'a' }],
        accept: ['A'],
        answer: 'accept',
        flagged: true,
        meta: { score: 0.5 },
        _input_hash: -12,
        _task_hash: 34,
        custom: { anything: [1, 2] },
      }),
    ).toBeUndefined();
  });

  it.each([
    [[], 'a task must be a JSON object, got an array'],
    [null, 'a task must be a JSON object, got null'],
    [{ text: 3 }, 'text must be a string'],
    [{ text: 'abc', spans: [{ start: 2, end: 1 }] }, 'spans[0].end < start'],
    [
      {
        text: 'abc',
        spans: [
          { start: 0, end: 1 },
          { start: 0, end: 9 },
        ],
      },
      'spans[1].end (9) is past the end of text (length 3)',
    ],
    [
      { text: 'abc', spans: [{ start: -1, end: 1 }] },
      'spans[0].start must be a non-negative integer',
    ],
    [
      { text: 'abc', spans: [{ start: 0.5, end: 1 }] },
      'spans[0].start must be a non-negative integer',
    ],
    [{ audio: 'a.wav', spans: [{ start: 'x', end: 1 }] }, 'spans[0].start and end must be numbers'],
    [{ audio: 'a.wav', spans: [{ start: 2.5, end: 1.25 }] }, 'spans[0].end < start'],
    [
      { spans: [{ start: 0, end: 1, token_start: 3, token_end: 1 }] },
      'spans[0].token_end < token_start',
    ],
    [{ answer: 'maybe' }, 'answer must be accept, reject or ignore, got "maybe"'],
    [{ flagged: 'yes' }, 'flagged must be true or false'],
    [{ _input_hash: 1.5 }, '_input_hash must be an integer'],
    [{ tokens: [{ text: 'a', start: 1, end: 0 }] }, 'tokens[0].end < start'],
    [{ options: [{ text: 'no id' }] }, 'options[0].id must be a string or a number'],
    [{ meta: [] }, 'meta must be an object'],
  ])('names the path and the reason: %j', (task, problem) => {
    expect(validateTask(task)).toBe(problem);
  });
});
