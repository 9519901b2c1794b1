import { describe, expect, it } from 'vitest';
import { splitTemplate } from '../src/sink.js';
import { assertSafeKey, renderTemplate, safeSegment, templateKeys } from '../src/template.js';

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
      'news/.._etc_passwd',
    );
    expect(safeSegment('..')).toBe('_');
    expect(safeSegment(' .. ')).toBe('_');
    expect(safeSegment('')).toBe('_');
    expect(safeSegment('a\\b\nc')).toBe('a_b_c');
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
