import { describe, expect, it } from 'vitest';
import { splitTemplate } from '../src/sink/index.js';
import {
  assertSafeKey,
  isSafeKey,
  MAX_VALUE_BYTES,
  renderTemplate,
  safeSegment,
  templateKeys,
} from '../src/template.js';

describe('sink templates', () => {
  it('splits the export root from the part key at the first per-part placeholder', () => {
    expect(splitTemplate('s3://b/exports/{dataset}/{date}/', 'part-{part}.jsonl')).toEqual({
      root: 's3://b/exports/{dataset}/{date}',
      key: 'part-{part}.jsonl',
    });
    expect(splitTemplate('s3://b/x/{answer}', 'part-{part}.jsonl')).toEqual({
      root: 's3://b/x',
      key: '{answer}/part-{part}.jsonl',
    });
    expect(splitTemplate('out', 'all.jsonl')).toEqual({ root: 'out', key: 'all.jsonl' });
  });

  it('keeps run placeholders in the export root, so datasets never share one', () => {
    expect(() => splitTemplate('q/{answer}-{dataset}', 'part-{part}')).toThrow(
      /\{dataset\} must be in a folder of its own/,
    );
    expect(() => splitTemplate('{answer}', 'part-{part}')).toThrow(/export root must come before/);
  });

  it('renders values as single safe path segments', () => {
    expect(renderTemplate('{dataset}/{label}', { dataset: 'news', label: '../etc/passwd' })).toBe(
      'news/%2E.%2Fetc%2Fpasswd',
    );
    expect(safeSegment('..')).toBe('%2E%2E');
    expect(safeSegment(' .. ')).toBe('%20..%20');
    expect(safeSegment('.hidden')).toBe('%2Ehidden');
    expect(safeSegment('')).toBe('~');
    expect(safeSegment('a\\b\nc')).toBe('a%5Cb%0Ac');
    expect(safeSegment('Zürich — Größe (2)')).toBe('Zürich %E2%80%94 Größe (2)');
  });

  it('escapes injectively: values that were once cleaned alike keep names of their own', () => {
    const values = ['team/ner', 'team_ner', 'a/b', 'a_b', '..', '_', '', '~', '%2F', '/', '\ud800'];
    const names = values.map(safeSegment);
    expect(new Set(names).size).toBe(values.length);
    for (const name of names) expect(isSafeKey(name)).toBe(true);
  });

  it('shortens long values with a hash suffix, still distinct', () => {
    const a = safeSegment('é'.repeat(200));
    const b = safeSegment(`${'é'.repeat(199)}e`);
    expect(Buffer.byteLength(a)).toBeLessThanOrEqual(MAX_VALUE_BYTES);
    expect(a).toMatch(/^é+~[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
    expect(safeSegment('x'.repeat(MAX_VALUE_BYTES))).toBe('x'.repeat(MAX_VALUE_BYTES));
  });

  it('rejects unknown placeholders and missing values with a hint', () => {
    expect(() => templateKeys('x/{datset}')).toThrow(/unknown placeholder \{datset\}/);
    expect(() => renderTemplate('x/{dataset}', {})).toThrow(/has no value/);
  });

  it.each(['', '/abs', 'a/../b', '..', 'a//b', './a', 'C:/x', 'a\\b'])(
    'refuses the key %j',
    (key) => {
      expect(() => assertSafeKey(key)).toThrow(/escape the export root/);
    },
  );

  it('accepts nested relative keys', () => {
    expect(assertSafeKey('a/b/part-00000.jsonl')).toBe('a/b/part-00000.jsonl');
  });
});
