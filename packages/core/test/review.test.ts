import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { convert } from '../src/convert.js';
import { createSelector } from '../src/select.js';
import { sheetCell } from '../src/sink/index.js';
import { Checkpoint, type StateData } from '../src/state.js';

describe('review.csv cells', () => {
  it('quotes as RFC 4180 needs and keeps spreadsheets from running text as formulas', () => {
    expect(sheetCell('plain')).toBe('plain');
    expect(sheetCell('a, "b"\nc')).toBe('"a, ""b""\nc"');
    expect(sheetCell('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(sheetCell('- a list item')).toBe("'- a list item");
    expect(sheetCell(-1234567)).toBe('-1234567');
    expect(sheetCell(0.25)).toBe('0.25');
    expect(sheetCell(undefined)).toBe('');
  });

  it('reads back through the CSV converter: text as written, hashes as task fields', async () => {
    const header = 'text,label,_input_hash,_task_hash,source';
    const row = [sheetCell('=1+1, said "she"'), 'BUG', sheetCell(-5), sheetCell(17), 'x'].join(',');
    const tasks = [];
    for await (const entry of convert('csv', Readable.from([`${header}\n${row}\n`]), {
      name: 'review.csv',
    })) {
      tasks.push(entry.task);
    }
    expect(tasks).toEqual([
      {
        text: '=1+1, said "she"',
        label: 'BUG',
        _input_hash: -5,
        _task_hash: 17,
        meta: { source: 'x' },
      },
    ]);
  });
});

describe('selection by content type', () => {
  it('matches exact types and families, ignoring parameters and case', () => {
    const select = createSelector({ types: ['image/*', 'text/csv'] });
    const item = (contentType?: string) => ({ key: 'k', contentType });
    expect(select(item('image/png'))).toBe(true);
    expect(select(item('Text/CSV; charset=utf-8'))).toBe(true);
    expect(select(item('text/plain'))).toBe(false);
    expect(select(item(undefined))).toBe(false);
  });
});

describe('checkpoint cursors', () => {
  it('saves a feed position only once the tasks before it are delivered', async () => {
    const saved: StateData[] = [];
    const checkpoint = new Checkpoint({
      location: 'memory',
      load: async () => undefined,
      save: async (data) => {
        saved.push(structuredClone(data));
      },
    });
    await checkpoint.load();
    checkpoint.complete('a', '1', 1);
    checkpoint.complete('b', '1', 2);
    checkpoint.setCursor('feed', 'token-2', 2);
    expect(checkpoint.cursor('feed')).toBe('token-2');
    await checkpoint.commit(1);
    expect(saved.at(-1)?.cursors).toBeUndefined();
    await checkpoint.commit(2);
    expect(saved.at(-1)?.cursors).toEqual({ feed: 'token-2' });
    expect(saved.at(-1)?.items).toEqual({ a: '1', b: '1' });
  });
});
