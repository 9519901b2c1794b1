import { describe, expect, it } from 'vitest';
import { createSelector, parseShard, parseSize, parseTime } from '../src/select.js';

describe('selection', () => {
  it('matches bare globs at any depth and path globs from the root', () => {
    const select = createSelector({
      include: ['*.jsonl', 'docs/**/*.txt'],
      exclude: ['**/tmp/**'],
    });
    expect(select({ key: 'a.jsonl' })).toBe(true);
    expect(select({ key: 'x/y/a.jsonl' })).toBe(true);
    expect(select({ key: 'docs/a/b.txt' })).toBe(true);
    expect(select({ key: 'other/b.txt' })).toBe(false);
    expect(select({ key: 'x/tmp/a.jsonl' })).toBe(false);
  });

  it('keeps items of unknown size or time out of size and time bounds', () => {
    expect(createSelector({ minSize: 1 })({ key: 'a' })).toBe(false);
    expect(createSelector({ modifiedSince: new Date(0) })({ key: 'a' })).toBe(false);
  });

  it('samples close to the requested fraction', () => {
    const select = createSelector({ sample: 0.25, seed: 's' });
    let kept = 0;
    for (let i = 0; i < 4000; i++) if (select({ key: `k${i}` })) kept++;
    expect(kept).toBeGreaterThan(850);
    expect(kept).toBeLessThan(1150);
  });

  it('refuses bad fractions and shards', () => {
    expect(() => createSelector({ sample: 0 })).toThrow(/--sample/);
    expect(() => createSelector({ shard: { index: 0, count: 2 } })).toThrow(/--shard/);
    expect(() => parseShard('1-2')).toThrow(/k\/n/);
  });

  it('parses sizes, durations and dates', () => {
    expect(parseSize('64k', '--x')).toBe(65536);
    expect(parseSize('5MB', '--x')).toBe(5 * 1024 * 1024);
    expect(parseSize('1.5GiB', '--x')).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize('lots', '--max-size')).toThrow(/--max-size: not a size/);
    const now = Date.UTC(2026, 10, 23);
    expect(parseTime('24h', '--since', now).toISOString()).toBe('2026-11-22T00:00:00.000Z');
    expect(parseTime('2026-11-01', '--since').toISOString()).toBe('2026-11-01T00:00:00.000Z');
    expect(() => parseTime('yesterday', '--since')).toThrow(/--since: not a date or duration/);
  });
});
