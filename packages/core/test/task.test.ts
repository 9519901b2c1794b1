import { describe, expect, it } from 'vitest';
import { validateTask } from '../src/task.js';

describe('validateTask', () => {
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
    [{ spans: [{ start: -1, end: 1 }] }, 'spans[0].start must be a non-negative integer'],
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
